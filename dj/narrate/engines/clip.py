"""Recorded clips: an artist's own voice, decoded with pedalboard and checked when registered.

A clip is checked once, when it is registered (decodable, a sensible length, not silent), so a
corrupt upload is refused with a reason instead of failing on air.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pedalboard.io import AudioFile

from dj.narrate.engines.base import SpeechError

if TYPE_CHECKING:
    from dj.narrate.persona import VoiceParams

logger = logging.getLogger(__name__)

CLIP_SUFFIXES = (".wav", ".flac", ".mp3")
MIN_CLIP_S = 0.3
MAX_CLIP_S = 30.0
SILENT_PEAK = 10 ** (-50 / 20)


class ClipError(ValueError):
    """A clip that cannot air; the message is the reason shown to the artist."""


@dataclass(frozen=True, slots=True)
class ClipInfo:
    duration_s: float
    sample_rate: int
    channels: int


def decode_clip(source: bytes | Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate; raises :class:`ClipError` with the decoder's reason."""
    try:
        opened = io.BytesIO(source) if isinstance(source, bytes) else str(source)
        with AudioFile(opened) as f:
            audio = f.read(f.frames)
            rate = int(f.samplerate)
    except Exception as exc:  # pedalboard raises several types for bad input
        # an upload's decoder message names in-memory objects: only a file's is worth showing
        reason = f": {exc}" if isinstance(source, Path) else ""
        raise ClipError(f"not a readable WAV/FLAC/MP3 file{reason}") from None
    if audio.ndim != 2 or audio.shape[1] == 0:
        raise ClipError("the clip has no audio")
    return audio.mean(axis=0).astype(np.float32), rate


def validate_clip(data: bytes, filename: str = "") -> ClipInfo:
    suffix = Path(filename).suffix.lower()
    if filename and suffix not in CLIP_SUFFIXES:
        raise ClipError(f"unsupported clip type {suffix or filename!r} (use WAV, FLAC or MP3)")
    if not data:
        raise ClipError("the clip is empty")
    try:
        with AudioFile(io.BytesIO(data)) as f:
            channels, rate = int(f.num_channels), int(f.samplerate)
    except Exception as exc:
        # the decoder's message names in-memory objects and paths: say what it was, not where
        logger.info("clip %r does not decode: %s", filename, exc)
        raise ClipError("not a readable WAV/FLAC/MP3 file") from None
    mono, rate = decode_clip(data)
    duration = len(mono) / rate
    if not np.all(np.isfinite(mono)):
        raise ClipError("the clip contains invalid samples")
    if duration < MIN_CLIP_S:
        raise ClipError(f"the clip is too short ({duration:.2f} s; at least {MIN_CLIP_S} s)")
    if duration > MAX_CLIP_S:
        raise ClipError(f"the clip is too long ({duration:.1f} s; at most {MAX_CLIP_S:.0f} s)")
    if float(np.max(np.abs(mono))) < SILENT_PEAK:
        raise ClipError("the clip is silent")
    return ClipInfo(duration_s=duration, sample_rate=rate, channels=channels)


class ClipEngine:
    """Plays the recording named by ``voice.clip_path``; the text is what the artist says in it."""

    name = "clip"

    def available(self) -> tuple[bool, str]:
        return True, ""

    def synthesize(self, text: str, voice: VoiceParams) -> tuple[np.ndarray, int]:
        if voice.clip_path is None:
            raise SpeechError("no clip to play")
        try:
            return decode_clip(voice.clip_path)
        except ClipError as exc:
            raise SpeechError(f"{voice.clip_path}: {exc}") from None
