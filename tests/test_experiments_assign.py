"""Assignment: deterministic from (listener, experiment, salt), the same in another process (a
restart, another node), re-randomised by a new salt, in the designed proportions; definitions
from config/experiments/*.toml; an enrolled listener cannot switch persona."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dj.experiments import Arm, Experiment, Experiments, assign, load_all
from dj.experiments.definition import ExperimentError, load_dir, parse_experiment
from dj.store import Store

EXP = Experiment("nova-vs-spark", (Arm("control", "nova"), Arm("spark", "spark")), salt="s1")
IDS = [f"listener-{i:04d}" for i in range(2000)]


def arms(experiment: Experiment, ids: list[str]) -> list[str]:
    return [a.name if (a := assign(experiment, lid)) else "-" for lid in ids]


def test_the_same_listener_always_gets_the_same_arm() -> None:
    first = arms(EXP, IDS)
    assert first == arms(EXP, IDS)
    assert first == arms(dataclasses.replace(EXP, description="edited"), IDS)
    # the documented rule, recomputed: the first 64 bits of sha256("name:salt:listener") as a
    # point in [0, 1), scaled by the total weight, fall in an arm's stretch; it must never change
    # under a running experiment (listeners would switch arms)
    for lid in IDS[:200]:
        point = int.from_bytes(hashlib.sha256(f"nova-vs-spark:s1:{lid}".encode()).digest()[:8],
                               "big") / 2**64 * 2
        assert assign(EXP, lid).name == ("control" if point < 1 else "spark")


def test_assignment_is_the_same_in_another_process() -> None:
    """A restart or another node: a fresh interpreter with another hash seed agrees."""
    code = ("import json, sys; from dj.experiments import Arm, Experiment, assign;"
            "e = Experiment('nova-vs-spark', (Arm('control', 'nova'), Arm('spark', 'spark')),"
            " salt='s1'); ids = json.load(sys.stdin);"
            "print(json.dumps([assign(e, i).name for i in ids]))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(IDS[:500]),
                         capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout) == arms(EXP, IDS[:500])


def test_a_new_salt_re_randomises() -> None:
    before = arms(EXP, IDS)
    after = arms(dataclasses.replace(EXP, salt="s2"), IDS)
    moved = sum(a != b for a, b in zip(before, after, strict=True)) / len(IDS)
    assert 0.45 < moved < 0.55  # independent coin flips: about half change arm


def test_the_split_follows_the_weights() -> None:
    uneven = dataclasses.replace(EXP, arms=(Arm("control", "nova", 1.0),
                                            Arm("spark", "spark", 3.0)))
    got = arms(uneven, IDS)
    share = got.count("spark") / len(got)
    assert 0.72 < share < 0.78  # 3:1, with 2000 listeners (sd about 1 %)
    even = arms(EXP, IDS)
    assert 0.46 < even.count("spark") / len(even) < 0.54


def test_traffic_enrols_a_share_and_growing_it_moves_no_one() -> None:
    small = dataclasses.replace(EXP, traffic=0.3)
    large = dataclasses.replace(EXP, traffic=0.6)
    a, b, full = arms(small, IDS), arms(large, IDS), arms(EXP, IDS)
    assert 0.26 < sum(x != "-" for x in a) / len(a) < 0.34
    for x, y, z in zip(a, b, full, strict=True):
        if x != "-":
            assert x == y == z  # enrolled at 30 %: the same arm at 60 % and at 100 %


def test_window_and_territories_decide_who_is_enrolled(tmp_path: Path) -> None:
    exp = dataclasses.replace(EXP, start=datetime(2026, 1, 1, tzinfo=UTC),
                              end=datetime(2026, 2, 1, tzinfo=UTC), territories=("US", "GB"))
    experiments = Experiments(Store(tmp_path / "db.sqlite3"), [exp])
    inside = datetime(2026, 1, 15, tzinfo=UTC)
    assert experiments.enrolment("alice", "US", inside) is not None
    assert experiments.enrolment("alice", "gb", inside) is not None
    assert experiments.enrolment("alice", "DE", inside) is None
    assert experiments.enrolment("alice", "US", datetime(2026, 2, 1, tzinfo=UTC)) is None
    assert experiments.enrolment("alice", "US", datetime(2025, 12, 31, tzinfo=UTC)) is None


GOOD = """
name = "talk-less"
salt = "a"
start = 2026-12-01
end = 2027-01-01T00:00:00Z
territories = ["us", "GB"]
primary = "listening_s_per_day"
[[arms]]
name = "control"
persona = "nova"
[[arms]]
name = "quiet"
persona = "nova"
weight = 2
overrides = { talk_probability = 0.2 }
[[guardrails]]
metric = "skip_after_voice"
margin_pct = 5
[[guardrails]]
metric = "dead_air_s"
margin = 0.5
"""


def test_definitions_are_read_one_file_each_and_bad_ones_skipped(tmp_path: Path,
                                                                 caplog) -> None:
    (tmp_path / "a-good.toml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "b-one-arm.toml").write_text('name = "x"\n[[arms]]\nname = "a"\n'
                                             'persona = "nova"\n', encoding="utf-8")
    (tmp_path / "c-not-toml.toml").write_text("name = \n", encoding="utf-8")
    (tmp_path / "d-bad-metric.toml").write_text(
        GOOD.replace('name = "talk-less"', 'name = "y"').replace(
            'primary = "listening_s_per_day"', 'primary = "happiness"'), encoding="utf-8")
    with caplog.at_level(logging.ERROR):
        found = load_dir(tmp_path)
    assert [e.name for e in found] == ["talk-less"]
    e = found[0]
    assert e.territories == ("US", "GB")
    assert e.start == datetime(2026, 12, 1, tzinfo=UTC) and e.control.name == "control"
    assert e.arm("quiet").overrides == (("talk_probability", 0.2),)
    assert [(g.metric, g.margin, g.relative) for g in e.guardrails] == [
        ("skip_after_voice", 0.05, True), ("dead_air_s", 0.5, False)]
    for name in ("b-one-arm", "c-not-toml", "d-bad-metric"):
        assert name in caplog.text
    assert "at least two" in caplog.text and "primary" in caplog.text
    # an arm's overrides are applied per session (tests/test_experiments_overrides.py): it runs
    running = Experiments(Store(tmp_path / "db.sqlite3"), [e, EXP])
    assert running.experiments == [e, EXP]
    assert running.arm("talk-less", "quiet").overrides == (("talk_probability", 0.2),)
    assert running.arm("talk-less", "loud") is None and running.arm("", "") is None


@pytest.mark.parametrize("change,field", [
    ({"name": "Bad Name"}, "name"),
    ({"traffic": 1.5}, "traffic"),
    ({"end": "2020-01-01"}, "end"),
    ({"territories": ["USA"]}, "territories"),
    ({"guardrails": [{"metric": "sessions"}]}, "guardrails[0]"),
    ({"arms": [{"name": "a", "persona": "nova"}, {"name": "a", "persona": "spark"}]}, "arms"),
    # an arm's persona overrides, in the ranges of a persona file's [talk] table
    *(({"arms": [{"name": "a", "persona": "nova"},
                 {"name": "b", "persona": "nova", "overrides": {key: value}}]},
       f"arms[1].overrides.{key}: {why}")
      for key, value, why in [("talk_probability", 1.5, "1.5 is outside"),
                              ("talk_probability", -0.1, "-0.1 is outside"),
                              ("talk_probability", "often", "expected a number"),
                              ("talk_probability", True, "expected a number"),
                              ("min_gap_s", -1, "-1 is outside"),
                              ("min_gap_s", 86_401, "86401 is outside"),
                              ("min_gap_s", float("inf"), "expected a number"),
                              ("duck_db", 12, "unknown; known: talk_probability, min_gap_s")]),
    ({"arms": [{"name": "a", "persona": "nova"}, {"name": "b", "persona": "nova",
                                                   "overrides": 0.5}]}, "arms[1].overrides"),
])
def test_a_bad_field_is_named(change: dict, field: str) -> None:
    raw = {"name": "ok", "start": "2026-01-01", "arms": [{"name": "a", "persona": "nova"},
                                                       {"name": "b", "persona": "spark"}]}
    with pytest.raises(ExperimentError, match=re.escape(field)):
        parse_experiment({**raw, **change})


def test_overrides_at_their_bounds_are_kept() -> None:
    e = parse_experiment({"name": "ok", "arms": [
        {"name": "a", "persona": "nova", "overrides": {"talk_probability": 0}},
        {"name": "b", "persona": "nova",
         "overrides": {"talk_probability": 1, "min_gap_s": 86_400}}]})
    assert e.arm("a").overrides == (("talk_probability", 0.0),)
    assert e.arm("b").overrides == (("min_gap_s", 86_400.0), ("talk_probability", 1.0))


def test_the_older_single_file_still_loads_and_a_name_counts_once(tmp_path: Path) -> None:
    (tmp_path / "exps").mkdir()
    (tmp_path / "exps" / "talk-less.toml").write_text(GOOD, encoding="utf-8")
    legacy = tmp_path / "experiments.toml"
    legacy.write_text('[[experiment]]\nname = "old"\nsalt = "v1"\n'
                      '  [[experiment.arm]]\n  name = "a"\n  persona = "nova"\n'
                      '  [[experiment.arm]]\n  name = "b"\n  persona = "atlas"\n'
                      '[[experiment]]\nname = "talk-less"\n'
                      '  [[experiment.arm]]\n  name = "a"\n  persona = "nova"\n'
                      '  [[experiment.arm]]\n  name = "b"\n  persona = "atlas"\n',
                      encoding="utf-8")
    found = load_all(tmp_path / "exps", legacy)
    assert [e.name for e in found] == ["talk-less", "old"]
    assert found[0].arm("quiet") is not None  # the directory's definition wins


def test_the_demo_ships_a_two_persona_experiment() -> None:
    from dj.config import load_config

    config = load_config(env={})
    found = load_all(config.experiments_dir, config.experiments_file)
    demo = next(e for e in found if e.name == "nova-vs-spark")
    assert [a.persona for a in demo.arms] == ["nova", "spark"]
    assert demo.primary == "listening_s_per_day" and demo.guardrails


def test_an_enrolled_listener_cannot_switch_persona(demo_station, monkeypatch) -> None:
    exp = Experiment("switch-check", (Arm("control", "nova"), Arm("atlas", "atlas")), salt="x")
    monkeypatch.setattr(demo_station.experiments, "experiments", [exp])
    listener = next(lid for lid in IDS if assign(exp, lid).name == "atlas")
    assert demo_station.persona_for(listener, "spark", "US") == ("atlas", "switch-check",
                                                                  "atlas")
    assert demo_station.persona_for(listener, None, "US") == ("atlas", "switch-check", "atlas")
    # outside every experiment the choice is the listener's
    monkeypatch.setattr(demo_station.experiments, "experiments",
                        [dataclasses.replace(exp, territories=("JP",))])
    assert demo_station.persona_for(listener, "spark", "US") == ("spark", "", "")
