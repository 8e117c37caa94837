"""The spliced stream against the same programme encoded in one piece: every join (body to
window, window to body, a window re-rendered for a skip or a revoked line) decodes to the same
samples within the codec's own error. Real demo tracks, real encodes, ffmpeg decodes."""

from __future__ import annotations

import numpy as np
import pytest

from dj.audio.bodies import BodyStore
from dj.audio.decode import HouseReader
from dj.audio.encode import FRAME_SAMPLES as F
from dj.audio.encode import encode_frames, frame_offsets
from dj.audio.mastering import ceiling_db
from dj.audio.plan import Item, VoiceCue
from dj.audio.segments import PRE_ROLL, Placement
from dj.audio.splice import SplicedPlayer
from dj.audio.window import OPENING_FRAMES, PIECE_FRAMES, PieceCache, piece_pcm
from dj.program.programme import track_cue
from tests.streamcheck import decode_mp3_exact as decode_mp3

SR = 44_100
ENCODER_DELAY = 1105  # samples from the first input sample to its place in ffmpeg's output


def _voice(seconds: float, f0: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    tone = 0.25 * np.sin(2 * np.pi * f0 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return np.stack([tone, tone]).astype(np.float32)


@pytest.fixture(scope="module")
def bodies(demo_config, demo_catalog, tmp_path_factory):
    return BodyStore(tmp_path_factory.mktemp("bodies"), demo_config.audio, 256 << 20)


def _items(catalog, n: int, voiced: set[int]) -> list[Item]:
    tracks = sorted(catalog.tracks(), key=lambda t: t.id)[:n]
    return [
        Item(track_cue(t), 4.0, VoiceCue(f"line-{i}", 12.0) if i in voiced else None,
             play_id=f"play-{i}")
        for i, t in enumerate(tracks)
    ]


def _play(player: SplicedPlayer, blocks: int, actions: dict[int, callable]) -> tuple[bytes, list]:
    data, markers = [], []
    for i in range(blocks):
        if i in actions:
            actions[i]()
        chunk, _, found = player.render()
        data.append(chunk)
        markers.extend(found)
    return b"".join(data), markers


def _reference(journal, store_bodies, voices, config) -> np.ndarray:
    """The samples the spliced stream was made from, end to end."""
    edge = int(round(0.005 * SR))
    ceiling = ceiling_db(config.audio)
    parts = []
    for lo, hi, src in journal:
        if isinstance(src, Placement):
            body = store_bodies[src.side.key]
            with HouseReader(body.path) as reader:
                parts.append(body.samples(reader, lo * F - src.origin, (hi - lo) * F))
            continue
        at = lo
        while at < hi:  # piece by piece, as the window was rendered
            p_lo, p_hi = src.piece(at)
            pcm = piece_pcm(src.window, p_lo, p_hi, store_bodies, voices, edge=edge,
                            ceiling_db=ceiling, sample_rate=SR)
            stop = min(hi, p_hi)
            start = (at - p_lo + PRE_ROLL) * F
            parts.append(pcm[:, start : start + (stop - at) * F])
            at = stop
    return np.concatenate(parts, axis=1)


def _joins(journal) -> list[int]:
    """Frames where the stream's source changes: between segments, and between the pieces a
    window is rendered in."""
    out = [lo for (lo, _, src), (_, _, prev) in zip(journal[1:], journal, strict=False)
           if src is not prev]
    for lo, hi, src in journal:
        if not isinstance(src, Placement):
            out += [f for f in range(max(lo, src.first + 1), hi) if src.piece(f)[0] == f]
    return sorted(set(out))


def test_every_join_decodes_like_the_programme_encoded_in_one_piece(
    demo_config, demo_catalog, bodies
):
    items = _items(demo_catalog, 6, voiced={1, 3, 4})
    queue = list(items)
    voices = {"line-1": _voice(3.0, 220.0), "line-3": _voice(6.0, 180.0),
              "line-4": _voice(2.0, 300.0)}
    player = SplicedPlayer(demo_config.audio, lambda: queue.pop(0) if queue else None,
                           voices.get, bodies, block_frames=19)
    player.journal = []
    data, markers = [], []
    done: list[str] = []

    def step() -> None:
        chunk, _, found = player.render()
        data.append(chunk)
        markers.extend(found)

    def window_live(voice: str | None = None) -> bool:
        wf = player._window
        if wf is None or player._frame >= wf.window.end - 4:
            return False
        if voice is None:
            return len(wf.window.decks) == 2 and not wf.window.voices
        return any(v.key == voice and v.start < player._frame * F < v.end - F * 20
                   for v in wf.window.voices)

    for i in range(2000):
        if i == 40:
            player.skip()  # a skip in a body
            done.append("skip in a body")
        elif "skip in a window" not in done and i > 60 and window_live():
            player.skip()  # a skip while a crossfade is under way
            done.append("skip in a window")
        elif "revoke" not in done and window_live("line-3"):
            player.cancel_voice("line-3")  # an artist revokes the line as it is spoken
            done.append("revoke")
        step()
        if not queue and player._window is None and player._upcoming is None and i > 100:
            break
    assert done == ["skip in a body", "skip in a window", "revoke"]
    assert any(m.kind == "voice_end" and m.key == "line-3" for m in markers)
    joins = _assert_joins_decode_alike(player, b"".join(data), items, bodies, voices,
                                       demo_config)
    assert len(joins) >= 20


def _assert_joins_decode_alike(player, data, items, bodies, voices, config) -> list[int]:
    """Every join in ``data`` (what ``player`` handed out) decodes to the samples of the same
    programme encoded in one piece, within the codec's own error there; returns the joins."""
    pcm = _reference(player.journal, player._in_play | {i.track.key: bodies.get(i.track)
                                                         for i in items}, voices, config)
    spliced = decode_mp3(data)
    assert spliced.returncode == 0, spliced.stderr
    ref_data, _ = encode_frames(pcm)
    whole = decode_mp3(ref_data)
    n = min(spliced.pcm.shape[1], whole.pcm.shape[1], pcm.shape[1] + ENCODER_DELAY)
    joins = _joins(player.journal)
    worst = []
    for j in joins:
        lo, hi = j * F + ENCODER_DELAY - 2 * F, j * F + ENCODER_DELAY + 2 * F
        if hi > n:
            continue
        join_err = np.max(np.abs(spliced.pcm[:, lo:hi] - whole.pcm[:, lo:hi]))
        source = pcm[:, lo - ENCODER_DELAY : hi - ENCODER_DELAY]
        codec_err = np.max(np.abs(whole.pcm[:, lo:hi] - source))
        worst.append((j, float(join_err), float(codec_err)))
    assert worst and all(je <= ce for _, je, ce in worst), worst
    return joins


def test_a_new_stream_opens_with_a_short_block_before_any_whole_piece_is_rendered(
    demo_config, demo_catalog, bodies
):
    """A listener who connects waits for the opening's first few frames only: the first block
    is OPENING_FRAMES long and made from a piece that short, the next completes the block grid,
    and the opening's pieces (shared by the next listener) join like the rest."""
    items = _items(demo_catalog, 2, voiced={0})
    voices = {"line-0": _voice(3.0, 220.0)}
    pieces = PieceCache(64 << 20)

    def player_for() -> SplicedPlayer:
        queue = list(items)
        player = SplicedPlayer(demo_config.audio, lambda: queue.pop(0) if queue else None,
                               voices.get, bodies, block_frames=19, pieces=pieces)
        player.journal = []
        return player

    player = player_for()
    first, samples, _ = player.render()
    wf = player._window
    assert wf is not None and wf.window.end > PIECE_FRAMES  # the voice-over keeps it going
    assert samples == OPENING_FRAMES * F
    assert len(frame_offsets(first)) - 1 == OPENING_FRAMES
    assert player.journal == [(0, OPENING_FRAMES, wf)]
    assert wf.piece(0) == (0, OPENING_FRAMES)
    assert (pieces.misses, pieces.hits) == (1, 0)  # that short piece alone was rendered

    second, samples, _ = player.render()
    assert samples == (19 - OPENING_FRAMES) * F  # back on the grid of blocks
    assert wf.piece(OPENING_FRAMES) == (OPENING_FRAMES, 19)
    assert pieces.misses == 2
    third, samples, _ = player.render()
    assert samples == 19 * F and wf.piece(19) == (19, 19 + PIECE_FRAMES)
    rest, _ = _play(player, 60, {})
    joins = _assert_joins_decode_alike(player, first + second + third + rest, items, bodies,
                                       voices, demo_config)
    assert {OPENING_FRAMES, 19, 19 + PIECE_FRAMES} <= set(joins)

    other = player_for()  # the next listener with the same opening: the same frames, shared
    misses = pieces.misses
    assert other.render()[0] == first and other.render()[0] == second
    assert pieces.misses == misses


def test_no_tag_frame_and_every_frame_stands_alone(demo_config, demo_catalog, bodies):
    items = _items(demo_catalog, 2, voiced=set())
    queue = list(items)
    player = SplicedPlayer(demo_config.audio, lambda: queue.pop(0) if queue else None,
                           lambda key: None, bodies, block_frames=19)
    data, _ = _play(player, 60, {})
    offsets = frame_offsets(data)
    assert offsets[-1] == len(data)  # whole frames only, nothing between them
    for a, b in zip(offsets[:-1], offsets[1:], strict=True):
        frame = data[a:b]
        assert b"Xing" not in frame[:64] and b"Info" not in frame[:64]
        side = 4 + (0 if frame[1] & 1 else 2)
        assert ((frame[side] << 1) | (frame[side + 1] >> 7)) == 0  # main_data_begin


def _house_file(tmp_path, parts: list[tuple[float, float]]):
    """A house FLAC of (seconds, amplitude) stretches of a 330 Hz tone (0 = silence)."""
    from dj.audio.plan import TrackCue
    from dj.catalog.ingest import write_house

    audio = np.concatenate([
        amp * np.sin(2 * np.pi * 330 * np.arange(int(sec * SR)) / SR) for sec, amp in parts
    ]).astype(np.float32)
    path = write_house(np.stack([audio, audio]), tmp_path, "tone")
    return TrackCue("tone", path, 0.0, 0.0, audio.size / SR, 4.0)


def test_a_silence_inside_a_track_cuts_its_body_before_the_dead_air_limit(demo_config, tmp_path):
    from dj.audio.bodies import build_body

    cue = _house_file(tmp_path, [(10.0, 0.3), (5.0, 0.0), (10.0, 0.3)])
    body = build_body(cue, demo_config.audio)
    limit = demo_config.audio.dead_air_s
    assert body.dead_air_s > 0
    assert 10.0 + limit - 0.5 < body.usable / SR < 10.0 + limit  # cut before the limit
    assert body.frames * F >= body.usable  # the frames cover what plays


def test_a_damaged_body_on_disk_is_made_again(demo_config, tmp_path):
    cue = _house_file(tmp_path, [(12.0, 0.3)])
    store = BodyStore(tmp_path / "bodies", demo_config.audio, 64 << 20)
    first = store.get(cue)
    for f in (tmp_path / "bodies").glob("*.mp3"):
        f.write_bytes(b"not frames")
    again = BodyStore(tmp_path / "bodies", demo_config.audio, 64 << 20)
    body = again.get(cue)
    assert again.built == 1 and body.data == first.data
    third = BodyStore(tmp_path / "bodies", demo_config.audio, 64 << 20)
    assert third.get(cue).data == first.data and third.loaded == 1 and third.built == 0


def test_the_full_render_is_still_there_as_the_fallback(demo_station):
    import dataclasses

    from dj.audio.source import FullSource

    station = demo_station
    config = station.config
    station.config = config.replace(stream=dataclasses.replace(config.stream, path="full"))
    try:
        session = station.open_session(station.listener("full-path"), None)
    finally:
        station.config = config
    assert isinstance(session.source, FullSource)
    data = b""
    for _ in range(40):
        chunk = session.render_next()
        station.rendered(session, chunk)
        data += chunk.data
    decoded = decode_mp3(data)
    assert decoded.returncode == 0, decoded.stderr
    assert decoded.pcm.shape[1] >= 19 * SR
    station.release(session)


def _together(*calls) -> None:
    """Runs each call in a thread of its own, all released at once."""
    import threading

    start = threading.Barrier(len(calls))

    def run(call) -> None:
        start.wait()
        call()

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_serving_processes_sharing_a_cache_dir_make_a_body_once(demo_config, tmp_path):
    # two stores on one directory stand for two serving processes: the lock is on the file
    cue = _house_file(tmp_path, [(40.0, 0.3)])
    stores = [BodyStore(tmp_path / "bodies", demo_config.audio, 64 << 20) for _ in range(2)]
    got: list = [None, None]

    def fetch(i: int):
        return lambda: got.__setitem__(i, stores[i].get(cue))

    _together(fetch(0), fetch(1))
    assert sorted((s.built, s.loaded) for s in stores) == [(0, 1), (1, 0)]
    assert got[0].data == got[1].data


def test_processes_warming_one_catalog_share_the_making(demo_config, tmp_path):
    import dataclasses

    tone = _house_file(tmp_path, [(20.0, 0.3)])
    cues = [dataclasses.replace(tone, key=f"tone-{i}") for i in range(4)]
    stores = [BodyStore(tmp_path / "bodies", demo_config.audio, 64 << 20) for _ in range(2)]
    failed: list[int] = []
    _together(*(lambda s=s: failed.append(s.warm_all(cues)) for s in stores))
    assert failed == [0, 0]
    assert sum(s.built for s in stores) == len(cues)  # each body made once
    assert all(s.built + s.loaded == len(cues) == len(s) for s in stores)
