"""One small connection pool per database entry and process, replaced when the entry changes
(its `version`) and disposed when it is deleted. Keyed by the entry's source key, which is never
reused (a database id can be, once its row is deleted)."""
from __future__ import annotations

import threading

from sqlalchemy.engine import Engine


class Engines:
    def __init__(self) -> None:
        self._engines: dict[str, tuple[int, Engine]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, version: int, create) -> Engine:
        with self._lock:
            cached = self._engines.get(key)
            if cached is not None and cached[0] == version:
                return cached[1]
        engine = create()
        with self._lock:
            old = self._engines.get(key)
            self._engines[key] = (version, engine)
        if old is not None:
            old[1].dispose()
        return engine

    def dispose(self, key: str) -> None:
        with self._lock:
            cached = self._engines.pop(key, None)
        if cached is not None:
            cached[1].dispose()

    def dispose_all(self) -> None:
        for key in list(self._engines):
            self.dispose(key)
