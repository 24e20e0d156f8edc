"""A fake Bitrix24 for tests, benchmarks and the local demo: OAuth server, portal REST API, and
the portal acting as a client of our app, all on loopback over real HTTP.

    fake = FakeBitrix24(client_id="app.123", client_secret="secret", app_url="http://127.0.0.1:5001")
    fake.start()
    portal = fake.add_portal(domain="portal1.bitrix24.test")
"""
from .config import FakeConfig
from .server import FakeBitrix24

__all__ = ["FakeBitrix24", "FakeConfig"]
