"""Icecast/SHOUTcast in-band metadata: every ``metaint`` audio bytes a length byte and a padded
``StreamTitle='…';`` block (or a single zero byte when nothing changed)."""

from __future__ import annotations


def metadata_block(title: str | None) -> bytes:
    if title is None:
        return b"\x00"
    safe = title.replace("'", "\u2019").replace("\r", " ").replace("\n", " ")
    payload = f"StreamTitle='{safe}';".encode()[: 255 * 16]
    blocks = -(-len(payload) // 16)
    return bytes([blocks]) + payload.ljust(blocks * 16, b"\x00")


class IcyFramer:
    """Interleaves metadata into an MP3 byte stream for one client.

    :meth:`set_title` takes effect at the next metadata point, so the title changes within
    ``metaint`` bytes (a second at 128 kbps) of the audio it names.
    """

    def __init__(self, metaint: int) -> None:
        if metaint <= 0:
            raise ValueError("metaint must be positive")
        self.metaint = metaint
        self._until_meta = metaint
        self._title: str | None = None
        self._pending: str | None = None

    def set_title(self, title: str) -> None:
        if title != self._title:
            self._pending = title

    def frame(self, data: bytes) -> bytes:
        out = bytearray()
        view = memoryview(data)
        while view:
            take = min(self._until_meta, len(view))
            out += view[:take]
            view = view[take:]
            self._until_meta -= take
            if self._until_meta == 0:
                out += metadata_block(self._pending)
                if self._pending is not None:
                    self._title, self._pending = self._pending, None
                self._until_meta = self.metaint
        return bytes(out)


def parse_icy(data: bytes, metaint: int) -> tuple[bytes, list[tuple[int, str]]]:
    """Split an ICY stream into audio bytes and ``(audio_offset, StreamTitle)`` pairs (for tests
    and tools)."""
    audio = bytearray()
    titles: list[tuple[int, str]] = []
    pos = 0
    while pos < len(data):
        audio += data[pos : pos + metaint]
        pos += metaint
        if pos >= len(data):
            break
        length = data[pos] * 16
        block = data[pos + 1 : pos + 1 + length]
        pos += 1 + length
        if length:
            text = block.rstrip(b"\x00").decode("utf-8", "replace")
            if text.startswith("StreamTitle='"):
                titles.append((len(audio), text[len("StreamTitle='") :].split("';", 1)[0]))
    return bytes(audio), titles
