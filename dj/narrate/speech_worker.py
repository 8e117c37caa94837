"""One worker thread for slow speech engines (Kokoro), with a bounded queue.

A neural render costs about a CPU-second per second of speech. It runs here, on a single daemon
thread at a lower scheduling priority (Linux: nice +10 for this thread only), so it never takes
a core from the stream's renderers and never holds up the programme's preparation: callers hand
a job in and get a :class:`~concurrent.futures.Future` back at once. Jobs for the same key are
merged; past ``max_pending`` jobs new ones are refused (the caller airs its stand-in instead).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

logger = logging.getLogger(__name__)

MAX_PENDING = 64
NICE = 10


class SpeechWorker:
    def __init__(self, max_pending: int = MAX_PENDING, nice: int = NICE,
                 name: str = "dj-speech") -> None:
        self.max_pending = max_pending
        self.nice = nice
        self.name = name
        self._cond = threading.Condition()
        self._queue: deque[tuple[str, Callable[[], Any], Future[Any]]] = deque()
        self._pending: dict[str, Future[Any]] = {}
        self._thread: threading.Thread | None = None
        self._closed = False
        self.done = 0
        self.refused = 0
        self.cpu_s = 0.0  # CPU time the jobs took on this thread

    def submit(self, key: str, job: Callable[[], Any]) -> Future[Any] | None:
        """Queue ``job`` under ``key`` (or join the one already queued); None when refused."""
        with self._cond:
            if self._closed:
                return None
            existing = self._pending.get(key)
            if existing is not None:
                return existing
            if len(self._pending) >= self.max_pending:
                self.refused += 1
                return None
            future: Future[Any] = Future()
            self._pending[key] = future
            self._queue.append((key, job, future))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify()
            return future

    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is queued or running (tests, `dj say`); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        """Drop what is queued (the job running finishes); later submits are refused."""
        with self._cond:
            self._closed = True
            while self._queue:
                key, _, future = self._queue.popleft()
                future.cancel()
                self._pending.pop(key, None)
            self._cond.notify_all()

    def _lower_priority(self) -> None:
        try:  # on Linux a thread id is a valid PRIO_PROCESS target: only this thread is niced
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(),
                           min(19, os.getpriority(os.PRIO_PROCESS, 0) + self.nice))
        except (AttributeError, OSError) as exc:
            logger.debug("speech worker keeps its priority: %s", exc)

    def _run(self) -> None:
        self._lower_priority()
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                key, job, future = self._queue.popleft()
            start = time.thread_time()
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(job())
                    except BaseException as exc:  # handed to whoever waits on the future
                        future.set_exception(exc)
            finally:
                with self._cond:
                    self.cpu_s += time.thread_time() - start
                    self.done += 1
                    self._pending.pop(key, None)
                    self._cond.notify_all()
