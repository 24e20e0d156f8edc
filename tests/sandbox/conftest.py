"""Fixtures for the fake Bitrix24's own tests: the fake over real HTTP, plus a throwaway
receiver app standing in for our app (installer, events, connector endpoints)."""
from __future__ import annotations

import threading

import pytest
import requests
from flask import Flask, request
from werkzeug.serving import make_server

from bitrix_app.sandbox.fake import FakeBitrix24

CLIENT_ID = "app.sandbox.test"
CLIENT_SECRET = "sandbox-secret"


class Receiver:
    """A tiny app on loopback that records every request and answers as told.

    ``receiver.answers["/check"] = (500, "")`` changes one path's answer (default: 200 "OK");
    ``receiver.hooks["/events"] = fn`` runs ``fn(entry)`` while the request is being served.
    """

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.answers: dict[str, tuple[int, str]] = {}
        self.hooks: dict = {}
        self.app = Flask("receiver")
        self.app.add_url_rule("/<path:path>", "any", self._record, methods=["GET", "POST"])
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _record(self, path: str):
        entry = {"path": "/" + path, "args": request.args.to_dict(), "form": request.form.to_dict(),
                 "content_type": request.content_type}
        self.requests.append(entry)
        if "/" + path in self.hooks:
            self.hooks["/" + path](entry)
        status, body = self.answers.get("/" + path, (200, "OK"))
        return body, status

    def to(self, path: str) -> list[dict]:
        return [entry for entry in self.requests if entry["path"] == path]

    def reset(self) -> None:
        self.requests.clear()
        self.answers.clear()
        self.hooks.clear()


@pytest.fixture(scope="session")
def b24_server():
    fake = FakeBitrix24(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    fake.start(host="127.0.0.1", port=0)
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def receiver_server():
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture
def receiver(receiver_server):
    receiver_server.reset()
    return receiver_server


@pytest.fixture
def b24(b24_server, receiver):
    """A clean fake whose app_url is the receiver; the rate limit is off unless a test wants it."""
    b24_server.reset()
    b24_server.config.rate_limit = False
    b24_server.config.url_check_timeout = 2.0
    b24_server.config.bi_timeout = 2.0
    b24_server.config.event_timeout = 2.0
    b24_server.app_url = receiver.url
    yield b24_server
    b24_server.reset()


@pytest.fixture
def portal(b24):
    return b24.add_portal(domain="alpha.bitrix24.test")


@pytest.fixture
def token(b24, portal) -> str:
    """An access token of the portal's administrator."""
    return b24.issue_tokens(portal)["access_token"]


@pytest.fixture
def call(portal, token):
    """``call("method", {...})``: POST JSON with ``auth`` in the body; returns the Response."""

    def call_method(method: str, params: dict | None = None, *, auth: str | None = None, on=None):
        target = on or portal
        body = dict(params or {}, auth=auth or token)
        return requests.post(f"{target.client_endpoint}{method}.json", json=body, timeout=10)

    return call_method


@pytest.fixture
def installed(b24, portal, receiver):
    """The portal after the installer ran and called installFinish."""
    b24.install(portal)
    b24.finish_install(portal)
    receiver.reset()
    return portal
