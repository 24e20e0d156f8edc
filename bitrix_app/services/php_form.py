"""PHP bracket syntax for form data (`auth[member_id]=…`, `cmd[a]=method?fields[title]=x`).

Bitrix24 posts events form-encoded with bracket keys, and `batch` commands are query strings
in the same syntax.
"""
from __future__ import annotations

import re
from typing import Iterable
from urllib.parse import quote

_KEY_PART = re.compile(r"\[([^\]]*)\]")


def decode(pairs: Iterable[tuple[str, str]]) -> dict:
    """Turn `[("auth[member_id]", "x"), ("data[FIELDS][ID]", "1")]` into nested dicts.

    Empty brackets (`a[]`) append; numeric keys stay strings, like PHP array keys read back.
    """
    result: dict = {}
    for raw_key, value in pairs:
        head, _, rest = raw_key.partition("[")
        parts = [head] + (_KEY_PART.findall("[" + rest) if rest else [])
        node = result
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if part == "":
                part = str(len(node))
            if last:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
    return result


def encode(params: dict) -> str:
    """Encode nested params as a PHP query string.

    Booleans (biconnector checks them strictly) and empty lists or mappings (they produce no
    key at all, so `fields[settings]=[]` would vanish) cannot travel this way: they are refused
    with a ValueError rather than silently mangled or dropped.
    """
    pairs: list[tuple[str, str]] = []
    _flatten(params, "", pairs)
    return "&".join(f"{quote(key, safe='[]')}={quote(value, safe='')}" for key, value in pairs)


def _flatten(value, prefix: str, pairs: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        pairs.append((prefix, _scalar(value, prefix)))
        return
    if not value and prefix:  # only the top level may be empty: a call without parameters
        raise ValueError(f"{prefix}: an empty list or mapping cannot be sent inside a batch command; "
                         "send it as a single call.")
    for key, item in items:
        _flatten(item, f"{prefix}[{key}]" if prefix else str(key), pairs)


def _scalar(value, key: str) -> str:
    if isinstance(value, bool):
        raise ValueError(f"{key}: a boolean cannot be sent inside a batch command; send it as a single call.")
    return "" if value is None else str(value)
