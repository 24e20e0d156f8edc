"""One small connection pool per database entry and process, replaced when the entry changes
(its `version`), when it is older than `max_age` (its address was resolved and checked when it
was made, so a moved database is found again), and disposed when the entry is deleted.

Keyed by the entry's source key, which is never reused (a database id can be, once its row
is deleted)."""
from __future__ import annotations

import threading
import time

from sqlalchemy.engine import Engine

MAX_AGE_SECONDS = 600.0


class Engines:
    def __init__(self, max_age: float = MAX_AGE_SECONDS, clock=time.monotonic) -> None:
        self.max_age = max_age
        self.clock = clock
        self._engines: dict[str, tuple[int, float, Engine]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, version: int, create) -> Engine:
        with self._lock:
            cached = self._engines.get(key)
        if cached is not None and cached[0] == version and self.clock() - cached[1] < self.max_age:
            return cached[2]
        engine = create()
        with self._lock:
            old = self._engines.get(key)
            self._engines[key] = (version, self.clock(), engine)
        if old is not None:
            old[2].dispose(close=False)  # connections still streaming finish, then close
        return engine

    def dispose(self, key: str) -> None:
        with self._lock:
            cached = self._engines.pop(key, None)
        if cached is not None:
            cached[2].dispose(close=False)

    def dispose_all(self) -> None:
        for key in list(self._engines):
            self.dispose(key)
