"""MP3 encoding, with the bit reservoir off everywhere: one-piece encodes of track bodies and
transition pieces (:func:`encode_frames`, for the spliced path), and the full path's encoder, one
per listener, kept open for the whole stream so there are no gaps or encoder restarts.

pedalboard's writer encodes into an in-memory seekable sink; after every write the bytes that are
ready are taken out and the sink emptied, so memory stays flat however long the stream runs. A live
stream's writer is never closed (closing writes the end of the stream); :meth:`close` is for the
end.

The sink keeps absolute stream positions: on close the encoder seeks back to the start to fill in
its header tag; bytes already sent cannot change, so such writes are dropped instead of landing
on (and corrupting) the last frames still in the buffer.
"""

from __future__ import annotations

import io

import numpy as np
from pedalboard.io import AudioFile, WriteableAudioFileFlag

from dj.config import HOUSE_CHANNELS, HOUSE_SAMPLE_RATE


class _DrainableSink(io.RawIOBase):
    """A seekable, writable byte sink whose already-drained prefix is gone for good."""

    def __init__(self) -> None:
        super().__init__()
        self._base = 0  # absolute offset of self._buf[0]
        self._buf = bytearray()
        self._pos = 0
        self.dropped = 0  # bytes written over already-drained data (header rewrites)

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        end = self._base + len(self._buf)
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: end}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def write(self, data) -> int:  # type: ignore[override]
        data = bytes(data)
        n = len(data)
        start = self._pos
        if start < self._base:
            skip = min(n, self._base - start)
            self.dropped += skip
            data, start = data[skip:], start + skip
        if data:
            rel = start - self._base
            if rel > len(self._buf):
                self._buf.extend(b"\0" * (rel - len(self._buf)))
            self._buf[rel : rel + len(data)] = data
        self._pos += n
        return n

    def drain(self) -> bytes:
        out = bytes(self._buf)
        self._base += len(self._buf)
        self._buf.clear()
        return out


_MPEG1_L3_KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_MPEG1_RATES = (44_100, 48_000, 32_000)


def _placeholder_frame_len(data: bytes) -> int:
    """Length of a leading all-zero MPEG-1 Layer III frame, or 0.

    The encoder reserves its first frame for a header tag (Xing/LAME) that it fills in only when
    the file is closed; a live stream is never closed, so that frame would reach players as an
    empty frame that decoders complain about ("invalid new backstep")."""
    length = _frame_len(data, 0)
    if not length or len(data) < length or any(data[4:length]):
        return 0
    return length


def _frame_len(data: bytes, at: int) -> int:
    """Length of the MPEG-1 Layer III frame whose header is at ``at``, or 0 if there is none."""
    if at + 4 > len(data) or data[at] != 0xFF or (data[at + 1] & 0xFE) != 0xFA:
        return 0
    bitrate_idx, rate_idx = data[at + 2] >> 4, (data[at + 2] >> 2) & 3
    if not 0 < bitrate_idx < 15 or rate_idx == 3:
        return 0
    padding = (data[at + 2] >> 1) & 1
    return 144 * _MPEG1_L3_KBPS[bitrate_idx] * 1000 // _MPEG1_RATES[rate_idx] + padding


def clean_start(data: bytes) -> int:
    """Offset of the first frame in ``data`` that a decoder can start on: a frame header
    followed by another where it should be, whose audio does not reach back into earlier frames
    (main_data_begin = 0, so no bit-reservoir bytes are missing). For a stream picked up mid-way
    (a resume). ``len(data)`` when there is none."""
    first_sync = len(data)
    for at in range(len(data) - 6):
        n = _frame_len(data, at)
        if not n or (at + n + 4 <= len(data) and not _frame_len(data, at + n)):
            continue
        first_sync = min(first_sync, at)
        side = at + 4 + (0 if data[at + 1] & 1 else 2)  # a CRC word comes first if present
        if side + 2 <= len(data) and ((data[side] << 1) | (data[side + 1] >> 7)) == 0:
            return at
    return first_sync


FRAME_SAMPLES = 1152  # samples per MPEG-1 Layer III frame: the grid every splice joins on
# every frame's audio is in the frame itself (main_data_begin = 0), so frames from different
# encodes can be joined, and a stream can be picked up at any frame
NO_RESERVOIR = {WriteableAudioFileFlag.Mp3EnableBitReservoir: False}


def _is_tag_frame(frame: bytes) -> bool:
    """A Xing/Info/LAME header frame (it describes a file; inside a stream it is a bogus frame)."""
    return b"Xing" in frame[:64] or b"Info" in frame[:64]


def frame_offsets(data: bytes) -> np.ndarray:
    """Byte offsets of the consecutive frames of ``data`` (which starts on a frame), with the
    end offset last: frame ``i`` is ``data[offsets[i]:offsets[i + 1]]``."""
    out = [0]
    at = 0
    while at < len(data):
        n = _frame_len(data, at)
        if not n or at + n > len(data):
            break
        at += n
        out.append(at)
    return np.asarray(out, dtype=np.int64)


def encode_frames(
    pcm: np.ndarray, bitrate_kbps: int = 128, sample_rate: int = HOUSE_SAMPLE_RATE
) -> tuple[bytes, np.ndarray]:
    """Encode ``pcm`` (2, n) in one piece without the bit reservoir, as frames with their offsets
    (:func:`frame_offsets`); the tag frame is left out. Frame ``i`` holds the audio of samples
    from ``i * FRAME_SAMPLES`` on, less the encoder's fixed delay, so frames ``i`` of two encodes
    of the same grid line up."""
    sink = io.BytesIO()
    with AudioFile(
        sink, "w", sample_rate, HOUSE_CHANNELS, format="mp3", quality=bitrate_kbps,
        codec_options=NO_RESERVOIR,
    ) as writer:
        writer.write(np.ascontiguousarray(pcm, dtype=np.float32))
    data = sink.getvalue()
    first = _frame_len(data, 0)
    if first and _is_tag_frame(data[:first]):
        data = data[first:]
    return data, frame_offsets(data)


class Mp3Encoder:
    """CBR MP3 at ``bitrate_kbps`` from house-format blocks."""

    def __init__(
        self,
        bitrate_kbps: int = 128,
        sample_rate: int = HOUSE_SAMPLE_RATE,
        channels: int = HOUSE_CHANNELS,
    ) -> None:
        self.bitrate_kbps = bitrate_kbps
        self._sink = _DrainableSink()
        self._writer = AudioFile(
            self._sink, "w", sample_rate, channels, format="mp3", quality=bitrate_kbps,
            codec_options=NO_RESERVOIR,
        )
        self._closed = False
        self._started = False
        self.bytes_out = 0

    def _drain(self) -> bytes:
        data = self._sink.drain()
        if not self._started and data:
            self._started = True
            data = data[_placeholder_frame_len(data) :]
        self.bytes_out += len(data)
        return data

    def encode(self, block: np.ndarray) -> bytes:
        """Encode a ``(2, n)`` float32 block; returns the MP3 bytes ready now (may be empty)."""
        if self._closed:
            raise RuntimeError("encoder is closed")
        self._writer.write(np.ascontiguousarray(block, dtype=np.float32))
        return self._drain()

    @property
    def dropped_bytes(self) -> int:
        return self._sink.dropped

    def close(self) -> bytes:
        """Finish the stream and return its last bytes. Only for a stream that is ending."""
        if self._closed:
            return b""
        self._closed = True
        self._writer.close()
        return self._drain()
