"""An arm's persona overrides reach the narrator of that arm's sessions only.

Three arms host with the same persona (nova: talks with probability 0.55, at most every 200 s):
control as loaded, ``chatty`` with ``talk_probability = 1`` and ``min_gap_s = 0``, ``quiet``
with ``talk_probability = 0``. Known answers, from the real narrator's decision: chatty always
talks, even 1 s after its last line; quiet never talks again after its opening line; control
decides exactly as the loaded persona does; the loaded persona is never changed.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dj.catalog import Analysis, Catalog, Deal, Listener, Track
from dj.experiments import Arm, Experiment, assign
from dj.narrate import NarrationContext, Narrator
from dj.program import Programme, RadioRules
from dj.store import Store

from .test_narrate import ANA, BO, NOW, default_packs, make_narrator

EXP = Experiment("talk-rate", (
    Arm("control", "nova"),
    Arm("chatty", "nova", overrides=(("min_gap_s", 0.0), ("talk_probability", 1.0))),
    Arm("quiet", "nova", overrides=(("talk_probability", 0.0),)),
), salt="talk")
LISTENERS = [f"talk-{i}" for i in range(200)]


def context(listener: str, since: float | None, session_persona=None, prev=ANA,
            nxt=BO) -> NarrationContext:
    return NarrationContext(listener, "Sam", "US", "nova", prev, nxt, NOW, since,
                            session_persona)


def talks(narrator: Narrator, since: float, arm: Arm) -> list[bool]:
    """The narrator's decision at a transition ``since`` s after the last line, for 200
    listeners in ``arm`` (each a fresh listener: no repeat window in the way)."""
    persona = arm.apply(narrator.persona("nova"))
    return [narrator.choose(context(f"{arm.name}-{lid}", since, persona)) is not None
            for lid in LISTENERS]


@pytest.fixture
def narrator(tmp_path: Path) -> Narrator:
    return make_narrator(tmp_path, default_packs())


def test_each_arm_decides_with_its_own_overrides(narrator: Narrator) -> None:
    nova = narrator.persona("nova")
    loaded = (nova.talk_probability, nova.min_gap_s)
    assert loaded == (0.55, 200.0)
    control, chatty, quiet = EXP.arms
    # 1 s after the last line: under nova's 200 s gap, and over chatty's 0 s one
    assert not any(talks(narrator, 1.0, control))
    assert all(talks(narrator, 1.0, chatty))
    # long after: nova talks about 55 % of the time, quiet never
    assert not any(talks(narrator, 1e6, quiet))
    spoken = talks(narrator, 1e6, control)
    assert 0.40 < sum(spoken) / len(spoken) < 0.70
    # control is the persona as loaded: the very same decisions as outside any experiment
    assert control.apply(nova) is nova
    assert spoken == [narrator.choose(context(f"control-{lid}", 1e6)) is not None
                      for lid in LISTENERS]
    assert talks(narrator, 300.0, control) == [
        narrator.choose(context(f"control-{lid}", 300.0)) is not None for lid in LISTENERS]
    # the arms' copies left the shared persona as it was
    assert narrator.persona("nova") is nova
    assert (nova.talk_probability, nova.min_gap_s) == loaded
    assert chatty.apply(nova) == dataclasses.replace(nova, talk_probability=1.0, min_gap_s=0.0)


def test_a_session_persona_must_be_the_named_one(narrator: Narrator) -> None:
    spark = narrator.persona("spark")
    with pytest.raises(ValueError, match="'spark' is not 'nova'"):
        context("l1", 1.0, spark)


# -- through a programme: what the renderer is handed ------------------------------------------
class Shuffled:
    """A recommender with nothing to say: the programme plays its licensed catalog shuffled."""

    version = 0

    def allowed_mask(self, ids):
        return None

    def candidates(self, *args, **kwargs):
        return []


def test_a_programme_in_an_arm_talks_as_its_arm_says(tmp_path: Path) -> None:
    store = Store(tmp_path / "dj.sqlite3")
    catalog = Catalog(store, tmp_path)
    for i in range(6):  # 120 s tracks: a transition every 116 s, under nova's 200 s gap
        artist = ("ana", "bo")[i % 2]
        track = Track(f"t{i}", f"Song {i}", artist, artist.title(), Path(f"t{i}.flac"),
                      Analysis(120.0, -14.0, -1.0, 0.0, 0.0, 120.0, 4.0))
        catalog.add_track(track, deals=[Deal(track.id, frozenset({"WW"}))])
    narrator = make_narrator(tmp_path, default_packs(), store=store)

    def voiced(arm: Arm) -> list[bool]:
        persona = arm.apply(narrator.persona("nova"))
        programme = Programme(
            listener=Listener(f"p-{arm.name}", "US"), persona="nova", catalog=catalog,
            recommender=Shuffled(), narrator=narrator, rules=RadioRules(), crossfade_s=4.0,
            seed=1, clock=lambda: NOW,
            session_persona=None if persona is narrator.persona("nova") else persona)
        return [programme.next_item().voice is not None for _ in range(10)]

    control, chatty, quiet = EXP.arms
    assert voiced(chatty) == [True] * 10
    # the opening line is never gated; after it, nothing
    assert voiced(quiet) == [True] + [False] * 9
    plain = voiced(control)
    assert plain[0] and not any(a and b for a, b in zip(plain, plain[1:], strict=False))


# -- through the station: which sessions get which persona --------------------------------------
def test_the_station_gives_each_session_its_arms_persona(demo_station, monkeypatch) -> None:
    station = demo_station
    monkeypatch.setattr(station.experiments, "experiments", [EXP])
    nova = station.narrator.persona("nova")
    loaded = dataclasses.replace(nova)
    by_arm = {arm.name: next(lid for lid in (f"arm-{i}" for i in range(200))
                             if assign(EXP, lid).name == arm.name) for arm in EXP.arms}
    sessions = {arm: station.open_session(station.listener(lid)) for arm, lid in by_arm.items()}
    try:
        for arm, session in sessions.items():
            assert (session.persona, session.experiment, session.arm) == ("nova", EXP.name, arm)
        assert sessions["control"].programme.session_persona is None
        chatty = sessions["chatty"].programme.session_persona
        quiet = sessions["quiet"].programme.session_persona
        assert (chatty.talk_probability, chatty.min_gap_s) == (1.0, 0.0)
        assert (quiet.talk_probability, quiet.min_gap_s) == (0.0, nova.min_gap_s)
        assert station.narrator.persona("nova") is nova and nova == loaded

        def decides(session, since: float) -> bool:
            ctx = NarrationContext(session.listener.id, "", "US", session.persona, ANA, BO,
                                   datetime(2026, 3, 14, 9, 30, tzinfo=UTC), since,
                                   session.programme.session_persona)
            return station.narrator.choose(ctx) is not None

        assert decides(sessions["chatty"], 1.0)
        assert not decides(sessions["control"], 1.0)
        assert not decides(sessions["quiet"], 1e6)
    finally:
        for session in sessions.values():
            station.release(session)
