"""Worker threads the OS can tell apart: each is named for ``top -H`` and
``/proc/PID/task/TID/comm`` (a Python thread name is Python's alone), so an operator, and
bench/listeners.py, can see which pool spends the CPU."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

logger = logging.getLogger(__name__)

PR_SET_NAME = 15
OS_NAME_MAX = 15  # bytes the kernel keeps of a thread's name


def name_os_thread(name: str) -> None:
    """Name the calling thread for the OS (Linux; elsewhere a no-op)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(PR_SET_NAME, name.encode()[:OS_NAME_MAX], 0, 0, 0)
    except (OSError, AttributeError) as exc:
        logger.debug("thread keeps its OS name: %s", exc)


def _named() -> None:
    name_os_thread(threading.current_thread().name)


def named_pool(workers: int, prefix: str) -> ThreadPoolExecutor:
    """A thread pool whose threads carry ``prefix_N`` for the OS as well as for Python."""
    return ThreadPoolExecutor(workers, thread_name_prefix=prefix, initializer=_named)
