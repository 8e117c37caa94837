"""espeak-ng in-process, from the ``espeakng-loader`` wheel (no system package needed).

espeak-ng keeps global state and is not thread-safe, so every call in the process goes through one
dedicated worker thread, shared by all :class:`EspeakEngine` instances.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from dj.narrate.engines.base import SpeechError

if TYPE_CHECKING:
    from dj.narrate.persona import VoiceParams

logger = logging.getLogger(__name__)

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _PITCH, _RANGE = 1, 3, 4
_TIMEOUT_S = 60.0
_MAX_CHARS = 1000

_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Worker:
    """Owns the library and the single thread that may touch it."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="espeak")
        self._lib: Any = None
        self._sample_rate = 0
        self._error = ""
        self._chunks: list[np.ndarray] = []
        self._callback: Any = None  # keep a reference: ctypes frees it otherwise

    def _init(self) -> None:
        if self._lib is not None or self._error:
            return
        try:
            import espeakng_loader

            lib = ctypes.cdll.LoadLibrary(espeakng_loader.get_library_path())
            data = espeakng_loader.get_data_path().encode()
            rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0)
            if rate <= 0:
                raise OSError(f"espeak_Initialize returned {rate}")
        except (ImportError, OSError, AttributeError) as exc:
            self._error = f"espeak-ng could not be loaded: {exc}"
            logger.error(self._error)
            return

        def collect(wav: Any, n: int, _events: Any) -> int:
            if n > 0 and wav:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        self._callback = _CALLBACK(collect)
        lib.espeak_SetSynthCallback(self._callback)
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        self._lib = lib
        self._sample_rate = rate

    def _available(self) -> tuple[bool, str]:
        self._init()
        return (self._lib is not None, self._error)

    def _synth(self, text: str, voice: str, rate: int, pitch: int,
               range_: int) -> tuple[np.ndarray, int]:
        self._init()
        if self._lib is None:
            raise SpeechError(self._error)
        lib = self._lib
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise SpeechError(f"espeak-ng has no voice {voice!r}")
        lib.espeak_SetParameter(_RATE, rate, 0)
        lib.espeak_SetParameter(_PITCH, pitch, 0)
        lib.espeak_SetParameter(_RANGE, range_, 0)
        self._chunks = []
        data = text.encode("utf-8")
        status = lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                  None, None)
        lib.espeak_Synchronize()
        chunks, self._chunks = self._chunks, []
        if status != 0:
            raise SpeechError(f"espeak_Synth failed with status {status}")
        if not chunks:
            raise SpeechError("espeak-ng produced no audio")
        audio = np.concatenate(chunks).astype(np.float32) / 32768.0
        return audio, self._sample_rate

    def call(self, fn: Any, *args: Any) -> Any:
        return self._executor.submit(fn, *args).result(timeout=_TIMEOUT_S)


_worker: _Worker | None = None
_worker_lock = threading.Lock()


def _shared_worker() -> _Worker:
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = _Worker()
        return _worker


def _clean(text: str) -> str:
    """Printable text only: control characters could be read as espeak commands."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return cleaned[:_MAX_CHARS]


class EspeakEngine:
    name = "espeak"

    def __init__(self) -> None:
        self._worker = _shared_worker()

    def available(self) -> tuple[bool, str]:
        result: tuple[bool, str] = self._worker.call(self._worker._available)
        return result

    def synthesize(self, text: str, voice: VoiceParams) -> tuple[np.ndarray, int]:
        text = _clean(text)
        if not text:
            raise SpeechError("nothing to say")
        result: tuple[np.ndarray, int] = self._worker.call(
            self._worker._synth, text, voice.voice, voice.rate_wpm, voice.pitch, voice.range
        )
        return result
