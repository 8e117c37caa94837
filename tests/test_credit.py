"""Heard markers become the right ledger rows: repeats, skips, fault restarts, provisional
connections. A real station, ledger and SQLite file; the markers are the renderer's own kinds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dj.audio.plan import Marker
from dj.config import HOUSE_SAMPLE_RATE as SR

from .streamcheck import decode_mp3, longest_silence_s


def rows(station, listener: str) -> dict[str, object]:
    station.flush_writes()
    return {p.event_id: p for p in station.ledger.plays(listener)}


def test_the_same_track_twice_in_a_row_is_two_plays(demo_station):
    station = demo_station
    session = station.open_session(station.listener("repeat-check"), None)
    track = station.catalog.tracks()[0].id
    markers = [
        Marker(0, "track_start", track, play="p-one"),
        Marker(40 * SR, "track_end", track, 40.0, "p-one"),
        Marker(40 * SR, "track_start", track, play="p-two"),
        Marker(50 * SR, "track_end", track, 10.0, "p-two"),
    ]
    station.events.apply(session, markers)
    got = rows(station, "repeat-check")
    assert got["p-one"].outcome == "completed" and got["p-one"].played_s == 40.0
    assert got["p-two"].outcome == "completed" and got["p-two"].played_s == 10.0
    station.release(session)


def test_a_skip_marks_the_play_heard_not_the_next_one(demo_station):
    station = demo_station
    session = station.open_session(station.listener("skip-mark"), None)
    a, b = (t.id for t in station.catalog.tracks()[:2])
    station.events.apply(session, [Marker(0, "track_start", a, play="a1")])
    session.skipped_plays.add(session.now.play_id)  # what Session.skip does for the heard play
    station.events.apply(session, [
        Marker(5 * SR, "track_start", b, play="b1"),  # the next track's start comes first
        Marker(5 * SR + SR // 2, "track_end", a, 5.5, "a1"),
        Marker(200 * SR, "track_end", b, 195.0, "b1"),
    ])
    got = rows(station, "skip-mark")
    assert got["a1"].outcome == "skipped" and got["a1"].played_s == 5.5
    assert got["b1"].outcome == "completed"
    station.release(session)


def test_credits_of_an_unconfirmed_connection_wait_and_are_dropped_if_never_confirmed(
    demo_station,
):
    station = demo_station
    track = station.catalog.tracks()[0].id
    held = station.open_session(station.listener("never-confirmed"), None)
    station.events.apply(held, [Marker(0, "track_start", track, play="h1")], confirmed=False)
    assert held.now.play_id == "h1"  # shown at once
    station.release(held)
    assert rows(station, "never-confirmed") == {}

    later = station.open_session(station.listener("confirmed-later"), None)
    station.events.apply(later, [Marker(0, "track_start", track, play="c1")], confirmed=False)
    assert rows(station, "confirmed-later") == {}
    station.events.apply(later, [Marker(40 * SR, "track_end", track, 40.0, "c1")])
    got = rows(station, "confirmed-later")
    assert got["c1"].outcome == "completed" and got["c1"].played_s == 40.0
    station.release(later)


def test_a_renderer_fault_closes_the_play_on_air_and_the_stream_goes_on(demo_station):
    station = demo_station
    session = station.open_session(station.listener("fault-rows"), None)

    def play(n: int) -> bytes:
        out = b""
        for _ in range(n):
            chunk = session.render_next()
            station.rendered(session, chunk)
            station.heard(session, chunk.end_s)
            out += chunk.data
        return out

    data = play(20)
    at_fault = session.rendered_s  # the play on air started at 0
    on_air = session.now.play_id
    assert on_air is not None

    def fail():  # stands in for a bug deep in the DSP
        raise RuntimeError("mix fault")

    session.source.render = fail
    data += play(60)
    got = rows(station, "fault-rows")
    assert got[on_air].outcome == "interrupted"
    assert abs(got[on_air].played_s - at_fault) < 1e-3
    assert session.now.play_id != on_air  # the next track took over
    decoded = decode_mp3(data)
    assert decoded.returncode == 0, decoded.stderr
    assert longest_silence_s(decoded.pcm, decoded.rate) < 2.0
    station.release(session)
    got = rows(station, "fault-rows")
    assert all(p.ended_at is not None for p in got.values())


def test_a_play_left_ends_when_the_ear_stopped_not_at_release(demo_station):
    """A listener who left is released only after the resume window: the play's end is dated when
    they stopped hearing it, with the seconds heard, and its progress was made durable."""
    station = demo_station
    session = station.open_session(station.listener("left-early"), None)
    track = station.catalog.tracks()[0].id
    station.events.apply(session, [Marker(0, "track_start", track, play="left-1")])
    station.heard(session, 25.0)
    stopped = datetime.now(UTC) - timedelta(minutes=9)  # as if released 9 minutes later
    session.heard_wall = stopped.timestamp()
    station.release(session)
    play = rows(station, "left-early")["left-1"]
    assert play.outcome == "left" and play.played_s == 25.0
    assert abs(datetime.fromisoformat(play.ended_at) - stopped) < timedelta(seconds=1)
    heard = station.ledger.events(play_id="left-1", kind="play_heard")
    assert [(e.event_id, e.heard_s) for e in heard] == [("left-1:h2", 25.0)]  # one jump of 25 s
