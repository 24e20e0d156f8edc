"""Switches of the fake Bitrix24. Every field can be changed at runtime (``fake.config.x = ...``)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FakeConfig:
    # Leaky bucket per portal and client IP (Bitrix24 cloud: 2/s and 50; Enterprise 5/s and 250).
    rate_limit: bool = True
    rate_per_second: float = 2.0
    burst: int = 50
    enterprise_rate_per_second: float = 5.0
    enterprise_burst: int = 250

    # Authorization server.
    access_ttl: int = 3600
    refresh_ttl: int = 180 * 86400
    auth_code_ttl: int = 30
    invalid_grant_status: int = 400
    invalid_client_status: int = 401
    payment_required_status: int = 402
    token_response_legacy: bool = False  # older format: no `expires`, no `user_id`
    refresh_latency: float = 0.0  # seconds spent inside a refresh grant (widens race windows)

    # Calls from the portal to connector endpoints.
    url_check_timeout: float = 10.0  # the real module waits 250 s
    allow_local_connections: bool = True  # False reproduces the cloud refusing private addresses
    # Seconds each urlCheck call takes on top of the real call, spent on the fake's clock (advanced,
    # not slept), so a slow connector shows in `time` blocks and in the request time limit at once.
    url_check_delay: float = 0.0

    # The portal as the Analytics hub and BI Builder (bi_builder.py).
    bi_timeout: float = 30.0  # connect and idle timeout of table and data calls (real: 250 s and 60 s)
    preview_cache_seconds: float = 0  # real: 3600, empty previews after a failure included; 0 = off
    short_range_start: bool = False  # before module 26.250.0 a date range started SHORT, without time

    # Portal version switches for biconnector.
    support_mapping: bool = True
    source_code: bool = True

    # App lifecycle and events.
    handlers_removed_before_update_event: bool = False
    update_event_refresh_token: bool = True  # whether ONAPPUPDATE carries auth[refresh_token] (unconfirmed)
    install_event_on_finish: bool = True  # installFinish delivers ONAPPINSTALL to a bound handler
    event_timeout: float = 10.0

    # REST transport.
    # The cloud's total time for one REST request (60 s), on the fake's clock; None: no limit. A request
    # over it gets the front end's HTML 504; a batch runs no further command once it is used up, while
    # the commands that ran have landed: the caller cannot tell which.
    rest_time_limit: float | None = None
    bitrix_json_escaping: bool = False  # "\u0022", "\/" ... exactly as PHP's Json::encode writes
    docs_statuses: bool = False  # insufficient_scope 403 (docs) instead of 401 (module code)
    # False (the module code): >50 commands and a nested batch get per-command entries in
    # result_error with HTTP 200; True: the docs' top-level 400 / 405.
    batch_errors_top_level: bool = False
