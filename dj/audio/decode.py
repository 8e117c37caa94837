"""Reading audio files: any delivered file at ingest, and house-format files while rendering.

pedalboard reads most formats fast; where it cannot (M4A/AAC and Opus on Linux) PyAV (FFmpeg)
takes over. pedalboard silently zero-pads a truncated file to the length its header promises, so a
decode that ends in digital silence is checked against a full PyAV decode before it is trusted.

Failures raise :class:`DecodeError` with a ``kind`` from a small vocabulary (``zero bytes``,
``truncated``, ``not audio``, ``unsupported``, ``unreadable``) so that ingest reports are stable.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import av
import numpy as np
from pedalboard import Resample
from pedalboard.io import AudioFile, StreamResampler

from dj.config import HOUSE_CHANNELS, HOUSE_SAMPLE_RATE

logger = logging.getLogger(__name__)
av.logging.set_level(av.logging.ERROR)  # FFmpeg's per-frame chatter; real failures raise

ZERO_BYTES = "zero bytes"
TRUNCATED = "truncated"
NOT_AUDIO = "not audio"
UNSUPPORTED = "unsupported"
UNREADABLE = "unreadable"

# a decode that ends in this much exact digital silence is cross-checked with PyAV
_ZERO_TAIL_CHECK_S = 0.05
# a decoded length shorter than the header's by more than this is a truncated file
_TRUNCATION_TOLERANCE_S = 0.25


class DecodeError(Exception):
    """A file that could not be decoded, with why (``kind`` is one of the constants above)."""

    def __init__(self, path: Path | str, kind: str, detail: str = "") -> None:
        self.path = Path(path)
        self.kind = kind
        self.detail = detail
        self.reason = f"{kind}: {detail}" if detail else kind
        super().__init__(f"{self.path}: {self.reason}")


def decode_file(path: Path | str) -> tuple[np.ndarray, int]:
    """Decode a whole file to float32 ``(channels, frames)`` at its native sample rate."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DecodeError(path, UNREADABLE, exc.strerror or str(exc)) from exc
    if size == 0:
        raise DecodeError(path, ZERO_BYTES)
    try:
        audio, sr = _decode_pedalboard(path)
    except Exception as exc:  # pedalboard raises ValueError/RuntimeError for what it can't read
        logger.debug("pedalboard cannot read %s (%s); trying PyAV", path, exc)
        audio, sr = _decode_pyav(path)
    else:
        if _zero_tail_frames(audio) > _ZERO_TAIL_CHECK_S * sr:
            _check_not_truncated(path, audio.shape[1], sr)
    if audio.shape[1] == 0:
        raise DecodeError(path, NOT_AUDIO, "no audio frames decoded")
    if not np.all(np.isfinite(audio)):
        audio = np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)
    return audio, sr


def _decode_pedalboard(path: Path) -> tuple[np.ndarray, int]:
    with AudioFile(str(path)) as f:
        sr = int(round(f.samplerate))
        audio = f.read(f.frames)
    return np.ascontiguousarray(audio, dtype=np.float32), sr


def _zero_tail_frames(audio: np.ndarray) -> int:
    nonzero = np.flatnonzero(np.any(audio != 0.0, axis=0))
    return audio.shape[1] if nonzero.size == 0 else audio.shape[1] - 1 - int(nonzero[-1])


def _check_not_truncated(path: Path, frames: int, sr: int) -> None:
    """pedalboard zero-pads truncated files; PyAV decodes only what is really there."""
    decoded, decoded_sr = _decode_pyav(path)
    got_s = decoded.shape[1] / decoded_sr
    want_s = frames / sr
    if got_s < want_s - _TRUNCATION_TOLERANCE_S:
        raise DecodeError(
            path, TRUNCATED, f"{got_s:.2f} s of audio where the header says {want_s:.2f} s"
        )


def _decode_pyav(path: Path) -> tuple[np.ndarray, int]:
    try:
        container = av.open(str(path))
    except av.error.InvalidDataError as exc:
        raise DecodeError(path, NOT_AUDIO, "no known audio format found") from exc
    except (av.error.FFmpegError, OSError) as exc:
        raise DecodeError(path, UNREADABLE, str(exc)) from exc
    with container:
        if not container.streams.audio:
            raise DecodeError(path, NOT_AUDIO, "the file has no audio stream")
        stream = container.streams.audio[0]
        if stream.codec_context is None or stream.codec_context.codec is None:
            raise DecodeError(path, UNSUPPORTED, f"no decoder for {stream.codec_context.name}")
        sr = int(stream.codec_context.sample_rate or stream.sample_rate or 0)
        if sr <= 0:
            raise DecodeError(path, UNSUPPORTED, "unknown sample rate")
        expected_s = _declared_duration_s(container, stream)
        resampler = av.AudioResampler(format="fltp")
        chunks: list[np.ndarray] = []
        failure: Exception | None = None
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
        except (av.error.FFmpegError, ValueError) as exc:
            failure = exc
    audio = (
        np.ascontiguousarray(np.concatenate(chunks, axis=1), dtype=np.float32)
        if chunks
        else np.zeros((1, 0), np.float32)
    )
    got_s = audio.shape[1] / sr
    if failure is not None:
        if audio.shape[1] == 0:
            raise DecodeError(path, NOT_AUDIO, f"decoder found no audio ({failure})")
        raise DecodeError(path, TRUNCATED, f"decoding stopped after {got_s:.2f} s ({failure})")
    if expected_s is not None and got_s < expected_s - _TRUNCATION_TOLERANCE_S:
        raise DecodeError(
            path, TRUNCATED, f"{got_s:.2f} s of audio where the header says {expected_s:.2f} s"
        )
    return audio, sr


def _declared_duration_s(
    container: av.container.InputContainer, stream: av.audio.AudioStream
) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def read_tags(path: Path | str) -> dict[str, str]:
    """Container and stream tags (lower-case keys: ``title``, ``artist``, ``album``, ``date``…).

    Returns an empty dict when the file has none or cannot be opened; tags are a convenience."""
    tags: dict[str, str] = {}
    try:
        with av.open(str(path)) as container:
            sources = [container.metadata]
            if container.streams.audio:
                sources.append(container.streams.audio[0].metadata)
            for source in sources:
                for key, value in source.items():
                    if value and key.lower() not in tags:
                        tags[key.lower()] = str(value).strip()
    except (av.error.FFmpegError, OSError):
        return {}
    return tags


def to_house(audio: np.ndarray, sr: int) -> np.ndarray:
    """Convert to the house format: float32 ``(2, frames)`` at 44.1 kHz.

    Mono is duplicated to both sides; more than two channels keep the front left/right pair (a
    fold-down of surround is beyond what radio needs). Resampling uses pedalboard's windowed-sinc
    stream resampler, which is time-aligned, so cue points measured afterwards are exact.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[np.newaxis, :]
    if audio.shape[0] == 1:
        audio = np.repeat(audio, HOUSE_CHANNELS, axis=0)
    elif audio.shape[0] > HOUSE_CHANNELS:
        audio = audio[:HOUSE_CHANNELS]
    if sr != HOUSE_SAMPLE_RATE:
        want = int(round(audio.shape[1] * HOUSE_SAMPLE_RATE / sr))
        resampler = StreamResampler(
            sr, HOUSE_SAMPLE_RATE, HOUSE_CHANNELS, Resample.Quality.WindowedSinc32
        )
        out = np.concatenate(
            [resampler.process(np.ascontiguousarray(audio)), resampler.process()], axis=1
        )
        if out.shape[1] < want:
            out = np.pad(out, ((0, 0), (0, want - out.shape[1])))
        audio = out[:, :want]
    return np.ascontiguousarray(audio, dtype=np.float32)


class HouseReader:
    """An open house-format file, read block by block with seeks (the renderer keeps one per deck).

    Reads past the end are zero-padded so a caller always gets the frames it asked for."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self._file = AudioFile(str(self.path))
        except Exception as exc:
            if self.path.exists() and self.path.stat().st_size == 0:
                raise DecodeError(self.path, ZERO_BYTES) from exc
            kind = UNREADABLE if not self.path.exists() else NOT_AUDIO
            raise DecodeError(self.path, kind, str(exc)) from exc
        self.samplerate = int(round(self._file.samplerate))
        self.channels = self._file.num_channels
        self.frames = int(self._file.frames)
        if self.samplerate != HOUSE_SAMPLE_RATE:
            self.close()
            raise DecodeError(self.path, UNSUPPORTED, f"not house format ({self.samplerate} Hz)")

    def read(self, start_frame: int, n_frames: int) -> np.ndarray:
        out = np.zeros((HOUSE_CHANNELS, n_frames), np.float32)
        start = max(0, start_frame)
        skip = start - start_frame
        available = min(n_frames - skip, self.frames - start)
        if available > 0:
            if self._file.tell() != start:
                self._file.seek(start)
            data = self._file.read(available)
            got = data.shape[1]
            if data.shape[0] == 1:
                out[:, skip : skip + got] = data[0]
            else:
                out[:, skip : skip + got] = data[:HOUSE_CHANNELS]
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing twice or after a failed read is harmless
            self._file.close()

    def __enter__(self) -> HouseReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_house(path: Path | str, start_frame: int, n_frames: int) -> np.ndarray:
    """Read ``n_frames`` of a house-format file from ``start_frame``, zero-padded at the end."""
    with HouseReader(path) as reader:
        return reader.read(start_frame, n_frames)
