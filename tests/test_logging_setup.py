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
