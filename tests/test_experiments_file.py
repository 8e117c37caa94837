"""A malformed experiment is reported with its place and skipped alone; the others still run."""

from __future__ import annotations

import logging
from pathlib import Path

from dj.experiments.assign import load_experiments

GOOD = """
[[experiment]]
name = "good"
salt = "v1"
  [[experiment.arm]]
  name = "a"
  persona = "nova"
  [[experiment.arm]]
  name = "b"
  persona = "atlas"
"""


def test_a_bad_experiment_is_skipped_alone(tmp_path: Path, caplog) -> None:
    path = tmp_path / "experiments.toml"
    bad = ('[[experiment]]\nname = "no-arms"\n'
           '[[experiment]]\nname = "zero"\n  [[experiment.arm]]\n  name = "a"\n'
           '  persona = "nova"\n  weight = 0\n'
           '[[experiment]]\nname = "no-persona"\n  [[experiment.arm]]\n  name = "a"\n')
    path.write_text(GOOD + bad, encoding="utf-8")
    with caplog.at_level(logging.ERROR):
        experiments = load_experiments(path)
    assert [e.name for e in experiments] == ["good"]
    assert [a.name for a in experiments[0].arms] == ["a", "b"]
    for i in (1, 2, 3):
        assert f"experiment[{i}] skipped" in caplog.text
    assert str(path) in caplog.text


def test_a_file_that_is_not_toml_names_its_line(tmp_path: Path, caplog) -> None:
    path = tmp_path / "experiments.toml"
    path.write_text(GOOD + "\n[[experiment]\n", encoding="utf-8")
    with caplog.at_level(logging.ERROR):
        assert load_experiments(path) == []
    assert "line 12" in caplog.text
