"""Icecast/SHOUTcast in-band metadata: every ``metaint`` audio bytes a length byte and a padded
``StreamTitle='…';`` block (or a single zero byte when nothing changed).

The block is UTF-8 by default. Players from the SHOUTcast era (Winamp, Windows Media Player, some
hardware radios) read it as Latin-1: ``[stream] icy_charset = "latin-1"`` makes that the
default, and ``?icy_charset=latin-1`` (or ``utf-8``) on a stream URL chooses per client. A title
is cut on a character boundary so that the block stays within its 4,080 bytes and always ends
with ``';``, and quotes in it cannot end it early.
"""

from __future__ import annotations

import unicodedata

MAX_BLOCK = 255 * 16  # the length byte counts 16-byte units
PREFIX = "StreamTitle='"
SUFFIX = "';"
# an apostrophe followed by ';' would end the title for every parser; a typographic one cannot
APOSTROPHE = {"utf-8": "\u2019", "latin-1": "\u00b4"}
ELLIPSIS = {"utf-8": "\u2026", "latin-1": "..."}
# letters with no decomposition to a Latin-1 base (a stroke, a ligature)
_LATIN1_LOOKALIKE = str.maketrans({"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Ħ": "H", "ħ": "h",
                                   "ı": "i", "Œ": "OE", "œ": "oe", "ŀ": "l", "Ŀ": "L"})
_ALIASES = {"utf-8": "utf-8", "utf8": "utf-8", "latin-1": "latin-1", "latin1": "latin-1",
            "iso-8859-1": "latin-1", "iso8859-1": "latin-1"}
CHARSETS = ("utf-8", "latin-1")
NAMES = tuple(_ALIASES)  # what ?icy_charset= takes, as written


def icy_charset(name: str) -> str | None:
    """The canonical charset name (``utf-8`` or ``latin-1``) for ``name``, or None."""
    return _ALIASES.get(name.strip().lower())


def _clean(title: str, charset: str) -> str:
    """No control characters (a NUL ends the block for C parsers, a newline splits log lines),
    no plain apostrophes, and for Latin-1 only what it can say (accents kept where the
    character decomposes to a Latin-1 one, '?' otherwise)."""
    out = []
    for ch in title:
        if ch == "'":
            out.append(APOSTROPHE[charset])
        elif unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            out.append(" ")
        else:
            out.append(ch)
    text = "".join(out)
    if charset == "latin-1":
        text = "".join(_latin1(ch) for ch in text)
    return text


def _latin1(ch: str) -> str:
    if ord(ch) < 256:
        return ch
    if ch in "\u2018\u2019\u201b\u2032":
        return APOSTROPHE["latin-1"]
    if ch in "\u201c\u201d\u201e\u2033":
        return '"'
    if ch in "\u2013\u2014\u2212":
        return "-"
    if ch == "\u2026":
        return "..."
    if (mapped := ch.translate(_LATIN1_LOOKALIKE)) != ch:
        return mapped
    # "ő" -> "o" + combining mark: keep the base letter when it is Latin-1
    base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    try:
        base.encode("latin-1")
    except UnicodeEncodeError:
        return "?"
    return base or "?"


def _fit(text: str, charset: str, room: int) -> bytes:
    """``text`` encoded in at most ``room`` bytes, cut on a character boundary, with an ellipsis
    when it was cut; a cut never leaves a dangling combining mark or joiner behind."""
    data = text.encode(charset)
    if len(data) <= room:
        return data
    mark = ELLIPSIS[charset].encode(charset)
    if room < 2 * len(mark):  # no room to say it was cut
        mark = b""
    # decoding a byte-cut prefix with errors="ignore" drops only a partial last character
    cut = data[: max(0, room - len(mark))].decode(charset, errors="ignore")
    while cut and unicodedata.category(cut[-1]) in ("Mn", "Me", "Cf"):
        cut = cut[:-1]
    return cut.encode(charset) + mark


def metadata_block(title: str | None, charset: str = "utf-8", max_bytes: int = MAX_BLOCK) -> bytes:
    """The length byte and the padded block for ``title``; a single zero byte for None."""
    if title is None:
        return b"\x00"
    charset = icy_charset(charset) or "utf-8"
    max_bytes = min(max_bytes, MAX_BLOCK)
    frame = len(PREFIX) + len(SUFFIX)  # ASCII in both charsets
    body = _fit(_clean(title, charset), charset, max_bytes - frame)
    payload = PREFIX.encode() + body + SUFFIX.encode()
    blocks = -(-len(payload) // 16)
    return bytes([blocks]) + payload.ljust(blocks * 16, b"\x00")


class IcyFramer:
    """Interleaves metadata into an MP3 byte stream for one client.

    :meth:`set_title` takes effect at the next metadata point, so the title changes within
    ``metaint`` bytes (a second at 128 kbps) of the audio it names.
    """

    def __init__(self, metaint: int, charset: str = "utf-8") -> None:
        if metaint <= 0:
            raise ValueError("metaint must be positive")
        canonical = icy_charset(charset)
        if canonical is None:
            raise ValueError(f"unknown ICY charset {charset!r}; known: {', '.join(CHARSETS)}")
        self.metaint = metaint
        self.charset = canonical
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
                out += metadata_block(self._pending, self.charset)
                if self._pending is not None:
                    self._title, self._pending = self._pending, None
                self._until_meta = self.metaint
        return bytes(out)


def parse_icy(data: bytes, metaint: int, encoding: str = "utf-8"
              ) -> tuple[bytes, list[tuple[int, str]]]:
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
            text = block.rstrip(b"\x00").decode(encoding, "replace")
            if text.startswith(PREFIX):
                titles.append((len(audio), text[len(PREFIX) :].split(SUFFIX, 1)[0]))
    return bytes(audio), titles
