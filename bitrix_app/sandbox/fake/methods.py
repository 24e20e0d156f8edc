"""Portal methods other than biconnector: app.info, user.*, profile, event.*, placement.*, batch.

Handlers take a ``rest.Call`` and return the ``result`` value, or raise ``RestError`` for a
top-level error. ``METHODS`` maps each method name to ``(handler, scope)``.
"""
from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

from . import phpform
from .web import RestError

KNOWN_EVENTS = {
    "ONAPPINSTALL", "ONAPPUPDATE", "ONAPPUNINSTALL", "ONAPPPAYMENT", "ONAPPTEST",
    "ONAPPMETHODCONFIRM", "ONSUBSCRIPTIONRENEW", "ONOFFLINEEVENT", "ONUSERADD",
}
KNOWN_PLACEMENTS = {
    "LEFT_MENU", "REST_APP_URI", "PAGE_BACKGROUND_WORKER", "USER_PROFILE_MENU",
    "USER_PROFILE_TOOLBAR", "BI_ANALYTICS_MENU",
}
SINGLE_INSTANCE_PLACEMENTS = {"REST_APP_URI", "PAGE_BACKGROUND_WORKER"}
BATCH_MAX_LENGTH = 50
NOT_IN_BATCH = {"batch", "download", "upload"}


def _upper_keys(params: dict) -> dict:
    """event.* and placement.* read their parameters case-insensitively."""
    return {key.upper(): value for key, value in params.items()}


def _missing_argument(name: str) -> RestError:
    return RestError("ERROR_ARGUMENT", f"Argument '{name}' is null or empty", 400, argument=name)


def _require_admin(call) -> None:
    if not call.user.is_admin:
        raise RestError("ACCESS_DENIED", "Access denied!", 403)


# --- app, user, profile ---------------------------------------------------------------------

def app_info(call) -> dict:
    portal = call.portal
    ours = call.client_id == call.state.main_client_id
    license_type, family = ("ent250", "ent") if portal.enterprise else ("pro100", "pro")
    return {
        "ID": 1 if ours else 2,
        "CODE": call.client_id,
        "VERSION": portal.app_version if ours else 1,
        "STATUS": portal.app_status,
        "INSTALLED": portal.installed if ours else True,
        "PAYMENT_EXPIRED": "Y" if portal.payment_required else "N",
        "DAYS": -1 if portal.payment_required else 30,
        "LANGUAGE_ID": portal.language,
        "LICENSE": f"{portal.language}_{license_type}",
        "LICENSE_TYPE": license_type,
        "LICENSE_FAMILY": family,
    }


def user_current(call) -> dict:
    return user_current_fields(call.user)


def user_current_fields(user) -> dict:
    return {
        "ID": str(user.id),
        "XML_ID": "",
        "ACTIVE": True,
        "NAME": user.name,
        "LAST_NAME": user.last_name,
        "SECOND_NAME": "",
        "EMAIL": user.email,
        "PERSONAL_GENDER": "",
        "TIME_ZONE": "",
        "TIME_ZONE_OFFSET": "0",
        "IS_ONLINE": "Y",
        "USER_TYPE": "employee",
        "UF_DEPARTMENT": [1],
    }


def user_admin(call) -> bool:
    return call.user.is_admin


# user.get and user.search are not in the reference (../shared/reference/bitrix24.md); this
# follows the public REST docs (dev.1c-bitrix.ru/rest_help/users/user_get.php, user_search.php):
# - Scope user (user_basic / user_brief suffice), callable by every user.
# - user.get: FILTER (or, as the docs' own example does, filter keys at the top level) matches
#   fields exactly; an ID filter takes one id or a list. Users come in ID order, 50 a page;
#   bots, e-mail and Open Lines users are never returned. No match: an empty list, not an error.
# - user.search: FILTER keys NAME, LAST_NAME, WORK_POSITION, UF_DEPARTMENT_NAME, USER_TYPE, or
#   FIND across all of them; a text matches the start of a word ("right LIKE": "Ann" finds
#   "Anna"), case-insensitively. Answers like user.get. Unconfirmed: how FIND splits words.
USER_PAGE_SIZE = 50
USER_SEARCH_FIELDS = ("NAME", "LAST_NAME", "WORK_POSITION", "UF_DEPARTMENT_NAME")


def _user_filter(params: dict) -> dict:
    upper = _upper_keys(params)
    raw = upper.get("FILTER") if phpform.is_array(upper.get("FILTER")) else {
        key: value for key, value in upper.items() if key not in ("SORT", "ORDER", "ADMIN_MODE")}
    return {str(key).upper(): value for key, value in (phpform.items(raw) if phpform.is_array(raw) else [])}


def _user_item(user) -> dict:
    return {**user_current_fields(user), "WORK_POSITION": "", "UF_DEPARTMENT_NAME": ""}


def _ids(value) -> set[str]:
    values = [item for _, item in phpform.items(value)] if phpform.is_array(value) else [value]
    return {str(item).strip() for item in values}


def user_get(call) -> list:
    conditions = _user_filter(call.params)
    users = sorted(call.portal.users.values(), key=lambda user: user.id)
    found = []
    for user in users:
        item = _user_item(user)
        if "ID" in conditions and str(user.id) not in _ids(conditions["ID"]):
            continue
        if any(str(item.get(key, "")) != str(value) for key, value in conditions.items()
               if key != "ID" and not phpform.is_array(value)):
            continue
        found.append(item)
    return found[:USER_PAGE_SIZE]


def user_search(call) -> list:
    conditions = _user_filter(call.params)
    found = []
    for user in sorted(call.portal.users.values(), key=lambda user: user.id):
        item = _user_item(user)
        if all(_starts_a_word(" ".join(str(item[field]) for field in USER_SEARCH_FIELDS), value)
               if key == "FIND" else _starts_a_word(str(item.get(key, "")), value)
               for key, value in conditions.items() if key in ("FIND", *USER_SEARCH_FIELDS)):
            found.append(item)
    return found[:USER_PAGE_SIZE]


def _starts_a_word(text: str, wanted) -> bool:
    words = str(wanted).lower().split()
    haystack = text.lower().split()
    return all(any(word.startswith(part) for word in haystack) for part in words)


def profile(call) -> dict:
    user = call.user
    return {"ID": str(user.id), "ADMIN": user.is_admin, "NAME": user.name, "LAST_NAME": user.last_name,
            "PERSONAL_GENDER": "", "TIME_ZONE": ""}


def scope(call) -> list:
    if not phpform.is_empty(_upper_keys(call.params).get("FULL")):
        return ["biconnector", "placement", "user", "user_basic", "user_brief", "crm", "entity"]
    return [item for item in call.access.scope.split(",") if item]


def server_time(call) -> str:
    return call.state.clock.iso()


# --- events ---------------------------------------------------------------------------------

def event_bind(call) -> bool:
    params = _upper_keys(call.params)
    event = phpform.to_string(params.get("EVENT")).strip().upper()
    if not event:
        raise _missing_argument("EVENT")
    if event not in KNOWN_EVENTS:
        raise RestError("ERROR_EVENT_NOT_FOUND", "Event not found", 400)
    offline = phpform.to_string(params.get("EVENT_TYPE")).lower() == "offline"
    auth_type = _auth_type(params)
    if offline and not call.user.is_admin:
        raise RestError("ACCESS_DENIED", "Offline events binding requires administrator access rights", 403)
    if auth_type and not call.user.is_admin:
        raise RestError("ACCESS_DENIED", "Event binding with AUTH_TYPE requires administrator access rights", 403)
    handler = "" if offline else phpform.to_string(params.get("HANDLER")).strip()
    if not offline and not handler:
        raise _missing_argument("HANDLER")
    record = {"event": event, "handler": handler, "auth_type": auth_type, "offline": offline,
              "client_id": call.client_id, "user_id": call.user.id}
    with call.state.lock:
        if not any(_same_binding(existing, record) for existing in call.portal.bound_events):
            # Duplicate binds are unconfirmed upstream; the fake keeps one record and answers true.
            record["id"] = call.portal.next_id("event")
            call.portal.bound_events.append(record)
    return True


def _auth_type(params: dict) -> int:
    value = params.get("AUTH_TYPE")
    return phpform.to_int(value) if phpform.is_numeric(value) else 0


def _same_binding(left: dict, right: dict) -> bool:
    keys = ("event", "handler", "auth_type", "offline", "client_id")
    return all(left[key] == right[key] for key in keys)


def event_unbind(call) -> dict:
    params = _upper_keys(call.params)
    event = phpform.to_string(params.get("EVENT")).strip().upper()
    if not event:
        raise _missing_argument("EVENT")
    offline = phpform.to_string(params.get("EVENT_TYPE")).lower() == "offline"
    handler = phpform.to_string(params.get("HANDLER")).strip()
    if not offline and not handler:
        raise _missing_argument("HANDLER")
    wanted = {"event": event, "handler": handler, "auth_type": _auth_type(params), "offline": offline,
              "client_id": call.client_id}
    with call.state.lock:
        kept = [record for record in call.portal.bound_events if not _same_binding(record, wanted)]
        count = len(call.portal.bound_events) - len(kept)
        call.portal.bound_events[:] = kept
    return {"count": count}


def event_get(call) -> list:
    with call.state.lock:
        records = [record for record in call.portal.bound_events if record["client_id"] == call.client_id]
    if not call.user.is_admin:
        records = [record for record in records if record["user_id"] == call.user.id]
    return [{"event": record["event"], "handler": record["handler"], "auth_type": str(record["auth_type"]),
             "offline": int(record["offline"])} for record in records]


# --- placements -----------------------------------------------------------------------------

def placement_bind(call) -> bool:
    _require_admin(call)
    params = _upper_keys(call.params)
    code = phpform.to_string(params.get("PLACEMENT")).strip().upper()
    if not code:
        raise _missing_argument("PLACEMENT")
    if code not in KNOWN_PLACEMENTS:
        raise RestError("ERROR_PLACEMENT_NOT_FOUND", "Placement not found", 400)
    handler = phpform.to_string(params.get("HANDLER")).strip()
    if not handler:
        raise _missing_argument("HANDLER")
    _check_handler_url(handler)
    options = params.get("OPTIONS") if phpform.is_array(params.get("OPTIONS")) else {}
    if code == "PAGE_BACKGROUND_WORKER" and not options.get("errorHandlerUrl"):
        raise RestError("EMPTY_ERROR_HANDLER_URL", "Empty error handler URL", 400)
    record = {
        "placement": code,
        "handler": handler,
        "title": phpform.to_string(params.get("TITLE")),
        "description": phpform.to_string(params.get("DESCRIPTION")),
        "group_name": phpform.to_string(params.get("GROUP_NAME")),
        "lang_all": params.get("LANG_ALL") if phpform.is_array(params.get("LANG_ALL")) else {},
        "options": options,
        "user_id": phpform.to_int(params["USER_ID"]) if phpform.is_numeric(params.get("USER_ID")) else 0,
        "client_id": call.client_id,
    }
    with call.state.lock:
        same_code = [item for item in call.portal.placements
                     if item["placement"] == code and item["client_id"] == call.client_id]
        if any(item["handler"] == handler and item["user_id"] == record["user_id"] for item in same_code):
            return True  # duplicate bind: unconfirmed upstream; keep one record
        if code in SINGLE_INSTANCE_PLACEMENTS and same_code:
            raise RestError("ERROR_PLACEMENT_MAX_COUNT", "Placement max count: 1", 400)
        record["id"] = call.portal.next_id("placement")
        call.portal.placements.append(record)
    return True


def _check_handler_url(handler: str) -> None:
    parts = urlsplit(handler)
    if parts.scheme not in ("http", "https"):
        raise RestError("ERROR_UNSUPPORTED_PROTOCOL", "Unsupported event handler protocol", 400)
    if not parts.netloc:
        raise RestError("ERROR_WRONG_HANDLER_URL", "Wrong handler URL", 400)


def placement_unbind(call) -> dict:
    _require_admin(call)
    params = _upper_keys(call.params)
    code = phpform.to_string(params.get("PLACEMENT")).strip().upper()
    if not code:
        raise _missing_argument("PLACEMENT")
    handler = phpform.to_string(params.get("HANDLER")).strip()

    def matches(item: dict) -> bool:
        return (item["placement"] == code and item["client_id"] == call.client_id
                and (not handler or item["handler"] == handler))

    with call.state.lock:
        kept = [item for item in call.portal.placements if not matches(item)]
        count = len(call.portal.placements) - len(kept)
        call.portal.placements[:] = kept
    return {"count": count}


def placement_get(call) -> list:
    _require_admin(call)
    with call.state.lock:
        items = [item for item in call.portal.placements if item["client_id"] == call.client_id]
    return [{"id": item["id"], "placement": item["placement"], "userId": item["user_id"],
             "handler": item["handler"], "options": item["options"], "title": item["title"],
             "description": item["description"], "langAll": item["lang_all"]} for item in items]


def placement_list(call) -> list:
    return sorted(KNOWN_PLACEMENTS)


# --- batch ----------------------------------------------------------------------------------

def batch(call) -> dict:
    params = _upper_keys(call.params)
    halt = not phpform.is_empty(params.get("HALT"))
    commands = phpform.items(params["CMD"]) if phpform.is_array(params.get("CMD")) else []
    if call.config.batch_errors_top_level:
        _check_batch_top_level(commands)
    collected = {"result": {}, "error": {}, "total": {}, "next": {}, "time": {}}
    for position, (key, command) in enumerate(commands):
        if call.out_of_time():
            break  # the front end has given up on the request: nothing after this runs
        if position >= BATCH_MAX_LENGTH:
            outcome_error = RestError("ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded", 400)
        elif not isinstance(command, str):
            continue
        else:
            outcome_error = _run_command(call, key, command, collected)
        if outcome_error is not None:
            collected["error"][key] = {"error": outcome_error.code, "error_description": outcome_error.description}
            if halt:
                break
    return {
        "result": _php_array(collected["result"]),
        "result_error": _php_array(collected["error"]),
        "result_total": _php_array(collected["total"]),
        "result_next": _php_array(collected["next"]),
        "result_time": _php_array(collected["time"]),
    }


def _check_batch_top_level(commands: list) -> None:
    if len(commands) > BATCH_MAX_LENGTH:
        raise RestError("ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded", 400)
    for _, command in commands:
        if isinstance(command, str) and _command_method(command) in NOT_IN_BATCH:
            raise RestError("ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage", 405)


def _command_method(command: str) -> str:
    return command.partition("?")[0].strip().lower()


def _run_command(call, key: str, command: str, collected: dict) -> RestError | None:
    method = _command_method(command)
    if method in NOT_IN_BATCH:
        return RestError("ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage", 405)
    query = command.partition("?")[2]
    params = _resolve_references(phpform.decode(parse_qsl(query, keep_blank_values=True)), collected)
    outcome = call.run_sub_call(method, params)
    if outcome.error is not None:
        return outcome.error
    collected["result"][key] = outcome.result
    collected["time"][key] = outcome.time
    return None


_REFERENCE = re.compile(r"\$(result|error|total|next|time)((?:\[[^\]]+\])+)")


def _resolve_references(value, collected: dict):
    """Replace ``$result[cmd][FIELD]`` in command parameters with earlier results."""
    if isinstance(value, dict):
        return {key: _resolve_references(item, collected) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve_references(item, collected) for item in value]
    whole = _REFERENCE.fullmatch(value)
    if whole:
        return _lookup_reference(whole, collected)

    def substitute(match: re.Match) -> str:
        found = _lookup_reference(match, collected)
        return phpform.to_string(found) if isinstance(found, (str, int, float)) else match.group(0)

    return _REFERENCE.sub(substitute, value)


def _lookup_reference(match: re.Match, collected: dict):
    node = collected[match.group(1)]
    for key in re.findall(r"\[([^\]]+)\]", match.group(2)):
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            break
    return node


def _php_array(items: dict):
    """An empty PHP array encodes as ``[]``; keys 0..n-1 in order make a list."""
    if list(items) == [str(index) for index in range(len(items))]:
        return list(items.values())
    return items


METHODS = {
    "app.info": (app_info, None),
    "user.current": (user_current, "user"),
    "user.admin": (user_admin, None),
    "user.get": (user_get, "user"),
    "user.search": (user_search, "user"),
    "profile": (profile, None),
    "scope": (scope, None),
    "server.time": (server_time, None),
    "event.bind": (event_bind, None),
    "event.unbind": (event_unbind, None),
    "event.get": (event_get, None),
    "placement.bind": (placement_bind, "placement"),
    "placement.unbind": (placement_unbind, "placement"),
    "placement.get": (placement_get, "placement"),
    "placement.list": (placement_list, "placement"),
    "batch": (batch, None),
}
