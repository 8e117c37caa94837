"""Optional neural speech (Coqui ``TTS``, installed with the ``neural`` extra).

Imported lazily: without the extra, or without the model files on disk, the engine reports itself
unavailable with a reason and the narrator falls back to espeak-ng. Only local model files are ever
used (``model_path`` and ``config_path`` from the persona): no model hub download.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dj.narrate.engines.base import SpeechError

if TYPE_CHECKING:
    from dj.narrate.persona import VoiceParams

logger = logging.getLogger(__name__)


def _import_tts() -> Any:
    from TTS.api import TTS  # type: ignore[import-not-found]

    return TTS


class NeuralEngine:
    name = "neural"

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one model call at a time; models are large and stateful
        self._models: dict[tuple[Path, Path], Any] = {}

    def available(self, voice: VoiceParams | None = None) -> tuple[bool, str]:
        try:
            _import_tts()
        except Exception as exc:  # ImportError, or a broken torch install
            return False, f"Coqui TTS is not importable ({exc}); install the 'neural' extra"
        if voice is not None:
            files = (("model_path", voice.model_path), ("config_path", voice.config_path))
            for label, path in files:
                if path is None:
                    return False, f"neural voice needs a local {label}"
                if not Path(path).is_file():
                    return False, f"neural {label} not found: {path}"
        return True, ""

    def _model(self, voice: VoiceParams) -> Any:
        ok, reason = self.available(voice)
        if not ok:
            raise SpeechError(reason)
        assert voice.model_path is not None and voice.config_path is not None
        key = (Path(voice.model_path), Path(voice.config_path))
        if key not in self._models:
            tts_class = _import_tts()
            from threadpoolctl import threadpool_limits

            with threadpool_limits(limits=1):
                self._models[key] = tts_class(
                    model_path=str(key[0]), config_path=str(key[1]), progress_bar=False
                ).to("cpu")
        return self._models[key]

    def synthesize(self, text: str, voice: VoiceParams) -> tuple[np.ndarray, int]:
        from threadpoolctl import threadpool_limits

        with self._lock:
            model = self._model(voice)
            try:
                with threadpool_limits(limits=1):
                    kwargs = {"speaker": voice.speaker} if voice.speaker else {}
                    wav = model.tts(text=text, **kwargs)
            except Exception as exc:
                raise SpeechError(f"neural TTS failed: {exc}") from None
            rate = int(model.synthesizer.output_sample_rate)
        return np.asarray(wav, dtype=np.float32).reshape(-1), rate
