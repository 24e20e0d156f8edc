"""Connection pools per database entry: reused, replaced on a new version or with age, disposed."""
from __future__ import annotations

from bitrix_app.gateway.engines import Engines


class FakeEngine:
    def __init__(self):
        self.disposed = False

    def dispose(self, close=True):
        self.disposed = True


def test_the_same_version_reuses_the_pool_and_a_new_one_replaces_it():
    engines = Engines()
    first = engines.get("key", 1, FakeEngine)
    assert engines.get("key", 1, FakeEngine) is first
    second = engines.get("key", 2, FakeEngine)
    assert second is not first and first.disposed


def test_old_pools_are_made_again_so_the_address_is_checked_again():
    now = [0.0]
    engines = Engines(max_age=60, clock=lambda: now[0])
    first = engines.get("key", 1, FakeEngine)
    now[0] = 61
    assert engines.get("key", 1, FakeEngine) is not first


def test_dispose_forgets_the_entry():
    engines = Engines()
    first = engines.get("key", 1, FakeEngine)
    engines.dispose("key")
    assert first.disposed and engines.get("key", 1, FakeEngine) is not first
