"""Structured logs: one JSON object per line (python-json-logger), carrying the service, region and current trace.

Every line of a process's log stream is JSON, whoever logs it: the services, the libraries, uvicorn (its access log
included, with the request's fields) and the start-up announcement (`announce_ready`), which a supervisor reads.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as LibraryJsonFormatter

from service_kit.settings import Settings
from service_kit.telemetry import current_span_id, current_trace_id

READY = "READY"
# uvicorn passes a copy of some messages with ANSI colour codes as `color_message`: never a field of ours.
_NOT_FIELDS = (*RESERVED_ATTRS, "color_message")
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class JsonFormatter(LibraryJsonFormatter):
    """ts, level, logger, msg, service, region, trace_id and span_id (inside a trace), then the record's extras."""

    def __init__(self, service: str, region_code: str) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger", "message": "msg"},
            static_fields={"service": service, "region": region_code},
            reserved_attrs=_NOT_FIELDS,
            timestamp="ts",
            json_ensure_ascii=False,
        )

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        if not log_data.get("trace_id"):
            trace_id = current_trace_id()
            if trace_id:
                log_data["trace_id"] = trace_id
                log_data["span_id"] = current_span_id()


class HttpAccessFields(logging.Filter):
    """uvicorn's access lines as fields (client, http.method, url.path, http.status_code), not only as text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, version, status = record.args
            record.__dict__.update(
                {
                    "client": str(client),
                    "http.method": str(method),
                    "url.path": str(path),
                    "http.version": str(version),
                    "http.status_code": status,
                }
            )
        return True


def _formatter(settings: Settings) -> logging.Formatter:
    if settings.log_format == "json":
        return JsonFormatter(settings.service, settings.region_code)
    return logging.Formatter(_TEXT_FORMAT)


def configure(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_formatter(settings))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(existing, HttpAccessFields) for existing in access.filters):
        access.addFilter(HttpAccessFields())


def announce_ready(settings: Settings, service: str, region_code: str, address: str, out: TextIO | None = None) -> None:
    """The line a supervisor or test waits for on stdout, once the process serves: a JSON log line (msg READY, with
    the address) in the json format, `READY <service> <region> <address>` in the text format."""
    out = sys.stdout if out is None else out
    if settings.log_format == "json":
        record = logging.makeLogRecord({"name": "carbon.ready", "levelname": "INFO", "levelno": logging.INFO})
        record.msg, record.address = READY, address
        line = JsonFormatter(service, region_code).format(record)
    else:
        line = f"{READY} {service} {region_code} {address}"
    print(line, file=out, flush=True)


def ready_address(line: str) -> str | None:
    """The address in a READY line of either format, or None for any other line."""
    line = line.strip()
    if line.startswith(READY + " "):
        return line.split()[-1]
    if line.startswith("{"):
        try:
            entry = json.loads(line)
        except ValueError:
            return None
        address = entry.get("address") if isinstance(entry, dict) and entry.get("msg") == READY else None
        return address if isinstance(address, str) else None
    return None
