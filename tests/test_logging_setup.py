import logging

from bitrix_app.logging_setup import RedactSecrets, install_log_redaction, redact


def test_redact_masks_secret_parameters():
    line = 'GET /oauth/token/?grant_type=refresh_token&refresh_token=abc123&client_secret=s3cr3t&client_id=app HTTP/1.1'
    cleaned = redact(line)
    assert "abc123" not in cleaned and "s3cr3t" not in cleaned
    assert "client_id=app" in cleaned and "grant_type=refresh_token" in cleaned
    assert "auth%5Bapplication_token%5D=***" in redact("auth%5Bapplication_token%5D=tok")


def test_a_bitrix_built_without_flask_installs_the_filter(app_config):
    logger = logging.getLogger("urllib3.connectionpool")
    for existing in [f for f in logger.filters if isinstance(f, RedactSecrets)]:
        logger.removeFilter(existing)

    from bitrix_app.services.bitrix import Bitrix
    from bitrix_app.services.database import make_engine, make_session_factory
    from bitrix_app.services.settings import BitrixSettings

    Bitrix(BitrixSettings(client_id="c", client_secret="s", encryption_keys=tuple(app_config["TOKEN_ENCRYPTION_KEYS"])),
           make_session_factory(make_engine("sqlite://")))
    assert any(isinstance(f, RedactSecrets) for f in logger.filters)
    install_log_redaction()  # idempotent
    assert sum(isinstance(f, RedactSecrets) for f in logger.filters) == 1


# --- untrusted strings are logged escaped (issue 12) -----------------------------------------------

def test_escaped_keeps_a_forged_line_on_one_line():
    from bitrix_app.logging_setup import escaped

    forged = "ONAPPUNINSTALL\n2026-01-01 INFO portal abc uninstalled\r\x00\u2028"
    assert escaped(forged) == "ONAPPUNINSTALL\\n2026-01-01 INFO portal abc uninstalled\\r\\x00\\u2028"


def test_escaped_cannot_be_mistaken_for_another_text():
    from bitrix_app.logging_setup import escaped

    assert escaped("a\\nb") != escaped("a\nb")
    assert escaped("Портал ü") == "Портал ü"  # readable text stays as it is


def test_escaped_shortens_long_values():
    from bitrix_app.logging_setup import escaped

    assert escaped("x" * 1000, limit=10) == "x" * 10 + "..."
    assert escaped(None) == "None"
