"""Table lists and descriptions, cached for `GATEWAY_CACHE_SECONDS`: in this process, and in
Redis when REDIS_URL is set so every worker shares them. Keys carry the database entry's
version, so an edit invalidates them at once."""
from __future__ import annotations

import json
import threading
import time

import redis

PREFIX = "bitrix-app:gateway:"


class CatalogCache:
    def __init__(self, seconds: float, redis_url: str | None = None, clock=time.monotonic):
        self.seconds = seconds
        self.clock = clock
        self._local: dict[str, tuple[float, object]] = {}
        self._lock = threading.Lock()
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=1) if redis_url else None

    def get(self, key: str):
        if self.seconds <= 0:
            return None
        with self._lock:
            entry = self._local.get(key)
        if entry is not None and entry[0] > self.clock():
            return entry[1]
        if self._redis is not None:
            try:
                raw = self._redis.get(PREFIX + key)
            except redis.RedisError:
                return None  # the cache is an optimisation; the database answers anyway
            if raw is not None:
                value = json.loads(raw)
                self._remember(key, value)
                return value
        return None

    def set(self, key: str, value) -> None:
        if self.seconds <= 0:
            return
        self._remember(key, value)
        if self._redis is not None:
            try:
                self._redis.set(PREFIX + key, json.dumps(value), ex=max(1, int(self.seconds)))
            except redis.RedisError:
                pass

    def _remember(self, key: str, value) -> None:
        with self._lock:
            if len(self._local) > 10_000:
                self._local.clear()
            self._local[key] = (self.clock() + self.seconds, value)
