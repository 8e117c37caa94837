"""The one interface every speech engine offers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from dj.narrate.persona import VoiceParams


class SpeechError(RuntimeError):
    """An engine could not speak this text with these parameters (the reason is the message)."""


class SpeechEngine(Protocol):
    name: str

    def available(self) -> tuple[bool, str]:
        """Whether the engine can be used here, and if not, why (for the log)."""
        ...

    def synthesize(self, text: str, voice: VoiceParams) -> tuple[np.ndarray, int]:
        """Mono float32 samples in [-1, 1] and their sample rate. Blocking; thread-safe."""
        ...
