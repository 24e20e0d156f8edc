/* The embedded tab: lists the app's BI Builder connectors and sources and edits them through
 * the app's own JSON API (/api). No build step, no framework, no cookies: every request carries
 * the session token from <meta name="session-token"> as a Bearer token.
 *
 * Bitrix24's BX24 library is optional here: it resizes the frame (BX24.fitWindow), picks users
 * (BX24.selectUsers) and gives the page a fresh authorization (BX24.getAuth), sent along with every
 * change and with the renewal of the short-lived session token. Without it the tab still reads,
 * editors still edit, and the session lasts until it expires.
 */
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("tab-config").textContent);
  var T = config.texts;
  var sessionToken = document.querySelector('meta[name="session-token"]').content;
  // Logos at other addresses are not loaded (img-src allows data: only): no one's tab fetches an editor's URL.
  var PLACEHOLDER_LOGO = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'%3E" +
    "%3Crect width='32' height='32' rx='6' fill='%23dfe3e6'/%3E%3C/svg%3E";
  var canEdit = config.user.canEdit;

  var LIMITS = { title: 512, url: 2048, settingName: 512, settingCode: 512, logoBytes: 512 * 1024 };
  var URL_FIELDS = ["urlCheck", "urlTableList", "urlTableDescription", "urlData"];
  var state = { connectors: [], sources: [], connector: null, source: null, databases: [], database: null,
                returnFocus: null };

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }
  function format(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, key) { return values[key]; });
  }

  // --- Bitrix24 frame ------------------------------------------------------------------------

  var bx24Ready = false;
  var fitTimer = null;

  function initBX24() {
    if (!window.BX24 || typeof BX24.init !== "function") { return; }
    try {
      BX24.init(function () { bx24Ready = true; fitWindow(); });
    } catch (e) { /* outside a Bitrix24 frame: nothing to resize */ }
    var pick = $("#editor-pick");
    if (pick && typeof BX24.selectUsers === "function") {
      pick.hidden = false;
      pick.addEventListener("click", onPickEditors);
    }
  }

  function fitWindow() {
    clearTimeout(fitTimer);
    fitTimer = setTimeout(function () {
      if (bx24Ready && window.BX24 && typeof BX24.fitWindow === "function") {
        try { BX24.fitWindow(); } catch (e) { /* ignore */ }
      }
    }, 50);
  }

  // --- API -----------------------------------------------------------------------------------

  function ApiError(status, body) {
    this.status = status;
    this.code = body.error || "ERROR";
    this.message = body.error_description || "";
    this.fields = body.fields || [];
  }

  // The user's current Bitrix24 access token ("" without BX24): the server re-checks rights with it.
  function freshAuth() {
    return new Promise(function (resolve) {
      if (!bx24Ready || typeof BX24.getAuth !== "function") { resolve(""); return; }
      var auth = BX24.getAuth();
      if (auth && auth.access_token) { resolve(auth.access_token); return; }
      BX24.refreshAuth(function (fresh) { resolve((fresh && fresh.access_token) || ""); });
    });
  }

  // Writes carry a fresh authorization; one that finds the session expired renews it and is sent again
  // (nothing was done: the session is checked first).
  function api(method, path, body, renewed) {
    var auth = method === "GET" ? Promise.resolve("") : freshAuth();
    return auth.then(function (token) { return send(method, path, body, token); }).catch(function (error) {
      if (error.code !== "SESSION_EXPIRED" || renewed) { throw error; }
      return renewSession().then(function () { return api(method, path, body, true); },
                                 function () { throw error; });
    });
  }

  var renewal = null;
  var renewTimer = null;

  function renewSession() {
    if (!renewal) {
      renewal = freshAuth().then(function (token) {
        return send("POST", "/session/renew", undefined, token);
      }).then(function (result) {
        renewal = null;
        sessionToken = result.token;
        scheduleRenewal(result.expiresIn);
      }, function (error) {
        renewal = null;
        throw error;
      });
    }
    return renewal;
  }

  function scheduleRenewal(seconds) {
    clearTimeout(renewTimer);
    renewTimer = setTimeout(function () { renewSession().catch(function () { /* the next request says so */ }); },
                            Math.max(30, seconds * 0.8) * 1000);
  }

  function send(method, path, body, auth) {
    var options = {
      method: method,
      headers: { "Authorization": "Bearer " + sessionToken, "Accept": "application/json" },
      credentials: "omit",
      cache: "no-store"
    };
    if (auth) { options.headers["X-Bitrix24-Auth"] = auth; }
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(config.apiBase + path, options).then(function (response) {
      return response.json().catch(function () {
        return { error: "HTTP_" + response.status, error_description: T.network_error };
      }).then(function (data) {
        if (!response.ok || data.error) { throw new ApiError(response.status, data); }
        return data.result;
      });
    }, function () {
      throw new ApiError(0, { error: "NETWORK_ERROR", error_description: T.network_error });
    });
  }

  // --- notices -------------------------------------------------------------------------------

  var noticeTimer = null;

  function notify(kind, message, code) {
    var notice = $("#notice");
    clearTimeout(noticeTimer);
    notice.className = "notice notice-" + kind;
    $(".notice-text", notice).textContent = message;
    $(".notice-code", notice).textContent = code ? T.error_code + ": " + code : "";
    notice.hidden = false;
    if (kind === "success" || kind === "info") {
      noticeTimer = setTimeout(function () { notice.hidden = true; fitWindow(); }, 4000);
    }
    fitWindow();
  }

  function notifyError(error) {
    notify("error", error.message || T.network_error, error.code);
  }

  // --- views ---------------------------------------------------------------------------------

  function showView(id) {
    $all(".view").forEach(function (view) { view.hidden = view.id !== id; });
    window.scrollTo(0, 0);
    // The frame grows with its content, so the portal page is what scrolls: bring the top back.
    if (bx24Ready && typeof BX24.scrollParentWindow === "function") {
      try { BX24.scrollParentWindow(0); } catch (e) { /* ignore */ }
    }
    fitWindow();
  }

  function button(label, onClick, className) {
    var element = document.createElement("button");
    element.type = "button";
    element.className = className || "button secondary small";
    element.textContent = label;
    element.addEventListener("click", onClick);
    return element;
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function loadList() {
    var list = $("#connector-list");
    list.setAttribute("aria-busy", "true");
    return Promise.all([api("GET", "/connectors"), api("GET", "/sources")]).then(function (results) {
      state.connectors = results[0];
      state.sources = results[1];
      renderList();
    }).catch(function (error) { showListError(list, error); });
  }

  function showListError(list, error) {
    list.textContent = "";
    list.appendChild(element("p", "list-error", error.message));
    list.appendChild(element("p", "muted", T.error_code + ": " + error.code));
    list.setAttribute("aria-busy", "false");
    fitWindow();
  }

  function backToList() {
    showView("list-view");
    restoreFocus();
  }

  function restoreFocus() {
    var target = state.returnFocus && state.returnFocus();
    state.returnFocus = null;
    if (target) { target.focus(); }
  }

  function bySortThenTitle(a, b) {
    return (a.sort || 0) - (b.sort || 0) || String(a.title).localeCompare(String(b.title));
  }

  function renderList() {
    var list = $("#connector-list");
    list.textContent = "";
    list.setAttribute("aria-busy", "false");
    if (!state.connectors.length) {
      list.appendChild(element("p", "empty", T.no_connectors));
    }
    var known = {};
    state.connectors.slice().sort(bySortThenTitle).forEach(function (connector) {
      known[connector.id] = true;
      var sources = state.sources.filter(function (s) { return s.connectorId === connector.id; });
      list.appendChild(connectorCard(connector, sources));
    });
    var orphans = state.sources.filter(function (s) { return !known[s.connectorId]; });
    if (orphans.length) {
      var card = element("div", "card");
      card.appendChild(element("h3", "card-title", T.orphan_sources));
      card.appendChild(sourceList(orphans));
      list.appendChild(card);
    }
    fitWindow();
  }

  function connectorCard(connector, sources) {
    var card = element("article", "card connector-card");
    card.setAttribute("data-connector-id", connector.id);
    var head = element("div", "card-head");
    if (connector.logo) {
      var logo = element("img", "card-logo");
      logo.alt = "";
      showLogo(logo, connector.logo);
      head.appendChild(logo);
    }
    var titles = element("div", "card-titles");
    titles.appendChild(element("h3", "card-title", connector.title));
    titles.appendChild(element("p", "muted small", "ID " + connector.id + " · " + format(T.source_count, { n: sources.length })));
    if (connector.description) { titles.appendChild(element("p", "card-description", connector.description)); }
    head.appendChild(titles);
    head.appendChild(button(canEdit ? T.edit : T.view, function () { openConnector(connector.id); }));
    card.appendChild(head);
    card.appendChild(sources.length ? sourceList(sources) : element("p", "muted small no-sources", T.no_sources));
    return card;
  }

  function sourceList(sources) {
    var list = element("ul", "source-list");
    sources.slice().sort(bySortThenTitle).forEach(function (source) {
      var item = element("li", "source-item");
      item.setAttribute("data-source-id", source.id);
      item.appendChild(element("span", "source-title", source.title));
      item.appendChild(element("span", "badge " + (source.active ? "badge-on" : "badge-off"),
        source.active ? T.active_yes : T.active_no));
      item.appendChild(button(canEdit ? T.edit : T.view, function () { openSource(source.id); }));
      list.appendChild(item);
    });
    return list;
  }

  // --- form helpers --------------------------------------------------------------------------

  function clearErrors(form) {
    $all(".field-error", form).forEach(function (p) { p.hidden = true; p.textContent = ""; });
    $all(".invalid", form).forEach(function (node) { node.classList.remove("invalid"); });
  }

  function fieldBox(form, field) {
    var match = /^settings\[(\d+)\]/.exec(field);
    if (match) {
      var row = $all("#settings-rows tr", form)[Number(match[1])];
      if (row) { row.classList.add("invalid"); }
      return { box: $('[data-field="settings"]', form), prefix: format(T.row, { n: Number(match[1]) + 1 }) + ": " };
    }
    var box = $all("[data-field]", form).filter(function (node) { return node.getAttribute("data-field") === field; })[0];
    return { box: box || $('[data-field="settings"]', form) || form, prefix: box ? "" : field + ": " };
  }

  function showFieldErrors(form, errors) {
    errors.forEach(function (error) {
      var target = fieldBox(form, error.field);
      var paragraph = $(".field-error", target.box);
      if (!paragraph) { return; }
      paragraph.textContent = (paragraph.textContent ? paragraph.textContent + " " : "") + target.prefix + error.message;
      paragraph.hidden = false;
      target.box.classList.add("invalid");
    });
    var first = $(".invalid input, .invalid textarea, .invalid select", form);
    if (first) { first.focus(); }
    fitWindow();
  }

  function setReadOnly(form) {
    $all("input, textarea, select", form).forEach(function (input) { input.disabled = !canEdit; });
    $all("[data-edit-only]", form.parentNode).forEach(function (node) { node.hidden = !canEdit; });
  }

  function setSaving(form, saving, label) {
    var submit = $('button[type="submit"]', form);
    form.setAttribute("aria-busy", saving ? "true" : "false");
    if (submit) {
      submit.disabled = saving;
      submit.textContent = saving ? (label || T.saving) : submit.getAttribute("data-label");
    }
  }

  function isHttpUrl(value) {
    return /^https?:\/\/[^\s/?#]+[^\s]*$/i.test(value);
  }

  function isInteger(value) {
    return /^\s*[+-]?\d+\s*$/.test(String(value));
  }

  function handleSaveError(form, error) {
    if (error.fields && error.fields.length) { showFieldErrors(form, error.fields); }
    notifyError(error);
  }

  // --- connector editor ----------------------------------------------------------------------

  var connectorForm = $("#connector-form");

  function openConnector(id) {
    notifyClear();
    api("GET", "/connectors/" + id).then(function (connector) {
      fillConnector(connector);
      showView("connector-editor");
    }).catch(notifyError);
  }

  function fillConnector(connector) {
    state.connector = connector;
    clearErrors(connectorForm);
    $('#connector-editor [data-bind="heading"]').textContent = connector.title;
    ["title", "description", "logo"].concat(URL_FIELDS).forEach(function (name) {
      connectorForm.elements[name].value = connector[name] || "";
    });
    connectorForm.elements.sort.value = connector.sort === undefined ? "" : connector.sort;
    $all("[data-optional]", connectorForm).forEach(function (box) {
      var name = box.getAttribute("data-field");
      box.hidden = !(name in connector);
    });
    connectorForm.elements.supportMapping.checked = connector.supportMapping === true;
    connectorForm.elements.sourceCode.value = connector.sourceCode || "";
    var rows = $("#settings-rows");
    rows.textContent = "";
    (connector.settings || []).forEach(addSettingRow);
    updateLogoPreview();
    setReadOnly(connectorForm);
  }

  function addSettingRow(setting) {
    var row = document.importNode($("#setting-row-template").content, true).firstElementChild;
    row.querySelector('[name="setting-name"]').value = setting.name || "";
    row.querySelector('[name="setting-code"]').value = setting.code || "";
    row.querySelector('[name="setting-type"]').value = setting.type === "INT" ? "INT" : "STRING";
    $("#settings-rows").appendChild(row);
    setReadOnly(connectorForm);
    fitWindow();
    return row;
  }

  function readSettings() {
    return $all("#settings-rows tr").map(function (row) {
      return {
        name: row.querySelector('[name="setting-name"]').value.trim(),
        code: row.querySelector('[name="setting-code"]').value.trim(),
        type: row.querySelector('[name="setting-type"]').value
      };
    });
  }

  function readConnector() {
    var elements = connectorForm.elements;
    var fields = {
      title: elements.title.value.trim(),
      description: elements.description.value,
      logo: elements.logo.value.trim(),
      settings: readSettings()
    };
    URL_FIELDS.forEach(function (name) { fields[name] = elements[name].value.trim(); });
    if (elements.sort.value.trim() !== "") { fields.sort = Number(elements.sort.value); }
    if ("supportMapping" in state.connector) { fields.supportMapping = elements.supportMapping.checked; }
    if ("sourceCode" in state.connector) { fields.sourceCode = elements.sourceCode.value.trim(); }
    return fields;
  }

  function comparable(connector, name) {
    if (name === "settings") {
      return JSON.stringify((connector.settings || []).map(function (s) {
        return { name: s.name, code: s.code, type: s.type };
      }));
    }
    var value = connector[name];
    return JSON.stringify(value === undefined || value === null ? "" : value);
  }

  function connectorChanges(fields) {
    var changes = {};
    Object.keys(fields).forEach(function (name) {
      if (comparable(fields, name) !== comparable(state.connector, name)) { changes[name] = fields[name]; }
    });
    return changes;
  }

  function connectorErrors(fields) {
    var errors = [];
    function add(field, message) { errors.push({ field: field, message: message }); }
    if (!fields.title) { add("title", T.required); } else if (fields.title.length > LIMITS.title) { add("title", T.too_long); }
    if (!fields.logo) { add("logo", T.required); }
    else if (!isHttpUrl(fields.logo) && !/^data:image\//i.test(fields.logo)) { add("logo", T.bad_logo); }
    URL_FIELDS.forEach(function (name) {
      if (!fields[name]) { add(name, T.required); }
      else if (fields[name].length > LIMITS.url) { add(name, T.too_long); }
      else if (!isHttpUrl(fields[name])) { add(name, T.bad_url); }
    });
    if ("sort" in fields && !Number.isInteger(fields.sort)) { add("sort", T.not_integer); }
    var seen = {};
    fields.settings.forEach(function (setting, index) {
      var where = "settings[" + index + "]";
      if (!setting.name || !setting.code) { add(where, T.required); }
      else if (setting.name.length > LIMITS.settingName || setting.code.length > LIMITS.settingCode) { add(where, T.too_long); }
      else if (seen[setting.code]) { add(where, T.duplicate_code); }
      seen[setting.code] = true;
    });
    return errors;
  }

  function saveConnector(event) {
    event.preventDefault();
    if (!canEdit) { return; }
    clearErrors(connectorForm);
    var fields = readConnector();
    var errors = connectorErrors(fields);
    if (errors.length) { showFieldErrors(connectorForm, errors); return; }
    var changes = connectorChanges(fields);
    if (!Object.keys(changes).length) { notify("info", T.nothing_changed); return; }
    setSaving(connectorForm, true);
    api("POST", "/connectors/" + state.connector.id, { fields: changes }).then(function (result) {
      fillConnector(result.item);
      replaceById(state.connectors, result.item);
      renderList();
      notify("success", T.saved);
    }).catch(function (error) {
      handleSaveError(connectorForm, error);
    }).then(function () { setSaving(connectorForm, false); });
  }

  function onSettingsClick(event) {
    var target = event.target.closest("button[data-action]");
    if (!target || !canEdit) { return; }
    var row = target.closest("tr");
    var action = target.getAttribute("data-action");
    if (action === "remove") { row.parentNode.removeChild(row); }
    if (action === "up" && row.previousElementSibling) { row.parentNode.insertBefore(row, row.previousElementSibling); }
    if (action === "down" && row.nextElementSibling) { row.parentNode.insertBefore(row.nextElementSibling, row); }
    fitWindow();
  }

  function showLogo(image, url) {
    var inline = /^data:image\//i.test(url);
    image.src = inline ? url : PLACEHOLDER_LOGO;
    image.title = inline ? "" : T.logo_not_shown;
  }

  function updateLogoPreview() {
    var value = connectorForm.elements.logo.value.trim();
    var preview = $("#c-logo-preview");
    preview.hidden = !(isHttpUrl(value) || /^data:image\//i.test(value));
    if (!preview.hidden) { showLogo(preview, value); }
  }

  function onLogoFile(event) {
    var file = event.target.files[0];
    if (!file) { return; }
    clearErrors(connectorForm);
    if (file.size > LIMITS.logoBytes) {
      showFieldErrors(connectorForm, [{ field: "logo", message: T.logo_too_big }]);
      return;
    }
    var reader = new FileReader();
    reader.onload = function () {
      connectorForm.elements.logo.value = reader.result;
      updateLogoPreview();
    };
    reader.readAsDataURL(file);
  }

  // --- source editor -------------------------------------------------------------------------

  var sourceForm = $("#source-form");

  function openSource(id) {
    notifyClear();
    api("GET", "/sources/" + id).then(function (source) {
      fillSource(source);
      showView("source-editor");
    }).catch(notifyError);
  }

  function connectorTitle(id) {
    var connector = state.connectors.filter(function (c) { return c.id === id; })[0];
    return connector ? connector.title + " (ID " + id + ")" : format(T.connector_id, { id: id });
  }

  function fillSource(source) {
    state.source = source;
    clearErrors(sourceForm);
    $('#source-editor [data-bind="heading"]').textContent = source.title;
    sourceForm.elements.title.value = source.title || "";
    sourceForm.elements.description.value = source.description || "";
    $('#source-editor [data-bind="connector"]').textContent = connectorTitle(source.connectorId);
    var active = $('#source-editor [data-bind="active"]');
    active.textContent = source.active ? T.active_yes : T.active_no;
    active.className = "badge " + (source.active ? "badge-on" : "badge-off");
    var box = $("#source-settings");
    box.textContent = "";
    (source.settings || []).forEach(function (setting) { box.appendChild(settingField(setting)); });
    setReadOnly(sourceForm);
    fitWindow();
  }

  function settingField(setting) {
    var field = element("div", "field");
    field.setAttribute("data-field", "settings." + setting.code);
    var id = "s-setting-" + setting.code.replace(/[^A-Za-z0-9_-]/g, "_");
    var label = element("label", null, setting.name + " ");
    label.htmlFor = id;
    label.appendChild(element("code", "muted", setting.code));
    var input = element("input");
    input.id = id;
    input.name = "setting:" + setting.code;
    input.setAttribute("data-code", setting.code);
    input.setAttribute("data-type", setting.type);
    input.autocomplete = "off";
    input.type = setting.type === "INT" ? "number" : (/pass|secret|token|key/i.test(setting.code) ? "password" : "text");
    if (setting.type === "INT") { input.step = "1"; }
    input.placeholder = setting.isSet ? T.value_set : T.value_not_set;
    field.appendChild(label);
    field.appendChild(input);
    field.appendChild(element("p", "field-error"));
    field.lastChild.hidden = true;
    return field;
  }

  function readSource() {
    var fields = { title: sourceForm.elements.title.value.trim() };
    var description = sourceForm.elements.description.value;
    if (description !== (state.source.description || "")) { fields.description = description; }
    var settings = {};
    $all("#source-settings input").forEach(function (input) {
      if (input.value.trim() !== "") { settings[input.getAttribute("data-code")] = input.value.trim(); }
    });
    if (Object.keys(settings).length) { fields.settings = settings; }
    return fields;
  }

  function sourceErrors(fields) {
    var errors = [];
    if (!fields.title) { errors.push({ field: "title", message: T.required }); }
    else if (fields.title.length > LIMITS.title) { errors.push({ field: "title", message: T.too_long }); }
    $all("#source-settings input").forEach(function (input) {
      if (input.getAttribute("data-type") === "INT" && input.value.trim() !== "" && !isInteger(input.value)) {
        errors.push({ field: "settings." + input.getAttribute("data-code"), message: T.not_integer });
      }
    });
    return errors;
  }

  function saveSource(event) {
    event.preventDefault();
    if (!canEdit) { return; }
    clearErrors(sourceForm);
    var fields = readSource();
    var errors = sourceErrors(fields);
    if (errors.length) { showFieldErrors(sourceForm, errors); return; }
    if (fields.title === state.source.title && Object.keys(fields).length === 1) {
      notify("info", T.nothing_changed);
      return;
    }
    setSaving(sourceForm, true);
    api("POST", "/sources/" + state.source.id, { fields: fields }).then(function (result) {
      fillSource(result.item);
      replaceById(state.sources, result.item);
      renderList();
      notify("success", T.saved);
    }).catch(function (error) {
      handleSaveError(sourceForm, error);
    }).then(function () { setSaving(sourceForm, false); });
  }

  function replaceById(list, item) {
    for (var i = 0; i < list.length; i++) {
      if (list[i].id === item.id) { list[i] = item; return; }
    }
  }

  function notifyClear() { $("#notice").hidden = true; }

  // --- databases (served through the connector gateway) --------------------------------------

  // Brand names, the same in every language; the server says which kinds it serves.
  var KINDS = {
    postgresql: { label: "PostgreSQL", port: 5432, server: true, schema: "public",
                  tls: ["prefer", "require", "verify-full", "disable"] },
    mysql: { label: "MySQL / MariaDB", port: 3306, server: true, schema: "",
             tls: ["prefer", "require", "verify-ca", "disable"] },
    sqlite: { label: "SQLite", port: null, server: false, schema: "", tls: [] }
  };
  var DEFAULT_KINDS = ["postgresql", "mysql"];
  var SERVER_FIELDS = ["tlsMode", "host", "port", "user", "password"];
  // Which fields a failed connection test (HTTP 422) points at.
  var CONNECTION_FIELDS_FOR = {
    AUTH_FAILED: ["user", "password"],
    HOST_UNREACHABLE: ["host", "port"],
    HOST_NOT_RESOLVED: ["host"],
    ADDRESS_NOT_ALLOWED: ["host"],
    TIMEOUT: ["host", "port"],
    TLS_FAILED: ["tlsMode"],
    DATABASE_NOT_FOUND: ["database"],
    SQLITE_FILE_MISSING: ["database"],
    PERMISSION_DENIED: ["user", "schema", "tables"],
    QUERY_FAILED: ["schema", "tables", "savedQueries"]
  };

  var databaseForm = $("#database-form");
  var queryRowCount = 0;

  function offeredKinds() {
    var kinds = config.gateway && Array.isArray(config.gateway.kinds) ? config.gateway.kinds : DEFAULT_KINDS;
    return kinds.filter(function (name) { return Object.prototype.hasOwnProperty.call(KINDS, name); });
  }

  function kindOf(name) { return KINDS[name] || KINDS.postgresql; }

  function kindLabel(name) { return KINDS[name] ? KINDS[name].label : String(name); }

  function loadDatabases() {
    var list = $("#database-list");
    if (!list) { return Promise.resolve(); }
    list.setAttribute("aria-busy", "true");
    return api("GET", "/databases").then(function (items) {
      state.databases = items;
      renderDatabases();
    }).catch(function (error) { showListError(list, error); });
  }

  function mayAddDatabases() { return canEdit && offeredKinds().length > 0; }

  function renderDatabases() {
    var list = $("#database-list");
    list.textContent = "";
    list.setAttribute("aria-busy", "false");
    if ($("#database-add")) { $("#database-add").hidden = !state.databases.length || !mayAddDatabases(); }
    if (!state.databases.length) {
      list.appendChild(databasesEmpty());
    } else {
      var items = element("ul", "database-items");
      state.databases.forEach(function (database) { items.appendChild(databaseItem(database)); });
      list.appendChild(items);
    }
    fitWindow();
  }

  function databasesEmpty() {
    var box = element("div", "empty-state");
    if (!mayAddDatabases()) {
      box.appendChild(element("p", "empty", T.databases_empty_reader));
      return box;
    }
    box.appendChild(element("p", "empty", T.databases_empty));
    var add = button(T.database_add, openNewDatabase, "button primary small");
    add.setAttribute("data-action", "add-database");
    box.appendChild(add);
    return box;
  }

  function databaseWhere(database) {
    var where = database.database || "";
    if (kindOf(database.kind).server) {
      where = (database.host || "") + (database.port ? ":" + database.port : "") + "/" + where;
    }
    return database.sourceId ? where + " · " + format(T.source_id, { id: database.sourceId }) : where;
  }

  function databaseItem(database) {
    var item = element("li", "database-item");
    item.setAttribute("data-database-id", database.id);
    var main = element("div", "database-main");
    var head = element("div", "database-head");
    head.appendChild(element("h3", "database-title", database.title));
    head.appendChild(element("span", "badge badge-kind", kindLabel(database.kind)));
    main.appendChild(head);
    main.appendChild(element("p", "muted small database-where", databaseWhere(database)));
    if (database.description) { main.appendChild(element("p", "card-description", database.description)); }
    var status = element("p", "database-status");
    status.setAttribute("role", "status");
    main.appendChild(status);
    item.appendChild(main);
    item.appendChild(databaseActions(database, item));
    return item;
  }

  function named(node, action, template, database) {
    node.setAttribute("data-action", action);
    node.setAttribute("aria-label", format(template, { title: database.title }));
    return node;
  }

  function databaseActions(database, item) {
    var actions = element("div", "database-actions");
    actions.appendChild(named(button(canEdit ? T.edit : T.view, function () { openDatabase(database.id); }),
      "open-database", canEdit ? T.database_edit_aria : T.database_view_aria, database));
    if (!canEdit) { return actions; }  // testing and deleting need edit rights
    var test = named(button(T.database_test, function () { checkDatabase(database, item, test); }),
      "test-database", T.database_test_aria, database);
    var remove = named(button(T.database_delete, function () { askDelete(database, item, remove); },
      "button link danger small"), "delete-database", T.database_delete_aria, database);
    actions.appendChild(test);
    actions.appendChild(remove);
    return actions;
  }

  function setStatus(item, kind, message, code) {
    var status = $(".database-status", item);
    status.className = "database-status status-" + kind;
    status.textContent = message;
    if (code) { status.appendChild(element("span", "notice-code", " " + T.error_code + ": " + code)); }
    fitWindow();
  }

  function checkDatabase(database, item, test) {
    if (test.getAttribute("aria-disabled") === "true") { return; }
    test.setAttribute("aria-disabled", "true");
    setStatus(item, "pending", T.database_testing);
    api("POST", "/databases/" + database.id + "/check").then(function (result) {
      if (result.ok) {
        setStatus(item, "ok", result.tables === 1 ? T.database_check_ok_one : format(T.database_check_ok, { n: result.tables }));
      } else {
        setStatus(item, "error", result.message, result.code);
      }
    }).catch(function (error) {
      setStatus(item, "error", error.message || T.network_error, error.code);
    }).then(function () { test.removeAttribute("aria-disabled"); });
  }

  // Deleting asks once more in place: "Delete" turns into "Delete for good" and "Keep".
  function askDelete(database, item, remove) {
    notifyClear();
    var box = element("span", "delete-confirm");
    box.appendChild(element("span", "small", T.database_delete_note));
    var sure = named(button(T.database_delete_confirm, function () { deleteDatabase(database, item, box, remove); },
      "button danger small"), "confirm-delete", T.database_delete_confirm_aria, database);
    var keep = named(button(T.database_keep, function () { cancelDelete(box, remove); }),
      "keep-database", T.database_keep_aria, database);
    box.appendChild(sure);
    box.appendChild(keep);
    remove.hidden = true;
    remove.parentNode.appendChild(box);
    sure.focus();
    fitWindow();
  }

  function cancelDelete(box, remove) {
    box.parentNode.removeChild(box);
    remove.hidden = false;
    remove.focus();
    fitWindow();
  }

  function deleteDatabase(database, item, box, remove) {
    $all("button", box).forEach(function (node) { node.disabled = true; });
    $('[data-action="confirm-delete"]', box).textContent = T.database_deleting;
    api("DELETE", "/databases/" + database.id).then(function () {
      notify("success", format(T.database_deleted, { title: database.title }));
      return loadDatabases().then(focusDatabases);
    }, function (error) {
      cancelDelete(box, remove);
      setStatus(item, "error", error.message || T.network_error, error.code);
    });
  }

  function databaseButton(id) {
    return $('#database-list [data-database-id="' + id + '"] [data-action="open-database"]');
  }

  function focusDatabases() {
    var target = $('#database-list [data-action="open-database"]') || $('#database-list [data-action="add-database"]');
    (target || $("#databases-heading")).focus();
  }

  // --- database editor -----------------------------------------------------------------------

  function openNewDatabase() {
    notifyClear();
    fillDatabase(null);
    state.returnFocus = function () {
      var add = $("#database-add");
      return add && !add.hidden ? add : $('#database-list [data-action="add-database"]');
    };
    showView("database-editor");
    focusEditor();
  }

  function openDatabase(id) {
    notifyClear();
    api("GET", "/databases/" + id).then(function (database) {
      fillDatabase(database);
      state.returnFocus = function () { return databaseButton(id); };
      showView("database-editor");
      focusEditor();
    }).catch(function (error) {
      notifyError(error);
      if (error.status === 404) { loadDatabases(); }  // deleted meanwhile: show the list as it is
    });
  }

  function focusEditor() {
    var first = state.database ? databaseForm.elements.title : databaseForm.elements.kind;
    if (!first.disabled) { first.focus(); return; }
    var heading = $("#database-editor h2");
    heading.tabIndex = -1;
    heading.focus();
  }

  function fillDatabase(database) {
    var values = database || { kind: offeredKinds()[0] || "postgresql" };
    var elements = databaseForm.elements;
    state.database = database;
    clearErrors(databaseForm);
    $('#database-editor [data-bind="heading"]').textContent = database ? database.title : T.database_new;
    fillKinds(values.kind);
    ["title", "description", "host", "database", "user", "schema"].forEach(function (name) {
      elements[name].value = values[name] || "";
    });
    elements.port.value = values.port || "";
    elements.password.value = "";
    elements.password.placeholder = database && database.passwordSet ? T.password_unchanged : "";
    elements.tables.value = (values.tables || []).join("\n");
    elements.rotateSecret.checked = false;
    $("#query-rows").textContent = "";
    (values.savedQueries || []).forEach(addQueryRow);
    applyKind(values.tlsMode);
    setDatabaseReadOnly();
    fitWindow();
  }

  function setDatabaseReadOnly() {
    setReadOnly(databaseForm);
    databaseForm.elements.kind.disabled = !canEdit || Boolean(state.database);  // the kind never changes
    $('[data-field="rotateSecret"]', databaseForm).hidden = !canEdit || !state.database;
  }

  function fillSelect(select, values, labelOf, chosen) {
    select.textContent = "";
    values.forEach(function (value) {
      var option = element("option", null, labelOf(value));
      option.value = value;
      select.appendChild(option);
    });
    select.value = values.indexOf(chosen) >= 0 ? chosen : values[0];
  }

  function fillKinds(chosen) {
    var kinds = offeredKinds();
    if (chosen && kinds.indexOf(chosen) < 0) { kinds = kinds.concat([chosen]); }  // no longer offered, still stored
    fillSelect(databaseForm.elements.kind, kinds, kindLabel, chosen);
  }

  function tlsLabel(mode) { return T["tls_" + mode.replace(/-/g, "_")] || mode; }

  // Shows the fields the chosen kind has; `tlsMode` is the mode to select if the kind offers it.
  function applyKind(tlsMode) {
    var elements = databaseForm.elements;
    var kind = kindOf(elements.kind.value);
    $all("[data-server]", databaseForm).forEach(function (box) { box.hidden = !kind.server; });
    fillSelect(elements.tlsMode, kind.tls, tlsLabel, tlsMode);
    $('[data-bind="database-label"]', databaseForm).textContent = kind.server ? T.field_database : T.field_file;
    $("#d-database-hint").hidden = kind.server;
    if (kind.server) { elements.database.removeAttribute("aria-describedby"); }
    else { elements.database.setAttribute("aria-describedby", "d-database-hint"); }
    elements.port.placeholder = kind.port ? String(kind.port) : "";
    elements.schema.placeholder = kind.schema;
    fitWindow();
  }

  function addQueryRow(query) {
    var row = document.importNode($("#query-row-template").content, true).firstElementChild;
    queryRowCount += 1;
    $all("[data-for]", row).forEach(function (node) {
      var id = "d-query-" + queryRowCount + "-" + node.getAttribute("data-for");
      if (node.tagName === "LABEL") { node.htmlFor = id; } else { node.id = id; }
    });
    $('[name="query-title"]', row).value = query.title || "";
    $('[name="query-sql"]', row).value = query.sql || "";
    if (query.code) { row.setAttribute("data-code", query.code); }  // keeps the table's code in BI Builder
    $("#query-rows").appendChild(row);
    renumberQueries();
    setDatabaseReadOnly();
    fitWindow();
    return row;
  }

  // Row boxes carry the API's field names (savedQueries[0].sql), so errors land next to them.
  function renumberQueries() {
    $all("#query-rows > li").forEach(function (row, index) {
      $all("[data-part]", row).forEach(function (box) {
        box.setAttribute("data-field", "savedQueries[" + index + "]." + box.getAttribute("data-part"));
      });
      var remove = $('[data-action="remove-query"]', row);
      remove.setAttribute("aria-label", format(T.query_remove, { n: index + 1 }));
      remove.title = remove.getAttribute("aria-label");
    });
  }

  function onQueriesClick(event) {
    var target = event.target.closest('button[data-action="remove-query"]');
    if (!target || !canEdit) { return; }
    var row = target.closest("li");
    var next = row.nextElementSibling || row.previousElementSibling;
    row.parentNode.removeChild(row);
    renumberQueries();
    (next ? $('[name="query-title"]', next) : $('[data-action="add-query"]')).focus();
    fitWindow();
  }

  function readQueries() {
    return $all("#query-rows > li").map(function (row) {
      var query = { title: $('[name="query-title"]', row).value.trim(), sql: $('[name="query-sql"]', row).value.trim() };
      if (row.getAttribute("data-code")) { query.code = row.getAttribute("data-code"); }
      return query;
    });
  }

  function readTables() {
    return databaseForm.elements.tables.value.split("\n").map(function (name) { return name.trim(); })
      .filter(function (name) { return name !== ""; });
  }

  function readDatabase() {
    var elements = databaseForm.elements;
    var fields = {
      kind: elements.kind.value,
      title: elements.title.value.trim(),
      description: elements.description.value.trim(),
      database: elements.database.value.trim(),
      schema: elements.schema.value.trim(),
      tables: readTables(),
      savedQueries: readQueries()
    };
    if (kindOf(fields.kind).server) {
      fields.host = elements.host.value.trim();
      fields.port = elements.port.value.trim() === "" ? kindOf(fields.kind).port : Number(elements.port.value);
      fields.user = elements.user.value.trim();
      fields.tlsMode = elements.tlsMode.value;
    }
    return fields;
  }

  function databaseErrors(fields) {
    var errors = [];
    function add(field, message) { errors.push({ field: field, message: message }); }
    if (!fields.title) { add("title", T.required); } else if (fields.title.length > LIMITS.title) { add("title", T.too_long); }
    if (!fields.database) { add("database", T.required); }
    if (kindOf(fields.kind).server) {
      if (!fields.host) { add("host", T.required); }
      if (!fields.user) { add("user", T.required); }
      var port = databaseForm.elements.port;
      if (port.validity.badInput || !Number.isInteger(fields.port) || fields.port < 1 || fields.port > 65535) {
        add("port", T.bad_port);
      }
    }
    fields.savedQueries.forEach(function (query, index) {
      if (!query.title) { add("savedQueries[" + index + "].title", T.required); }
      if (!query.sql) { add("savedQueries[" + index + "].sql", T.required); }
    });
    return errors;
  }

  function comparableDatabase(name, value) {
    if (name === "tables") {
      return (value || []).filter(function (item, index, all) { return all.indexOf(item) === index; }).sort();
    }
    if (name === "savedQueries") {
      return (value || []).map(function (query) {
        return { title: String(query.title || "").trim(), sql: String(query.sql || "").trim().replace(/;+\s*$/, "").trim() };
      });
    }
    if (name === "port") { return value === null || value === undefined || value === "" ? null : Number(value); }
    return value === null || value === undefined ? "" : String(value).trim();
  }

  function databaseChanges(fields) {
    var changes = {};
    Object.keys(fields).forEach(function (name) {
      if (name === "kind") { return; }
      if (JSON.stringify(comparableDatabase(name, fields[name])) !==
          JSON.stringify(comparableDatabase(name, state.database[name]))) { changes[name] = fields[name]; }
    });
    var password = databaseForm.elements.password.value;
    if (kindOf(fields.kind).server && password) { changes.password = password; }
    if (databaseForm.elements.rotateSecret.checked) { changes.rotateSecret = true; }
    return changes;
  }

  function newDatabase(fields) {
    if (kindOf(fields.kind).server) { fields.password = databaseForm.elements.password.value; }
    return fields;
  }

  function setDatabaseSaving(saving) {
    setSaving(databaseForm, saving, T.database_saving);
    $all('#database-editor [data-action="back"]').forEach(function (node) { node.disabled = saving; });
  }

  function saveDatabase(event) {
    event.preventDefault();
    if (!canEdit || databaseForm.getAttribute("aria-busy") === "true") { return; }
    clearErrors(databaseForm);
    var fields = readDatabase();
    var errors = databaseErrors(fields);
    if (errors.length) { showFieldErrors(databaseForm, errors); return; }
    var adding = !state.database;
    var body = adding ? newDatabase(fields) : databaseChanges(fields);
    if (!Object.keys(body).length) { notify("info", T.nothing_changed); return; }
    setDatabaseSaving(true);
    var saving = adding ? api("POST", "/databases", body) : api("PATCH", "/databases/" + state.database.id, body);
    saving.then(function (result) {
      var id = adding ? result.id : state.database.id;
      setDatabaseSaving(false);
      notify("success", adding ? format(T.database_added, { id: result.sourceId }) : T.saved);
      showView("list-view");
      state.returnFocus = function () { return databaseButton(id); };
      return loadDatabases().then(restoreFocus);
    }, function (error) {
      setDatabaseSaving(false);
      handleDatabaseError(error);
    });
  }

  function isShown(name) {
    var box = fieldBox(databaseForm, name).box;
    return box !== databaseForm && !box.hidden && (name !== "savedQueries" || $("#query-rows > li"));
  }

  function handleDatabaseError(error) {
    if (error.status === 422) {  // the connection test failed: point at the fields it concerns
      var names = (CONNECTION_FIELDS_FOR[error.code] || SERVER_FIELDS.concat(["database"])).filter(isShown);
      showFieldErrors(databaseForm, names.map(function (name) { return { field: name, message: T.check_field }; }));
    } else if (error.fields.length) {
      showFieldErrors(databaseForm, error.fields);
    } else {
      $('button[type="submit"]', databaseForm).focus();
    }
    notifyError(error);
  }

  function wireDatabases() {
    if (!databaseForm) { return; }
    databaseForm.addEventListener("submit", saveDatabase);
    databaseForm.elements.kind.addEventListener("change", function () {
      applyKind(databaseForm.elements.tlsMode.value);
    });
    $("#query-rows").addEventListener("click", onQueriesClick);
    $('[data-action="add-query"]').addEventListener("click", function () {
      $('[name="query-title"]', addQueryRow({})).focus();
    });
    if ($("#database-add")) { $("#database-add").addEventListener("click", openNewDatabase); }
  }

  // --- editors (administrators only) ---------------------------------------------------------

  var editors = [];

  function loadEditors() {
    if (!$("#editors-panel")) { return; }
    api("GET", "/editors").then(renderEditors).catch(function (error) {
      showEditorError(error.message + " (" + error.code + ")");
    });
  }

  function renderEditors(result) {
    editors = result.userIds;
    var list = $("#editor-list");
    list.textContent = "";
    list.setAttribute("aria-busy", "false");
    if (!result.users.length) { list.appendChild(element("li", "muted", T.editors_none)); }
    result.users.forEach(function (user) {
      var item = element("li", "editor-item");
      item.appendChild(element("span", null, (user.name || T.user) + " #" + user.id));
      item.appendChild(button(T.remove, function () {
        saveEditors(editors.filter(function (id) { return id !== user.id; }));
      }, "button link danger small"));
      list.appendChild(item);
    });
    fitWindow();
  }

  function saveEditors(userIds) {
    showEditorError("");
    return api("PUT", "/editors", { userIds: userIds }).then(function (result) {
      renderEditors(result);
      notify("success", T.saved);
    }).catch(function (error) { showEditorError(error.message + " (" + error.code + ")"); });
  }

  function showEditorError(message) {
    var paragraph = $("#editor-error");
    paragraph.textContent = message;
    paragraph.hidden = !message;
    fitWindow();
  }

  function onAddEditor(event) {
    event.preventDefault();
    var input = $("#editor-id");
    var value = input.value.trim();
    if (!/^\d+$/.test(value) || Number(value) < 1) { showEditorError(T.not_integer); return; }
    saveEditors(editors.concat([Number(value)])).then(function () { input.value = ""; });
  }

  function onPickEditors() {
    BX24.selectUsers(function (users) {
      var ids = (users || []).map(function (user) { return Number(user.id); }).filter(function (id) { return id > 0; });
      if (ids.length) { saveEditors(editors.concat(ids)); }
    });
  }

  // --- re-authorization ----------------------------------------------------------------------

  function onReauth(event) {
    var target = event.target;
    target.disabled = true;
    api("POST", "/reseed").then(function () {
      $("#reauth-banner").hidden = true;
      notify("success", T.reauth_done);
      loadList();
    }).catch(function (error) {
      target.disabled = false;
      notifyError(error);
    });
  }

  // --- start ---------------------------------------------------------------------------------

  function wire() {
    $all('[data-action="back"]').forEach(function (node) {
      node.addEventListener("click", function () { notifyClear(); backToList(); });
    });
    connectorForm.addEventListener("submit", saveConnector);
    sourceForm.addEventListener("submit", saveSource);
    $("#settings-rows").addEventListener("click", onSettingsClick);
    $('[data-action="add-setting"]').addEventListener("click", function () {
      addSettingRow({ type: "STRING" }).querySelector("input").focus();
    });
    connectorForm.elements.logo.addEventListener("input", updateLogoPreview);
    $("#c-logo-file").addEventListener("change", onLogoFile);
    if ($("#editor-form")) { $("#editor-form").addEventListener("submit", onAddEditor); }
    if ($("#reauth-button")) { $("#reauth-button").addEventListener("click", onReauth); }
    wireDatabases();
    if (window.ResizeObserver) { new ResizeObserver(fitWindow).observe(document.body); }
  }

  function start() {
    wire();
    var sdk = document.getElementById("bx24-sdk");
    if (window.BX24) { initBX24(); } else if (sdk) { sdk.addEventListener("load", initBX24); }
    scheduleRenewal(config.sessionTtl);
    loadList();
    loadDatabases();
    loadEditors();
  }

  start();
})();
