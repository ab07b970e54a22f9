"""Structured logs: every line written while the outbox works on operations carries their ids.

The outbox worker enters :func:`operations` around each step of an operation's path (claim,
sign, broadcast, receipt, revert isolation, recovery); :class:`ContextFilter` copies the ids
onto every log record made inside, whichever module logs it (the sender's fee bumps, the
funder's top-ups). ``ALLIANCE_LOG_FORMAT=json`` writes one JSON object a line (time, level,
logger, message, ``operation_ids``) for a log shipper; ``text`` (the default) appends
``ops=<ids>`` to lines that have them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

_OPERATION_IDS: ContextVar[tuple[str, ...]] = ContextVar("operation_ids", default=())


@contextmanager
def operations(ids: Iterable[str]) -> Iterator[None]:
    """Log records made inside carry ``ids`` (added to any ids already in context)."""
    token = _OPERATION_IDS.set((*_OPERATION_IDS.get(), *ids))
    try:
        yield
    finally:
        _OPERATION_IDS.reset(token)


def current_operations() -> tuple[str, ...]:
    return _OPERATION_IDS.get()


class ContextFilter(logging.Filter):
    """Puts the operation ids in context on each record (``record.operation_ids``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.operation_ids = list(_OPERATION_IDS.get())
        return True


class TextFormatter(logging.Formatter):
    """``LEVEL logger: message ops=<id,id>`` (the ids only when there are some)."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = getattr(record, "operation_ids", None)
        return f"{line} ops={','.join(ids)}" if ids else line


class JsonFormatter(logging.Formatter):
    """One JSON object a line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
            "operation_ids": list(getattr(record, "operation_ids", ()) or ()),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, separators=(",", ":"))


def configure(fmt: str = "text", level: int = logging.INFO) -> None:
    """Log to stderr in ``fmt`` ("text" or "json"), with operation ids on every line."""
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
