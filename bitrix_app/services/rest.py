"""The one Bitrix24 REST client, used by the web tier, the CLI and jobs.

POSTs JSON to `<client_endpoint><method>` with the token in the body, and turns every failure
into a `BitrixError` — including biconnector errors, which arrive with HTTP 200 nested inside
`result` and must never look like success.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Protocol
from urllib.parse import urljoin, urlsplit
from urllib.request import getproxies

import requests
from requests.adapters import HTTPAdapter

from . import php_form
from .errors import BitrixError
from .tokens import AccessToken

BATCH_LIMIT = 50
PAGE_SIZE = 50  # biconnector lists: fixed, `start` is ignored
MAX_LIST_PAGES = 2000  # 100,000 objects; a server that ignores `page` must not loop us forever
USER_AGENT = "bitrix-biconnector-app/1.0"


def make_http_session(pool_size: int = 32) -> requests.Session:
    """A pooled HTTP session; redirects stay off so a portal rename is noticed (see PortalMoved)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
    if not getproxies():
        # requests searches the environment for proxies (and ~/.netrc, a CA bundle) on every request,
        # a millisecond of CPU each time. Without a proxy configured, only the CA bundle is left to
        # honour: read it once. (Calls carry their token in the body; a .netrc login is never wanted.)
        session.trust_env = False
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return session


class Credentials(Protocol):
    def current(self) -> AccessToken:
        """The token to send; may come from memory."""

    def reread(self) -> AccessToken:
        """The token as stored now (after Bitrix24 refused the one sent)."""

    def refreshed(self, stale: AccessToken) -> AccessToken: ...


class StaticCredentials:
    """A token that cannot be refreshed, e.g. the AUTH_ID of the user who opened the tab."""

    def __init__(self, access_token: str):
        self._token = AccessToken(access_token, 0, datetime.max.replace(tzinfo=timezone.utc))

    def current(self) -> AccessToken:
        return self._token

    def reread(self) -> AccessToken:
        return self._token

    def refreshed(self, stale: AccessToken) -> AccessToken:
        raise BitrixError("expired_token", "The user's authorization expired; reopen the app.", status=401)


class PortalMoved(BitrixError):
    """The portal answered with a redirect (after a rename the old address does). Nothing is sent to
    `location` itself: the request carries the token, and anyone can answer with a redirect."""

    def __init__(self, location: str, status: int, method: str):
        self.location = location
        host = urlsplit(location).netloc or "an unknown address"
        super().__init__("PORTAL_MOVED", f"The portal redirected the call to {host}; it was not sent there.",
                         status=status, method=method)


class Along(Protocol):
    """Commands that ride in the second request of a `list_many` read (see there)."""

    def commands(self, read: dict[str, list], more: set[str]) -> dict[str, tuple[str, dict]]:
        """Batch commands to send with the further pages: `read` holds each list's items so far,
        `more` names the lists that have further pages. {} sends nothing along."""

    def take(self, outcome: BatchResult) -> None:
        """Their answers (results, errors, `result_time` seconds), before any list page error is raised."""


# Where a client may go after a redirect: (the endpoint that redirected, the Location) -> the
# portal's confirmed endpoint, or raises BitrixError (see Bitrix.relocated_endpoint).
Relocate = Callable[[str, str], str]


def nested_error(result) -> dict | None:
    """biconnector's `{"result": {"error": {"error": CODE, "error_description": …}}}`."""
    if isinstance(result, dict) and isinstance(result.get("error"), dict):
        return result["error"]
    return None


@dataclass
class BatchResult:
    results: dict = field(default_factory=dict)
    errors: dict[str, BitrixError] = field(default_factory=dict)
    # How long each command ran on the portal (its `result_time` duration), where Bitrix24 says.
    seconds: dict[str, float] = field(default_factory=dict)


def _duration(time_block) -> float | None:
    try:
        return float(time_block["duration"])
    except (TypeError, KeyError, ValueError):
        return None


class BitrixClient:
    def __init__(
        self,
        endpoint: str,
        credentials: Credentials,
        http: requests.Session,
        *,
        timeout: tuple[float, float] = (5.0, 60.0),
        max_rate_limit_retries: int = 3,
        backoff: float = 1.0,
        throttle: Callable[[], None] | None = None,
        max_wait: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        relocate: Relocate | None = None,
    ):
        self.endpoint = endpoint if endpoint.endswith("/") else endpoint + "/"
        # None: a redirect is an error (PortalMoved). Only clients of a stored portal get one.
        self.relocate = relocate
        self.credentials = credentials
        self.http = http
        self.timeout = timeout
        self.max_rate_limit_retries = max_rate_limit_retries
        self.backoff = backoff
        # Waits for the portal's bucket and may raise RateLimited (services/ratelimit.py).
        self.throttle = throttle
        # The most this client sleeps between QUERY_LIMIT_EXCEEDED retries (None: no cap); the
        # web tier's clients have a few seconds, so a request thread is never held for long.
        self.max_wait = max_wait
        self.sleep = sleep
        self.clock = clock
        self.requests_sent = 0
        self._count_lock = threading.Lock()  # a plan sends a portal's write batches from several threads
        self.operating_reset_at: dict[str, float] = {}

    # --- public API ----------------------------------------------------------------------

    def call(self, method: str, params: dict | None = None):
        """Call a method and return its `result`, or raise BitrixError."""
        body = self._call_with_auth(method, params or {})
        result = body.get("result")
        error = nested_error(result)
        if error is not None:
            raise BitrixError(error.get("error"), error.get("error_description", ""), status=200, method=method)
        return result

    def batch(self, commands: dict[str, tuple[str, dict]], halt: bool = False) -> BatchResult:
        """Run up to 50 commands in one request (one hit on the rate limit)."""
        if len(commands) > BATCH_LIMIT:
            raise ValueError(f"A batch takes at most {BATCH_LIMIT} commands, got {len(commands)}.")
        cmd = {key: f"{method}?{php_form.encode(params)}" for key, (method, params) in commands.items()}
        reply = self.call("batch", {"halt": 1 if halt else 0, "cmd": cmd})
        if not isinstance(reply, dict):
            raise BitrixError("INVALID_RESPONSE", "Bitrix24 answered a batch with something that is not an object.",
                              method="batch")
        outcome = BatchResult()
        results = reply.get("result") or {}
        errors = reply.get("result_error") or {}
        times = reply.get("result_time") if isinstance(reply.get("result_time"), dict) else {}
        for key, (method, _params) in commands.items():
            if _duration(times.get(key)) is not None:
                outcome.seconds[key] = _duration(times.get(key))
                self._remember_operating_time(method, {"time": times[key]})
            if isinstance(errors, dict) and key in errors:
                error = errors[key] or {}
                code = error.get("error")
                outcome.errors[key] = BitrixError(code, error.get("error_description", ""), method=method,
                                                  reset_at=self._reset_at(method, error)
                                                  if code == "OPERATION_TIME_LIMIT" else None)
            elif isinstance(results, dict) and key in results:
                error = nested_error(results[key])
                if error is not None:
                    outcome.errors[key] = BitrixError(error.get("error"), error.get("error_description", ""),
                                                      status=200, method=method)
                else:
                    outcome.results[key] = results[key]
            else:
                outcome.errors[key] = BitrixError("NOT_EXECUTED", "The batch stopped before this command.", method=method)
        return outcome

    def list_all(self, method: str, params: dict | None = None, page_size: int = PAGE_SIZE) -> list:
        """Every item of one biconnector list (see `list_many`)."""
        return self.list_many({"items": (method, params or {})}, page_size)["items"]

    def list_many(self, lists: dict[str, tuple[str, dict]], page_size: int = PAGE_SIZE,
                  along: Along | None = None) -> dict[str, list]:
        """Every item of several biconnector lists, by name. They page with `page=1,2,…` until a short
        page (there is no total/next); without an `order` pages may overlap or skip objects, so
        `id ASC` is the default. The first pages go out together (one call, or one batch for several
        lists), then the further pages of every list that filled its first one, speculatively, up
        to 50 per batch, until each list has had a short page.

        `along`: the first batch of further pages also carries `along.commands(…)` (in place of
        speculative pages; their keys must not start with "p"), and `along.take` gets their outcome
        before any page error is raised. Nothing rides when every list fits its first page. A
        failed request raises as without `along`: the caller knows what it gave to send."""
        pagers = {name: _Pager(method, {"order": {"id": "ASC"}, **params}, page_size)
                  for name, (method, params) in lists.items()}
        if len(pagers) == 1:
            pager = next(iter(pagers.values()))
            pager.take(self.call(pager.method, pager.params_for(1)))
        else:
            firsts = [(pager, 1) for pager in pagers.values()]
            for start in range(0, len(firsts), BATCH_LIMIT):
                self._pages_in_batch(firsts[start:start + BATCH_LIMIT])
        while True:
            unbatchable = [pager for pager in pagers.values() if pager.open and not pager.batchable]
            for pager in unbatchable:  # values a batch command cannot carry: one page per call
                pager.take(self.call(pager.method, pager.params_for(pager.next_page)))
            batchable = [pager for pager in pagers.values() if pager.open and pager.batchable]
            rider, riding = None, {}
            if batchable and along is not None:  # only the first batch of further pages carries commands
                rider, riding, along = along, _riding(along, pagers), None
            wanted = _speculative_pages(batchable, BATCH_LIMIT - len(riding))
            if not wanted and not unbatchable:
                return {name: pager.items for name, pager in pagers.items()}
            if wanted:
                self._pages_in_batch(wanted, riding, rider)

    def _pages_in_batch(self, pages: list[tuple["_Pager", int]], riding: dict | None = None,
                        rider: Along | None = None) -> None:
        """Fetch the given pages in one batch, with the `riding` commands (their outcome goes to
        `rider` first); every list takes its pages in order."""
        commands = {f"p{index}": (pager.method, pager.params_for(page)) for index, (pager, page) in enumerate(pages)}
        outcome = self.batch({**commands, **(riding or {})})
        if riding:
            rider.take(_only(outcome, riding))
        for index, (pager, page) in enumerate(pages):
            key = f"p{index}"
            if not pager.open or page != pager.next_page:
                continue  # an earlier page of this list was short: the speculative rest is moot
            if key in outcome.errors:
                raise outcome.errors[key]
            pager.take(outcome.results.get(key))

    # --- transport -----------------------------------------------------------------------

    def _call_with_auth(self, method: str, params: dict) -> dict:
        token = self.credentials.current()
        refreshed = False
        if token.is_expired(self.clock()):
            token = self.credentials.refreshed(token)
            refreshed = True
        rate_limit_retries, backed_off = 0, 0.0
        relocated = False
        while True:
            try:
                status, body = self._post(method, {**params, "auth": token.value})
            except PortalMoved as moved:
                if self.relocate is None or relocated:
                    raise
                self.endpoint = self.relocate(self.endpoint, moved.location)
                relocated = True  # once: a portal that redirects again is an error
                continue
            code = body.get("error")
            if code is None:
                self._remember_operating_time(method, body)
                return body
            if code in ("expired_token", "invalid_token", "APPLICATION_NOT_FOUND") and not refreshed:
                # The token sent may come from memory: another worker may have refreshed it, or the
                # app may have been reinstalled or removed since (reread then raises PortalUnavailable).
                renewed = self._renewed(token, refresh=(code == "expired_token"))
                if renewed is not None:
                    token, refreshed = renewed, True
                    continue
            delay = self.backoff * 2 ** rate_limit_retries
            if code == "QUERY_LIMIT_EXCEEDED" and self._may_back_off(rate_limit_retries, backed_off + delay):
                self.sleep(delay)
                rate_limit_retries, backed_off = rate_limit_retries + 1, backed_off + delay
                continue
            raise BitrixError(
                code,
                body.get("error_description", ""),
                status=status,
                method=method,
                reset_at=self._reset_at(method, body) if code == "OPERATION_TIME_LIMIT" else None,
            )

    def _may_back_off(self, retries: int, total_delay: float) -> bool:
        return retries < self.max_rate_limit_retries and (self.max_wait is None or total_delay <= self.max_wait)

    def _renewed(self, token: AccessToken, refresh: bool) -> AccessToken | None:
        """The token to try again with after a refusal, or None: the refusal stands."""
        newer = self.credentials.reread()
        if (newer.version, newer.value) != (token.version, token.value):
            return newer
        return self.credentials.refreshed(token) if refresh else None

    def _post(self, method: str, payload: dict) -> tuple[int, dict]:
        url = self.endpoint + method
        try:
            response = self._send(url, payload)
        except requests.ConnectTimeout:  # before a connection, so surely not sent
            raise BitrixError("NETWORK_ERROR", "Bitrix24 could not be reached.", method=method) from None
        except requests.Timeout:
            raise BitrixError("NETWORK_TIMEOUT", "Bitrix24 did not answer in time.", method=method) from None
        except requests.RequestException:
            raise BitrixError("NETWORK_ERROR", "Bitrix24 could not be reached.", method=method) from None
        if response.is_redirect:
            raise PortalMoved(urljoin(url, response.headers.get("Location", "")), response.status_code, method)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise BitrixError("INVALID_RESPONSE", "Bitrix24 answered with something that is not a JSON object.",
                              status=response.status_code, method=method)
        if "error" not in body and response.status_code >= 400:
            body = {"error": f"HTTP_{response.status_code}", "error_description": "Bitrix24 returned an HTTP error."}
        return response.status_code, body

    def _send(self, url: str, payload: dict) -> requests.Response:
        if self.throttle is not None:
            self.throttle()  # a refused slot raises here: nothing sent, nothing counted
        with self._count_lock:
            self.requests_sent += 1
        return self.http.post(url, json=payload, timeout=self.timeout, allow_redirects=False)

    def _remember_operating_time(self, method: str, body: dict) -> None:
        reset_at = (body.get("time") or {}).get("operating_reset_at")
        if reset_at:
            self.operating_reset_at[method] = float(reset_at)

    def _reset_at(self, method: str, body: dict) -> float | None:
        reset_at = body.get("operating_reset_at") or (body.get("time") or {}).get("operating_reset_at")
        return float(reset_at) if reset_at else self.operating_reset_at.get(method)


class _Pager:
    """One list being read page by page: what is collected so far and whether more may follow."""

    def __init__(self, method: str, params: dict, page_size: int):
        self.method = method
        self.params = params
        self.page_size = page_size
        self.items: list = []
        self.next_page = 1
        self.open = True
        self.previous: list | None = None
        self.batchable = _batchable(params)

    def params_for(self, page: int) -> dict:
        return {**self.params, "page": page}

    def take(self, chunk) -> None:
        """The next page's items; a short page, a repeated one (`page` ignored) or the page cap ends the list."""
        chunk = chunk or []
        if not isinstance(chunk, list):
            raise BitrixError("INVALID_RESPONSE", "Bitrix24 answered a list call with something that is not a list.",
                              method=self.method)
        if chunk == self.previous:  # the same page again: `page` is being ignored
            self.open = False
            return
        self.items.extend(chunk)
        self.previous = chunk
        self.next_page += 1
        self.open = len(chunk) >= self.page_size and self.next_page <= MAX_LIST_PAGES


def _riding(along: Along, pagers: dict[str, _Pager]) -> dict[str, tuple[str, dict]]:
    """What `along` sends with the next batch of pages, checked to leave room for a page."""
    riding = along.commands({name: list(pager.items) for name, pager in pagers.items()},
                            {name for name, pager in pagers.items() if pager.open})
    if len(riding) >= BATCH_LIMIT or any(key.startswith("p") for key in riding):
        raise ValueError(f"Commands along a read: fewer than {BATCH_LIMIT}, keys not starting with p.")
    return riding


def _only(outcome: BatchResult, keys) -> BatchResult:
    """The part of a batch's outcome that belongs to the commands `keys`."""
    return BatchResult({key: value for key, value in outcome.results.items() if key in keys},
                       {key: value for key, value in outcome.errors.items() if key in keys},
                       {key: value for key, value in outcome.seconds.items() if key in keys})


def _speculative_pages(pagers: list[_Pager], room: int = BATCH_LIMIT) -> list[tuple[_Pager, int]]:
    """The next pages of every open list, sharing `room` commands of one batch."""
    if not pagers:
        return []
    share, extra = divmod(room, len(pagers))
    pages = []
    for index, pager in enumerate(pagers):
        count = min(share + (1 if index < extra else 0), MAX_LIST_PAGES - pager.next_page + 1)
        pages.extend((pager, pager.next_page + offset) for offset in range(count))
    return pages


def _batchable(params: dict) -> bool:
    """Whether list parameters survive a batch command's PHP query string (no booleans, no empty lists)."""
    try:
        php_form.encode(params)
    except ValueError:
        return False
    return True
