"""Logging: JSON or text lines, secrets redacted, and one structured line per request.

Redaction happens in a logging filter on the handler, so it covers every logger (ours, uvicorn's,
httpx's) and every message, however the key got into it.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

import orjson

from routerd.events import RequestFinished
from routerd.settings import Settings

# Things that look like credentials: OpenAI/Anthropic-style keys, bearer tokens, key= query params,
# and JSON/YAML fields named like keys.
_SECRET_PATTERNS = (
    re.compile(r"\b(sk-(?:ant-)?[A-Za-z0-9_\-]{6})[A-Za-z0-9_\-]+"),
    re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._\-~+/=]+"),
    re.compile(r"(?i)([?&](?:key|api_key|api-key|access_token)=)[^&\s\"']+"),
    re.compile(
        r"(?i)([\"']?(?:api[_-]?key|master_key|authorization|x-api-key|password)[\"']?\s*[:=]\s*[\"']?)[^\"',\s}]+"
    ),
)


def redact(text: str) -> str:
    """``text`` with anything that looks like a credential replaced by ``***``."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(r"\1***", text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra={"fields": {...}}`` adds structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


class JsonHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The daemon's JSON line handler (:func:`configure_logging`): a marker type, so that
    :class:`RequestLogger` knows when a record would reach it and nothing else."""


def configure_logging(settings: Settings) -> None:
    """Install one redacting handler on the root logger, in the configured format and level."""
    handler: logging.StreamHandler = (  # type: ignore[type-arg]
        JsonHandler(sys.stderr) if settings.log_format == "json" else logging.StreamHandler(sys.stderr)
    )
    handler.addFilter(RedactingFilter())
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # uvicorn writes access lines whenever its logger has a handler to reach (a worker process sets up
    # logging after uvicorn applied its own access_log switch): only when asked for
    logging.getLogger("uvicorn.access").propagate = settings.access_log


class RequestLogger:
    """Event subscriber writing one structured line per finished request."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("routerd.request")

    def __call__(self, event: object) -> None:
        if not isinstance(event, RequestFinished) or not self._log.isEnabledFor(logging.INFO):
            return
        fields = {
            "request_id": event.request_id,
            "endpoint": event.endpoint,
            "model": event.model,
            "group": event.group,
            "deployment": event.deployment_id,
            "provider": event.provider,
            "status": event.status,
            "stream": event.stream,
            "attempts": event.attempts,
            "retries": event.retries,
            "fallbacks": event.fallbacks,
            "latency_ms": round(event.latency * 1000, 3),
            "upstream_ms": round(event.upstream_latency * 1000, 3),
            "ttft_ms": round(event.ttft * 1000, 3) if event.ttft is not None else None,
            "prompt_tokens": event.prompt_tokens,
            "completion_tokens": event.completion_tokens,
            "cost_usd": event.cost,
            "error": event.error,
            "logged_at": round(time.time(), 3),
        }
        if event.estimated_tokens:
            fields["tokens_estimated"] = True
        if event.key_alias or event.team or event.end_user:
            fields.update(
                key_alias=event.key_alias or None, team=event.team or None, end_user=event.end_user or None
            )
        if event.cache is not None:
            fields["cache"] = event.cache
        if event.guardrails:
            # names and actions only: never what a guardrail matched
            fields["guardrails"] = [
                {"name": r.guardrail, "mode": r.mode, "action": r.action} for r in event.guardrails
            ]
        level = logging.INFO if event.status < 500 else logging.WARNING
        handler = _only_json_handler(self._log, level)
        if handler is None:
            self._log.log(level, "request", extra={"fields": fields})
            return
        # The line JsonFormatter would write for this record, without the record: logging's path
        # (LogRecord, handler chain, filter, formatter) cost ~20 us of a ~300 us request, once per
        # request. The message is the constant "request" (nothing for the filter to redact), and the
        # fields are the same dict either way.
        entry: dict[str, Any] = {
            "ts": round(time.time(), 6),
            "level": _LEVEL_NAMES[level],
            "logger": self._log.name,
            "msg": "request",
            **fields,
        }
        line = orjson.dumps(entry, default=str).decode() + "\n"
        try:
            with handler.lock:  # type: ignore[union-attr]  # StreamHandler always has its lock
                handler.stream.write(line)
                handler.stream.flush()
        except Exception:  # a closed or broken stream: logging's own path reports it without raising
            self._log.log(level, "request", extra={"fields": fields})


_LEVEL_NAMES = {logging.INFO: "info", logging.WARNING: "warning"}


def _only_json_handler(logger: logging.Logger, level: int) -> JsonHandler | None:
    """The daemon's JSON handler when a ``level`` record of ``logger`` would reach it and no other
    handler (nothing else configured on the way to the root logger); else None."""
    if logger.filters or logging.root.manager.disable >= level:
        return None
    current: logging.Logger | None = logger
    while current is not None and current is not logging.root:
        if current.handlers or not current.propagate:
            return None
        current = current.parent
    handlers = logging.root.handlers
    if len(handlers) != 1:
        return None
    handler = handlers[0]
    if (
        type(handler) is not JsonHandler
        or level < handler.level
        or type(handler.formatter) is not JsonFormatter
    ):
        return None
    if len(handler.filters) != 1 or type(handler.filters[0]) is not RedactingFilter:
        return None
    return handler
