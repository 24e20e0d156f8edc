"""Keep secrets out of logs, whatever level the operator picks, and forged lines out of them.

urllib3 logs request lines at DEBUG, and a GET to the token endpoint carries the refresh token
and client secret in its query string; this filter masks such values wherever they appear.
Strings from outside (an event's name, a field) go into a log line through `escaped`.
"""
from __future__ import annotations

import logging
import re

SECRET_PARAMS = re.compile(
    r"((?:auth|access_token|refresh_token|client_secret|AUTH_ID|REFRESH_ID|APPLICATION_TOKEN|application_token|code)"
    r"(?:%5D|\])?=)[^&\s\"']+",
)


# Control characters (a newline starts a forged log line), Unicode line separators, lone
# surrogates, and the backslash itself, so that an escaped text cannot pass for another one.
UNSAFE_IN_LOGS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\\]")
ESCAPED_LENGTH = 200


def escaped(value, limit: int = ESCAPED_LENGTH) -> str:
    """`value` as one printable line: unsafe characters as escapes (\\n, \\x00), at most `limit` characters."""
    text = str(value)
    shortened = text[:limit] + ("..." if len(text) > limit else "")
    return UNSAFE_IN_LOGS.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), shortened)


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
