"""Declarative plans: the connectors and sources a set of portals should have, applied idempotently.

A plan is a YAML or JSON file (see the README for the full format):

    portals: all                 # or a list of member ids / domains
    connectors:
      - match: {title: Warehouse}
        fields: {description: Nightly warehouse export}
    sources:
      - match: {id: 7}
        fields:
          settings: {host: db.example.com, password: "${PLAN_WAREHOUSE_DB_PASSWORD}"}

`${NAME}` is replaced from the environment when the plan is loaded, for names starting with
PLAN_ENV_PREFIX (default PLAN_) only; such values, and every source setting value, are masked in
diffs, reports and error messages.

Per portal: read the current objects (list calls), compute what differs, check the changes with
the tab's validation, and send only real changes in `batch` calls of up to 50 commands with
`halt` off, so one bad item is reported while the others land; source updates go in batches small
enough for their connectors' urlCheck calls to fit Bitrix24's 60 s request limit (the first,
measuring one may ride in the read's second request: MeasuringRide). A second run
finds nothing to change and sends no write at all. Nothing here creates or deletes objects.
"""
from __future__ import annotations

import functools
import json
import os
import re
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import yaml

from . import php_form
from .automation import (
    DEFAULT_WORKERS,
    installed_member_ids,
    iter_installed_member_ids,
    reason_for,
    respecting_operation_limit,
    run_for_portals,
    seconds_until,
)
from .biconnector import Biconnector, normalize_settings
from .errors import BitrixError
from .gateway_objects import GatewayObjects
from .history import Actor, History, connector_changes, source_changes, version_of
from .messages import explain, text
from .rest import BATCH_LIMIT, BatchResult, BitrixClient
from .secret_settings import SecretSettings, is_secret_by_default
from .validation import EndpointPolicy, FieldError, connector_errors, source_errors

MASK = "***"
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
ENV_PREFIX_SETTING = "PLAN_ENV_PREFIX"
DEFAULT_ENV_PREFIX = "PLAN_"
ENV_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Errors inside a batch that prove the command did not run, so sending it again is safe.
RETRYABLE_IN_BATCH = {"OPERATION_TIME_LIMIT", "QUERY_LIMIT_EXCEEDED"}
BATCH_RETRIES = 3
# A cloud REST request must finish within 60 s, the urlCheck calls of its source updates included.
# A batch is planned to take half of that: the estimates are guesses and the checks vary.
CLOUD_REQUEST_LIMIT = 60.0
BATCH_TIME_BUDGET = 30.0
GATEWAY_CHECK_SECONDS = 0.5  # first guess for a urlCheck served by this app's gateway: 50 per batch
FOREIGN_CHECK_SECONDS = 6.0  # first guess for anyone else's: 5 per batch until measured
CONNECTOR_UPDATE_SECONDS = 0.1
MIN_CHECK_SECONDS = 0.05
PARALLEL_WRITE_BATCHES = 4  # write batches of one portal in flight at once (see send_updates)
PLAN_KEYS = {"portals", "connectors", "sources", "databases"}
ITEM_KEYS = {"match", "fields", "ensure"}
ENSURE = ("present", "absent")
CONNECTOR_REQUIRED_ON_ADD = ("logo", "urlCheck", "urlData", "urlTableList", "urlTableDescription", "settings")


class PlanError(ValueError):
    """The plan file itself is wrong; the message says where and why."""


# --- the plan ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """One connector or source the plan wants, how to find it, and the fields it should have."""

    kind: str  # "connector" or "source"
    match: dict  # {"id": 7} or {"title": "Main warehouse"}
    fields: dict
    # None: update what matches (not found is a problem); "present": also create it when nothing
    # matches its title; "absent": delete what matches.
    ensure: str | None = None

    def describe(self) -> str:
        if "id" in self.match:
            return f"{self.kind} #{self.match['id']}"
        return f'{self.kind} "{self.match["title"]}"'


@dataclass(frozen=True)
class Plan:
    portals: tuple[str, ...] | None  # None: every portal the app is installed on
    connectors: tuple[Target, ...]
    sources: tuple[Target, ...]
    secrets: frozenset[str] = frozenset()  # values that came from the environment
    databases: tuple[Target, ...] = ()  # applied by the gateway (gateway/databases.py)

    @property
    def deletes(self) -> bool:
        return any(target.ensure == "absent" for target in self.connectors + self.sources)

    def mask(self, text: str) -> str:
        """`text` with every environment-supplied value replaced by ***."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text


def load_plan(path: str | Path, environ: dict[str, str] | None = None) -> Plan:
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanError(f"Cannot read the plan {path}: {exc.strerror}.") from None
    is_json = path.suffix.lower() == ".json"
    try:
        data = json.loads(raw) if is_json else yaml.safe_load(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise PlanError(f"The plan {path} is not valid {'JSON' if is_json else 'YAML'}: {exc}") from None
    return parse_plan(data, os.environ if environ is None else environ)


def parse_plan(data, environ: dict[str, str]) -> Plan:
    if not isinstance(data, dict):
        raise PlanError("A plan is a mapping with the keys portals, connectors and sources.")
    unknown = sorted(set(data) - PLAN_KEYS)
    if unknown:
        raise PlanError(f"Unknown plan keys: {', '.join(unknown)} (expected portals, connectors, sources, "
                        "databases).")
    secrets: set[str] = set()
    data = substitute_environment(data, environ, secrets)
    plan = Plan(
        portals=_parse_portals(data.get("portals", "all")),
        connectors=_parse_targets("connector", data.get("connectors")),
        sources=_parse_targets("source", data.get("sources")),
        secrets=frozenset(secrets),
        databases=_parse_targets("database", data.get("databases")),
    )
    problems = [problem for target in plan.connectors + plan.sources for problem in _static_problems(target)]
    if problems:
        raise PlanError(plan.mask("The plan has invalid fields:\n  " + "\n  ".join(problems)))
    return plan


def substitute_environment(value, environ: dict[str, str], secrets: set[str]):
    """Replace `${NAME}` in every string; remember the values so they can be masked.

    Only variables whose names start with the prefix (PLAN_ENV_PREFIX, default PLAN_) may be used:
    substituted values are published into Bitrix24 (a connector description, say) while diffs show
    them as ***, so `${BITRIX_CLIENT_SECRET}` must not be able to reach them.
    """
    return _substitute(value, environ, env_prefix(environ), secrets)


def env_prefix(environ: dict[str, str]) -> str:
    prefix = environ.get(ENV_PREFIX_SETTING, DEFAULT_ENV_PREFIX)
    if not ENV_PREFIX.fullmatch(prefix):
        raise PlanError(f"{ENV_PREFIX_SETTING} must be a non-empty variable-name prefix such as "
                        f"{DEFAULT_ENV_PREFIX}, not {prefix!r}.")
    return prefix


def _substitute(value, environ: dict[str, str], prefix: str, secrets: set[str]):
    if isinstance(value, dict):
        return {key: _substitute(item, environ, prefix, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, environ, prefix, secrets) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        name = match.group(1)
        if not name.startswith(prefix) or name == ENV_PREFIX_SETTING:
            raise PlanError(f"${{{name}}} cannot be used: only environment variables whose names start with "
                            f"{prefix} ({ENV_PREFIX_SETTING}) may be, so that no other setting of this machine can "
                            f"be published. Put the value into {prefix}{name} and write ${{{prefix}{name}}}.")
        if name not in environ:
            raise PlanError(f"The plan uses ${{{name}}}, but the environment variable {name} is not set.")
        if environ[name]:
            secrets.add(environ[name])
        return environ[name]

    return ENV_REFERENCE.sub(replace, value)


def _parse_portals(value) -> tuple[str, ...] | None:
    if value == "all":
        return None
    if isinstance(value, list) and value and all(isinstance(item, str) and item for item in value):
        return tuple(value)
    raise PlanError('"portals" must be "all" or a list of member ids or domains.')


def _parse_targets(kind: str, items) -> tuple[Target, ...]:
    if items is not None and not isinstance(items, list):
        raise PlanError(f'"{kind}s" must be a list of entries with match and fields.')
    return tuple(_parse_target(kind, item, index) for index, item in enumerate(items or []))


def _parse_target(kind: str, item, index: int) -> Target:
    where = f"{kind}s[{index}]"
    if not isinstance(item, dict) or set(item) - ITEM_KEYS:
        raise PlanError(f"{where}: each entry has the keys match and fields, and optionally ensure.")
    match, fields, ensure = item.get("match"), item.get("fields"), item.get("ensure")
    if (ensure is not None and ensure not in ENSURE) or (ensure == "absent" and kind == "database"):
        raise PlanError(f"{where}: ensure must be present or absent (databases: present only).")
    if not isinstance(match, dict) or len(match) != 1 or not set(match) <= {"id", "title"}:
        raise PlanError(f"{where}: match must be {{id: <number>}} or {{title: <text>}}.")
    if "id" in match and not (isinstance(match["id"], int) and not isinstance(match["id"], bool) and match["id"] > 0):
        raise PlanError(f"{where}: match id must be a positive integer.")
    if "title" in match and not (isinstance(match["title"], str) and match["title"].strip()):
        raise PlanError(f"{where}: match title must be a non-empty text.")
    if ensure == "absent":
        if fields is not None:
            raise PlanError(f"{where}: an entry with ensure: absent has no fields.")
        return Target(kind, dict(match), {}, ensure)
    if not isinstance(fields, dict) or not fields:
        raise PlanError(f"{where}: fields must be a non-empty mapping.")
    return Target(kind, dict(match), dict(fields), ensure)


def _static_problems(target: Target) -> list[str]:
    """Checks that need no portal. The title is filled in per portal if the plan leaves it out."""
    if target.ensure == "absent":
        return []
    if target.kind == "connector":
        errors = connector_errors(target.fields)
    else:
        fields = dict(target.fields)
        if target.ensure == "present":  # names the connector of a source it may create (never changed)
            fields.pop("connectorId", None)
        errors = source_errors({"title": "(current title)", **fields}) if fields else []
        if "active" in target.fields:  # Bitrix24 ignores it, so the plan would never converge
            errors.append(FieldError("active", "VALIDATION_READ_ONLY_FIELD",
                                     'Bitrix24 changes "active" only in its own Analytics hub.'))
    return [f"{target.describe()}: {error.field}: {error.message}" for error in errors]


# --- what to change on one portal -------------------------------------------------------------

@dataclass
class FieldChange:
    field: str
    before: str  # display values, already masked
    after: str


@dataclass
class Update:
    """One update call: which object, what to send (may hold secrets: never print `payload`)."""

    kind: str
    object_id: int  # 0 for an object to create
    title: str
    payload: dict
    changes: list[FieldChange]
    error: str | None = None  # a readable sentence
    error_code: str | None = None  # Bitrix24's code, for support
    applied: bool = False
    url_check: str | None = None  # a source's connector's urlCheck, which Bitrix24 calls on every update
    before: dict | None = field(default=None, repr=False)  # the object as the diff read it (secrets too)
    action: str = "update"  # "add" or "delete" for ensure: present / absent

    @property
    def method(self) -> str:
        return f"biconnector.{self.kind}.{self.action}"

    def params(self) -> dict:
        if self.action == "add":
            return {"fields": self.payload}
        if self.action == "delete":
            return {"id": self.object_id}
        return {"id": self.object_id, "fields": self.payload}

    def describe(self) -> str:
        if self.action == "add":
            return f'new {self.kind} "{self.title}"'
        return f'{self.kind} #{self.object_id} "{self.title}"'

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "id": self.object_id,
            "title": self.title,
            "changes": [{"field": c.field, "from": c.before, "to": c.after} for c in self.changes],
            "action": self.action,
            "applied": self.applied,
            "error": self.error,
            "error_code": self.error_code,
        }


@dataclass
class PortalChanges:
    updates: list[Update] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # plan entries that cannot be applied here
    # (connector id, code) -> whether the setting is secret, as the diff judged it (history masks alike).
    is_secret: Callable[[int | None, str], bool] | None = None


def _gateway_refusal(gateway: GatewayObjects, update: Update) -> str | None:
    """Why a plan may not make this change, or None. A gateway source's title and description
    may change; its settings hold the gateway's key and secret."""
    if update.kind == "source" and update.object_id in gateway.source_ids and (
            update.action == "delete" or "settings" in update.payload):
        return text("GATEWAY_SOURCE", "en")
    if update.kind == "source" and update.action == "add" and update.payload.get("connectorId") in gateway.connector_ids:
        return text("GATEWAY_CONNECTOR_SOURCE", "en")
    if update.kind == "connector" and update.action == "delete" and update.object_id in gateway.connector_ids:
        return text("GATEWAY_CONNECTOR", "en")
    return None


def plan_changes(plan: Plan, connectors: list[dict], sources: list[dict],
                 endpoints: EndpointPolicy = EndpointPolicy(), is_secret=None,
                 gateway: GatewayObjects | Callable[[], GatewayObjects] = GatewayObjects()) -> PortalChanges:
    """Compare the plan with one portal's current objects. Pure except that the hosts of changed
    connector URLs are resolved through `endpoints` to check their addresses (plans run as the
    operator, an administrator, but the address rule holds for them too). `is_secret(connector id,
    code)` says which source settings diffs mask (services/secret_settings.py; default: by code).

    An entry that matches nothing by title and is `present` creates the object; one that is
    `absent` deletes what it matches (and is a no-op when nothing matches)."""
    is_secret = is_secret or (lambda _connector_id, code: is_secret_by_default(code))
    result = PortalChanges(is_secret=is_secret)
    claimed: set[tuple[str, int]] = set()
    wanted_settings: dict[int, list] = {}
    connector_index, source_index = _index(connectors), _index(sources)
    for target in plan.connectors:
        if _created_or_deleted(plan, target, connector_index, result, claimed, endpoints, connectors):
            continue
        current = _find(target, connector_index, result, claimed)
        if current is not None:
            # parse_plan checked the fields themselves; only the hosts of changed URLs are left.
            update = _connector_update(plan, target, current)
            _add_update(result, update, endpoints.errors(update.payload) if update else [])
            if "settings" in target.fields:
                wanted_settings[current["id"]] = target.fields["settings"]
    declared = {item["id"]: item.get("settings") or [] for item in connectors}
    declared.update(wanted_settings)  # sources are checked against what the plan makes the connector declare
    check_urls = {item["id"]: item.get("urlCheck") for item in connectors}
    for target in plan.sources:
        if _created_or_deleted(plan, target, source_index, result, claimed, endpoints, connectors, is_secret):
            continue
        current = _find(target, source_index, result, claimed)
        if current is not None:
            update = _source_update(plan, target, current, is_secret)
            if update is not None:
                update.url_check = check_urls.get(current.get("connectorId"))
                settings = declared.get(current.get("connectorId")) if connectors else None
                _add_update(result, update, source_errors(update.payload, _normalized_settings(settings)))
    return _without_gateway_objects(result, gateway)


def _without_gateway_objects(result: PortalChanges, gateway: GatewayObjects | Callable[[], GatewayObjects]
                             ) -> PortalChanges:
    if not result.updates:
        return result
    gateway = gateway() if callable(gateway) else gateway
    kept = []
    for update in result.updates:
        refusal = _gateway_refusal(gateway, update)
        if refusal:
            result.problems.append(f"{update.describe()}: {refusal}")
        else:
            kept.append(update)
    result.updates = kept
    return result


def _created_or_deleted(plan: Plan, target: Target, index: dict, result: PortalChanges, claimed: set,
                        endpoints: EndpointPolicy, connectors: list[dict], is_secret=None) -> bool:
    """Handle an `absent` entry, or a `present` one that matches nothing by title (→ add);
    False: an ordinary update, for the caller."""
    found = _matching(target, index)
    if target.ensure == "absent":
        if found:
            current = _find(target, index, result, claimed)
            if current is not None:
                result.updates.append(Update(target.kind, current["id"], current.get("title", ""), {},
                                             [FieldChange("(object)", "exists", "deleted")], before=current,
                                             action="delete"))
        return True
    if target.ensure != "present" or found or "title" not in target.match:
        return False
    fields = {"title": target.match["title"], **target.fields}
    if target.kind == "connector":
        errors = [FieldError(name, "VALIDATION_REQUIRED_FIELD_MISSING", f'Field "{name}" is required.')
                  for name in CONNECTOR_REQUIRED_ON_ADD if name not in fields]
        errors += endpoints.errors(fields)
        fields = {**fields, **({"settings": _normalized_settings(fields["settings"])} if "settings" in fields else {})}
        changes = [FieldChange(name, "-", plan.mask(_show(value))) for name, value in fields.items()]
    else:
        connector = next((item for item in connectors if item.get("id") == fields.get("connectorId")), None)
        errors = [] if connector is not None else [FieldError(
            "connectorId", "CONNECTOR_NOT_FOUND", "a new source needs the id of an existing connector in connectorId")]
        settings = fields.get("settings") or {}
        errors += source_errors({key: value for key, value in fields.items() if key != "connectorId"},
                                _normalized_settings((connector or {}).get("settings") or []))
        fields = {**fields, "settings": {code: _setting_text(value) for code, value in settings.items()}}
        secret = is_secret or (lambda _connector_id, code: is_secret_by_default(code))
        changes = [FieldChange(name, "-", plan.mask(_show(value))) for name, value in fields.items() if name != "settings"]
        changes += [FieldChange(f"settings.{code}", "-", MASK if secret(fields.get("connectorId"), code)
                                else plan.mask(_show(value))) for code, value in fields["settings"].items()]
    _add_update(result, Update(target.kind, 0, fields["title"], fields, changes, action="add"), errors)
    return True


def _index(objects: list[dict]) -> dict[tuple[str, object], list[dict]]:
    """Objects by ("id", 7) and by ("title", "Main"), so matching stays fast with thousands."""
    index: dict[tuple[str, object], list[dict]] = {}
    for item in objects:
        for key in ("id", "title"):
            index.setdefault((key, item.get(key)), []).append(item)
    return index


def _find(target: Target, index: dict, result: PortalChanges, claimed: set) -> dict | None:
    found = _matching(target, index)
    if not found:
        result.problems.append(f"{target.describe()}: not found on this portal.")
        return None
    if len(found) > 1:
        result.problems.append(
            f"{target.describe()}: {len(found)} {target.kind}s have this title; match by id instead.")
        return None
    identity = (target.kind, found[0]["id"])
    if identity in claimed:
        result.problems.append(f"{target.describe()}: already changed by an earlier entry of the plan.")
        return None
    claimed.add(identity)
    return found[0]


def _matching(target: Target, index: dict) -> list[dict]:
    """The objects the entry matches. An entry that matches by title and renames the object
    finds it under the new title once an earlier run renamed it (exactly one, or none)."""
    found = index.get(next(iter(target.match.items())), [])
    if found or "title" not in target.match or "title" not in target.fields:
        return found
    renamed = index.get(("title", target.fields["title"]), [])
    return renamed if len(renamed) == 1 else []


def _add_update(result: PortalChanges, update: Update | None, errors: list[FieldError]) -> None:
    if update is None:
        return
    if errors:
        result.problems.extend(f"{update.describe()}: {error.field}: {error.message}" for error in errors)
    else:
        result.updates.append(update)


def _connector_update(plan: Plan, target: Target, current: dict) -> Update | None:
    payload, changes = {}, []
    for name, wanted in target.fields.items():
        if _same_connector_value(name, current.get(name), wanted):
            continue
        payload[name] = _normalized_settings(wanted) if name == "settings" else wanted
        changes.append(FieldChange(name, plan.mask(_show(current.get(name))), plan.mask(_show(wanted))))
    if not payload:
        return None
    return Update("connector", current["id"], current.get("title", ""), payload, changes, before=current)


def _same_connector_value(name: str, current, wanted) -> bool:
    if name == "settings":
        return _normalized_settings(current) == _normalized_settings(wanted)
    if name == "sort":
        return str(current).strip() == str(wanted).strip()
    return (current if current is not None else "") == wanted


def _normalized_settings(settings) -> list[dict] | None:
    return None if settings is None else normalize_settings(settings)


def _source_update(plan: Plan, target: Target, current: dict, is_secret) -> Update | None:
    """Setting values show in the diff unless the connector marks them secret (then *** -> ***)."""
    payload, changes = {}, []
    stored = {row.get("code"): row.get("value") for row in current.get("settings") or []}
    for name, wanted in target.fields.items():
        if name == "connectorId" and wanted == current.get("connectorId"):
            continue  # a plan that created the source names its connector; it never changes
        if name == "settings":
            settings = _changed_settings(current, wanted)
            if settings:
                payload["settings"] = settings
                changes.extend(
                    FieldChange(f"settings.{code}", MASK, MASK) if is_secret(current.get("connectorId"), code)
                    else FieldChange(f"settings.{code}", plan.mask(_show(stored.get(code))), plan.mask(_show(value)))
                    for code, value in settings.items())
        elif (current.get(name) if current.get(name) is not None else "") != wanted:
            payload[name] = wanted
            changes.append(FieldChange(name, plan.mask(_show(current.get(name))), plan.mask(_show(wanted))))
    if not payload:
        return None
    payload.setdefault("title", current.get("title", ""))  # Bitrix24 requires it on every update
    return Update("source", current["id"], current.get("title", ""), payload, changes, before=current)


def _changed_settings(current: dict, wanted: dict) -> dict:
    """Setting codes whose stored value differs (Bitrix24 trims values and merges by code)."""
    stored = {row.get("code"): row.get("value") for row in current.get("settings") or []}
    return {
        code: _setting_text(value)
        for code, value in wanted.items()
        if _setting_text(value) != _setting_text(stored.get(code) if stored.get(code) is not None else "")
    }


def _setting_text(value) -> str:
    """A setting value as Bitrix24 stores it: trimmed text; a whole float (5.0) as "5"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _show(value, limit: int = 60) -> str:
    if value is None or value == "":
        return "(empty)"
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- sending the changes -----------------------------------------------------------------------

def send_updates(client: BitrixClient, updates: list[Update], sleep=time.sleep, clock=time.time,
                 gateway_url: str = "", times: "CheckTimes | None" = None) -> None:
    """Send updates in order, in batches sized to finish well inside Bitrix24's 60 s request limit.

    Every source.update makes Bitrix24 call the connector's urlCheck while the request waits, so a
    batch holds as many source updates as their expected check times allow (CheckTimes, or `times`
    shared by a plan's portals), at most 50. Consecutive batches of source updates whose check times
    are known (measured, or this app's gateway) are in flight up to PARALLEL_WRITE_BATCHES at once
    (a new one as soon as one finishes, see _WriteWindow): the portal spends most of a batch
    waiting for the checks, and each request still takes its slot in the portal's bucket. Connector
    updates, and the first batch for an unmeasured check URL, go
    alone and before what follows them (a plan may have sent that measuring batch along with its
    read already, see MeasuringRide, and passes only the updates still to send). Batch commands
    travel as PHP query strings, which cannot carry a real boolean (biconnector checks booleans
    strictly) nor an empty list or mapping (it leaves no key at all), so e.g. `supportMapping`
    changes or `settings: []` are sent as single JSON calls.

    A write whose answer never came (a timeout, an error page) may or may not have landed: the
    objects are read again and only what did not land is sent again, once. Fills in `applied` /
    `error` on each update. Raises only if the portal itself fails (network, authorization): the
    caller then reports the portal as failed.
    """
    times = times or CheckTimes(gateway_url)
    pending = deque(updates)
    resent: set[int] = set()

    def send_again(not_landed: list[Update]) -> None:
        again = [update for update in not_landed if id(update) not in resent]
        for update in again:
            resent.add(id(update))
            update.error = update.error_code = None
        pending.extendleft(reversed(again))

    with _WriteWindow(client, times, sleep, clock) as window:
        while pending or window.in_flight:
            while pending and window.has_room():
                chunk = _next_chunk(pending, times)
                if not window.take(chunk, alone=not _parallel(chunk, times), last=not pending):
                    pending.extendleft(reversed(chunk))  # it goes alone, once the others are done
                    break
                send_again(window.sent_inline)
            for not_landed in window.finished():
                send_again(not_landed)


class _WriteWindow:
    """The write batches of one portal in flight: up to PARALLEL_WRITE_BATCHES, a new one as soon
    as one finishes. A batch that must go alone waits until the window is empty and then runs in
    the caller's thread, as does one with nothing to go beside it. On leaving, waits for every
    batch still running, so a portal failure is raised with no write under way."""

    def __init__(self, client: BitrixClient, times: "CheckTimes", sleep, clock):
        self.send = functools.partial(_send_chunk, client, times=times, sleep=sleep, clock=clock)
        self.in_flight: set[Future] = set()
        self.sent_inline: list[Update] = []
        self.pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> "_WriteWindow":
        return self

    def __exit__(self, *_exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)

    def has_room(self) -> bool:
        return len(self.in_flight) < PARALLEL_WRITE_BATCHES

    def take(self, chunk: list[Update], alone: bool, last: bool) -> bool:
        """Send the chunk (inline when nothing is in flight and nothing could join it); False if
        it must go alone and others are still in flight."""
        self.sent_inline = []
        if self.in_flight and alone:
            return False
        if not self.in_flight and (alone or last):
            self.sent_inline = self.send(chunk)
            return True
        self.pool = self.pool or ThreadPoolExecutor(PARALLEL_WRITE_BATCHES, thread_name_prefix="writes")
        self.in_flight.add(self.pool.submit(self.send, chunk))
        return True

    def finished(self) -> Iterator[list[Update]]:
        """Waits for at least one batch in flight; yields what each finished one must send again."""
        if not self.in_flight:
            return
        done, self.in_flight = wait(self.in_flight, return_when=FIRST_COMPLETED)
        for future in done:
            yield future.result()


class CheckTimes:
    """Seconds one update is expected to take on the portal, per connector check URL.

    The first guess: fast for connectors served by this app's gateway (`gateway_url`), slow for
    anyone else's. Then what Bitrix24 reports for each command of a batch (`result_time`: per
    command, so list commands in the same batch, see MeasuringRide, do not count), or, for a batch
    cut off by the time limit, the limit shared among the commands that landed."""

    def __init__(self, gateway_url: str = ""):
        self.gateway_url = gateway_url
        self.learned: dict[str | None, float] = {}

    def expected(self, update: Update) -> float:
        if update.kind != "source":
            return CONNECTOR_UPDATE_SECONDS  # connector.update calls nothing outside
        if update.url_check in self.learned:
            return self.learned[update.url_check]
        return GATEWAY_CHECK_SECONDS if self._ours(update) else FOREIGN_CHECK_SECONDS

    def known(self, update: Update) -> bool:
        """Whether the update's check time is more than a guess: measured, or this app's gateway."""
        return update.kind == "source" and (update.url_check in self.learned or self._ours(update))

    def _ours(self, update: Update) -> bool:
        return bool(self.gateway_url and update.url_check and update.url_check.startswith(self.gateway_url))

    def learn(self, updates: list[Update], seconds: list[float | None]) -> None:
        measured: dict[str | None, list[float]] = {}
        for update, duration in zip(updates, seconds):
            if update.kind == "source" and duration is not None:
                measured.setdefault(update.url_check, []).append(duration)
        for url, durations in measured.items():
            self.learned[url] = max(MIN_CHECK_SECONDS, sum(durations) / len(durations))

    def learn_cut_off(self, updates: list[Update], landed: int) -> None:
        at_least = CLOUD_REQUEST_LIMIT / max(landed, 1)
        for update in updates:
            if update.kind == "source":
                self.learned[update.url_check] = max(self.expected(update), at_least)


def _next_chunk(pending: deque, times: CheckTimes) -> list[Update]:
    """The next updates to send together: one that cannot go in a batch alone, else as many
    batchable ones (in order) as fit into BATCH_LIMIT and the time budget."""
    if not _batchable(pending[0]):
        return [pending.popleft()]
    chunk, planned = [], 0.0
    while pending and len(chunk) < BATCH_LIMIT and _batchable(pending[0]):
        cost = times.expected(pending[0])
        if chunk and planned + cost > BATCH_TIME_BUDGET:
            break
        chunk.append(pending.popleft())
        planned += cost
    return chunk


def _parallel(chunk: list[Update], times: CheckTimes) -> bool:
    return all(times.known(update) and _batchable(update) for update in chunk)


def _batchable(update: Update) -> bool:
    """Whether the update survives the PHP query string of a batch command unchanged. Adds and
    deletes go one by one: an add whose answer is lost must not be sent again blindly."""
    if update.action != "update":
        return False
    try:
        php_form.encode({"fields": update.payload})
    except ValueError:
        return False
    return True


def _send_chunk(client: BitrixClient, chunk: list[Update], times: CheckTimes, sleep, clock) -> list[Update]:
    """Send one chunk; returns the updates that must go again: the outcome was unknown and a
    re-read found they did not land."""
    try:
        if len(chunk) == 1 and not _batchable(chunk[0]):
            _send_single(client, chunk[0], sleep, clock)
        else:
            _send_batch(client, chunk, times, sleep, clock)
    except UnknownOutcome as unknown:
        return _not_landed_after(client, unknown, times, sleep, clock)
    return []


class UnknownOutcome(Exception):
    """A write request got no answer from Bitrix24: its `updates` may or may not have landed."""

    def __init__(self, updates: list[Update], error: BitrixError):
        super().__init__(str(error))
        self.updates = updates
        self.error = error


def _send_single(client: BitrixClient, update: Update, sleep, clock) -> None:
    params = update.params()
    try:
        answer = respecting_operation_limit(lambda: client.call(update.method, params), sleep, clock)
    except BitrixError as exc:
        if _outcome_unknown(exc) and update.action != "update":
            # Not sent again: the plan's next run finds what landed by its match.
            update.error, update.error_code = f"{explain(exc)} Run the plan again to see whether it landed.", exc.code
            return
        if _outcome_unknown(exc):
            raise UnknownOutcome([update], exc) from None
        if _is_portal_failure(exc):
            raise
        update.error, update.error_code = _explained(update, exc), exc.code
    else:
        update.applied = True
        if update.action == "add" and isinstance(answer, dict) and str(answer.get("id", "")).isdigit():
            update.object_id = int(answer["id"])


def _explained(update: Update, exc: BitrixError) -> str:
    """Bitrix24's delete refusals say what to do first."""
    if update.action == "delete" and exc.code == "CONNECTOR_DELETE_RESTRICTED":
        return "Bitrix24 keeps a connector while sources use it: delete its sources first (ensure: absent)."
    if update.action == "delete" and "related datasets" in exc.description.lower():
        return "Bitrix24 keeps a source while BI Builder datasets use it: delete those datasets first."
    return explain(exc)


def _send_batch(client: BitrixClient, updates: list[Update], times: CheckTimes, sleep, clock) -> None:
    for attempt in range(BATCH_RETRIES + 1):
        if not updates:
            return
        commands = _batch_commands(updates)
        try:
            outcome = respecting_operation_limit(lambda: client.batch(commands, halt=False), sleep, clock)
        except BitrixError as exc:
            if _outcome_unknown(exc):
                raise UnknownOutcome(updates, exc) from None
            raise
        retry = _take_outcome(updates, outcome, times, may_retry=attempt < BATCH_RETRIES)
        if retry:
            sleep(seconds_until(client.operating_reset_at.get(retry[0].method), clock))
        updates = retry


def _batch_commands(updates: list[Update]) -> dict[str, tuple[str, dict]]:
    return {f"u{n}": (update.method, update.params()) for n, update in enumerate(updates)}


def _take_outcome(updates: list[Update], outcome: BatchResult, times: CheckTimes, may_retry: bool) -> list[Update]:
    """Apply a batch's answer to its updates (commands u0, u1, …): learn their check times, mark
    what landed and the errors; returns the updates to send again (RETRYABLE_IN_BATCH, if `may_retry`)."""
    keys = [f"u{n}" for n in range(len(updates))]
    times.learn(updates, [outcome.seconds.get(key) for key in keys])
    retry = []
    for key, update in zip(keys, updates):
        error = outcome.errors.get(key)
        if error is None:
            update.applied = True
        elif error.code in RETRYABLE_IN_BATCH and may_retry:
            retry.append(update)
        else:
            update.error, update.error_code = explain(error), error.code
    return retry


def _outcome_unknown(exc: BitrixError) -> bool:
    """No answer from Bitrix24 itself (a timeout, a dropped connection, a front end's error page):
    the write may have run. A Bitrix24 error, even a 5xx one with JSON, says it did not."""
    return exc.code in ("NETWORK_TIMEOUT", "NETWORK_ERROR", "INVALID_RESPONSE") or exc.code.startswith("HTTP_5")


def _not_landed_after(client: BitrixClient, unknown: UnknownOutcome, times: CheckTimes, sleep, clock) -> list[Update]:
    """Read the objects of an unknown outcome again: what landed is applied, the rest is returned.
    Until the read succeeds the updates say their outcome is unknown (a failing read fails the
    portal, and the report keeps saying so)."""
    reason = explain(unknown.error)
    for update in unknown.updates:
        update.error, update.error_code = f"{reason} It may or may not have been saved.", unknown.error.code
    current = _current_objects(client, unknown.updates, sleep, clock)
    not_landed = []
    for update in unknown.updates:
        if _has_landed(update, current):
            update.applied, update.error, update.error_code = True, None, None
        else:
            update.error = f"{reason} Read again, the change had not landed."
            not_landed.append(update)
    if unknown.error.code == "NETWORK_TIMEOUT" or unknown.error.status == 504:
        times.learn_cut_off(unknown.updates, len(unknown.updates) - len(not_landed))
    return not_landed


def _current_objects(client: BitrixClient, updates: list[Update], sleep, clock) -> dict[tuple[str, int], dict]:
    """The updates' objects as Bitrix24 has them now, by (kind, id): one list call per kind."""
    biconnector = Biconnector(client)
    found: dict[tuple[str, int], dict] = {}
    for kind, read in (("connector", biconnector.connectors), ("source", biconnector.sources)):
        ids = sorted({update.object_id for update in updates if update.kind == kind})
        if ids:
            items = respecting_operation_limit(functools.partial(read, filter={"@id": ids}), sleep, clock)
            found.update(((kind, item.get("id")), item) for item in items)
    return found


def _has_landed(update: Update, current: dict[tuple[str, int], dict]) -> bool:
    """Whether the object now has every value the update sends (compared as when diffing)."""
    item = current.get((update.kind, update.object_id))
    if item is None:
        return False
    if update.kind == "connector":
        return all(_same_connector_value(name, item.get(name), wanted) for name, wanted in update.payload.items())
    return all(
        not _changed_settings(item, wanted) if name == "settings"
        else (item.get(name) if item.get(name) is not None else "") == wanted
        for name, wanted in update.payload.items()
    )


def _is_portal_failure(exc: BitrixError) -> bool:
    """Errors about the portal or the connection, not about this one object."""
    return exc.code.startswith(("PORTAL_", "NETWORK_")) or exc.status in (401, 403) or exc.code in (
        "expired_token", "invalid_token", "APPLICATION_NOT_FOUND", "PAYMENT_REQUIRED", "INVALID_RESPONSE")


# --- the measuring batch, along with the read ----------------------------------------------------

class MeasuringRide:
    """The measuring batch of a plan, sent along with its read (a `rest.Along`).

    When the first page of sources is full, the read's second request (the further pages) goes out
    anyway: the first chunk `send_updates` would send for an unmeasured check URL (at most 5 under
    the time budget) rides in it, and its `result_time` sizes the batches that follow. For the plans
    `PlanRunner` lets ride (source updates matched by id only, written right away) the diff over the
    first page and every connector yields exactly the updates the full diff yields for those
    sources; `merged` then puts the ones sent in their place. Retryable errors leave an update
    pending (it goes with the rest), others are reported as `send_updates` does."""

    def __init__(self, diff: Callable[[list, list], PortalChanges], times: CheckTimes):
        self.diff = diff  # (connectors, sources) -> the plan's changes
        self.times = times
        self.sent: list[Update] = []
        self.went_out = False  # answered, or the outcome is unknown: never to be sent blindly again
        self.is_secret = None  # the diff's judgement, for the history

    def commands(self, read: dict[str, list], more: set[str]) -> dict[str, tuple[str, dict]]:
        if self.went_out or "connectors" in more:
            return {}  # a read tried again; or without every connector the diff could differ
        changes = self.diff(read["connectors"], read["sources"])
        self.is_secret = changes.is_secret
        unmeasured = [update for update in changes.updates if _batchable(update) and not self.times.known(update)]
        first_url = [update for update in unmeasured if update.url_check == unmeasured[0].url_check]
        self.sent = _next_chunk(deque(first_url), self.times) if first_url else []
        return _batch_commands(self.sent)

    def take(self, outcome: BatchResult) -> None:
        self.went_out = True
        _take_outcome(self.sent, outcome, self.times, may_retry=True)  # those to send again go with the rest

    def forget_unsent(self) -> None:
        if not self.went_out:
            self.sent = []

    def merged(self, updates: list[Update], plan: Plan) -> list[Update]:
        """The full diff's updates with the ones sent in their place. One that landed but that a read
        repeated after it no longer sees as a change keeps its place in the plan's order."""
        sent = {update.object_id: update for update in self.sent}
        merged = [sent.pop(update.object_id, update) for update in updates]
        if not sent:
            return merged
        order: dict[int, int] = {}
        for index, target in enumerate(plan.sources):
            order.setdefault(target.match["id"], index)
        return sorted(merged + list(sent.values()), key=lambda update: order[update.object_id])


def _rides_along(plan: Plan, dry_run: bool, if_unchanged: bool) -> bool:
    """Whether the plan's first updates may be sent with its read: only source updates matched by
    id (no connector entry to change what a source's diff checks against, no creates or deletes),
    sent right after the diff."""
    return bool(plan.sources) and not (plan.connectors or plan.databases or dry_run or if_unchanged) and all(
        set(target.match) == {"id"} and target.ensure != "absent" for target in plan.sources)


# --- one portal, many portals ------------------------------------------------------------------

# (member_id, database targets, dry_run) -> one Update per target; see gateway/databases.py.
DatabaseStep = Callable[[str, tuple, bool], list]

@dataclass
class PortalReport:
    portal: str
    status: str = "unchanged"  # changed | unchanged | failed
    reason: str = ""
    code: str = ""  # the error code behind a portal-wide failure
    domain: str = ""
    member_id: str = ""
    updates: list[Update] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    requests: int = 0

    def to_dict(self) -> dict:
        return {
            "portal": self.portal,
            "domain": self.domain,
            "member_id": self.member_id,
            "status": self.status,
            "reason": self.reason,
            "code": self.code,
            "updates": [update.to_dict() for update in self.updates],
            "problems": self.problems,
            "requests": self.requests,
        }


class PlanRunner:
    """Applies (or, with dry_run, only diffs) a plan on portals, each in its own worker."""

    def __init__(self, bitrix, plan: Plan, dry_run: bool = False, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time, databases: DatabaseStep | None = None,
                 if_unchanged: bool = False, actor: Actor | None = None):
        """`if_unchanged`: right before writing, read the objects again and skip (as EDIT_CONFLICT)
        any that changed since the diff read them. `actor` is who the history names (the operator)."""
        self.bitrix = bitrix
        self.plan = plan
        self.dry_run = dry_run
        self.if_unchanged = if_unchanged
        self.actor = actor or Actor.operator("plan")
        self.databases = databases
        self.sleep = sleep
        self.clock = clock
        # urlCheck times measured on one portal serve the run's others: a check URL is measured once.
        self.check_times = CheckTimes(f"{bitrix.settings.public_url}/gateway/")

    def portals(self) -> list[str]:
        if self.plan.portals is None:
            return installed_member_ids(self.bitrix.session_factory)
        return list(dict.fromkeys(self.plan.portals))  # each portal once, in the plan's order

    def run(self, portals: list[str] | None = None, workers: int = DEFAULT_WORKERS) -> Iterator[PortalReport]:
        """Yield one report per portal as each finishes (order of completion). Without `portals`, a plan
        for all portals streams them from the database."""
        if portals is None:
            portals = (iter_installed_member_ids(self.bitrix.session_factory) if self.plan.portals is None
                       else self.portals())
        return run_for_portals(portals, self.run_portal, self._failed, workers)

    def run_portal(self, portal: str) -> PortalReport:
        report = PortalReport(portal)
        client = ride = None
        try:
            record = self.bitrix.portal(portal)
            report.domain, report.member_id = record.domain, record.member_id
            client = self.bitrix.client_of(record)
            if _rides_along(self.plan, self.dry_run, self.if_unchanged):
                ride = MeasuringRide(self._differ(record.member_id), self.check_times)
            changes = self._read_and_compare(client, ride)
            report.updates, report.problems = changes.updates, changes.problems
            if not self.dry_run:
                unchanged = self._still_unchanged(client, record.member_id, changes.updates)
                try:
                    unsent = [update for update in unchanged if not update.applied and update.error is None]
                    send_updates(client, unsent, self.sleep, self.clock, times=self.check_times)
                finally:
                    self._record_history(record.member_id, unchanged, changes.is_secret)
            if self.plan.databases:
                report.updates += self._apply_databases(record.member_id)
        except Exception as exc:  # the portal failed as a whole; any kind is reported, never raised
            report.reason, report.code = self.plan.mask(_portal_reason(exc)), _code(exc)
            if ride is not None and ride.went_out and not report.updates:  # the read failed after it
                report.updates = ride.sent
            for update in report.updates:
                if not update.applied and update.error is None:
                    update.error = "not sent: " + report.reason
        finally:
            report.requests = client.requests_sent if client is not None else 0
        self._settle(report)
        return report

    def _still_unchanged(self, client: BitrixClient, member_id: str, updates: list[Update]) -> list[Update]:
        """With if_unchanged, the updates whose objects are still as the diff read them; the others
        get an EDIT_CONFLICT error saying who changed them (if it was through this app)."""
        if not self.if_unchanged or not updates:
            return updates
        key = self.bitrix.settings.client_secret
        current = _current_objects(client, updates, self.sleep, self.clock)
        history = History(self.bitrix.session_factory, member_id)
        unchanged = []
        for update in updates:
            now = current.get((update.kind, update.object_id))
            if now is not None and version_of(update.kind, now, key) == version_of(update.kind, update.before or {}, key):
                unchanged.append(update)
                continue
            last = history.latest(update.kind, update.object_id)
            by = f" (last changed by {last['actor']['name'] or last['actor']['kind']} via {last['via']} at " \
                 f"{last['at']})" if last else ""
            update.error = ("it was deleted since the plan read it" if now is None else
                            f"it changed since the plan read it{by}; run the plan again to see the new diff")
            update.error_code = "EDIT_CONFLICT"
        return unchanged

    def _record_history(self, member_id: str, updates: list[Update], is_secret=None) -> None:
        """One history entry per applied update, from what the diff read and what was sent; all of
        them in one INSERT. `is_secret`: the diff's judgement of secret settings (default: by code)."""
        is_secret = is_secret or (lambda _connector_id, code: is_secret_by_default(code))
        entries = self._history_entries(updates, is_secret)
        History(self.bitrix.session_factory, member_id).record_many(self.actor, entries)

    def _history_entries(self, updates: list[Update], is_secret) -> Iterator[tuple[str, int, list[dict]]]:
        for update in updates:
            if not update.applied or update.before is None:
                continue
            before = update.before
            if update.kind == "connector":
                changes = connector_changes(before, {**before, **update.payload})
            else:
                stored = {row.get("code"): row.get("value") for row in before.get("settings") or []}
                sent = update.payload.get("settings") or {}
                after = {**before, **{k: v for k, v in update.payload.items() if k != "settings"},
                         "settings": [{"code": code, "value": value} for code, value in {**stored, **sent}.items()]}
                changes = source_changes(before, after, functools.partial(is_secret, before.get("connectorId")),
                                         sent)
            yield update.kind, update.object_id, [self._masked_change(c) for c in changes]

    def _masked_change(self, change: dict) -> dict:
        """Values that came from the environment are masked in the history as in diffs."""
        return {**change, **{key: self.plan.mask(change[key]) for key in ("old", "new")
                             if isinstance(change.get(key), str)}}

    def _apply_databases(self, member_id: str) -> list[Update]:
        if self.databases is None:
            raise PlanError("This plan declares databases, which only the app's command line can apply.")
        return self.databases(member_id, self.plan.databases, self.dry_run)

    def _read_and_compare(self, client: BitrixClient, ride: MeasuringRide | None = None) -> PortalChanges:
        """Read the portal and diff it with the plan; with a `ride`, the measuring batch goes along
        with the read (what of it landed is in the history even if the read then fails)."""
        if ride is not None:
            try:
                connectors, sources = self._read_riding(client, ride)
            except Exception:
                if ride.went_out:
                    self._record_history(client.credentials.member_id, ride.sent, ride.is_secret)
                raise
            changes = ride.diff(connectors, sources)
            changes.updates = ride.merged(changes.updates, self.plan)
            return changes
        biconnector = Biconnector(client)
        # Source updates need them too: their connector's urlCheck decides how many go in one batch.
        if self.plan.sources:
            connectors, sources = self._read(biconnector.connectors_and_sources)
        else:
            connectors, sources = (self._read(biconnector.connectors) if self.plan.connectors else []), []
        return self._differ(client.credentials.member_id)(connectors, sources)

    def _read(self, fetch):
        return respecting_operation_limit(fetch, self.sleep, self.clock)

    def _read_riding(self, client: BitrixClient, ride: MeasuringRide) -> tuple[list[dict], list[dict]]:
        """Connectors and sources, with the measuring batch along. If that request got no answer,
        the objects sent are read again (what landed is applied, the rest goes with the other
        updates), then the lists are read again, alone."""
        biconnector = Biconnector(client)

        def attempt():
            ride.forget_unsent()  # a request refused before a retry of the read ran nothing
            return biconnector.connectors_and_sources(along=ride)

        try:
            return self._read(attempt)
        except BitrixError as exc:
            if ride.went_out or not ride.sent or not _outcome_unknown(exc):
                raise  # a list page's error after the ride's answer, or a request that did not run
            unknown = UnknownOutcome(ride.sent, exc)
        ride.went_out = True
        for update in _not_landed_after(client, unknown, self.check_times, self.sleep, self.clock):
            update.error = update.error_code = None
        return self._read(biconnector.connectors_and_sources)

    def _differ(self, member_id: str) -> Callable[[list, list], PortalChanges]:
        """The plan's diff for one portal, as (connectors, sources) -> changes; the secret-setting
        choices and the gateway's objects are read from the database once, when first needed."""
        secrets = SecretSettings(self.bitrix.session_factory, member_id) if self.plan.sources else None
        gateway = functools.cache(lambda: GatewayObjects.of_portal(self.bitrix.session_factory, member_id))
        return functools.partial(plan_changes, self.plan, endpoints=self.bitrix.endpoint_policy,
                                 is_secret=secrets.is_secret if secrets else None, gateway=gateway)

    def _settle(self, report: PortalReport) -> None:
        """Turn what happened into changed / unchanged / failed with one readable reason."""
        failed_updates = [u for u in report.updates if u.error]
        report.updates = [self._masked(u) for u in report.updates]
        report.problems = [self.plan.mask(p) for p in report.problems]
        if report.reason:
            report.status = "failed"
        elif failed_updates or report.problems:
            report.status = "failed"
            first = failed_updates[0] if failed_updates else None
            report.reason = (
                f"{first.describe()}: {first.error}" if first else report.problems[0]
            ) + _and_more(len(failed_updates) + len(report.problems) - 1)
        elif report.updates:
            report.status = "changed"
        else:
            report.status = "unchanged"

    def _masked(self, update: Update) -> Update:
        if update.error:
            update.error = self.plan.mask(update.error)
        return update

    def _failed(self, portal: str, exc: Exception) -> PortalReport:
        return PortalReport(portal, status="failed", reason=self.plan.mask(_portal_reason(exc)), code=_code(exc))


def _portal_reason(exc: Exception) -> str:
    return explain(exc) if isinstance(exc, BitrixError) else reason_for(exc)


def _code(exc: Exception) -> str:
    return exc.code if isinstance(exc, BitrixError) else type(exc).__name__


def _and_more(count: int) -> str:
    return f" (and {count} more problem{'s' if count > 1 else ''})" if count > 0 else ""
