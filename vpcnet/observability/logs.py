"""One structured-logging setup for every vpcnet process: JSON lines on stderr.

``configure_logging(component, level)`` routes both structlog loggers and the standard
library's (Celery, the agent's modules, libraries) through one handler, so every line is
one JSON object with ``timestamp``, ``level``, ``logger``, ``event``, the process-wide
static fields (``component``, and ``node`` in the agent) and whatever is bound in the
current context (``structlog.contextvars``): ``task`` / ``task_id`` / ``node`` in a
Celery task, ``container`` / ``ifname`` / ``pod`` during a CNI request.

Secrets never reach the output: every string value has the password of any
``scheme://user:password@host`` URL masked, and values of keys that name a secret are
replaced, whatever the caller passed.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import IO, Any

import structlog
from structlog.types import EventDict, Processor

# user:password@ in any URL (redis://, rediss://, amqp://, http://...).
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)[^@\s]+@")
_SECRET_KEYS = frozenset(
    {"password", "passwd", "secret", "aws_secret_access_key", "authorization", "api_key"}
)
MASK = "***"
# Libraries whose DEBUG output drowns vpcnet's own.
_NOISY = ("pyroute2", "asyncio", "urllib3", "botocore", "kubernetes", "kombu", "amqp")


def mask_secrets(text: str) -> str:
    """``redis://user:pw@host`` -> ``redis://user:***@host`` (anywhere in ``text``)."""
    if "://" not in text:
        return text
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}@", text)


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, Mapping):
        return {k: MASK if _is_secret(k) else _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def _is_secret(key: object) -> bool:
    return isinstance(key, str) and key.lower() in _SECRET_KEYS


def redact_secrets(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask URL passwords and secret-named keys in every value."""
    for key, value in list(event_dict.items()):
        event_dict[key] = MASK if _is_secret(key) else _redact(value)
    return event_dict


class _Static:
    """Adds fields that hold for the whole process (component, node), unless bound."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        self._fields = dict(fields)

    def __call__(self, _logger: Any, _method: str, event_dict: EventDict) -> EventDict:
        for key, value in self._fields.items():
            event_dict.setdefault(key, value)
        return event_dict


def _drop_color_message(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    # Uvicorn-style duplicates and Celery's "data" blob are noise in JSON.
    event_dict.pop("color_message", None)
    return event_dict


def _drop_unasked_traceback(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    # Celery puts a task's traceback in its "data" blob whatever its log policy says; it
    # asks for one (exc_info) only for unexpected errors, not for a task's ``throws``.
    data = event_dict.get("data")
    if "exc_info" not in event_dict and isinstance(data, dict) and "traceback" in data:
        event_dict["data"] = {k: v for k, v in data.items() if k != "traceback"}
    return event_dict


def _level_number(level: str | int) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelNamesMapping().get(level.upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}")
    return number


def configure_logging(
    component: str,
    level: str | int = "info",
    *,
    stream: IO[str] | None = None,
    static: Mapping[str, str] | None = None,
) -> logging.Handler:
    """JSON logs for the process; returns the one root handler (tests swap its stream).

    ``static`` fields (e.g. ``{"node": "ip-10-0-0-1"}``) go on every line; fields bound
    with ``structlog.contextvars`` are added per context (thread / task / request).
    Safe to call again: the previous vpcnet handler is replaced, not stacked.
    """
    fields: MutableMapping[str, str] = {"component": component}
    fields.update(static or {})
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _Static(fields),
    ]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a logger first used before this call must still follow it.
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        # Records from the standard library (Celery, the agent, libraries) get the same
        # fields; ``extra={...}`` of a stdlib call becomes fields too.
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _drop_color_message,
            _drop_unasked_traceback,
            structlog.processors.format_exc_info,
            redact_secrets,
            structlog.processors.JSONRenderer(sort_keys=True, default=str),
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    handler.set_name("vpcnet-json")
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)  # one line per event, whoever configured before us
    root.addHandler(handler)
    number = _level_number(level)
    root.setLevel(number)
    for name in _NOISY:
        logging.getLogger(name).setLevel(max(number, logging.WARNING))
    logging.captureWarnings(True)
    return handler


__all__ = ["MASK", "configure_logging", "mask_secrets", "redact_secrets"]
