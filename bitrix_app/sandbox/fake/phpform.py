"""PHP semantics the fake needs: bracket-key forms, `is_numeric`, `(int)`, `(string)`.

Bitrix24 is PHP, so its parameters arrive through `parse_str` (``fields[settings][0][code]=x``)
and its validators use PHP's loose checks. Reproducing both keeps the fake honest about what
a form-encoded request can and cannot express (there is no real boolean in a form).
"""
from __future__ import annotations

import re
from typing import Any, Iterable

_NUMERIC = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")


# --- decoding -------------------------------------------------------------------------------

def decode(pairs: Iterable[tuple[str, str]]) -> dict:
    """Turn ``[("a[b][]", "1"), ...]`` into nested dicts/lists the way PHP's parse_str does."""
    root: dict = {}
    for key, value in pairs:
        path = _split_key(key)
        if path:
            _assign(root, path, value)
    return _listify(root)


def _split_key(key: str) -> list[str]:
    """``a[b][]`` -> ``["a", "b", ""]``; an empty segment means "append"."""
    head, bracket, rest = key.partition("[")
    if not head:
        return []
    if not bracket or "]" not in rest:
        return [key]
    segments = [head]
    while True:
        segment, _, rest = rest.partition("]")
        segments.append(segment)
        # Like PHP, ignore anything after the last complete "[...]".
        if not rest.startswith("[") or "]" not in rest:
            return segments
        rest = rest[1:]


def _assign(node: dict, path: list[str], value: str) -> None:
    for position, segment in enumerate(path):
        if segment == "":
            segment = str(_next_index(node))
        if position == len(path) - 1:
            node[segment] = value
            return
        child = node.get(segment)
        if not isinstance(child, dict):
            child = node[segment] = {}
        node = child


def _next_index(node: dict) -> int:
    indexes = [int(key) for key in node if key.lstrip("-").isdigit()]
    return max(indexes) + 1 if indexes else 0


def _listify(value: Any) -> Any:
    """PHP arrays keyed 0..n-1 in order are JSON lists; make them Python lists too."""
    if not isinstance(value, dict):
        return value
    converted = {key: _listify(item) for key, item in value.items()}
    if converted and list(converted) == [str(index) for index in range(len(converted))]:
        return list(converted.values())
    return converted


# --- encoding -------------------------------------------------------------------------------

def encode(data: dict, prefix: str = "") -> list[tuple[str, str]]:
    """Flatten nested data into bracket-key pairs, as PHP's http_build_query does."""
    pairs: list[tuple[str, str]] = []
    for key, value in items(data):
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, (dict, list)):
            pairs.extend(encode(value, name) if value else [])
        elif value is not None:
            pairs.append((name, to_string(value)))
    return pairs


# --- PHP value semantics --------------------------------------------------------------------

def items(value: dict | list) -> list[tuple[str, Any]]:
    """Key/value pairs of a PHP array, whether it came in as a JSON object or a list."""
    if isinstance(value, dict):
        return [(str(key), item) for key, item in value.items()]
    return [(str(index), item) for index, item in enumerate(value)]


def is_array(value: Any) -> bool:
    return isinstance(value, (dict, list))


def is_numeric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    return isinstance(value, str) and bool(_NUMERIC.match(value))


def to_int(value: Any) -> int:
    """PHP ``(int)`` for the values that pass ``is_numeric`` (``"4.5"`` -> 4)."""
    if isinstance(value, str):
        return int(float(value))
    return int(value)


def to_string(value: Any) -> str:
    """PHP ``(string)``: true -> "1", false/null -> "", arrays -> "Array"."""
    if value is True:
        return "1"
    if value is False or value is None:
        return ""
    if isinstance(value, (dict, list)):
        return "Array"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def is_empty(value: Any) -> bool:
    """PHP ``empty()``."""
    return value in (None, False, 0, 0.0, "", "0") or (is_array(value) and len(value) == 0)
