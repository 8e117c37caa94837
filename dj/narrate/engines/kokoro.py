"""Kokoro-82M in-process on the CPU (``kokoro-onnx`` on onnxruntime), the station's neural voice.

Only files installed and checksummed by :mod:`dj.narrate.voice_install` are read; nothing is ever
downloaded here. Without them (or without ``kokoro-onnx``) :meth:`KokoroEngine.available` says why
and the narrator speaks with espeak-ng instead.

onnxruntime runs with one intra-op and one inter-op thread: the machine's cores belong to the
stream's renderers, and speech is rendered ahead of time, so latency does not matter but CPU
does (about 1 CPU-second per second of speech). Loading and the phonemizer (espeak-ng, not
thread-safe) are serialised by a lock; the model itself runs outside it (an onnxruntime session
may run on several threads at once), so each of the narrator's speech threads renders a line.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pedalboard

from dj.narrate.engines.base import SpeechError
from dj.narrate.voice_install import (
    MODEL_SHA256,
    VOICE_SHA256,
    VOICE_SHAPE,
    VoiceFiles,
    check_model,
    check_pack,
)

if TYPE_CHECKING:
    from dj.narrate.persona import VoiceParams

logger = logging.getLogger(__name__)

_MAX_CHARS = 1000
SAMPLE_RATE = 24_000
DEEMPHASIS_HZ, DEEMPHASIS_DB = 6000.0, -6.0  # see deemphasis()
ENGINE_VERSION = 1  # part of every cache key: a change to what this engine outputs re-renders


def engine_id(voice: VoiceParams) -> str:
    """What identifies this engine's output for a voice, for cache keys: model and pack hashes."""
    pack = VOICE_SHA256.get(voice.kokoro_voice or "", "")
    return (f"kokoro{ENGINE_VERSION}:{MODEL_SHA256[:12]}:{pack[:12]}:{voice.kokoro_voice}:"
            f"{voice.speed}")


def language_of(pack: str) -> str:
    """Kokoro voice names start with their language: a = American, b = British English."""
    return "en-gb" if pack.startswith("b") else "en-us"


_checked: dict[Path, tuple[tuple[int, int, int] | None, str]] = {}
_checked_lock = threading.Lock()


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class KokoroEngine:
    name = "kokoro"

    def __init__(self, directory: Path) -> None:
        self.files = VoiceFiles(directory)
        self._lock = threading.Lock()
        self._model: Any = None
        self._styles: dict[str, np.ndarray] = {}
        self.loads = 0  # how often the model was loaded (tests, and the log)

    # -- availability ---------------------------------------------------------------------
    def _verified(self, path: Path, check: Any) -> str:
        """'' when the file passed its checksum; re-hashed only when it changed on disk (the
        result is shared by every engine in the process: hashing the model takes ~0.3 s)."""
        key = _stat_key(path)
        with _checked_lock:
            seen = _checked.get(path)
            if seen is not None and seen[0] == key and key is not None:
                return seen[1]
        reason = check(path)
        with _checked_lock:
            _checked[path] = (key, reason)
        return reason

    def available(self, voice: VoiceParams | None = None) -> tuple[bool, str]:
        """Whether the installed files verify (re-hashed only when they change on disk) and
        kokoro-onnx imports; if not, why."""
        reason = self._verified(self.files.model, check_model)
        if reason:
            return False, f"{reason}; run `dj voice install`"
        if voice is not None:
            if not voice.kokoro_voice:
                return False, "the persona names no Kokoro voice ([voice] kokoro = ...)"
            name = voice.kokoro_voice
            reason = self._verified(self.files.pack(name), lambda p: check_pack(p, name))
            if reason:
                return False, f"{reason}; run `dj voice install`"
        try:
            import kokoro_onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except Exception as exc:  # ImportError, or a broken native library
            return False, f"kokoro-onnx is not importable ({exc})"
        return True, ""

    # -- loading --------------------------------------------------------------------------
    def _load(self) -> Any:
        if self._model is not None:
            return self._model
        import onnxruntime as ort
        from kokoro_onnx import Kokoro
        from kokoro_onnx.config import EspeakConfig

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        options.log_severity_level = 3
        session = ort.InferenceSession(str(self.files.model), sess_options=options,
                                       providers=["CPUExecutionProvider"])
        import espeakng_loader

        # the phonemizer uses the espeak-ng of the espeakng-loader wheel, as espeak.py does
        espeak = EspeakConfig(lib_path=espeakng_loader.get_library_path(),
                              data_path=espeakng_loader.get_data_path())
        # kokoro-onnx insists on a voices file; the style arrays are passed with each call
        # instead (read from the checksummed packs), so it gets a placeholder
        with tempfile.TemporaryDirectory(prefix="dj-kokoro-") as tmp:
            placeholder = Path(tmp) / "voices.npy"
            np.save(placeholder, np.zeros((1, *VOICE_SHAPE[1:]), np.float32))
            self._model = Kokoro.from_session(session, str(placeholder), espeak_config=espeak)
        # phonemizer warns on every line whose punctuation it keeps ("words count mismatch"):
        # harmless, and it would fill the station's log
        logging.getLogger("phonemizer").setLevel(logging.ERROR)
        self.loads += 1
        logger.info("Kokoro-82M loaded from %s (1 onnxruntime thread)", self.files.model)
        return self._model

    def _style(self, name: str) -> np.ndarray:
        style = self._styles.get(name)
        if style is None:
            raw = np.fromfile(self.files.pack(name), dtype="<f4")
            style = raw.reshape(VOICE_SHAPE).astype(np.float32)
            self._styles[name] = style
        return style

    def unload(self) -> None:
        with self._lock:
            self._model = None
            self._styles.clear()

    # -- speaking -------------------------------------------------------------------------
    def synthesize(self, text: str, voice: VoiceParams) -> tuple[np.ndarray, int]:
        text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
        text = text[:_MAX_CHARS]
        if not text:
            raise SpeechError("nothing to say")
        with self._lock:
            ok, reason = self.available(voice)
            if not ok:
                # the files went away or changed: let go of what was loaded from them
                self._model = None
                self._styles.clear()
                raise SpeechError(reason)
            assert voice.kokoro_voice is not None
            lang = language_of(voice.kokoro_voice)
            try:
                model = self._load()
                style = self._style(voice.kokoro_voice)
                phonemes = model.tokenizer.phonemize(text, lang)
            except Exception as exc:  # onnxruntime, the phonemizer and numpy raise many types
                raise SpeechError(f"Kokoro failed: {exc}") from None
        try:
            # the same as create(text): pauses are the model's own (this export reports no
            # phoneme timings for kokoro-onnx to stretch them); the voice DSP tightens long
            # ones to 0.25 s
            audio, rate = model.create(phonemes, voice=style, speed=voice.speed, lang=lang,
                                       is_phonemes=True)
        except Exception as exc:
            raise SpeechError(f"Kokoro failed: {exc}") from None
        mono = np.asarray(audio, dtype=np.float32).reshape(-1)
        if mono.size == 0 or not np.all(np.isfinite(mono)):
            raise SpeechError("Kokoro produced no usable audio")
        return deemphasis(mono, int(rate)), int(rate)


def deemphasis(mono: np.ndarray, rate: int) -> np.ndarray:
    """Kokoro's vocoder puts more energy above 6 kHz than between 3 and 6 kHz, the reverse of a
    natural voice (it sounds sibilant, more so through a bright chain): a fixed shelf takes that
    back, so a persona's chain starts from about the same balance whichever engine spoke."""
    board = pedalboard.Pedalboard([pedalboard.HighShelfFilter(
        cutoff_frequency_hz=DEEMPHASIS_HZ, gain_db=DEEMPHASIS_DB)])
    return board(mono[np.newaxis, :], rate)[0].astype(np.float32)
