"""Helpers for end-to-end tests: read a live stream and decode it with an independent decoder."""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass

import imageio_ffmpeg
import numpy as np

BYTES_PER_S = 128_000 // 8


@dataclass
class Decoded:
    returncode: int
    stderr: str
    pcm: np.ndarray  # mono float32 at `rate`
    rate: int


_KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)


def whole_frames(data: bytes) -> bytes:
    """``data`` without a partial MPEG-1 Layer III frame at its end: a read of N bytes from a
    live stream stops mid-frame, and ffmpeg's ``-xerror`` fails on a stub of a few bytes. Only
    the tail is cut: a stream that loses frame sync anywhere is returned whole, for the decoder
    to report."""
    at = 0
    while at + 4 <= len(data):
        b1, b2 = data[at + 1], data[at + 2]
        if data[at] != 0xFF or b1 & 0xFE != 0xFA or not 0 < b2 >> 4 < 15 or b2 >> 2 & 3 != 0:
            return data  # not a 44.1 kHz MPEG-1 Layer III header: leave it to the decoder
        size = 144_000 * _KBPS[b2 >> 4] // 44_100 + (b2 >> 1 & 1)
        if at + size > len(data):
            break
        at += size
    return data[:at]


def decode_mp3(data: bytes, rate: int = 22_050) -> Decoded:
    """Decode with ffmpeg (from the imageio-ffmpeg wheel), failing on the first decode error;
    a partial frame at the end (where the read stopped) is not an error."""
    data = whole_frames(data)
    proc = subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-hide_banner",
            "-nostdin",
            "-xerror",
            "-v",
            "error",
            "-f",
            "mp3",
            "-i",
            "pipe:0",
            "-f",
            "s16le",
            "-ac",
            "1",
            "-ar",
            str(rate),
            "pipe:1",
        ],
        input=data,
        capture_output=True,
        check=False,
    )
    pcm = np.frombuffer(proc.stdout, dtype="<i2").astype(np.float32) / 32768.0
    return Decoded(proc.returncode, proc.stderr.decode(errors="replace"), pcm, rate)


def decode_mp3_exact(data: bytes) -> Decoded:
    """Decode to float32 stereo at 44.1 kHz with no conversion (``pcm`` is ``(2, n)``)."""
    proc = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-xerror", "-v", "error",
         "-f", "mp3", "-i", "pipe:0", "-f", "f32le", "-ac", "2", "pipe:1"],
        input=data, capture_output=True, check=False,
    )
    pcm = np.frombuffer(proc.stdout, dtype="<f4").reshape(-1, 2).T
    return Decoded(proc.returncode, proc.stderr.decode(errors="replace"), pcm, 44_100)


def longest_silence_s(
    pcm: np.ndarray, rate: int, threshold_dbfs: float = -50.0, window_s: float = 0.05
) -> float:
    win = int(rate * window_s)
    n = len(pcm) // win
    if n == 0:
        return 0.0
    rms = np.sqrt(np.mean(pcm[: n * win].reshape(n, win) ** 2, axis=1) + 1e-12)
    silent = 20 * np.log10(rms) < threshold_dbfs
    longest = run = 0
    for s in silent:
        run = run + 1 if s else 0
        longest = max(longest, run)
    return longest * window_s


async def read_stream(response, n_bytes: int, on_chunk=None) -> bytes:
    """Read ``n_bytes`` of the response body; ``on_chunk(total)`` may act between reads."""
    buf = bytearray()
    while len(buf) < n_bytes:
        data = await response.content.read(65536)
        if not data:
            break
        buf += data
        if on_chunk is not None:
            result = on_chunk(len(buf))
            if asyncio.iscoroutine(result):
                await result
    return bytes(buf)
