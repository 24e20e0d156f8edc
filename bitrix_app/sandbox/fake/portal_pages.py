"""The portal in a browser: a Bitrix24-like page that frames our app, and the BX24 shim it talks to.

``GET /<domain>/?user=N[&view=app|placement&id=P][&lang=en|ru]`` renders the shell; ``lang`` is the
interface language the page passes to the app as ``LANG`` (the portal's language by default), and
the header switches it. Every render that shows
the app POSTs a hidden form into ``<iframe name="app-frame">`` with a fresh token chain, exactly
like the real portal. The app page loads ``/bx24.js`` from here; the shim talks to this page
with ``postMessage`` (``command:params:callbackId:APP_SID``) and the page answers
``callbackId:json``. ``installFinish`` goes through ``POST /_fake/<domain>/install-finish``.

``view=bi`` is BI Builder instead: our app's connectors and sources, then (``&source=ID``, with
``&search=``) the source's tables, then (``&table=<externalCode>``) the table's columns and a
preview, all fetched from the connector's endpoints by ``fake.bi``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from flask import Blueprint, Response, abort, jsonify, redirect, render_template_string, request

from . import lifecycle, tokens
from .bi_builder import BiBuilderError
from .state import Portal, User
from .web import CORS_HEADERS, current_fake

bp = Blueprint("fake_portal_pages", __name__)
LANGUAGES = {"en": "English", "ru": "Русский"}


@dataclass
class Frame:
    """What the page puts in its iframe: a title, the POST target and the POSTed fields."""

    title: str
    action: str
    fields: dict
    init: dict = field(default_factory=dict)


@dataclass
class BiView:
    """What the BI Builder view shows; each list stays empty until its parent is chosen."""

    connectors: list[dict]
    source: dict | None = None
    search: str = ""
    tables: list[dict] = field(default_factory=list)
    table: dict | None = None
    columns: list[dict] = field(default_factory=list)
    preview: list[dict] = field(default_factory=list)
    error: BiBuilderError | None = None


@bp.get("/<domain>/")
def portal_page(domain: str) -> str:
    fake = current_fake()
    portal = _portal_or_404(fake, domain)
    user = _user_or_404(portal, request.args.get("user"))
    view = request.args.get("view", "home")
    lang = request.args.get("lang", portal.language)
    if lang not in LANGUAGES:
        abort(400, description=f"lang must be one of: {', '.join(LANGUAGES)}.")
    # Links keep the user and a chosen language.
    keep = {"user": user.id, **({"lang": lang} if "lang" in request.args else {})}
    bi = _bi_view(fake, portal, user) if view == "bi" else None
    frame, message = (None, "") if bi else _main_area(fake, portal, user, view, request.args.get("id"), lang)
    with fake.state.lock:
        left_menu = [item for item in portal.placements
                     if item["placement"] == "LEFT_MENU" and item["client_id"] == fake.state.main_client_id]
    client = {
        "init": frame.init if frame else None,
        "users": [{"id": str(other.id), "name": other.full_name} for other in portal.users.values()],
        "appViewUrl": f"{portal.page_url}?{urlencode({**keep, 'view': 'app'})}",
        "installFinishUrl": f"{fake.url}/_fake/{portal.domain}/install-finish",
        "authUrl": f"{fake.url}/_fake/{portal.domain}/auth?user={user.id}",
    }
    return render_template_string(PAGE_TEMPLATE, portal=portal, user=user, users=list(portal.users.values()),
                                  view=view, frame=frame, message=message, left_menu=left_menu, bi=bi,
                                  lang=lang, languages=LANGUAGES, keep=keep, args=request.args.to_dict(),
                                  app_name=fake.app_name, client=client,
                                  reinstall_url=f"{fake.url}/_fake/{portal.domain}/install?user={user.id}")


def _main_area(fake, portal: Portal, user: User, view: str, placement_id: str | None,
               lang: str) -> tuple[Frame | None, str]:
    if not fake.app_url:
        return None, "No application URL is configured for this portal."
    if portal.app_state == "uninstalled":
        return None, "The application is not installed on this portal."
    if portal.app_state == "added":
        if not user.is_admin:
            return None, ("The application is not fully installed yet. "
                          "Please contact your Bitrix24 administrator to finish the installation.")
        return _frame(fake, portal, user, f"{fake.app_url}/install", "Installing the application", lang,
                      install=True), ""
    if view == "app":
        return _frame(fake, portal, user, f"{fake.app_url}/app", fake.app_name, lang), ""
    if view == "placement":
        record = next((item for item in portal.placements if str(item["id"]) == placement_id), None)
        if record is not None:
            return _frame(fake, portal, user, record["handler"], record["title"] or fake.app_name, lang,
                          placement=record["placement"]), ""
    return None, f"Welcome to {portal.domain}. Open “{fake.app_name}” in the menu on the left."


def _bi_view(fake, portal: Portal, user: User) -> BiView:
    with fake.state.lock:
        connectors = [{"id": connector["id"], "title": connector["title"],
                       "sources": [{key: source[key] for key in ("id", "title", "active")}
                                   for source in portal.sources.values() if source["connectorId"] == connector["id"]]}
                      for connector in portal.connectors.values() if connector["appId"] == fake.state.main_client_id]
    view = BiView(connectors, search=request.args.get("search", ""))
    if not user.bi_access:
        view.error = BiBuilderError("ACCESS_DENIED", "no access to BI Builder")
        return view
    chosen = request.args.get("source", "")
    sources = [source for item in connectors for source in item["sources"]]
    view.source = next((source for source in sources if str(source["id"]) == chosen), None)
    if view.source is None:
        return view
    try:
        view.tables = fake.bi.table_list(portal, view.source["id"], view.search)
        code = request.args.get("table")
        view.table = next((table for table in view.tables if table["externalCode"] == code), None)
        if view.table is not None:
            view.columns = fake.bi.describe(portal, view.source["id"], code)
            view.preview = fake.bi.preview(portal, view.source["id"], code, [column["code"] for column in view.columns])
    except BiBuilderError as error:
        view.error = error
    return view


def _frame(fake, portal: Portal, user: User, handler: str, title: str, lang: str,
           placement: str = "DEFAULT", install: bool = False) -> Frame:
    options = {"URI": f"/{portal.domain}/"} if placement != "DEFAULT" else {}
    query, form = lifecycle.frame_request(fake, portal, user, placement, options, lang=lang)
    init = {
        "DOMAIN": portal.domain, "PROTOCOL": 0, "LANG": query["LANG"], "APP_SID": query["APP_SID"],
        "MEMBER_ID": portal.member_id, "IS_ADMIN": user.is_admin, "USER_ID": user.id,
        "AUTH_ID": form["AUTH_ID"], "REFRESH_ID": form["REFRESH_ID"], "AUTH_EXPIRES": fake.config.access_ttl,
        "PLACEMENT": placement, "PLACEMENT_OPTIONS": options, "INSTALL": install,
        "CLIENT_ENDPOINT": portal.client_endpoint,
    }
    return Frame(title, lifecycle.with_query(handler, query), form, init)


@bp.post("/_fake/<domain>/install-finish")
def install_finish(domain: str) -> Response:
    fake = current_fake()
    portal = _portal_or_404(fake, domain)
    fake.finish_install(portal)
    return jsonify(installed=portal.installed)


@bp.post("/_fake/<domain>/install")
def reinstall(domain: str) -> Response:
    """The admin adds the app again after an uninstall; the page then shows the installer."""
    fake = current_fake()
    portal = _portal_or_404(fake, domain)
    lifecycle.mark_added(portal)
    return redirect(f"{portal.page_url}?user={request.args.get('user', 1)}")


@bp.post("/_fake/<domain>/auth")
def refresh_frame_auth(domain: str) -> Response:
    """BX24.refreshAuth(): the portal hands the frame a fresh token pair for the same user."""
    fake = current_fake()
    portal = _portal_or_404(fake, domain)
    user = _user_or_404(portal, request.args.get("user"))
    access, refresh = tokens.issue_pair(fake.state, fake.config, portal, user.id)
    return jsonify(AUTH_ID=access.value, REFRESH_ID=refresh.value, AUTH_EXPIRES=fake.config.access_ttl)


@bp.get("/bx24.js")
def bx24_shim() -> Response:
    return Response(BX24_SHIM, content_type="application/javascript; charset=utf-8", headers=CORS_HEADERS)


def _portal_or_404(fake, domain: str) -> Portal:
    portal = fake.state.find_portal(domain)
    if portal is None:
        abort(404)
    return portal


def _user_or_404(portal: Portal, user_id: str | None) -> User:
    try:
        return portal.user(user_id)
    except (KeyError, ValueError):
        abort(404)


PAGE_TEMPLATE = """<!doctype html>
<html lang="{{ lang }}">
<head>
<meta charset="utf-8">
<title>{{ portal.domain }} · Bitrix24 (sandbox)</title>
<style>
  body { margin: 0; font: 14px/1.4 "Helvetica Neue", Arial, sans-serif; background: #eef2f4; color: #333; }
  header { display: flex; align-items: center; gap: 24px; padding: 10px 20px; background: #2fc6f6; color: #fff; }
  header .logo { font-size: 22px; font-weight: bold; } header .logo span { color: #005893; }
  header .who { margin-left: auto; } header a { color: #fff; margin-left: 8px; }
  header a.current { font-weight: bold; text-decoration: none; }
  header .languages { margin-left: 16px; }
  .layout { display: flex; min-height: calc(100vh - 52px); }
  nav { width: 220px; background: #1f3a4d; padding: 12px 0; }
  nav a, nav .group { display: block; padding: 8px 20px; color: #cfe3ee; text-decoration: none; }
  nav .group { color: #7d97a8; font-size: 12px; text-transform: uppercase; margin-top: 12px; }
  nav a.active, nav a:hover { background: #2b536b; color: #fff; }
  main { flex: 1; padding: 20px; }
  .notice { background: #fff; padding: 24px; border-radius: 8px; }
  iframe { width: 100%; height: 640px; border: 0; background: #fff; border-radius: 8px; }
  .bi section { background: #fff; padding: 16px 24px; border-radius: 8px; margin-bottom: 16px; }
  .bi table { border-collapse: collapse; } .bi th, .bi td { border: 1px solid #dfe6ea; padding: 4px 10px; text-align: left; }
  .bi a.chosen { font-weight: bold; } .bi .error { background: #fdecea; color: #a12; padding: 12px 16px; border-radius: 8px; }
</style>
</head>
<body>
<header>
  <div class="logo">Bitrix<span>24</span> <small>sandbox</small></div>
  <div class="portal">{{ portal.domain }}</div>
  <div class="who">
    Signed in as <b id="current-user">{{ user.full_name }}</b>{% if user.is_admin %} (administrator){% endif %}
    · Switch user:
    {% for other in users %}<a href="?{{ dict(keep, user=other.id) | urlencode }}" class="{{ 'current' if other.id == user.id }}">{{ other.full_name }}</a>{% endfor %}
  </div>
  <div class="languages" id="language-switch">
    {% for code, name in languages.items() %}<a href="?{{ dict(args, lang=code) | urlencode }}" hreflang="{{ code }}" lang="{{ code }}"
       class="{{ 'current' if code == lang }}"{% if code == lang %} aria-current="true"{% endif %}>{{ name }}</a>{% endfor %}
  </div>
</header>
<div class="layout">
  <nav>
    <a href="?{{ keep | urlencode }}" class="{{ 'active' if view == 'home' }}">Feed</a>
    <a href="?{{ keep | urlencode }}">Tasks and Projects</a>
    <a href="?{{ keep | urlencode }}">CRM</a>
    <a id="bi-menu-item" href="?{{ dict(keep, view='bi') | urlencode }}" class="{{ 'active' if view == 'bi' }}">BI Builder</a>
    <div class="group">Applications</div>
    {% if portal.installed %}
      <a id="app-menu-item" href="?{{ dict(keep, view='app') | urlencode }}" class="{{ 'active' if view == 'app' }}">{{ app_name }}</a>
      {% for item in left_menu %}
        <a href="?{{ dict(keep, view='placement', id=item.id) | urlencode }}">{{ item.title or app_name }}</a>
      {% endfor %}
    {% endif %}
  </nav>
  <main>
    {% if bi %}
      {% set here = dict(keep, view="bi") %}
      <div class="bi" id="bi-builder">
        <h2>BI Builder</h2>
        {% if bi.error %}<p class="error" id="bi-error"><b>{{ bi.error.message_key }}</b> {{ bi.error.detail }}</p>{% endif %}
        <section id="bi-connectors">
          <h3>Connections</h3>
          {% for connector in bi.connectors %}
            <p>{{ connector.title }}</p>
            <ul>{% for source in connector.sources %}
              <li><a href="?{{ dict(here, source=source.id) | urlencode }}"
                     class="{{ 'chosen' if bi.source and bi.source.id == source.id }}">{{ source.title }}</a>
                  {% if not source.active %}(inactive){% endif %}</li>
            {% else %}<li>No connections yet.</li>{% endfor %}</ul>
          {% else %}<p>The application has no connectors on this portal.</p>{% endfor %}
        </section>
        {% if bi.source %}
          <section id="bi-tables">
            <h3>Tables of “{{ bi.source.title }}”</h3>
            <form method="get">
              {% for name, value in dict(here, source=bi.source.id).items() %}<input type="hidden" name="{{ name }}" value="{{ value }}">{% endfor %}
              <input type="search" name="search" value="{{ bi.search }}" placeholder="Search tables"> <button>Search</button>
            </form>
            <ul>{% for table in bi.tables %}
              <li><a href="?{{ dict(here, source=bi.source.id, search=bi.search, table=table.externalCode) | urlencode }}"
                     class="{{ 'chosen' if bi.table and bi.table.externalCode == table.externalCode }}">{{ table.title }}</a>
                  <code>{{ table.code }}</code></li>
            {% else %}<li>No tables.</li>{% endfor %}</ul>
          </section>
        {% endif %}
        {% if bi.table %}
          <section id="bi-columns">
            <h3>Columns of “{{ bi.table.title }}”</h3>
            <table><tr><th>Code</th><th>Name</th><th>Type</th></tr>
              {% for column in bi.columns %}<tr><td>{{ column.code }}</td><td>{{ column.name }}</td><td>{{ column.type }}</td></tr>{% endfor %}
            </table>
          </section>
          <section id="bi-preview">
            <h3>Preview</h3>
            <table><tr>{% for column in bi.columns %}<th>{{ column.code }}</th>{% endfor %}</tr>
              {% for row in bi.preview %}<tr>{% for column in bi.columns %}<td>{{ row[column.code] }}</td>{% endfor %}</tr>
              {% else %}<tr><td colspan="{{ bi.columns | length }}">No rows.</td></tr>{% endfor %}
            </table>
          </section>
        {% endif %}
      </div>
    {% elif frame %}
      <h2 id="app-title">{{ frame.title }}</h2>
      <iframe name="app-frame" id="app-frame" src="about:blank"></iframe>
      <form id="app-form" method="post" target="app-frame" action="{{ frame.action }}">
        {% for name, value in frame.fields.items() %}<input type="hidden" name="{{ name }}" value="{{ value }}">
        {% endfor %}
      </form>
    {% else %}
      <div class="notice" id="portal-message">{{ message }}</div>
      {% if portal.app_state == 'uninstalled' and user.is_admin %}
        <form method="post" action="{{ reinstall_url }}"><button id="reinstall">Install the application</button></form>
      {% endif %}
    {% endif %}
  </main>
</div>
<dialog id="user-picker"><p>Select employees</p><ul></ul><button type="button">Select</button></dialog>
<script>
(function () {
  var portal = {{ client | tojson }};
  var frame = document.getElementById("app-frame");
  var form = document.getElementById("app-form");
  if (form) { form.submit(); }

  function reply(target, callbackId, data) {
    if (callbackId) { target.postMessage(callbackId + ":" + JSON.stringify(data === undefined ? null : data), "*"); }
  }
  function size(value) { return typeof value === "number" ? value + "px" : String(value); }

  window.addEventListener("message", function (event) {
    if (!frame || event.source !== frame.contentWindow || typeof event.data !== "string") { return; }
    var parts = event.data.split(":");
    if (parts.length < 4) { return; }
    var command = parts[0], appSid = parts.pop(), callbackId = parts.pop(), raw = parts.slice(1).join(":");
    // A frame that navigated away from the POSTed URL may have lost its APP_SID; the source check suffices.
    if (!portal.init || (appSid && appSid !== portal.init.APP_SID)) { return; }
    var params = raw ? JSON.parse(raw) : {};
    var source = event.source;
    if (command === "getInitData") {
      reply(source, callbackId, portal.init);
    } else if (command === "installFinish") {
      fetch(portal.installFinishUrl, {method: "POST"}).then(function () { window.location.href = portal.appViewUrl; });
    } else if (command === "resizeWindow") {
      if (params.height !== undefined) { frame.style.height = size(params.height); }
      if (params.width !== undefined) { frame.style.width = size(params.width); }
      reply(source, callbackId, {width: frame.offsetWidth, height: frame.offsetHeight});
    } else if (command === "setTitle") {
      document.getElementById("app-title").textContent = params.title || "";
      reply(source, callbackId, {});
    } else if (command === "refreshAuth") {
      fetch(portal.authUrl, {method: "POST"}).then(function (r) { return r.json(); }).then(function (auth) {
        Object.assign(portal.init, auth);
        reply(source, callbackId, auth);
      });
    } else if (command === "reloadWindow") {
      window.location.reload();
    } else if (command === "scrollParentWindow") {
      window.scrollTo(0, frame.offsetTop + (params.scroll || 0));
      reply(source, callbackId, {});
    } else if (command === "selectUsers") {
      pickUsers(params.multiple, function (users) { reply(source, callbackId, users); });
    }
  });

  // A minimal stand-in for the portal's employee picker.
  function pickUsers(multiple, done) {
    var dialog = document.getElementById("user-picker"), list = dialog.querySelector("ul");
    list.innerHTML = "";
    portal.users.forEach(function (user) {
      var item = document.createElement("li"), label = document.createElement("label"), box = document.createElement("input");
      box.type = multiple ? "checkbox" : "radio"; box.name = "picked"; box.value = user.id;
      label.appendChild(box); label.appendChild(document.createTextNode(" " + user.name));
      item.appendChild(label); list.appendChild(item);
    });
    dialog.querySelector("button").onclick = function () {
      var picked = Array.prototype.filter.call(list.querySelectorAll("input"), function (box) { return box.checked; });
      dialog.close();
      done(picked.map(function (box) {
        var user = portal.users.filter(function (u) { return u.id === box.value; })[0];
        return {id: user.id, name: user.name};
      }));
    };
    dialog.showModal();
  }
})();
</script>
</body>
</html>
"""

BX24_SHIM = r"""/* BX24 shim served by the fake Bitrix24 (sandbox only). Talks to the portal page by postMessage. */
(function () {
  "use strict";
  var script = document.currentScript;
  var portalOrigin = script && script.src ? new URL(script.src, window.location.href).origin : null;
  var query = new URLSearchParams(window.location.search);
  var appSid = query.get("APP_SID") || (window.name || "").split("|")[2] || "";
  var callbacks = {}, sequence = 0, initData = null, waiting = [];

  function send(command, params, callback) {
    var callbackId = "";
    if (callback) { callbackId = "cb" + (++sequence); callbacks[callbackId] = callback; }
    var payload = params === undefined ? "" : JSON.stringify(params);
    window.parent.postMessage(command + ":" + payload + ":" + callbackId + ":" + appSid, "*");
  }

  window.addEventListener("message", function (event) {
    if (portalOrigin && event.origin !== portalOrigin) { return; }
    if (typeof event.data !== "string") { return; }
    var split = event.data.indexOf(":");
    var callbackId = event.data.slice(0, split), callback = callbacks[callbackId];
    if (split < 0 || !callback) { return; }
    delete callbacks[callbackId];
    callback(JSON.parse(event.data.slice(split + 1)));
  });

  function authData() {
    if (!initData) { return false; }
    return {access_token: initData.AUTH_ID, refresh_token: initData.REFRESH_ID, expires_in: initData.AUTH_EXPIRES,
            domain: initData.DOMAIN, member_id: initData.MEMBER_ID};
  }

  function result(body, status) {
    return {
      data: function () { return body.result; },
      error: function () { return body.error ? body.error + ": " + body.error_description : false; },
      error_description: function () { return body.error_description; },
      answer: body, status: status,
      more: function () { return body.next !== undefined; },
      total: function () { return body.total; },
      time: function () { return body.time; }
    };
  }

  var BX24 = {
    init: function (callback) {
      if (initData) { if (callback) { callback(); } return; }
      waiting.push(callback);
      if (waiting.length > 1) { return; }
      send("getInitData", {}, function (data) {
        initData = data;
        var ready = waiting; waiting = [];
        ready.forEach(function (fn) { if (fn) { fn(); } });
      });
    },
    ready: function (callback) { BX24.init(callback); },
    isAdmin: function () { return !!(initData && initData.IS_ADMIN); },
    getLang: function () { return initData ? initData.LANG : "en"; },
    getDomain: function () { return initData ? initData.DOMAIN : ""; },
    getAuth: authData,
    refreshAuth: function (callback) {
      send("refreshAuth", {}, function (auth) { Object.assign(initData, auth); if (callback) { callback(authData()); } });
    },
    installFinish: function () { send("installFinish", {}); },
    fitWindow: function (callback) {
      var height = Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0);
      send("resizeWindow", {width: "100%", height: height}, callback || function () {});
    },
    resizeWindow: function (width, height, callback) {
      send("resizeWindow", {width: width, height: height}, callback || function () {});
    },
    setTitle: function (title, callback) { send("setTitle", {title: title}, callback || function () {}); },
    scrollParentWindow: function (scroll, callback) {
      send("scrollParentWindow", {scroll: scroll}, callback || function () {});
    },
    selectUsers: function (callback) { send("selectUsers", {multiple: true}, callback); },
    selectUser: function (callback) {
      send("selectUsers", {multiple: false}, function (users) { callback(users[0]); });
    },
    reloadWindow: function () { send("reloadWindow", {}); },
    placement: {
      info: function () {
        return initData ? {placement: initData.PLACEMENT, options: initData.PLACEMENT_OPTIONS} : {};
      }
    },
    callMethod: function (method, params, callback) {
      var body = Object.assign({}, params || {}, {auth: initData.AUTH_ID});
      fetch(initData.CLIENT_ENDPOINT + method + ".json", {
        method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)
      }).then(function (response) {
        return response.json().then(function (data) { if (callback) { callback(result(data, response.status)); } });
      });
    }
  };
  window.BX24 = BX24;
})();
"""
