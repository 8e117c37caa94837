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
