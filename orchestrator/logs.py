"""Structured logs: JSON lines into the run directory, one event per line.

Secrets are redacted here, in one place (`redact`), for every log line and for the parts of a
drill that go into reports and plans: passwords in URLs (`http://user:pass@`) and in libpq conninfo
strings (`password=...`), secret-looking query parameters and headers, and the values of targets' `env`
and probes' `headers`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "***"
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/\s:@]*):([^/\s@]*)@")
_QUERY_SECRET = re.compile(
    r"(?i)([?&;](?:access_token|token|api[-_]?key|apikey|key|password|sslpassword|passwd|secret|sig|signature|auth)=)[^&;\s#\"']*"
)
_CONNINFO_PASSWORD = re.compile(r"(?i)(?:(?<=\s)|^)((?:ssl|pg)?password\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)")
"""A libpq conninfo's `password=...` (quoted or not), and PGPASSWORD=... in an argv or env string."""
_HEADER_SECRET = re.compile(r"(?i)\b(authorization:\s*(?:bearer|basic|token)?\s*|bearer\s+)[^\s\"',]+")
_SECRET_KEY = re.compile(
    r"(?i)^(.*[-_])?(password|passwd|secret|token|api[-_]?key|apikey|authorization|auth|cookie|credentials?)$"
)
_OPAQUE_MAPPINGS = {"env", "headers"}
"""Keys whose mapping values are all secret: a target's environment, a probe's headers."""


def redact(value: Any, key: str | None = None) -> Any:
    """A copy of `value` with secrets replaced by `***`; keys and structure kept, so it still reads."""
    if key is not None and _SECRET_KEY.match(key) and isinstance(value, str | bytes | int | float):
        return REDACTED
    if isinstance(value, str):
        text = _URL_PASSWORD.sub(lambda m: f"{m[1]}{m[2]}:{REDACTED}@", value)
        text = _QUERY_SECRET.sub(lambda m: f"{m[1]}{REDACTED}", text)
        text = _CONNINFO_PASSWORD.sub(lambda m: f"{m[1]}{REDACTED}", text)
        return _HEADER_SECRET.sub(lambda m: f"{m[1]}{REDACTED}", text)
    if isinstance(value, Mapping):
        if key is not None and key.lower() in _OPAQUE_MAPPINGS:
            return {k: REDACTED for k in value}
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    return value


def redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The structlog processor: every field of every event, after exceptions are formatted."""
    return {k: redact(v, k) for k, v in event.items()}


def log_to(stream: TextIO) -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def silence() -> None:
    """For commands that touch nothing (validate, plan, schema): no log file, no noise."""
    structlog.configure(
        processors=[structlog.processors.JSONRenderer()],
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )
