"""Speech engines behind one Protocol: espeak-ng (default), recorded clips, optional neural TTS."""

from dj.narrate.engines.base import SpeechEngine, SpeechError
from dj.narrate.engines.clip import ClipEngine, ClipError, ClipInfo, decode_clip, validate_clip
from dj.narrate.engines.espeak import EspeakEngine
from dj.narrate.engines.neural import NeuralEngine

__all__ = [
    "ClipEngine", "ClipError", "ClipInfo", "EspeakEngine", "NeuralEngine", "SpeechEngine",
    "SpeechError", "decode_clip", "validate_clip",
]
