"""Logging into agora's log.

agora reads a plugin's stderr into its own log (.agora/agora.log): a line
that is an hclog JSON object keeps its level and key-value pairs, anything
else is logged at debug. serve() sends Python's logging (the root logger,
so the provider's libraries too) to stderr in that form.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
import traceback

log = logging.getLogger("agora_plugin")
"""The plugin's logger: log.info("message", extra={"key": value}) lands in
agora's log with its level and the extra keys."""

_LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn", logging.ERROR: "error",
           logging.CRITICAL: "error"}
# The attributes every LogRecord has; the others came from extra=.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class HclogHandler(logging.Handler):
    """Writes each record as one hclog JSON line."""

    def __init__(self, stream=None):
        super().__init__()
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = "trace" if record.levelno < logging.DEBUG else _LEVELS.get(record.levelno)
            if level is None:
                level = "error" if record.levelno > logging.ERROR else "warn" if record.levelno > logging.INFO else "info"
            line = {"@level": level, "@message": record.getMessage(),
                    "@timestamp": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(timespec="microseconds")}
            if record.name not in ("root", log.name):
                line["@module"] = record.name
            for k, v in vars(record).items():
                if k not in _STANDARD and not k.startswith("_"):
                    line[k] = v
            if record.exc_info:
                line["error"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
            (self.stream or sys.stderr).write(json.dumps(line, default=str) + "\n")
            (self.stream or sys.stderr).flush()
        except Exception:  # noqa: BLE001 - a log line must never break a request
            self.handleError(record)


def level_from_env() -> int:
    """The level of $AGORA_LOG_LEVEL, which a plugin inherits from agora
    (trace, debug, info, warn, error); info by default."""
    v = os.environ.get("AGORA_LOG_LEVEL", "").strip().lower()
    return {"trace": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
            "warning": logging.WARNING, "error": logging.ERROR}.get(v, logging.INFO)


def install() -> None:
    """Route the root logger to stderr as hclog JSON."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(HclogHandler())
    root.setLevel(level_from_env())
