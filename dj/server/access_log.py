"""The access log, with stream keys hidden: a ``?key=`` in a stream URL is a credential, and
log files travel further than the keys they would otherwise hold."""

from __future__ import annotations

import re

from aiohttp.abc import AbstractAccessLogger
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
