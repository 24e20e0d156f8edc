"""BI Builder's naming rules (reference 6.11), and how real database names map onto them.

BI Builder proposes a REST table's `code` as the table name (`^[a-z][a-z0-9_]*$`, at most 230
characters, unique on the portal) and a column's `code`, unchanged, as the column name
(`^[A-Z][A-Z0-9_]*$`, at most 32). Real names rarely fit, so the gateway derives codes from
them: the same input always gives the same code, which keeps description, `select`, `filter`,
`mapFields` and data consistent without storing the mapping.
"""
from __future__ import annotations

import re
from typing import Iterable

MAX_TABLE_CODE = 230
MAX_COLUMN_CODE = 32

_CYRILLIC = dict(zip(
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    ["a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "y", "k", "l", "m", "n", "o", "p", "r", "s", "t",
     "u", "f", "kh", "ts", "ch", "sh", "shch", "", "y", "", "e", "yu", "ya"],
))
_NOT_WORD = re.compile(r"[^a-z0-9]+")


def slug(name: str) -> str:
    """Lowercase Latin letters, digits and single underscores; Cyrillic transliterated."""
    latin = "".join(_CYRILLIC.get(char, char) for char in name.lower())
    return _NOT_WORD.sub("_", latin).strip("_")


def table_code(prefix: str, name: str) -> str:
    """`db7_deals` for table `deals` of database 7: prefixed, so it never repeats another
    database's table or a built-in BI Builder table."""
    return f"{prefix}_{slug(name) or 'table'}"[:MAX_TABLE_CODE].rstrip("_")


def column_codes(names: Iterable[str]) -> list[str]:
    """UPPER_SNAKE codes of at most 32 characters, unique within the table, in column order."""
    codes: list[str] = []
    taken: set[str] = set()
    for position, name in enumerate(names, start=1):
        base = slug(name).upper() or f"COLUMN_{position}"
        if not base[0].isalpha():
            base = f"C_{base}"
        code = base[:MAX_COLUMN_CODE].rstrip("_")
        suffix = 2
        while code in taken:
            tail = f"_{suffix}"
            code = base[:MAX_COLUMN_CODE - len(tail)].rstrip("_") + tail
            suffix += 1
        taken.add(code)
        codes.append(code)
    return codes


def unique_table_codes(prefix: str, names: Iterable[str]) -> list[str]:
    """Table codes for several names of one database, made unique with a numeric suffix."""
    codes: list[str] = []
    taken: set[str] = set()
    for name in names:
        base = table_code(prefix, name)
        code, suffix = base, 2
        while code in taken:
            tail = f"_{suffix}"
            code = base[:MAX_TABLE_CODE - len(tail)] + tail
            suffix += 1
        taken.add(code)
        codes.append(code)
    return codes
