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
                returnFocus: null, view: "list-view", listScroll: 0, form: null, pristine: "", expanded: {},
                loaded: {} };

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

  // The frame grows with its content up to about a screen's height; beyond that the tab scrolls inside its
  // frame, so that the save bar and the toast stay in view (a page cannot ask Bitrix24 how much of its frame
  // shows). The height is the content's, not scrollHeight, which never falls below the frame's own height.
  var MIN_FRAME_HEIGHT = 560;
  var FRAME_MARGIN = 160;

  function frameHeight() {
    var content = Math.ceil($("#tab").getBoundingClientRect().height) + 2;
    var screenHeight = (window.screen && window.screen.availHeight) || 900;
    return Math.min(content, Math.max(MIN_FRAME_HEIGHT, screenHeight - FRAME_MARGIN));
  }

  function fitWindow() {
    clearTimeout(fitTimer);
    fitTimer = setTimeout(function () {
      if (bx24Ready && window.BX24 && typeof BX24.resizeWindow === "function") {
        try { BX24.resizeWindow("100%", frameHeight()); } catch (e) { /* ignore */ }
      }
    }, 50);
  }

  // --- API -----------------------------------------------------------------------------------

  function ApiError(status, body) {
    this.status = status;
    this.code = body.error || "ERROR";
    this.message = body.error_description || "";
    this.fields = body.fields || [];
    this.conflict = body.conflict || null;
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

  // --- notices: a toast at the bottom of the frame, in view wherever the page is scrolled -----

  var noticeTimer = null;

  function notify(kind, message, code) {
    var notice = $("#notice");
    clearTimeout(noticeTimer);
    notice.className = "notice toast notice-" + kind;
    $(".notice-text", notice).textContent = message;
    $(".notice-code", notice).textContent = code ? T.error_code + ": " + code : "";
    notice.hidden = false;
    if (kind === "success" || kind === "info") {
      noticeTimer = setTimeout(function () { notice.hidden = true; }, 6000);
    }
  }

  function notifyError(error) {
    notify("error", error.message || T.network_error, error.code);
  }

  function notifyClear() { $("#notice").hidden = true; }

  // --- views ---------------------------------------------------------------------------------

  function isEditorView(id) { return id !== "list-view"; }

  // The list keeps its scroll position: it is remembered on the way out and restored on the way back.
  function showView(id) {
    if (state.view === "list-view" && id !== "list-view") { state.listScroll = window.scrollY; }
    $all(".view").forEach(function (view) { view.hidden = view.id !== id; });
    state.view = id;
    document.documentElement.classList.toggle("editing", id !== "list-view");
    if (id === "list-view") {
      state.form = null;
      window.scrollTo(0, state.listScroll || 0);
    } else {
      window.scrollTo(0, 0);
      // The frame's top may be scrolled out of the portal page: bring it back.
      if (bx24Ready && typeof BX24.scrollParentWindow === "function") {
        try { BX24.scrollParentWindow(0); } catch (e) { /* ignore */ }
      }
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

  // A button whose accessible name says what it acts on ("Edit connector Warehouse").
  function named(node, action, template, item) {
    node.setAttribute("data-action", action);
    node.setAttribute("aria-label", format(template, { title: item.title }));
    return node;
  }

  // Opens an editor view: focus moves into it, and `returnFocus` says where it goes back to.
  function openEditor(viewId, form, returnFocus) {
    state.returnFocus = returnFocus;
    showView(viewId);
    var first = canEdit && $all("input, select, textarea", form).filter(function (input) {
      return !input.disabled && input.type !== "file" && input.offsetParent !== null;
    })[0];
    (first || $("#" + viewId + " h2")).focus();
    state.form = form;
    state.pristine = snapshot(form);
  }

  function snapshot(form) {
    return JSON.stringify($all("input, textarea, select", form).filter(function (input) {
      return input.type !== "file";
    }).map(function (input) { return [input.name, input.type === "checkbox" ? input.checked : input.value]; }));
  }

  function isDirty() {
    return Boolean(state.form) && canEdit && snapshot(state.form) !== state.pristine;
  }

  function markPristine(form) {
    state.form = form;
    state.pristine = snapshot(form);
  }

  // Cancel, "Back to the list" and Esc: unsaved edits ask first.
  function requestClose() {
    if (state.form && state.form.getAttribute("aria-busy") === "true") { return; }
    if (!isDirty()) { closeEditor(); return; }
    confirmDialog({ title: T.unsaved_title, text: T.unsaved_text, yes: T.discard, no: T.keep_editing, safeNo: true })
      .then(function (discard) { if (discard) { closeEditor(); } });
  }

  function closeEditor() {
    notifyClear();
    showView("list-view");
    restoreFocus();
  }

  function restoreFocus() {
    var target = state.returnFocus && state.returnFocus();
    state.returnFocus = null;
    if (target) { target.focus({ preventScroll: true }); }
  }

  // A modal question; resolves true for "yes". `safeNo` puts the focus on "no" (destructive questions).
  function confirmDialog(options) {
    var dialog = $("#confirm-dialog");
    var yes = $('[data-answer="yes"]', dialog);
    var no = $('[data-answer="no"]', dialog);
    $("#confirm-title").textContent = options.title;
    $("#confirm-text").textContent = options.text;
    yes.textContent = options.yes;
    no.textContent = options.no;
    yes.className = "button " + (options.danger ? "danger" : "primary");
    var opener = document.activeElement;
    return new Promise(function (resolve) {
      function finish(answer) {
        dialog.removeEventListener("close", onClose);
        yes.onclick = no.onclick = null;
        if (dialog.open) { dialog.close(); }
        if (!answer && opener && document.contains(opener)) { opener.focus({ preventScroll: true }); }
        resolve(answer);
      }
      function onClose() { finish(false); }
      yes.onclick = function () { finish(true); };
      no.onclick = function () { finish(false); };
      dialog.addEventListener("close", onClose);
      dialog.showModal();
      (options.safeNo ? no : yes).focus();
    });
  }

  function onKeydown(event) {
    if (event.key !== "Escape" || !isEditorView(state.view) || $("dialog[open]")) { return; }
    event.preventDefault();
    requestClose();
  }

  // --- the list ------------------------------------------------------------------------------

  var COLLAPSE_AFTER = 5;

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

  function bySortThenTitle(a, b) {
    return (a.sort || 0) - (b.sort || 0) || String(a.title).localeCompare(String(b.title));
  }

  function listFilters() {
    return { text: $("#list-search").value.trim().toLowerCase(), connector: $("#list-connector").value,
             active: $("#list-active").value };
  }

  function includesText(value, text) { return String(value || "").toLowerCase().indexOf(text) >= 0; }

  function activeMatches(source, active) {
    return !active || (active === "active") === Boolean(source.active);
  }

  // What the filters leave of a connector's sources; null hides the connector.
  function visibleSources(connector, sources, filters) {
    var connectorHit = !filters.text || (connector && includesText(connector.title, filters.text));
    var matching = sources.filter(function (source) {
      return activeMatches(source, filters.active) && (connectorHit || includesText(source.title, filters.text));
    });
    return matching.length || (connectorHit && !filters.active) ? matching : null;
  }

  function fillConnectorFilter() {
    var select = $("#list-connector");
    var chosen = select.value;
    while (select.options.length > 1) { select.remove(1); }
    state.connectors.slice().sort(bySortThenTitle).forEach(function (connector) {
      var option = element("option", null, connector.title);
      option.value = String(connector.id);
      select.appendChild(option);
    });
    select.value = chosen;
    if (select.value !== chosen) { select.value = ""; }
  }

  function renderList() {
    var list = $("#connector-list");
    list.textContent = "";
    list.setAttribute("aria-busy", "false");
    $("#list-tools").hidden = !state.sources.length;
    state.loaded.list = true;
    renderWelcome();
    fillConnectorFilter();
    var filters = listFilters();
    var filtering = Boolean(filters.text || filters.connector || filters.active);
    var known = {};
    var shown = 0;
    state.connectors.slice().sort(bySortThenTitle).forEach(function (connector) {
      known[connector.id] = true;
      if (filters.connector && String(connector.id) !== filters.connector) { return; }
      var sources = state.sources.filter(function (s) { return s.connectorId === connector.id; });
      var matching = visibleSources(connector, sources, filters);
      if (matching === null) { return; }
      shown += matching.length;
      list.appendChild(connectorCard(connector, sources, matching, filtering));
    });
    var orphans = filters.connector ? [] : visibleSources(null, state.sources.filter(function (s) {
      return !known[s.connectorId];
    }), filters) || [];
    if (orphans.length) {
      shown += orphans.length;
      var card = element("article", "card");
      card.appendChild(element("h3", "card-title", T.orphan_sources));
      card.appendChild(sourceList(orphans));
      list.appendChild(card);
    }
    var status = $("#filter-status");
    status.textContent = filtering ? format(T.filter_count, { n: shown, total: state.sources.length }) : "";
    if (filtering && !$(".connector-card, .card", list)) { list.appendChild(element("p", "empty", T.filter_nothing)); }
    fitWindow();
  }

  // Nothing set up yet (no source, no database): what the app does and the first step, at the top.
  function renderWelcome() {
    var welcome = $("#welcome");
    var empty = state.loaded.list && state.loaded.databases && !state.sources.length && !state.databases.length;
    if (empty === !welcome.hidden) { return; }
    welcome.textContent = "";
    if (empty) { welcome.appendChild(emptyState()); }
    welcome.hidden = !empty;
    $("#databases-panel").hidden = empty;  // the welcome offers its first steps
    if ($("#connector-add")) { $("#connector-add").hidden = empty; }
    fitWindow();
  }

  function emptyState() {
    var box = element("section", "empty-state welcome");
    box.setAttribute("aria-labelledby", "welcome-title");
    var title = element("h3", null, T.empty_title);
    title.id = "welcome-title";
    box.appendChild(title);
    box.appendChild(element("p", null, T.empty_text));
    var steps = element("div", "welcome-steps");
    if (mayAddDatabases()) {
      var add = button(T.database_add, openNewDatabase, "button primary small");
      add.setAttribute("data-action", "welcome-add-database");
      steps.appendChild(add);
    }
    if (config.user.isAdmin) {
      var custom = button(T.connector_add, openNewConnector, "button secondary small");
      custom.setAttribute("data-action", "welcome-add-connector");
      steps.appendChild(custom);
    }
    if (!steps.childNodes.length) { box.appendChild(element("p", "muted", T.empty_reader)); }
    else { box.appendChild(steps); }
    return box;
  }

  function logoImage(connector, className) {
    var logo = element("img", className);
    logo.alt = "";
    showLogo(logo, connector.logo);
    return logo;
  }

  function connectorCard(connector, sources, matching, filtering) {
    var card = element("article", "card connector-card");
    card.setAttribute("data-connector-id", connector.id);
    var head = element("div", "card-head");
    if (connector.logo) { head.appendChild(logoImage(connector, "card-logo")); }
    var titles = element("div", "card-titles");
    titles.appendChild(element("h3", "card-title", connector.title));
    titles.appendChild(element("p", "muted small", "ID " + connector.id + " · " + format(T.source_count, { n: sources.length })));
    if (connector.description) { titles.appendChild(element("p", "card-description", connector.description)); }
    head.appendChild(titles);
    head.appendChild(connectorActions(connector));
    card.appendChild(head);
    if (!matching.length) {
      card.appendChild(element("p", "muted small no-sources", sources.length ? T.filter_nothing : T.no_sources));
      return card;
    }
    var collapsed = !filtering && matching.length > COLLAPSE_AFTER && !state.expanded[connector.id];
    var list = sourceList(collapsed ? matching.slice().sort(bySortThenTitle).slice(0, COLLAPSE_AFTER) : matching);
    list.id = "sources-of-" + connector.id;
    card.appendChild(list);
    if (!filtering && matching.length > COLLAPSE_AFTER) { card.appendChild(expandButton(connector, matching.length, collapsed)); }
    return card;
  }

  function connectorActions(connector) {
    var actions = element("div", "card-actions");
    actions.appendChild(named(button(canEdit ? T.edit : T.view, function () { openConnector(connector.id); }),
      "open-connector", canEdit ? T.connector_edit_aria : T.connector_view_aria, connector));
    if (connector.gateway) { return actions; }  // the app's own (the server says so): managed through databases
    if (canEdit) {
      actions.appendChild(named(button("+ " + T.source_add, function () { openNewSource(connector); }),
        "add-source", T.source_add_aria, connector));
    }
    if (config.user.isAdmin) {
      var remove = function () {
        confirmAndDelete("connector", connector, function () { $("#connectors-heading").focus(); });
      };
      actions.appendChild(named(button(T.connector_delete, remove, "button link danger small"), "delete-connector",
        T.connector_delete_aria, connector));
    }
    return actions;
  }

  function expandButton(connector, count, collapsed) {
    var toggle = button(collapsed ? format(T.sources_show_all_short, { n: count }) : T.sources_show_fewer, function () {
      state.expanded[connector.id] = collapsed;
      renderList();
      var again = $('[data-connector-id="' + connector.id + '"] [data-action="expand-sources"]');
      if (again) { again.focus(); }
    }, "button link small expand-sources");
    toggle.setAttribute("data-action", "expand-sources");
    toggle.setAttribute("aria-expanded", collapsed ? "false" : "true");
    toggle.setAttribute("aria-controls", "sources-of-" + connector.id);
    if (collapsed) { toggle.setAttribute("aria-label", format(T.sources_show_all, { n: count, title: connector.title })); }
    return toggle;
  }

  function sourceList(sources) {
    var list = element("ul", "source-list");
    sources.slice().sort(bySortThenTitle).forEach(function (source) { list.appendChild(sourceItem(source)); });
    return list;
  }

  function activeBadge(source) {
    return element("span", "badge " + (source.active ? "badge-on" : "badge-off"),
      source.active ? T.badge_active : T.badge_inactive);
  }

  function sourceItem(source) {
    var item = element("li", "source-item");
    item.setAttribute("data-source-id", source.id);
    item.appendChild(element("span", "source-title", source.title));
    item.appendChild(activeBadge(source));
    var actions = element("span", "source-actions");
    actions.appendChild(named(button(canEdit ? T.edit : T.view, function () { openSource(source.id); }),
      "open-source", canEdit ? T.source_edit_aria : T.source_view_aria, source));
    if (canEdit) {
      var test = named(button(T.source_test, function () { checkSource(source, test); }), "test-source",
        T.source_test_aria, source);
      actions.appendChild(test);
      if (!source.gateway) {  // a database's source goes with its database
        var remove = function () {
          confirmAndDelete("source", source, function () {
            connectorButton(source.connectorId).focus();
          }, function (error) {
            setItemStatus(source.id, "error", error.message || T.network_error, error.code);
          });
        };
        actions.appendChild(named(button(T.source_delete, remove, "button link danger small"), "delete-source",
          T.source_delete_aria, source));
      }
    }
    item.appendChild(actions);
    var status = element("p", "source-status");
    status.setAttribute("role", "status");
    item.appendChild(status);
    return item;
  }

  function connectorButton(id) {
    return $('#connector-list [data-connector-id="' + id + '"] [data-action="open-connector"]') || $("#connectors-heading");
  }

  function sourceButton(id) {
    return $('#connector-list [data-source-id="' + id + '"] [data-action="open-source"]') || $("#connectors-heading");
  }

  // --- form helpers --------------------------------------------------------------------------

  function clearErrors(form) {
    $all(".field-error", form).forEach(function (p) { p.hidden = true; p.textContent = ""; });
    $all(".invalid", form).forEach(function (node) { node.classList.remove("invalid"); });
    $all("tr.row-error", form).forEach(function (row) { row.parentNode.removeChild(row); });
    $all("[aria-invalid]", form).forEach(function (node) {
      node.removeAttribute("aria-invalid");
      var described = (node.getAttribute("aria-describedby") || "").split(" ").filter(function (id) {
        return id && id.indexOf("row-error-") !== 0;
      });
      if (described.length) { node.setAttribute("aria-describedby", described.join(" ")); }
      else { node.removeAttribute("aria-describedby"); }
    });
  }

  function fieldBox(form, field) {
    var match = /^settings\[(\d+)\](?:\.(\w+))?/.exec(field);
    if (match && form === connectorForm) {
      var row = settingRows()[Number(match[1])];
      if (row) { return { row: row, part: match[2] }; }
    }
    var box = $all("[data-field]", form).filter(function (node) { return node.getAttribute("data-field") === field; })[0];
    return { box: box || $('[data-field="settings"]', form) || form, prefix: box ? "" : field + ": " };
  }

  // A settings row's own error: a line below that row; only the row (or the cell) is marked.
  function showRowError(row, part, message) {
    var errorRow = row.nextElementSibling && row.nextElementSibling.classList.contains("row-error")
      ? row.nextElementSibling : null;
    if (!errorRow) {
      errorRow = element("tr", "row-error");
      var cell = element("td");
      cell.colSpan = 4;
      var paragraph = element("p", "field-error");
      paragraph.id = "row-error-" + (++rowErrorCount);
      cell.appendChild(paragraph);
      errorRow.appendChild(cell);
      row.parentNode.insertBefore(errorRow, row.nextSibling);
    }
    var text = $(".field-error", errorRow);
    text.textContent = (text.textContent ? text.textContent + " " : "") + message;
    var cells = part ? $all('[data-part="' + part + '"]', row) : [row];
    cells.forEach(function (cell) { cell.classList.add("invalid"); });
    var inputs = $all("input, select", part ? cells[0] : row);
    inputs.forEach(function (input) {
      input.setAttribute("aria-invalid", "true");
      var described = input.getAttribute("aria-describedby");
      input.setAttribute("aria-describedby", (described ? described + " " : "") + text.id);
    });
    return inputs[0];
  }

  var rowErrorCount = 0;

  function showFieldErrors(form, errors) {
    var targets = [];
    errors.forEach(function (error) {
      var target = fieldBox(form, error.field);
      if (target.row) {
        targets.push(showRowError(target.row, target.part, error.message));
        return;
      }
      var paragraph = $(".field-error", target.box);
      if (!paragraph) { return; }
      paragraph.textContent = (paragraph.textContent ? paragraph.textContent + " " : "") + target.prefix + error.message;
      paragraph.hidden = false;
      target.box.classList.add("invalid");
      targets.push($("input:not([type=file]), textarea, select", target.box));
    });
    // The first error in the form's order gets the focus.
    var first = targets.filter(Boolean).sort(function (a, b) {
      return a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1;
    })[0];
    if (first) { first.focus(); }
    fitWindow();
  }

  // Read-only users, and anyone on a `locked` form, see values as text; inputs stay in the form (hidden,
  // disabled) for the editors' code.
  function setReadOnly(form, locked) {
    var editable = canEdit && !locked;
    $all(".read-value", form).forEach(function (node) { node.parentNode.removeChild(node); });
    $all("input, textarea, select", form).forEach(function (input) {
      if (input.type === "file") { return; }
      input.disabled = !editable;
      input.classList.toggle("read-hidden", !editable);
      if (!editable && !input.hidden) { showAsText(input); }
    });
    $all("[data-edit-only]", form.parentNode).forEach(function (node) { node.hidden = !editable; });
  }

  function showAsText(input) {
    var value;
    if (input.type === "checkbox") { value = input.checked ? T.yes : T.no; }
    else if (input.tagName === "SELECT") { value = input.selectedIndex >= 0 ? input.options[input.selectedIndex].textContent : ""; }
    else if (input.hasAttribute("data-read-text")) { value = input.getAttribute("data-read-text"); }
    else { value = input.value; }
    var text = element("span", "read-value" + (value ? "" : " muted") + (input.tagName === "TEXTAREA" ? " read-multiline" : ""),
      value || T.empty_value);
    if (input.type === "checkbox") {
      text.textContent = ": " + text.textContent;
      input.parentNode.appendChild(text);
    } else {
      input.parentNode.insertBefore(text, input.nextSibling);
    }
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

  function replaceById(list, item) {
    for (var i = 0; i < list.length; i++) {
      if (list[i].id === item.id) { list[i] = item; return; }
    }
    list.push(item);
  }

  function removeById(list, id) {
    for (var i = list.length - 1; i >= 0; i--) {
      if (list[i].id === id) { list.splice(i, 1); }
    }
  }

  // "Last change: 2 Dec 2026, 10:15 by Olga Admin (in the tab)", when the server keeps it.
  function showLastChange(view, item) {
    var line = $('[data-bind="last-change"]', view);
    var change = item && item.lastChange;
    line.hidden = !item || !("lastChange" in item);
    line.textContent = change ? format(T.last_change, { when: when(change.at), who: actorName(change.actor),
                                                        via: T["via_" + change.via] || change.via })
      : T.last_change_none;
  }

  function when(iso) {
    var date = new Date(iso);
    if (isNaN(date.getTime())) { return String(iso || ""); }
    try {
      return date.toLocaleString(config.lang === "ru" ? "ru-RU" : "en-GB",
        { day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" });
    } catch (e) { return date.toISOString(); }
  }

  function actorName(actor) {
    if (!actor) { return ""; }
    return actor.name || (actor.id ? T.user + " #" + actor.id : actor.kind);
  }

  // Updates answer {"item", "changed"}; creations and reverts answer the object itself.
  function itemOf(result) { return result && result.item ? result.item : result; }

  // --- connector editor ----------------------------------------------------------------------

  var connectorForm = $("#connector-form");
  var connectorView = $("#connector-editor");

  function openConnector(id) {
    notifyClear();
    api("GET", "/connectors/" + id).then(function (connector) {
      fillConnector(connector);
      openEditor("connector-editor", connectorForm, function () { return connectorButton(id); });
      loadHistory("connector", connector);
    }).catch(notifyError);
  }

  function fillConnector(connector) {
    state.connector = connector;
    clearErrors(connectorForm);
    $('[data-bind="heading"]', connectorView).textContent = connector.title;
    ["title", "description", "logo"].concat(URL_FIELDS).forEach(function (name) {
      connectorForm.elements[name].value = connector[name] || "";
    });
    connectorForm.elements.sort.value = connector.sort === undefined ? "" : connector.sort;
    $all("[data-optional]", connectorForm).forEach(function (box) {
      var name = box.getAttribute("data-field");
      box.hidden = !(name in connector) || (name === "secretSettings" && !config.user.isAdmin);
    });
    connectorForm.elements.supportMapping.checked = connector.supportMapping === true;
    connectorForm.elements.sourceCode.value = connector.sourceCode || "";
    connectorForm.elements.secretSettings.value = (connector.secretSettings || []).join("\n");
    $("#settings-rows").textContent = "";
    (connector.settings || []).forEach(addSettingRow);
    updateLogoPreview();
    showLastChange(connectorView, connector);
    setReadOnly(connectorForm);
    fitWindow();
  }

  function settingRows() { return $all("#settings-rows tr.setting-row"); }

  function addSettingRow(setting) {
    var row = document.importNode($("#setting-row-template").content, true).firstElementChild;
    row.querySelector('[name="setting-name"]').value = setting.name || "";
    row.querySelector('[name="setting-code"]').value = setting.code || "";
    row.querySelector('[name="setting-type"]').value = setting.type === "INT" ? "INT" : "STRING";
    $("#settings-rows").appendChild(row);
    renumberSettings();
    setReadOnly(connectorForm);
    fitWindow();
    return row;
  }

  // Every control of a row says which row it is in: "Code, parameter 2", "Move parameter 2 up".
  function renumberSettings() {
    settingRows().forEach(function (row, index) {
      var n = { n: index + 1 };
      var where = " · " + format(T.setting_row_label, n);
      $('[name="setting-name"]', row).setAttribute("aria-label", T.setting_name + where);
      $('[name="setting-code"]', row).setAttribute("aria-label", T.setting_code + where);
      $('[name="setting-type"]', row).setAttribute("aria-label", T.setting_type + where);
      [["up", T.setting_move_up_aria], ["down", T.setting_move_down_aria], ["remove", T.setting_remove_aria]]
        .forEach(function (pair) {
          var node = $('[data-action="' + pair[0] + '"]', row);
          node.setAttribute("aria-label", format(pair[1], n));
          node.title = node.getAttribute("aria-label");
        });
    });
  }

  function readSettings() {
    return settingRows().map(function (row) {
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
    if (state.connector && "supportMapping" in state.connector) { fields.supportMapping = elements.supportMapping.checked; }
    if (state.connector && "sourceCode" in state.connector) { fields.sourceCode = elements.sourceCode.value.trim(); }
    if (state.connector && "secretSettings" in state.connector && config.user.isAdmin) {
      fields.secretSettings = elements.secretSettings.value.split("\n").map(function (code) { return code.trim(); })
        .filter(function (code) { return code !== ""; });
    }
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
      if (!setting.name) { add(where + ".name", T.required); }
      if (!setting.code) { add(where + ".code", T.required); }
      if (setting.name.length > LIMITS.settingName) { add(where + ".name", T.too_long); }
      if (setting.code.length > LIMITS.settingCode) { add(where + ".code", T.too_long); }
      else if (setting.code && seen[setting.code]) { add(where + ".code", T.duplicate_code); }
      seen[setting.code] = true;
    });
    return errors;
  }

  function saveConnector(event) {
    event.preventDefault();
    if (!canEdit || connectorForm.getAttribute("aria-busy") === "true") { return; }
    notifyClear();
    clearErrors(connectorForm);
    var fields = readConnector();
    var errors = connectorErrors(fields);
    if (errors.length) { showFieldErrors(connectorForm, errors); return; }
    if (!state.connector.id) { createConnector(fields); return; }
    var changes = connectorChanges(fields);
    if (!Object.keys(changes).length) { notify("info", T.nothing_changed); return; }
    saveChanges("connector", changes);
  }

  function onSettingsClick(event) {
    var target = event.target.closest("button[data-action]");
    if (!target || !canEdit) { return; }
    var row = target.closest("tr");
    var action = target.getAttribute("data-action");
    $all("tr.row-error", connectorForm).forEach(function (line) { line.parentNode.removeChild(line); });
    if (action === "remove") {
      var next = row.nextElementSibling || row.previousElementSibling;
      row.parentNode.removeChild(row);
      (next ? $("input", next) : $('[data-action="add-setting"]')).focus();
    }
    if (action === "up" && row.previousElementSibling) { row.parentNode.insertBefore(row, row.previousElementSibling); target.focus(); }
    if (action === "down" && row.nextElementSibling) { row.parentNode.insertBefore(row.nextElementSibling, row); target.focus(); }
    renumberSettings();
    fitWindow();
  }

  function showLogo(image, url) {
    var inline = /^data:image\//i.test(url);
    image.src = inline ? url : PLACEHOLDER_LOGO;
    image.title = inline ? "" : T.logo_not_shown;
  }

  function sizeOfDataUri(value) {
    var bytes = Math.round((value.length - value.indexOf(",") - 1) * 3 / 4);
    return bytes < 1024 ? bytes + " B" : Math.round(bytes / 1024) + " KB";
  }

  // An uploaded logo shows as the image and its size, never as a base64 string.
  function updateLogoPreview() {
    var input = connectorForm.elements.logo;
    var value = input.value.trim();
    var uploaded = /^data:image\//i.test(value);
    var preview = $("#c-logo-preview");
    preview.hidden = !(isHttpUrl(value) || uploaded);
    if (!preview.hidden) { showLogo(preview, value); }
    preview.alt = preview.hidden ? "" : format(T.logo_preview_alt, { title: connectorForm.elements.title.value });
    input.hidden = uploaded;
    $("#c-logo-uploaded").hidden = !uploaded;
    $("#c-logo-uploaded").textContent = uploaded ? format(T.logo_uploaded, { size: sizeOfDataUri(value) }) : "";
    $("#c-logo-url").hidden = !uploaded || !canEdit;
  }

  function onLogoUrl() {
    connectorForm.elements.logo.value = "";
    updateLogoPreview();
    setReadOnly(connectorForm);
    connectorForm.elements.logo.focus();
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
  var sourceView = $("#source-editor");

  function openSource(id) {
    notifyClear();
    api("GET", "/sources/" + id).then(function (source) {
      fillSource(source);
      openEditor("source-editor", sourceForm, function () { return sourceButton(id); });
      loadHistory("source", source);
    }).catch(notifyError);
  }

  function connectorTitle(id) {
    var connector = state.connectors.filter(function (c) { return c.id === id; })[0];
    return connector ? connector.title + " (ID " + id + ")" : format(T.connector_id, { id: id });
  }

  function fillSource(source) {
    state.source = source;
    clearErrors(sourceForm);
    $('[data-bind="heading"]', sourceView).textContent = source.title || T.source_new;
    sourceForm.elements.title.value = source.title || "";
    sourceForm.elements.description.value = source.description || "";
    $('[data-bind="connector"]', sourceView).textContent = connectorTitle(source.connectorId);
    $('[data-field="active"]', sourceView).hidden = !source.id;
    var active = $('[data-bind="active"]', sourceView);
    active.textContent = source.active ? T.badge_active : T.badge_inactive;
    active.className = "badge " + (source.active ? "badge-on" : "badge-off");
    var box = $("#source-settings");
    box.textContent = "";
    (source.settings || []).forEach(function (setting) { box.appendChild(settingField(setting)); });
    showLastChange(sourceView, source);
    $('[data-bind="gateway-note"]', sourceView).hidden = !source.gateway;
    setReadOnly(sourceForm, source.gateway);  // a database's source changes with its database
    fitWindow();
  }

  // A value is shown unless it is secret (the server sends `value` only then); secrets are write-only.
  function isSecret(setting) { return !("value" in setting); }

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
    var secret = isSecret(setting);
    input.type = secret ? "password" : setting.type === "INT" ? "number" : "text";
    if (setting.type === "INT") { input.step = "1"; input.inputMode = "numeric"; }
    if (secret) {
      input.autocomplete = "new-password";
      input.placeholder = setting.isSet ? T.secret_value_set : T.secret_value_not_set;
      input.setAttribute("data-read-text", setting.isSet ? T.secret_set : T.secret_not_set);
    } else {
      input.value = setting.value;
      input.setAttribute("data-stored", setting.value);
    }
    field.appendChild(label);
    field.appendChild(input);
    field.appendChild(element("p", "field-error"));
    field.lastChild.hidden = true;
    return field;
  }

  function typedSettings() {
    var settings = {};
    $all("#source-settings input").forEach(function (input) {
      var value = input.value.trim();
      var stored = input.getAttribute("data-stored");
      if (value !== "" && (stored === null || value !== stored)) { settings[input.getAttribute("data-code")] = value; }
    });
    return settings;
  }

  function readSource() {
    var fields = { title: sourceForm.elements.title.value.trim() };
    var description = sourceForm.elements.description.value;
    if (description !== (state.source.description || "")) { fields.description = description; }
    var settings = typedSettings();
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
    if (!canEdit || sourceForm.getAttribute("aria-busy") === "true") { return; }
    notifyClear();
    clearErrors(sourceForm);
    var fields = readSource();
    var errors = sourceErrors(fields);
    if (errors.length) { showFieldErrors(sourceForm, errors); return; }
    if (!state.source.id) { createSource(fields); return; }
    if (fields.title === state.source.title && Object.keys(fields).length === 1) {
      notify("info", T.nothing_changed);
      return;
    }
    saveChanges("source", fields);
  }

  // --- saving changes, with the conflict check -------------------------------------------------

  var KINDS_OF_OBJECT = {
    connector: { path: "/connectors/", form: function () { return connectorForm; }, fill: function (item) { fillConnector(item); },
                 list: function () { return state.connectors; }, current: function () { return state.connector; } },
    source: { path: "/sources/", form: function () { return sourceForm; }, fill: function (item) { fillSource(item); },
              list: function () { return state.sources; }, current: function () { return state.source; } },
    // A database's changes are in its source's history, shown in the source editor.
    database: { form: function () { return databaseForm; }, fill: function (item) { fillDatabase(item); },
                list: function () { return state.databases; }, current: function () { return state.database; },
                noHistory: true }
  };

  // Sends `fields` with the version the editor loaded; a 409 EDIT_CONFLICT shows both versions.
  function saveChanges(kind, fields, version) {
    var spec = KINDS_OF_OBJECT[kind];
    var current = spec.current();
    var form = spec.form();
    var body = { fields: fields };
    var ifVersion = version || current.version;
    if (ifVersion) { body.ifVersion = ifVersion; }
    setSaving(form, true);
    return api("POST", spec.path + current.id, body).then(function (result) {
      saved(kind, itemOf(result), T.saved);
    }).catch(function (error) {
      if (error.code === "EDIT_CONFLICT" && error.conflict) { return resolveConflict(kind, updateRetry(kind, fields), error); }
      handleSaveError(form, error);
    }).then(function () { setSaving(form, false); });
  }

  function saved(kind, item, message) {
    var spec = KINDS_OF_OBJECT[kind];
    spec.fill(item);
    replaceById(spec.list(), item);
    renderList();
    markPristine(spec.form());
    notify("success", message);
    loadHistory(kind, item);
  }

  // Shows both versions; "Keep theirs" loads the saved object, "Overwrite with mine" sends mine again
  // against the version now stored. `retry(version)` sends the same request with that version.
  function resolveConflict(kind, retry, error) {
    var spec = KINDS_OF_OBJECT[kind];
    var conflict = error.conflict;
    var dialog = $("#conflict-dialog");
    var change = conflict.lastChange;
    $("#conflict-text").textContent = change
      ? format(T.conflict_text, { who: actorName(change.actor), when: when(change.at) }) : error.message;
    var rows = $("#conflict-rows");
    rows.textContent = "";
    (conflict.fields || []).forEach(function (difference) {
      var row = element("tr");
      var name = element("th", null, fieldLabel(difference.field));
      name.scope = "row";
      row.appendChild(name);
      row.appendChild(element("td", "conflict-value", displayValue(difference.yours)));
      row.appendChild(element("td", "conflict-value", displayValue(difference.theirs)));
      rows.appendChild(row);
    });
    notifyError(error);
    return new Promise(function (resolve) {
      function finish(choice) {
        dialog.removeEventListener("close", onClose);
        $all("[data-answer]", dialog).forEach(function (node) { node.onclick = null; });
        if (dialog.open) { dialog.close(); }
        resolve(choice);
      }
      function onClose() { finish(null); }
      $('[data-answer="theirs"]', dialog).onclick = function () { finish("theirs"); };
      $('[data-answer="mine"]', dialog).onclick = function () { finish("mine"); };
      dialog.addEventListener("close", onClose);
      dialog.showModal();
      $('[data-answer="theirs"]', dialog).focus();
    }).then(function (choice) {
      var form = spec.form();
      if (choice === "theirs") {
        spec.fill(conflict.current);
        replaceById(spec.list(), conflict.current);
        renderList();
        markPristine(form);
        notify("info", T.conflict_kept);
        if (!spec.noHistory) { loadHistory(kind, conflict.current); }
        $("input, textarea", form).focus();
        return null;
      }
      if (choice === "mine") { return retry(conflict.current.version); }
      $('button[type="submit"]', form).focus();  // undecided: the edits stay in the form
      return null;
    });
  }

  function fieldLabel(field) {
    var name = field.replace(/^database\./, "");  // a change to a database entry (gateway/databases.py)
    var setting = /^settings[.[]/.test(name);
    return (setting ? T.field_settings + ": " + name.replace(/^settings\.?/, "") : T["field_" + name]) || name;
  }

  function displayValue(value) {
    if (value === null || value === undefined || value === "") { return "—"; }
    if (Array.isArray(value)) {
      return value.map(function (item) {
        return item && typeof item === "object" ? [item.name, item.code, item.type].filter(Boolean).join(" · ") : String(item);
      }).join("\n") || "—";
    }
    if (typeof value === "object") { return JSON.stringify(value); }
    return String(value);
  }

  // Overriding saveChanges' conflict branch for updates: the retry sends the same fields.
  function updateRetry(kind, fields) {
    return function (version) { return saveChanges(kind, fields, version); };
  }

  // --- history with one-click revert -----------------------------------------------------------

  function loadHistory(kind, item) {
    var view = kind === "connector" ? connectorView : sourceView;
    var box = $("[data-history]", view);
    box.hidden = true;
    if (!item || !item.id || !("version" in item)) { return; }
    api("GET", "/" + kind + "s/" + item.id + "/history").then(function (entries) {
      if (KINDS_OF_OBJECT[kind].current() !== item && KINDS_OF_OBJECT[kind].current().id !== item.id) { return; }
      renderHistory(kind, $('[data-bind="history"]', view), entries);
      box.hidden = false;
      fitWindow();
    }).catch(function () { box.hidden = true; });
  }

  function renderHistory(kind, list, entries) {
    list.textContent = "";
    if (!entries.length) { list.appendChild(element("li", "muted", T.history_empty)); }
    entries.forEach(function (entry) {
      var item = element("li", "history-entry");
      item.setAttribute("data-change-id", entry.id);
      var head = element("div", "history-head");
      head.appendChild(element("span", "history-when",
        format(T.change_line, { when: when(entry.at), who: actorName(entry.actor), via: T["via_" + entry.via] || entry.via })));
      if (canEdit && entry.revertible) {
        var revert = button(T.history_revert, function () { revertChange(kind, entry); }, "button secondary small");
        revert.setAttribute("data-action", "revert");
        revert.setAttribute("aria-label", format(T.history_revert_aria, { when: when(entry.at) }));
        head.appendChild(revert);
      }
      item.appendChild(head);
      if (T["action_" + entry.action]) { item.appendChild(element("p", "history-action small", T["action_" + entry.action])); }
      var changes = element("ul", "history-changes");
      (entry.changes || []).forEach(function (change) {
        var line = element("li");
        line.appendChild(element("span", "history-field", fieldLabel(change.field) + ": "));
        line.appendChild(document.createTextNode(change.secret ? T.history_secret
          : displayValue(change.old) + " → " + displayValue(change["new"])));
        changes.appendChild(line);
      });
      item.appendChild(changes);
      list.appendChild(item);
    });
  }

  function revertChange(kind, entry) {
    var ask = isDirty() ? confirmDialog({ title: T.unsaved_title, text: T.unsaved_text, yes: T.discard,
                                          no: T.keep_editing, safeNo: true }) : Promise.resolve(true);
    ask.then(function (go) {
      if (!go) { return null; }
      var send = function (version) {
        var form = KINDS_OF_OBJECT[kind].form();
        setSaving(form, true);
        return api("POST", "/history/" + entry.id + "/revert", { ifVersion: version }).then(function (result) {
          saved(kind, result, T.history_reverted);
        }).catch(function (error) {
          if (error.code === "EDIT_CONFLICT" && error.conflict) { return resolveConflict(kind, send, error); }
          notifyError(error);
        }).then(function () { setSaving(form, false); });
      };
      return send(KINDS_OF_OBJECT[kind].current().version);
    });
  }

  // --- creating and deleting connectors and sources ------------------------------------------

  function openNewConnector() {
    notifyClear();
    var blank = { title: "", description: "", logo: "", settings: [], secretSettings: [] };
    URL_FIELDS.forEach(function (name) { blank[name] = ""; });
    fillConnector(blank);
    $('[data-bind="heading"]', connectorView).textContent = T.connector_new;
    var opener = document.activeElement;
    openEditor("connector-editor", connectorForm, function () { return document.contains(opener) ? opener : $("#connectors-heading"); });
  }

  function createConnector(fields) {
    if (fields.secretSettings && !fields.secretSettings.length) { delete fields.secretSettings; }  // the default rule
    createObject("connector", fields, connectorButton);
  }

  // POST /connectors or /sources; after the editor closes, focus goes to the new item's button.
  function createObject(kind, fields, buttonOf) {
    var form = KINDS_OF_OBJECT[kind].form();
    setSaving(form, true);
    api("POST", "/" + kind + "s", { fields: fields }).then(function (item) {
      saved(kind, item, T[kind + "_added"]);
      state.returnFocus = function () { return buttonOf(item.id); };
    }).catch(function (error) {
      handleSaveError(form, error);
    }).then(function () { setSaving(form, false); });
  }

  // Asks first; Bitrix24's refusal (sources still use the connector, datasets use the source) is shown
  // and focus goes back to the delete button. `after()` runs once deleted, `failed(error)` on a refusal.
  function confirmAndDelete(kind, item, after, failed) {
    confirmDialog({ title: format(T[kind + "_delete_title"], { title: item.title }), text: T[kind + "_delete_text"],
                    yes: T.delete_for_good, no: T.cancel, danger: true, safeNo: true }).then(function (sure) {
      if (!sure) { return; }
      api("DELETE", "/" + kind + "s/" + item.id).then(function () {
        removeById(KINDS_OF_OBJECT[kind].list(), item.id);
        renderList();
        notify("success", format(T[kind + "_deleted"], { title: item.title }));
        after();
      }).catch(function (error) {
        notifyError(error);
        if (failed) { failed(error); }
        var again = $("[data-" + kind + '-id="' + item.id + '"] [data-action="delete-' + kind + '"]');
        if (again) { again.focus(); }
      });
    });
  }

  function openNewSource(connector) {
    notifyClear();
    var secret = connector.secretSettings || [];
    fillSource({
      connectorId: connector.id, title: "", description: "",
      settings: (connector.settings || []).map(function (row) {
        var shown = { code: row.code, name: row.name, type: row.type, secret: secret.indexOf(row.code) >= 0, isSet: false };
        if (!shown.secret) { shown.value = ""; }
        return shown;
      })
    });
    openEditor("source-editor", sourceForm, function () {
      return $('[data-connector-id="' + connector.id + '"] [data-action="add-source"]') || $("#connectors-heading");
    });
  }

  function createSource(fields) {
    createObject("source", { connectorId: state.source.connectorId, title: fields.title,
                             description: fields.description || "", settings: fields.settings || {} }, sourceButton);
  }

  // "Test connection": what Bitrix24 would see from the connector's urlCheck, shown under the source.
  function checkSource(source, test) {
    if (test.getAttribute("aria-disabled") === "true") { return; }
    test.setAttribute("aria-disabled", "true");
    setItemStatus(source.id, "pending", T.source_testing);
    api("POST", "/sources/" + source.id + "/check").then(function (result) {
      setItemStatus(source.id, result.ok ? "ok" : "error", result.message, result.ok ? "" : result.outcome);
    }).catch(function (error) {
      setItemStatus(source.id, "error", error.message || T.network_error, error.code);
    }).then(function () { test.removeAttribute("aria-disabled"); });
  }

  function setItemStatus(sourceId, kind, message, code) {
    var status = $('[data-source-id="' + sourceId + '"] .source-status');
    if (!status) { return; }
    status.className = "source-status database-status status-" + kind;
    status.textContent = message;
    if (code) { status.appendChild(element("span", "notice-code", " " + T.error_code + ": " + code)); }
    fitWindow();
  }

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
      state.loaded.databases = true;
      renderDatabases();
      renderWelcome();
    }).catch(function (error) { showListError(list, error); });
  }

  // A database's source is in the connector list too: its title, or whether it exists, changed with it.
  function reloadDatabasesAndSources() { return Promise.all([loadDatabases(), loadList()]); }

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
      return reloadDatabasesAndSources().then(focusDatabases);
    }, function (error) {
      cancelDelete(box, remove);
      setStatus(item, "error", error.message || T.network_error, error.code);
    });
  }

  function databaseButton(id) {
    return $('#database-list [data-database-id="' + id + '"] [data-action="open-database"]');
  }

  function focusDatabases() {
    var target = $('#database-list [data-action="open-database"]') || $('#welcome [data-action="welcome-add-database"]') ||
      $('#database-list [data-action="add-database"]');
    (target || $("#databases-heading")).focus();
  }

  // --- database editor -----------------------------------------------------------------------

  function openNewDatabase() {
    notifyClear();
    fillDatabase(null);
    state.returnFocus = function () {
      var add = $("#database-add");
      return add && !add.hidden ? add : $('#welcome:not([hidden]) [data-action="welcome-add-database"]') ||
        $('#database-list [data-action="add-database"]');
    };
    showView("database-editor");
    focusEditor();
    markPristine(databaseForm);
  }

  function openDatabase(id) {
    notifyClear();
    api("GET", "/databases/" + id).then(function (database) {
      fillDatabase(database);
      state.returnFocus = function () { return databaseButton(id); };
      showView("database-editor");
      focusEditor();
      markPristine(databaseForm);
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
    showLastChange($("#database-editor"), database);
    fillKinds(values.kind);
    ["title", "description", "host", "database", "user", "schema"].forEach(function (name) {
      elements[name].value = values[name] || "";
    });
    elements.port.value = values.port || "";
    elements.password.value = "";
    elements.password.placeholder = database && database.passwordSet ? T.password_unchanged : "";
    elements.password.setAttribute("data-read-text", database && database.passwordSet ? T.secret_set : T.secret_not_set);
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
    // An edit sends the version it loaded; a 409 EDIT_CONFLICT shows both versions (resolveConflict).
    function send(version) {
      setDatabaseSaving(true);
      var saving = adding ? api("POST", "/databases", body)
        : api("PATCH", "/databases/" + state.database.id, withVersion(body, version));
      return saving.then(function (result) {
        var id = adding ? result.id : state.database.id;
        setDatabaseSaving(false);
        notify("success", adding ? format(T.database_added, { id: result.sourceId }) : T.saved);
        showView("list-view");
        state.returnFocus = function () { return databaseButton(id); };
        return reloadDatabasesAndSources().then(restoreFocus);
      }, function (error) {
        setDatabaseSaving(false);
        if (error.code === "EDIT_CONFLICT" && error.conflict) { return resolveConflict("database", send, error); }
        handleDatabaseError(error);
      });
    }
    send(adding ? null : state.database.version);
  }

  function withVersion(body, version) {
    var copy = { ifVersion: version };
    Object.keys(body).forEach(function (name) { copy[name] = body[name]; });
    return copy;
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

  // --- who can edit (administrators only): users picked by name ---------------------------------

  var editors = [];

  function loadEditors() {
    if (!$("#editors-panel")) { return; }
    api("GET", "/editors").then(renderEditors).catch(function (error) {
      showEditorError(error.message + " (" + error.code + ")");
    });
  }

  function userName(user) { return user.name || T.user + " #" + user.id; }

  function renderEditors(result) {
    editors = result.userIds;
    var list = $("#editor-list");
    list.textContent = "";
    list.setAttribute("aria-busy", "false");
    if (!result.users.length) { list.appendChild(element("li", "muted", T.editors_none)); }
    result.users.forEach(function (user) {
      var item = element("li", "editor-item");
      item.setAttribute("data-user-id", user.id);
      item.appendChild(element("span", null, userName(user) + " #" + user.id));
      var remove = button(T.remove, function () {
        saveEditors(editors.filter(function (id) { return id !== user.id; })).then(function () {
          ($("#editor-list button") || $("#editor-search")).focus();
        });
      }, "button link danger small");
      remove.setAttribute("aria-label", format(T.editor_remove_aria, { name: userName(user) }));
      item.appendChild(remove);
      list.appendChild(item);
    });
    $("#editors-summary").textContent = result.users.length
      ? "· " + result.users.map(userName).join(", ") : "· " + T.editors_none;
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

  function onSearchUsers(event) {
    event.preventDefault();
    var query = $("#editor-search").value.trim();
    var matches = $("#editor-matches");
    showEditorError("");
    if (!query) { matches.hidden = true; return; }
    api("GET", "/users?search=" + encodeURIComponent(query)).then(function (users) {
      matches.textContent = "";
      matches.hidden = false;
      if (!users.length) { matches.appendChild(element("li", "muted", T.editor_search_none)); }
      users.forEach(function (user) {
        var item = element("li", "editor-item");
        item.appendChild(element("span", null, userName(user) + " #" + user.id));
        if (editors.indexOf(user.id) >= 0) {
          item.appendChild(element("span", "muted small", "✓ " + T.editors));
        } else {
          var allow = button(T.editor_add, function () {
            saveEditors(editors.concat([user.id])).then(function () {
              matches.hidden = true;
              $("#editor-search").value = "";
              $("#editor-search").focus();
            });
          });
          allow.setAttribute("data-action", "allow-editor");
          allow.setAttribute("aria-label", format(T.editor_allow_aria, { name: userName(user) }));
          item.appendChild(allow);
        }
        matches.appendChild(item);
      });
      fitWindow();
    }).catch(function (error) { showEditorError(error.message + " (" + error.code + ")"); });
  }

  function onPickEditors() {
    BX24.selectUsers(function (users) {
      var ids = (users || []).map(function (user) { return Number(user.id); }).filter(function (id) { return id > 0; });
      if (ids.length) { saveEditors(editors.concat(ids)); }
    });
  }

  // --- re-authorization: one message, one action (administrators) ------------------------------

  function isBlocked() { return config.portal.status === "needs_reauth" || config.portal.status === "payment_required"; }

  function onReauth(event) {
    var target = event.target;
    target.disabled = true;
    api("POST", "/reseed").then(function () {
      $("#reauth-banner").hidden = true;
      config.portal.status = "installed";
      $("#tab-main").hidden = false;
      notify("success", T.reauth_done);
      loadEverything();
      $("#connectors-heading").focus();
    }).catch(function (error) {
      target.disabled = false;
      notifyError(error);
    });
  }

  // --- start ---------------------------------------------------------------------------------

  function wire() {
    $all('[data-action="back"]').forEach(function (node) { node.addEventListener("click", requestClose); });
    document.addEventListener("keydown", onKeydown);
    connectorForm.addEventListener("submit", saveConnector);
    sourceForm.addEventListener("submit", saveSource);
    $("#settings-rows").addEventListener("click", onSettingsClick);
    $('[data-action="add-setting"]').addEventListener("click", function () {
      addSettingRow({ type: "STRING" }).querySelector("input").focus();
    });
    connectorForm.elements.logo.addEventListener("input", updateLogoPreview);
    $("#c-logo-file").addEventListener("change", onLogoFile);
    $("#c-logo-url").addEventListener("click", onLogoUrl);
    $("#list-search").addEventListener("input", renderList);
    $("#list-connector").addEventListener("change", renderList);
    $("#list-active").addEventListener("change", renderList);
    $("#notice .notice-close").addEventListener("click", notifyClear);
    if ($("#connector-add")) { $("#connector-add").addEventListener("click", openNewConnector); }
    if ($("#editor-search-form")) { $("#editor-search-form").addEventListener("submit", onSearchUsers); }
    if ($("#reauth-button")) { $("#reauth-button").addEventListener("click", onReauth); }
    wireDatabases();
    if (window.ResizeObserver) { new ResizeObserver(fitWindow).observe($("#tab")); }
  }

  function loadEverything() {
    loadList();
    loadDatabases();
    loadEditors();
  }

  function start() {
    document.documentElement.classList.toggle("read-only", !canEdit);
    wire();
    var sdk = document.getElementById("bx24-sdk");
    if (window.BX24) { initBX24(); } else if (sdk) { sdk.addEventListener("load", initBX24); }
    scheduleRenewal(config.sessionTtl);
    if (!isBlocked()) { loadEverything(); }  // the banner says why nothing loads
  }

  start();
})();
