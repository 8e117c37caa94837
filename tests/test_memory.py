"""dj.server.memory: malloc tuning on glibc, a no-op elsewhere or when turned off."""

from __future__ import annotations

import threading
from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import pytest

from dj.server import memory


def test_turned_off_starts_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJMEM_TUNING", "0")
    monkeypatch.delenv("DJMEM_REPORT_S", raising=False)
    before = {t.name for t in threading.enumerate()}
    assert memory.tune() is False
    assert {t.name for t in threading.enumerate()} == before


def test_not_glibc_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DJMEM_TUNING", raising=False)
    monkeypatch.delenv("DJMEM_REPORT_S", raising=False)
    monkeypatch.setattr(memory, "_glibc", lambda: None)
    assert memory.tune() is False


def test_heap_account_on_glibc() -> None:
    libc = memory._glibc()
    if libc is None:
        pytest.skip("not glibc")
    h = memory.heap(libc)
    if h is None:
        pytest.skip("glibc older than 2.33 (no mallinfo2)")
    assert h.used > 0 and h.free >= 0 and 0 <= h.mapped <= h.used
    assert libc.malloc_trim(0) in (0, 1)


def test_cache_bytes_counts_each_cache() -> None:
    voices = OrderedDict(a=np.zeros(1000, np.float32), b=np.zeros(500, np.float32))
    station = SimpleNamespace(bodies=SimpleNamespace(nbytes=10), pieces=SimpleNamespace(nbytes=20),
                              narrator=SimpleNamespace(cache=SimpleNamespace(_memory=voices)))
    assert memory.cache_bytes(station) == {"bodies": 10, "pieces": 20, "voice": 6000,
                                           "voice_n": 2}
    assert memory.cache_bytes(SimpleNamespace(narrator=None)) == {}
