"""The daemon's logs: one line per event, text or JSON, each naming its sync and run.

The sync and run id come from context variables set around a run; threads a destination
starts (which do not inherit them) fall back to the run in progress, since a daemon runs
one sync at a time. Every line goes through the secret redactor; rows, keys and field
values are never logged.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import Any

from activation.project.secrets import redact

log = logging.getLogger("activation.daemon")

_sync: ContextVar[str | None] = ContextVar("sync", default=None)
_run: ContextVar[str | None] = ContextVar("run_id", default=None)
_current: dict[str, str | None] = {"sync": None, "run_id": None}  # the run in progress
_current_lock = threading.Lock()


@contextmanager
def sync_context(sync: str) -> Iterator[None]:
    """Lines logged inside name `sync` (and, once `set_run` is called, its run)."""
    tokens = (_sync.set(sync), _run.set(None))
    with _current_lock:
        _current.update(sync=sync, run_id=None)
    try:
        yield
    finally:
        _sync.reset(tokens[0])
        _run.reset(tokens[1])
        with _current_lock:
            _current.update(sync=None, run_id=None)


def set_run(run_id: str) -> None:
    _run.set(run_id)
    with _current_lock:
        _current["run_id"] = run_id


def event(level: int, message: str, **fields: Any) -> None:
    """Log `message` with structured `fields` (shown as key=value, or JSON keys)."""
    log.log(level, message, extra={"fields": fields})


class _Context(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        sync, run = _sync.get(), _run.get()
        if sync is None:
            with _current_lock:
                sync, run = _current["sync"], _current["run_id"]
        record.sync, record.run_id = sync, run
        return True


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "sync": getattr(record, "sync", None),
            "run_id": getattr(record, "run_id", None),
        }
        data.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(data, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        where = "".join(f" {k}={v}" for k in ("sync", "run_id") if (v := getattr(record, k, None)))
        fields = "".join(f" {k}={_text(v)}" for k, v in (getattr(record, "fields", None) or {}).items() if v is not None)
        line = f"{_timestamp(record)} {record.levelname:<7}{where} {record.getMessage()}{fields}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return json.dumps(text) if (" " in text or not text) and isinstance(value, str) else text


def configure(*, json_logs: bool, level: str) -> None:
    """Send activation's logs (and warnings from libraries) to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_logs else TextFormatter())
    handler.addFilter(_Context())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("activation").setLevel(level.upper())
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # "Running job …" every slot is noise
