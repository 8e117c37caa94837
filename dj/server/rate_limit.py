"""Writes and controls are rate-limited per token: a skip, a like or an artist's line costs the
server speech, database writes and recommender work, so one client cannot spend it for everyone.

A token bucket per caller: the id of the bearer token when one of the right form is sent (valid
or not: it is counted before it is checked), else the client's address.
Only ``POST`` under ``/api/`` is counted; streams and reads are not. Over the limit: 429 with
``Retry-After`` and a JSON message, before the handler runs, so nothing is written.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from aiohttp import web

from dj.auth import bearer_token
from dj.auth.tokens import TOKEN_FORMAT

MAX_CALLERS = 10_000  # buckets kept; the least recently seen caller is forgotten (a full bucket)


class RateLimiter:
    def __init__(self, per_minute: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at
        self.refused = 0

    def take(self, caller: str) -> float:
        """0 when ``caller`` may go on (one unit spent), else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        tokens, at = self._buckets.pop(caller, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[caller] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[caller] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
            self.refused += 1
        while len(self._buckets) > MAX_CALLERS:
            self._buckets.popitem(last=False)
        return wait


def caller_of(request: web.Request) -> str:
    token = bearer_token(request)
    if token is not None and TOKEN_FORMAT.fullmatch(token):
        # the id part of ``dj_<id>_<secret>``: the secret never becomes a key held in memory
        return "token:" + token.split("_")[1]
    return f"addr:{request.remote}"


RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)


@web.middleware
async def limit_writes(request: web.Request, handler):
    if request.method == "POST" and request.path.startswith("/api/"):
        wait = request.app[RATE_LIMITER].take(caller_of(request))
        if wait > 0:
            return web.json_response(
                {"error": f"too many requests: try again in {math.ceil(wait)} s"}, status=429,
                headers={"Retry-After": str(math.ceil(wait))},
            )
    return await handler(request)
