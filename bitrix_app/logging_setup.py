"""Keep secrets out of logs, whatever level the operator picks.

urllib3 logs request lines at DEBUG, and a GET to the token endpoint carries the refresh token
and client secret in its query string; this filter masks such values wherever they appear.
"""
from __future__ import annotations

import logging
import re

SECRET_PARAMS = re.compile(
    r"((?:auth|access_token|refresh_token|client_secret|AUTH_ID|REFRESH_ID|APPLICATION_TOKEN|application_token|code)"
    r"(?:%5D|\])?=)[^&\s\"']+",
)


def redact(text: str) -> str:
    return SECRET_PARAMS.sub(r"\1***", text)


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def install_log_redaction() -> None:
    for name in ("urllib3.connectionpool", "werkzeug", "gunicorn.access", "authlib"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
