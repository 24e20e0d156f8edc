/* The embedded tab: lists the app's BI Builder connectors and sources and edits them through
 * the app's own JSON API (/api). No build step, no framework, no cookies: every request carries
 * the session token from <meta name="session-token"> as a Bearer token.
 *
 * Bitrix24's BX24 library is optional here: it is only used to resize the frame
 * (BX24.fitWindow) and, if present, to pick users (BX24.selectUsers).
 */
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("tab-config").textContent);
  var T = config.texts;
  var sessionToken = document.querySelector('meta[name="session-token"]').content;
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

  function api(method, path, body) {
    var options = {
      method: method,
      headers: { "Authorization": "Bearer " + sessionToken, "Accept": "application/json" },
      credentials: "omit",
      cache: "no-store"
    };
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
      logo.src = connector.logo;
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

  function updateLogoPreview() {
    var value = connectorForm.elements.logo.value.trim();
    var preview = $("#c-logo-preview");
    preview.hidden = !(isHttpUrl(value) || /^data:image\//i.test(value));
    if (!preview.hidden) { preview.src = value; }
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
    loadList();
    loadDatabases();
    loadEditors();
  }

  start();
})();
