"""Rendered transition windows on disk: what one serving process renders, the others (and the
next start) read instead of rendering it again.

A piece is stored as its MP3 frames under the hash of everything that decides them (the
window's signature, its place, the render settings); the frame index is read back from the
frames themselves. Writes go through a per-process temporary name, so two processes storing
the same piece never see half of it. The folder is held under a size: when it grows past it,
the pieces read or written least recently go first.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from pathlib import Path

import numpy as np

from dj.audio.encode import frame_offsets

logger = logging.getLogger(__name__)

PRUNE_EVERY = 256  # pieces written between two looks at the folder's size
SUFFIX = ".mp3"


def piece_name(key: tuple) -> str:
    """A file name for ``key`` (a tuple of ints, floats, strings, bytes and tuples of them, whose
    ``repr`` is the same in every process)."""
    return hashlib.sha256(repr(key).encode()).hexdigest()[:40] + SUFFIX


class WindowDisk:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._writes = 0
        self._lock = threading.Lock()
        self.loaded = 0
        self.stored = 0

    def load(self, key: tuple) -> tuple[bytes, np.ndarray] | None:
        path = self.directory / piece_name(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError:
            logger.warning("rendered transition %s unreadable", path.name, exc_info=True)
            return None
        offsets = frame_offsets(data)
        if len(offsets) < 2 or int(offsets[-1]) != len(data):
            logger.warning("rendered transition %s is damaged; rendering it again", path.name)
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used: pruned last
        self.loaded += 1
        return data, offsets

    def save(self, key: tuple, data: bytes) -> None:
        if self.max_bytes <= 0:
            return
        path = self.directory / piece_name(key)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError:
            logger.warning("could not keep a rendered transition on disk", exc_info=True)
            with contextlib.suppress(OSError):
                tmp.unlink()
            return
        self.stored += 1
        with self._lock:
            self._writes += 1
            due = self._writes % PRUNE_EVERY == 0
        if due:
            self.prune()

    def prune(self) -> int:
        """Remove the least recently used pieces until the folder is under its size; returns
        how many went."""
        try:
            stats = [(e.stat(), e.path)
                     for e in os.scandir(self.directory) if e.name.endswith(SUFFIX)]
        except OSError:
            return 0
        entries = [(st.st_mtime, st.st_size, path) for st, path in stats]
        total = sum(size for _, size, _ in entries)
        removed = 0
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            with contextlib.suppress(OSError):
                os.unlink(path)
                total -= size
                removed += 1
        return removed
