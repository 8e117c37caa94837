"""The HTTP server's log lines: the access log with stream keys hidden (a ``?key=`` in a stream
URL is a credential, and log files travel further than the keys they would otherwise hold), and
a malformed request (bad request line, a control byte in a header) told in one line instead of
aiohttp's traceback: it is the client's mistake, answered 400, not a fault of the server."""

from __future__ import annotations

import logging
import re

from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import BaseRequest, StreamResponse

_KEY = re.compile(r"(?<=[?&]key=)[^&]*")


def hide_keys(path_qs: str) -> str:
    return _KEY.sub("***", path_qs)


class KeyHidingAccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %d %d %.3fs "%s"',
            request.remote, request.method, hide_keys(request.path_qs),
            request.version.major, request.version.minor, response.status,
            response.body_length, time, request.headers.get("User-Agent", "-"),
        )


class OneLineParserErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            reason = (exc.message or type(exc).__name__).strip().splitlines()[0][:200]
            record.msg, record.args = "%s: malformed request (%s), answered %d", (
                record.getMessage(), reason, exc.code)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_parser_errors() -> None:
    """Install :class:`OneLineParserErrors` on aiohttp's server logger (once)."""
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, OneLineParserErrors) for f in server_log.filters):
        server_log.addFilter(OneLineParserErrors())
