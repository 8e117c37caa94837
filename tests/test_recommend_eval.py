"""Interactions files, the holdout, metrics against hand-computed values, and a lastfm smoke run."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest

from dj.recommend import evaluate
from dj.recommend.evaluate import holdout_split, run_eval, run_recommend
from dj.recommend.interactions import InteractionsError, build_matrix, read_interactions
from dj.recommend.metrics import (
    average_precision_at_k,
    coverage_at_k,
    evaluate_rankings,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)

LASTFM = Path(__file__).resolve().parents[2] / "shared" / "data" / "lastfm-2k" / "user_artists.dat"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plays.tsv"
    path.write_text(text, encoding="utf-8")
    return path


# -- reading interactions -----------------------------------------------------------------------
def test_read_interactions_with_header_and_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "userID\tartistID\tweight\n1\t51\t13883\n\n1\t52\t2.5\r\n2\t51\t0\n")
    assert read_interactions(path) == [("1", "51", 13883.0), ("1", "52", 2.5), ("2", "51", 0.0)]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("u\ti\t1\nu\ti\n", 2, "expected 3 tab-separated fields"),
        ("u\ti\t1\nu\tj\t1\nu\tk\tmany\n", 3, "not a number"),
        ("user\titem\tcount\nu\ti\t-1\n", 2, "finite number"),
        ("u\ti\t1\nu\ti\tnan\n", 2, "finite number"),
        ("u\ti\t1\n\t\t1\n", 2, "empty user or item"),
        ("u i 1\n", 1, "expected 3 tab-separated fields"),
    ],
)
def test_read_interactions_names_the_bad_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InteractionsError, match=message) as info:
        read_interactions(path)
    assert info.value.line == line
    assert f"{path}:{line}:" in str(info.value)


def test_build_matrix_sums_repeats_and_keeps_silent_items() -> None:
    m = build_matrix([("a", "x", 1), ("a", "x", 2), ("b", "y", 1), ("b", "gone", 5)],
                     item_ids=["x", "y", "z"])
    assert m.item_ids == ("x", "y", "z") and m.user_ids == ("a", "b")
    assert m.counts.toarray().tolist() == [[3.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


# -- metrics, by hand ---------------------------------------------------------------------------
def test_metrics_against_hand_computed_values() -> None:
    ranked, relevant = ["a", "b", "c", "d"], {"b", "d", "e"}
    assert precision_at_k(ranked, relevant, 4) == pytest.approx(0.5)
    assert recall_at_k(ranked, relevant, 4) == pytest.approx(2 / 3)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranked, relevant, 4) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(ranked, relevant, 4) == pytest.approx(0.498189, abs=1e-6)
    assert average_precision_at_k(ranked, relevant, 4) == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert ndcg_at_k(["b", "d", "e"], relevant, 3) == pytest.approx(1.0)
    assert average_precision_at_k(["x"], relevant, 4) == 0.0
    assert coverage_at_k([["a", "b"], ["b", "c"]], 10, 2) == pytest.approx(0.3)
    m = evaluate_rankings({1: ranked, 2: ["e"]}, {1: relevant, 2: {"e"}}, n_items=10, k=4)
    assert m.precision == pytest.approx((0.5 + 0.25) / 2)
    assert m.ndcg == pytest.approx((dcg / ideal + 1.0) / 2)
    assert m.coverage == pytest.approx(0.5) and m.users == 2


def test_holdout_is_seeded_and_per_user() -> None:
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{i}", 1.0) for u in range(30) for i in rng.choice(50, u % 12 + 1,
                                                                           replace=False)]
    counts = build_matrix(rows).counts
    a, b, c = holdout_split(counts, 3), holdout_split(counts, 3), holdout_split(counts, 4)
    assert a.held_out == b.held_out and a.held_out != c.held_out
    lengths = np.diff(counts.indptr)
    for user in range(counts.shape[0]):
        held = a.held_out.get(user, set())
        if lengths[user] < 5:
            assert not held
        else:
            assert len(held) == max(1, round(lengths[user] * 0.2))
            train_items = set(a.train.indices[a.train.indptr[user]:a.train.indptr[user + 1]])
            assert not held & train_items
            assert len(held) + len(train_items) == lengths[user]


# -- CLI entry points ---------------------------------------------------------------------------
def test_run_recommend_excludes_known_items(tmp_path: Path) -> None:
    rows = [f"u{u}\ti{(u + k) % 12}\t{k + 1}" for u in range(20) for k in range(4)]
    plays = write(tmp_path, "user\titem\tcount\n" + "\n".join(rows) + "\n")
    users = tmp_path / "users.txt"
    users.write_text("u1\n\nnewcomer\n", encoding="utf-8")
    out = io.StringIO()
    assert run_recommend(plays, users, n=3, out=out) == 0
    lines = [line.split("\t") for line in out.getvalue().splitlines()]
    assert [(u, r) for u, _, r in lines] == [("u1", "1"), ("u1", "2"), ("u1", "3"),
                                           ("newcomer", "1"), ("newcomer", "2"), ("newcomer", "3")]
    own = {f"i{(1 + k) % 12}" for k in range(4)}
    assert not {i for u, i, _ in lines if u == "u1"} & own


def test_run_recommend_reports_bad_file(tmp_path: Path, capsys) -> None:
    plays = write(tmp_path, "u\ti\t1\nbroken\n")
    users = tmp_path / "users.txt"
    users.write_text("u\n", encoding="utf-8")
    assert run_recommend(plays, users, out=io.StringIO()) == 2
    assert ":2:" in capsys.readouterr().err


def test_run_eval_prints_the_table(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(evaluate, "SHAPES", ((8, 0.5),))
    monkeypatch.setattr(evaluate, "WEIGHT_PARAMS", {"raw": (0.1,), "log": (1.0,), "bm25": (1.2,)})
    monkeypatch.setattr(evaluate, "DEBIAS_GRID", (0.0, 0.3))
    rng = np.random.default_rng(0)
    rows = [f"u{u}\ti{(u % 4) * 10 + int(k)}\t{rng.integers(1, 9)}"
            for u in range(60) for k in rng.choice(10, 6, replace=False)]
    out = io.StringIO()
    assert run_eval(write(tmp_path, "\n".join(rows) + "\n"), seed=0, out=out) == 0
    text = out.getvalue()
    for name in ("popularity", "ALS raw counts", "ALS log conf.", "ALS BM25", "dj (served)",
                 "nDCG@10", "Cov@10"):
        assert name in text


# -- real data, cheaply ---------------------------------------------------------------------------
@pytest.mark.skipif(not LASTFM.exists(), reason="lastfm-2k not available")
def test_lastfm_subset_served_model_beats_popularity() -> None:
    rows = [r for r in read_interactions(LASTFM) if int(r[0]) % 4 == 0]
    matrix = build_matrix(rows)
    split = holdout_split(matrix.counts, 0)
    users = list(split.held_out)
    popular = evaluate.rank_users(evaluate.popularity_scorer(split.train), split.train, users)
    pop = evaluate_rankings(popular, split.held_out, len(matrix.item_ids))
    setting = evaluate.AlsSetting("bm25", 3.0, 64, 10.0, iterations=10, debias=0.3)
    served = evaluate_rankings(evaluate.served_rankings(matrix, split, setting, 0),
                               split.held_out, len(matrix.item_ids))
    assert served.ndcg > pop.ndcg + 0.05
    assert served.coverage > 5 * pop.coverage
