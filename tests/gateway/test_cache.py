"""Table lists and descriptions cached per process and, with REDIS_URL, across processes."""
from __future__ import annotations

import secrets

from bitrix_app.gateway.cache import CatalogCache

REDIS_URL = "redis://127.0.0.1:6379/0"


def test_values_expire_after_the_configured_time():
    now = [100.0]
    cache = CatalogCache(10, clock=lambda: now[0])
    cache.set("tables:k:1", [{"id": "x"}])
    assert cache.get("tables:k:1") == [{"id": "x"}]
    now[0] += 11
    assert cache.get("tables:k:1") is None


def test_a_zero_lifetime_turns_caching_off():
    cache = CatalogCache(0)
    cache.set("a", 1)
    assert cache.get("a") is None


def test_redis_shares_entries_between_processes():
    key = f"tables:{secrets.token_hex(8)}:1"
    writer, reader = CatalogCache(30, REDIS_URL), CatalogCache(30, REDIS_URL)
    writer.set(key, [{"id": "db1:orders"}])
    assert reader.get(key) == [{"id": "db1:orders"}]
    assert reader.get(key.replace(":1", ":2")) is None  # another version of the entry: not cached


def test_an_unreachable_redis_only_costs_the_cache():
    cache = CatalogCache(30, "redis://127.0.0.1:1/0")
    cache.set("a", 1)  # remembered locally, Redis error swallowed
    assert cache.get("a") == 1
    assert CatalogCache(30, "redis://127.0.0.1:1/0").get("a") is None
