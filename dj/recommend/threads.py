"""Pin BLAS to one thread for the whole process, once.

Model work runs on many executor threads at once; a multi-threaded BLAS under each of them
oversubscribes the cores, and implicit warns that its own parallel loops slow down badly.
Entering ``threadpool_limits`` per call costs about a millisecond and is not thread-safe (a
thread leaving the context restores the limit under another thread's feet), so dj pins once.
"""

from __future__ import annotations

import logging
import threading

from threadpoolctl import threadpool_info, threadpool_limits

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_pinned = False


def pin_blas_threads() -> None:
    """Limit every loaded BLAS to one thread for the rest of the process (idempotent)."""
    global _pinned
    if _pinned:
        return
    with _lock:
        if _pinned:
            return
        import implicit.cpu.als  # noqa: F401  (load every BLAS that model code will use)
        import scipy.linalg  # noqa: F401

        threadpool_limits(1, "blas")
        _pinned = True
        libs = [i.get("internal_api") for i in threadpool_info() if i.get("user_api") == "blas"]
        logger.debug("BLAS pinned to one thread: %s", libs)
