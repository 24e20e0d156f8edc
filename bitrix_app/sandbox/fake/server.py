"""``FakeBitrix24``: builds the Flask app, serves it on loopback and drives it from tests.

One instance plays the authorization server (``/oauth/token/``, ``/rest/app.info``), any number
of portals (``/<domain>/rest/...`` and ``/<domain>/``) and the portal's calls to our app.
"""
from __future__ import annotations

import threading
from dataclasses import replace

from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

from . import biconnector, demo_connector, lifecycle, oauth_server, portal_pages, rest, tokens
from .bi_builder import BiBuilder
from .config import FakeConfig
from .state import App, FakeClock, Portal, State, User

DEFAULT_SCOPE = "biconnector,placement,user"


class _QuietRequestHandler(WSGIRequestHandler):
    """No access log: token-endpoint URLs carry secrets, and tests do not need the noise."""

    def log_request(self, code="-", size="-") -> None:
        pass


class FakeBitrix24:
    def __init__(self, client_id: str, client_secret: str, app_url: str | None = None,
                 config: FakeConfig | None = None, scope: str = DEFAULT_SCOPE) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self.app_url = app_url
        self.app_name = "BI Connector"
        self.redirect_uri: str | None = None  # where /oauth/authorize/ sends the code, if used
        self._initial_config = config or FakeConfig()
        self.config = replace(self._initial_config)
        self.clock = FakeClock()
        self.state = State(self.clock, App(client_id, client_secret, scope))
        self.url: str | None = None
        self.bi = BiBuilder(self)  # the portal as the Analytics hub and BI Builder
        self.flask_app = self._build_flask_app()
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def app_url(self) -> str | None:
        """Our app's base URL: installer at /install, app page at /app, events at /events."""
        return self._app_url

    @app_url.setter
    def app_url(self, value: str | None) -> None:
        self._app_url = (value or "").rstrip("/") or None

    def _build_flask_app(self) -> Flask:
        app = Flask("fake_bitrix24")
        app.extensions["fake_bitrix24"] = self
        for blueprint in (oauth_server.bp, rest.bp, portal_pages.bp, demo_connector.bp):
            app.register_blueprint(blueprint)
        return app

    # --- server ---------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0, log_requests: bool = False) -> str:
        # Threaded: source.update waits on our app's urlCheck, which may call us back.
        handler = WSGIRequestHandler if log_requests else _QuietRequestHandler
        self._server = make_server(host, port, self.flask_app, threaded=True, request_handler=handler)
        self.url = f"http://{host}:{self._server.server_port}"
        self.state.base_url = self.url
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-bitrix24", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = self._thread = None

    def reset(self) -> None:
        """Forget every portal, token, log entry and switch; keep the server and app_url."""
        self.clock.reset()
        self.config = replace(self._initial_config)
        self.state = State(self.clock, App(self.client_id, self.client_secret, self.scope))
        self.state.base_url = self.url

    # --- portals, users, apps -------------------------------------------------------------

    def add_portal(self, domain: str = "portal1.bitrix24.test", member_id: str | None = None,
                   enterprise: bool = False) -> Portal:
        return self.state.add_portal(domain, member_id, enterprise)

    def portal(self, domain_or_member_id: str) -> Portal:
        portal = self.state.find_portal(domain_or_member_id)
        if portal is None:
            raise KeyError(domain_or_member_id)
        return portal

    def rename_portal(self, portal: Portal, new_domain: str) -> None:
        """The portal moves to a new address; REST calls to the old one get a 302 there."""
        with self.state.lock:
            self.state.old_domains[portal.domain] = portal.member_id
            self.state.old_domains.pop(new_domain, None)
            portal.domain = new_domain

    def redirect_rest(self, domain: str, rest_url: str) -> None:
        """REST calls to ``domain`` answer 302 to ``rest_url`` + the method: a front end pointing
        somewhere else (misconfigured, or a name taken over). Renames use ``rename_portal``."""
        with self.state.lock:
            self.state.rest_redirects[domain] = rest_url

    def add_app(self, client_id: str, client_secret: str, scope: str = DEFAULT_SCOPE) -> None:
        """Another app (e.g. to test biconnector ownership); installed on every portal."""
        with self.state.lock:
            self.state.apps[client_id] = App(client_id, client_secret, scope)

    # --- tokens ---------------------------------------------------------------------------

    def issue_tokens(self, portal: Portal, user: User | int | None = None, *,
                     client_id: str | None = None, scope: str | None = None) -> dict:
        """A new, independent token chain, shaped like a token-endpoint answer."""
        user = portal.user(user)
        access, refresh = tokens.issue_pair(self.state, self.config, portal, user.id, client_id, scope)
        return tokens.token_response(self.state, self.config, portal, access, refresh, legacy=False)

    def issue_auth_code(self, portal: Portal, user: User | int | None = None) -> str:
        return tokens.issue_auth_code(self.state, self.config, portal, portal.user(user).id)

    def expire_access_tokens(self, portal: Portal | None = None) -> None:
        tokens.expire_access_tokens(self.state, portal)

    def tokens_issued(self, portal: Portal) -> list[str]:
        """Every access and refresh token ever issued for the portal (e.g. to grep logs for them)."""
        with self.state.lock:
            issued = [*self.state.access_tokens.values(), *self.state.refresh_tokens.values()]
            return [token.value for token in issued if token.member_id == portal.member_id]

    def refresh_count(self, portal: Portal) -> int:
        return portal.refresh_count

    def token_requests(self, portal: Portal | None = None) -> int:
        return self.state.token_request_count if portal is None else portal.token_request_count

    # --- the portal as a client of our app ------------------------------------------------

    def install(self, portal: Portal, user: User | int | None = None, ui: bool = True):
        return lifecycle.install(self, portal, user, ui)

    def finish_install(self, portal: Portal):
        return lifecycle.finish_install(self, portal)

    def update_app(self, portal: Portal):
        return lifecycle.update_app(self, portal)

    def uninstall(self, portal: Portal, clean: bool = False):
        return lifecycle.uninstall(self, portal, clean)

    def open_app(self, portal: Portal, user: User | int | None = None, placement: str = "DEFAULT",
                 placement_options: dict | None = None, lang: str = "en"):
        return lifecycle.open_app(self, portal, user, placement, placement_options, lang)

    def trigger_event(self, portal: Portal, event_name: str, data: dict | None = None) -> list:
        """An event happens on the portal: delivered as the real portal would (bound handlers only,
        nothing before installation is finished). One Response (or None) per handler."""
        return lifecycle.deliver(self, portal, event_name.upper(), data)

    def send_event(self, portal: Portal, event_name: str, data: dict | None = None,
                   auth_overrides: dict | None = None, *, user: User | int | None = None,
                   with_tokens: bool | None = None):
        """Forge or replay an event (see ``lifecycle.send_event``); returns the first Response or None.

        ``auth_overrides`` replaces auth[...] values (None removes a key); ``with_tokens=False``
        sends no tokens (robot/workflow origin; the default for ONAPPUNINSTALL).
        """
        return lifecycle.send_event(self, portal, event_name, data, auth_overrides, user, with_tokens)

    # --- biconnector seeding --------------------------------------------------------------

    def seed_connector(self, portal: Portal, fields: dict, client_id: str | None = None) -> int:
        """Store a connector without validation; ``fields`` use the API's camelCase names."""
        values = dict(fields)
        values["settings"] = [{"name": item["name"], "code": item["code"], "type": item["type"]}
                              for item in fields.get("settings", [])]
        if "sort" in values:
            values["sort"] = int(values["sort"])
        with self.state.lock:
            connector = biconnector.new_connector(portal, client_id or self.client_id, values,
                                                  self.clock.bitrix_datetime())
        return connector["id"]

    def seed_source(self, portal: Portal, fields: dict) -> int:
        """Store a source without calling urlCheck; ``fields``: title, connectorId, settings, description."""
        with self.state.lock:
            connector = portal.connectors[int(fields["connectorId"])]
            source = biconnector.new_source(portal, connector, fields["title"], fields.get("description"),
                                            dict(fields.get("settings") or {}), portal.admin.id,
                                            self.clock.bitrix_datetime())
        return source["id"]

    def seed_table(self, portal: Portal, source_id: int, name: str = "demo_table") -> int:
        """A table without columns on a source, so that source.delete answers BX_ERROR
        (``bi.create_table`` makes real ones)."""
        with self.state.lock:
            table_id = portal.next_id("table")
            portal.tables[table_id] = {"id": table_id, "sourceId": source_id, "name": name,
                                       "externalCode": name, "externalName": name, "columns": []}
        return table_id

    def seed_demo(self, portal: Portal, base: str | None = None) -> dict:
        return demo_connector.seed_demo(self, portal, base)

    # --- inspection -----------------------------------------------------------------------

    @property
    def requests_log(self) -> list[dict]:
        with self.state.lock:
            return list(self.state.request_log)

    @property
    def outbound_calls(self) -> list[dict]:
        """Calls to connector endpoints: {kind, url, form, status, ok, body, error, ts, redirects};
        ``kind`` is url_check, table_list, table_description or data."""
        with self.state.lock:
            return list(self.state.outbound_calls)

    @property
    def app_calls(self) -> list[dict]:
        """Calls to our app (installer, iframe opens, events), same shape as ``outbound_calls``."""
        with self.state.lock:
            return list(self.state.app_calls)

    def clear_log(self) -> None:
        with self.state.lock:
            self.state.request_log.clear()

    def clear_outbound_calls(self) -> None:
        with self.state.lock:
            self.state.outbound_calls.clear()
            self.state.app_calls.clear()

    def count_requests(self, portal: Portal, method: str | None = None) -> int:
        """HTTP requests to the portal's REST API (commands inside a batch are not counted)."""
        return sum(1 for entry in self.requests_log
                   if entry["member_id"] == portal.member_id and not entry["in_batch"]
                   and (method is None or entry["method"] == method.lower()))

    def count_503(self, portal: Portal) -> int:
        return sum(1 for entry in self.requests_log
                   if entry["member_id"] == portal.member_id and entry["status"] == 503)
