"""Transitions rendered once for everyone: the same transition on two listeners' timelines has
one signature; serving processes share rendered windows through the disk; a window rendered
ahead is handed out without a trip to a render thread. Real demo bodies and real encodes."""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from dj.audio.bodies import BodyStore
from dj.audio.encode import FRAME_SAMPLES as F
from dj.audio.plan import Item
from dj.audio.segments import Placement, Rules, Side, plan_crossfade
from dj.audio.splice import SplicedPlayer
from dj.audio.window import PieceCache, signature
from dj.audio.window_disk import WindowDisk, piece_name
from dj.program.programme import track_cue


@pytest.fixture(scope="module")
def bodies(demo_config, demo_catalog, tmp_path_factory):
    return BodyStore(tmp_path_factory.mktemp("bodies"), demo_config.audio, 256 << 20)


@pytest.fixture(scope="module")
def two(demo_catalog, bodies):
    a, b = sorted(demo_catalog.tracks(), key=lambda t: t.id)[:2]
    return (a, bodies.get(track_cue(a))), (b, bodies.get(track_cue(b)))


def _side(track, body, play: str) -> Side:
    cue = track_cue(track)
    from dj.audio.analysis import unpack_levels

    return Side(cue.key, play, body.usable, cue.outro_s, unpack_levels(cue.head_lu),
                unpack_levels(cue.tail_lu))


def test_the_same_transition_has_one_signature_wherever_it_falls(demo_config, two):
    """Two listeners reach the same crossfade at different points of their streams, one having
    heard the outgoing track crossfade in and the other from its start: same frames."""
    (a, a_body), (b, b_body) = two
    rules = Rules.from_config(demo_config.audio)
    bodies = {a_body.key: a_body, b_body.key: b_body}
    sigs = []
    for origin_frame, fade_in in ((0, 0), (987_654, 4 * 44_100), (3_333, 2 * 44_100)):
        deck = Placement(_side(a, a_body, f"p{origin_frame}"), origin_frame * F, fade_in)
        w = plan_crossfade(deck, _side(b, b_body, "q"), 4.0, None, rules,
                           not_before=origin_frame + 10)
        sigs.append(signature(w, w.start, bodies, rules.edge))
    assert sigs[0] == sigs[1] == sigs[2]
    # and a different incoming track is another transition
    deck = Placement(_side(b, b_body, "r"), 0)
    other = plan_crossfade(deck, _side(a, a_body, "s"), 4.0, None, rules, not_before=10)
    assert signature(other, other.start, bodies, rules.edge) != sigs[0]


def test_a_body_mastered_otherwise_is_another_transition(demo_config, two):
    (a, a_body), (b, b_body) = two
    rules = Rules.from_config(demo_config.audio)
    deck = Placement(_side(a, a_body, "p"), 0)
    w = plan_crossfade(deck, _side(b, b_body, "q"), 4.0, None, rules, not_before=10)
    louder = dataclasses.replace(a_body, curve=a_body.curve * np.float32(1.01))
    assert (signature(w, w.start, {a_body.key: a_body, b_body.key: b_body}, rules.edge)
            != signature(w, w.start, {a_body.key: louder, b_body.key: b_body}, rules.edge))


def test_processes_share_rendered_windows_through_the_disk(tmp_path):
    made: list[int] = []
    data = _frames(12)

    def make():
        made.append(1)
        return data

    key = (("sig", b"\x00\x01", 3), 0, 40, (220, -1.5, 128, 44_100))
    first = PieceCache(1 << 20, WindowDisk(tmp_path, 1 << 20))
    assert first.fetch(key, make)[0] == data[0]
    second = PieceCache(1 << 20, WindowDisk(tmp_path, 1 << 20))  # another process
    got = second.fetch(key, lambda: pytest.fail("rendered again"))
    assert got[0] == data[0] and np.array_equal(got[1], data[1])
    assert made == [1] and second.misses == 0
    # a damaged file is rendered again, not served
    path = tmp_path / piece_name(key)
    path.write_bytes(data[0][:-7])
    third = PieceCache(1 << 20, WindowDisk(tmp_path, 1 << 20))
    assert third.fetch(key, make)[0] == data[0] and made == [1, 1]
    assert path.read_bytes() == data[0]


def test_the_disk_keeps_to_its_size_dropping_the_least_recently_used(tmp_path):
    data = _frames(10)
    disk = WindowDisk(tmp_path, 3 * len(data[0]) + 10)
    keys = [("k", i) for i in range(6)]
    for i, key in enumerate(keys):
        disk.save(key, data[0])
        os.utime(tmp_path / piece_name(key), (1_000 + i, 1_000 + i))
    assert disk.load(keys[0]) is not None  # read now: the most recent
    assert disk.prune() == 3
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {piece_name(k) for k in (keys[0], keys[4], keys[5])}


def _frames(n: int) -> tuple[bytes, np.ndarray]:
    from dj.audio.encode import encode_frames

    t = np.arange(F * (n + 8)) / 44_100
    tone = (0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    data, offsets = encode_frames(np.stack([tone, tone]))
    return data[: offsets[n]], offsets[: n + 1]


def test_a_window_rendered_ahead_is_handed_out_without_a_render_thread(
    demo_config, demo_catalog, bodies
):
    """The next transition is rendered in the background seconds before it is due; once it is,
    each of its blocks is a copy (the player says ``cheap``), and the stream is whole."""
    tracks = sorted(demo_catalog.tracks(), key=lambda t: t.id)[:3]
    queue = [Item(track_cue(t), 4.0, None, play_id=f"play-{i}") for i, t in enumerate(tracks)]
    pool = ThreadPoolExecutor(1)
    submitted = []

    def ahead(job):
        submitted.append(pool.submit(job))

    player = SplicedPlayer(demo_config.audio, lambda: queue.pop(0) if queue else None,
                           lambda key: None, bodies, block_frames=19,
                           pieces=PieceCache(64 << 20), ahead=ahead)
    cheap_in_window = 0
    frames = 0
    for _ in range(4000):
        if player._upcoming is not None and submitted:
            submitted[-1].result()  # the background render is done before its window is due
        wf = player._window
        in_window = wf is not None and player._frame < wf.window.end and player._frame > 0
        cheap = player.cheap
        data, samples, _ = player.render()
        frames += samples // F
        if in_window and cheap:
            cheap_in_window += 1
        if not queue and player._window is None and player._upcoming is None:
            break
    pool.shutdown()
    assert len(submitted) >= 2  # both crossfades were rendered ahead
    assert cheap_in_window >= 8  # their blocks were copies
