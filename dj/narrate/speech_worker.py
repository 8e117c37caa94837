"""A small pool of worker threads for slow speech engines (Kokoro), with a bounded queue.

A neural render costs about a CPU-second per second of speech. It runs here, on ``threads``
daemon threads (``[narrate] speech_threads``) at the lowest scheduling priority (Linux: SCHED_IDLE
for these threads only, else nice +10), so it only takes CPU the stream's renderers leave idle and
never holds up
the programme's preparation: callers hand a job in and get a
:class:`~concurrent.futures.Future` back at once. Jobs are taken in order; jobs for the same key
are merged; past ``max_pending`` jobs new ones are refused (the caller airs its stand-in).
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

from dj.threads import name_os_thread

logger = logging.getLogger(__name__)

MAX_PENDING = 64
NICE = 10


class SpeechWorker:
    def __init__(self, max_pending: int = MAX_PENDING, nice: int = NICE,
                 name: str = "dj-speech", threads: int = 1) -> None:
        self.max_pending = max_pending
        self.nice = nice
        self.name = name
        self.threads = max(1, threads)
        self._cond = threading.Condition()
        self._queue: deque[tuple[str, Callable[[], Any], Future[Any]]] = deque()
        self._pending: dict[str, Future[Any]] = {}
        self._workers: list[threading.Thread] = []
        self._busy = 0  # jobs running now
        self._closed = False
        self.done = 0
        self.refused = 0
        self.cpu_s = 0.0  # CPU time the jobs took, on all the threads

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
            # a thread more only while the ones there are all busy: idle, the pool is one thread
            if len(self._workers) < self.threads and self._busy + len(self._queue) > len(
                    self._workers):
                worker = threading.Thread(target=self._run, daemon=True,
                                          name=f"{self.name}-{len(self._workers)}")
                self._workers.append(worker)
                worker.start()
            self._cond.notify()
            return future

    def pending(self) -> int:
        """Jobs queued or running (the queue depth on /healthz and /metrics)."""
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
        tid = threading.get_native_id()  # on Linux a thread id names only this thread
        try:
            # SCHED_IDLE: the thread runs only on CPU nothing else wants, so speech never
            # takes time from the streams' renders however many speech threads there are
            # (a niced thread still gets about a tenth of a busy core)
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
            return
        except (AttributeError, OSError) as exc:
            logger.debug("speech worker is not SCHED_IDLE (%s); niced instead", exc)
        try:
            os.setpriority(os.PRIO_PROCESS, tid,
                           min(19, os.getpriority(os.PRIO_PROCESS, 0) + self.nice))
        except (AttributeError, OSError) as exc:
            logger.debug("speech worker keeps its priority: %s", exc)

    def _run(self) -> None:
        self._lower_priority()
        name_os_thread("dj-speech")
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                key, job, future = self._queue.popleft()
                self._busy += 1
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
                    self._busy -= 1
                    self._pending.pop(key, None)
                    self._cond.notify_all()
