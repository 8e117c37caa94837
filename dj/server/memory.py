"""Keeping the serving process's memory flat on glibc.

A streaming server allocates and frees large numpy buffers (mix blocks, transition pieces, voice
renders, body temporaries) all the time, from several threads. With glibc's defaults that
memory is not given back to the system:

- every thread that mallocs can get an arena of its own (up to 8 per core), each holding its own
  free memory, and a freed chunk in the middle of a heap is kept, not returned;
- the mmap threshold is dynamic: once a large mmapped block is freed, the threshold rises to its
  size (up to 32 MiB), so later buffers of that size come from the arenas instead and are kept
  there when freed (numpy also asks for huge pages on arrays of 4 MiB and more, so such a part
  of a heap stays resident in 2 MiB pages).

Measured with ``bench/soak.py`` (20 listeners, 30 min): building track bodies while serving left
about 450 MB free but kept in the arenas for good (RSS 780 MB against 310 MB tuned), and with
bodies made beforehand the kept free memory grew by about 1 MB/min (RSS +2.2 MB/min against
+1.3 MB/min tuned, the rest of it the voice and transition caches filling toward their bounds).

:func:`tune` caps the arenas, pins the mmap threshold (large buffers are mapped and unmapped,
so freeing one returns it) and starts a daemon thread that calls ``malloc_trim(0)`` now and then
to hand back whole free pages inside the arenas. Elsewhere than glibc it does nothing.

Environment (not ``DJ_*``: those are configuration keys):

- ``DJMEM_TUNING=0`` leaves malloc as it is (for comparisons, e.g. ``bench/soak.py --no-tuning``);
- ``DJMEM_REPORT_S=N`` logs the heap and cache levels every N seconds (``bench/soak.py`` reads
  these lines).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# mallopt parameters, from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

ARENA_MAX = 2  # the event loop and the worker threads share two arenas, not 8 per core
# buffers from here up get a mapping of their own, unmapped when freed (mix pieces, voice
# renders, body temporaries); glibc does not raise a threshold that was set
MMAP_THRESHOLD = 256 << 10
TRIM_INTERVAL_S = 60.0
REPORT_PREFIX = "memory:"


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (it has the malloc tuning calls), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


@dataclass(frozen=True, slots=True)
class Heap:
    """malloc's own account, in bytes (all arenas)."""

    used: int  # handed out and not freed (arena chunks plus mmapped blocks)
    free: int  # free inside the arenas: kept by malloc, part of RSS where touched
    mapped: int  # in blocks mmapped on their own (included in ``used``)


def heap(libc: ctypes.CDLL | None) -> Heap | None:
    fn = getattr(libc, "mallinfo2", None)  # glibc 2.33+
    if fn is None:
        return None
    fn.restype = _MallInfo2
    info = fn()
    return Heap(used=info.uordblks + info.hblkhd, free=info.fordblks, mapped=info.hblkhd)


def rss_bytes() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def cache_bytes(station: Any) -> dict[str, int]:
    """What the station's bounded caches hold: track bodies, transition pieces, voice renders."""
    out: dict[str, int] = {}
    bodies = getattr(station, "bodies", None)
    pieces = getattr(station, "pieces", None)
    if bodies is not None:
        out["bodies"] = int(bodies.nbytes)
    if pieces is not None:
        out["pieces"] = int(pieces.nbytes)
    voices = getattr(getattr(getattr(station, "narrator", None), "cache", None), "_memory", None)
    if voices is not None:
        try:
            out["voice"] = sum(int(a.nbytes) for a in list(voices.values()))
            out["voice_n"] = len(voices)
        except RuntimeError:  # changed while counted: skip this once
            pass
    return out


def _report(libc: ctypes.CDLL | None, station: Any, trimmed_ms: float | None) -> None:
    mb = 1 / 2**20
    parts = [f"rss={rss_bytes() * mb:.1f}"]
    h = heap(libc)
    if h is not None:
        parts += [f"heap_used={h.used * mb:.1f}", f"heap_free={h.free * mb:.1f}",
                  f"mmapped={h.mapped * mb:.1f}"]
    for name, n in cache_bytes(station).items():
        parts.append(f"{name}={n}" if name.endswith("_n") else f"{name}={n * mb:.1f}")
    if trimmed_ms is not None:
        parts.append(f"trim_ms={trimmed_ms:.1f}")
    logger.info("%s %s", REPORT_PREFIX, " ".join(parts))


def _upkeep(libc: ctypes.CDLL | None, station: Any, trim: bool, report_s: float | None) -> None:
    """The daemon thread: trim every TRIM_INTERVAL_S, report every ``report_s``. Off the event
    loop; malloc_trim runs without the GIL (ctypes releases it)."""
    every = min(x for x in (TRIM_INTERVAL_S if trim else None, report_s) if x is not None)
    next_trim = time.monotonic() + TRIM_INTERVAL_S
    while True:
        time.sleep(every)
        took: float | None = None
        if trim and libc is not None and time.monotonic() >= next_trim:
            t0 = time.perf_counter()
            libc.malloc_trim(0)
            took = (time.perf_counter() - t0) * 1000
            next_trim += TRIM_INTERVAL_S
        if report_s is not None:
            _report(libc, station, took)


def _env_seconds(name: str) -> float | None:
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return None
    return value if value > 0 else None


def tune(station: Any = None) -> bool:
    """Cap malloc's arenas, pin its mmap threshold and start the trimming thread (glibc only;
    call early, before the worker threads start). True when malloc was tuned."""
    libc = _glibc()
    enabled = libc is not None and os.environ.get("DJMEM_TUNING", "1") != "0"
    if enabled and libc is not None:
        libc.mallopt(M_ARENA_MAX, ARENA_MAX)
        # a pinned mmap threshold also stops glibc raising the trim threshold with it
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        libc.mallopt(M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD)
    report_s = _env_seconds("DJMEM_REPORT_S")
    if enabled or report_s is not None:
        threading.Thread(target=_upkeep, args=(libc, station, enabled, report_s),
                         name="dj-memory", daemon=True).start()
    if enabled:
        logger.info("malloc tuned: %d arenas, mmap threshold %d KiB, trimmed every %g s",
                    ARENA_MAX, MMAP_THRESHOLD >> 10, TRIM_INTERVAL_S)
    return enabled
