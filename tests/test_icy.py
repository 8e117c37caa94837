import unicodedata

import pytest

from dj.stream.icy import IcyFramer, metadata_block, parse_icy


def test_metadata_block_is_padded_to_16_bytes():
    block = metadata_block("Nova Lake - Harbour Lights")
    assert (len(block) - 1) % 16 == 0
    assert block[0] * 16 == len(block) - 1
    assert block[1:].rstrip(b"\x00") == b"StreamTitle='Nova Lake - Harbour Lights';"


def test_no_change_is_a_single_zero_byte():
    assert metadata_block(None) == b"\x00"


def test_quotes_cannot_end_the_title_early():
    assert b"';" not in metadata_block("Rock 'n' Roll")[1:].rstrip(b"\x00")[:-2]


def test_framer_inserts_metadata_every_metaint_bytes_and_round_trips():
    framer = IcyFramer(metaint=100)
    audio = bytes(range(256)) * 4  # 1024 bytes
    framer.set_title("A - One")
    out = framer.frame(audio[:150])
    framer.set_title("B - Two")
    out += framer.frame(audio[150:])
    parsed, titles = parse_icy(out, 100)
    assert parsed == audio
    assert [t for _, t in titles] == ["A - One", "B - Two"]
    assert titles[0][0] == 100 and titles[1][0] == 200


def test_same_title_is_not_sent_twice():
    framer = IcyFramer(metaint=10)
    framer.set_title("A - One")
    out = framer.frame(b"x" * 25)
    framer.set_title("A - One")
    out += framer.frame(b"x" * 25)
    _, titles = parse_icy(out, 10)
    assert [t for _, t in titles] == ["A - One"]


def _block_text(block: bytes, encoding: str = "utf-8") -> str:
    """The block as a strict parser reads it: length byte x 16 bytes, NUL padding, and a
    ``StreamTitle='...';`` that must decode in ``encoding`` (raises otherwise)."""
    assert block[0] * 16 == len(block) - 1
    body = block[1:].rstrip(b"\x00")
    assert b"\x00" not in body
    text = body.decode(encoding)  # strict: a cut inside a character fails here
    assert text.startswith("StreamTitle='") and text.endswith("';")
    return text[len("StreamTitle='"):-2]


@pytest.mark.parametrize("unit", ["é", "日本", "🎵", "👩‍👩‍👧", "e\u0301", "Ω"])
def test_long_multibyte_titles_are_cut_on_a_character_boundary(unit):
    title = "Artist - " + unit * 3000  # far over 4,080 bytes in UTF-8
    block = metadata_block(title)
    assert len(block) - 1 <= 255 * 16
    shown = _block_text(block)
    assert shown.endswith("\u2026") and title.startswith(shown[:-1])
    # the cut leaves no joiner or combining mark dangling without what it joins
    assert unicodedata.category(shown[-2]) not in ("Mn", "Me", "Cf")


@pytest.mark.parametrize("room", range(15, 60))
def test_every_cut_point_keeps_the_block_well_formed(room):
    block = metadata_block("Ünïcödé ✓ 日本語 🎵 " * 4, max_bytes=room)
    assert len(block) - 1 <= -(-room // 16) * 16
    _block_text(block)


def test_a_title_that_fits_is_not_cut():
    title = "Ä" * 2000  # 4,000 bytes: fits beside StreamTitle='';
    assert _block_text(metadata_block(title)) == title


def test_quotes_and_control_characters_cannot_break_the_block():
    shown = _block_text(metadata_block("It's ';\x00 over\r\nnow';"))
    assert "'" not in shown and "\x00" not in shown and "\n" not in shown
    assert shown == "It\u2019s \u2019;  over  now\u2019;"
    _, titles = parse_icy(b"a" * 10 + metadata_block("Rock 'n' Roll") + b"b" * 10, 10)
    assert [t for _, t in titles] == ["Rock \u2019n\u2019 Roll"]


def test_latin1_for_old_players():
    block = metadata_block("Beyoncé – Ça ‘va’ Łódź 日本 …", charset="latin-1")
    shown = _block_text(block, "latin-1")
    assert shown == "Beyoncé - Ça ´va´ Lódz ?? ..."
    with pytest.raises(UnicodeDecodeError):  # it is not UTF-8: a Latin-1 player reads it
        block[1:].rstrip(b"\x00").decode("utf-8")
    long = _block_text(metadata_block("é" * 5000, charset="latin1"), "latin-1")
    assert long == "é" * (255 * 16 - 15 - 3) + "..."


def test_framer_speaks_the_charset_it_was_given():
    framer = IcyFramer(metaint=8, charset="latin-1")
    framer.set_title("Café")
    out = framer.frame(b"x" * 8)
    assert parse_icy(out + b"y", 8, "latin-1")[1] == [(8, "Café")]
    with pytest.raises(ValueError):
        IcyFramer(metaint=8, charset="koi8-r")
