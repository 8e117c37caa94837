"""The station recommender: contract shared by every model, feedback, cold start, persistence."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from dj.config import RecommendConfig
from dj.recommend import LiveRecommender, PopularityModel, StationModel, load_model
from dj.recommend.interactions import log_confidence

GENRES, ARTISTS_PER_GENRE, TRACKS_PER_ARTIST = 4, 3, 10
TRACKS = [
    f"g{g}-a{a}-t{t}"
    for g in range(GENRES) for a in range(ARTISTS_PER_GENRE) for t in range(TRACKS_PER_ARTIST)
]
UNPLAYED = "g0-a0-new"
CATALOG = [*TRACKS, UNPLAYED]
ARTIST = {t: t.rsplit("-", 1)[0] for t in CATALOG}
CONFIG = RecommendConfig(factors=16, regularization=1.0, iterations=10, alpha=1.0)


def genre(track: str) -> int:
    return int(track[1])


def synthetic_rows(seed: int = 0) -> list[tuple[str, str, float]]:
    """80 listeners, each loyal to one genre (15 of its tracks) plus two random plays."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(80):
        own = [t for t in TRACKS if genre(t) == u % GENRES]
        for t in rng.choice(own, 15, replace=False):
            rows.append((f"u{u}", str(t), float(rng.integers(1, 20))))
        for t in rng.choice(TRACKS, 2, replace=False):
            rows.append((f"u{u}", str(t), 1.0))
    return rows


ROWS = synthetic_rows()


def train(kind: str, random_state: int = 0):
    if kind == "als":
        return StationModel.train(ROWS, CONFIG, item_ids=CATALOG, item_artists=ARTIST,
                                  random_state=random_state, num_threads=1)
    return PopularityModel.train(ROWS, CONFIG, item_ids=CATALOG, item_artists=ARTIST)


@pytest.fixture(scope="module")
def als() -> StationModel:
    return train("als")


def everything(model) -> np.ndarray:
    return np.ones(len(model.item_ids), dtype=bool)


# -- the contract every recommender passes ------------------------------------------------------
@pytest.fixture(params=["als", "popularity"])
def model(request):
    return train(request.param)


def test_only_allowed_items(model) -> None:
    rng = np.random.default_rng(1)
    licensed = {t for t in CATALOG if rng.random() < 0.6}
    allowed = model.allowed_mask(licensed)
    for listener in ("u0", "u1", "stranger"):
        picks = model.candidates(listener, allowed, 30, seed=["g1-a0-t0"])
        assert picks and {t for t, _ in picks} <= licensed


def test_excluded_never_returned(model) -> None:
    top = [t for t, _ in model.candidates("u0", everything(model), 5)]
    picks = model.candidates("u0", everything(model), 20, exclude=top)
    assert not {t for t, _ in picks} & set(top)


def test_n_respected_and_best_first(model) -> None:
    picks = model.candidates("u2", everything(model), 7)
    assert len(picks) == 7
    scores = [s for _, s in picks]
    assert scores == sorted(scores, reverse=True)
    small = model.allowed_mask(TRACKS[:4])
    assert len(model.candidates("u2", small, 10)) == 4
    assert len(model.candidates("u2", small, 10, exclude=TRACKS[:1])) == 3
    assert model.candidates("u2", np.zeros(len(model.item_ids), bool), 10) == []


def test_deterministic_for_a_seed(model) -> None:
    kind = "als" if isinstance(model, StationModel) else "popularity"
    again = train(kind)
    for listener in ("u3", "stranger"):
        assert (model.candidates(listener, everything(model), 15, seed=["g2-a1-t1"])
                == again.candidates(listener, everything(again), 15, seed=["g2-a1-t1"]))


def test_three_skips_of_an_artist_keep_it_out_of_the_next_ten(model) -> None:
    allowed = everything(model)
    favourite = ARTIST[model.candidates("u0", allowed, 1)[0][0]]
    for track in [t for t in TRACKS if ARTIST[t] == favourite][:3]:
        model.feedback("u0", track, "skip")
    played: list[str] = []
    for _ in range(10):  # the programme's next 10 picks, each excluding what just aired
        pick = model.candidates("u0", allowed, 1, exclude=played)[0][0]
        played.append(pick)
        model.feedback("u0", pick, "complete")
    assert favourite not in {ARTIST[t] for t in played}


def test_warm_then_pick_equals_pick(model) -> None:
    fresh = train("als" if isinstance(model, StationModel) else "popularity")
    model.warm("stranger", seed=[TRACKS[50]])
    assert (model.candidates("stranger", everything(model), 10)
            == fresh.candidates("stranger", everything(fresh), 10, seed=[TRACKS[50]]))


def test_unknown_kind_and_track(model) -> None:
    with pytest.raises(ValueError, match="unknown feedback kind"):
        model.feedback("u0", TRACKS[0], "love")
    model.feedback("u0", "not-in-catalog", "like")  # ignored, not an error


def test_save_load_round_trip(model, tmp_path: Path) -> None:
    model.feedback("u5", TRACKS[3], "skip")  # live state is not part of the artefact
    path = tmp_path / "models" / "station.npz"
    model.save(path)
    loaded = type(model).load(path)
    fresh = train("als" if isinstance(model, StationModel) else "popularity")
    assert type(load_model(path)) is type(model)
    for listener in ("u5", "u6", "stranger"):
        assert (loaded.candidates(listener, everything(loaded), 20, seed=[TRACKS[40]])
                == fresh.candidates(listener, everything(fresh), 20, seed=[TRACKS[40]]))
    assert loaded.similar(TRACKS[0], 5) == fresh.similar(TRACKS[0], 5)
    assert list(loaded.item_ids) == list(model.item_ids)


def test_cold_start_without_seed_is_popularity(model) -> None:
    picks = model.candidates("stranger", everything(model), 3)
    plays = {t: sum(1 for _, i, _ in ROWS if i == t) for t in CATALOG}
    assert plays[picks[0][0]] == max(plays.values())


# -- the ALS station model ----------------------------------------------------------------------
def test_cold_start_follows_the_seed(als: StationModel) -> None:
    seeds = ["g2-a1-t0", "g2-a0-t3"]
    picks = als.candidates("new-listener", everything(als), 10, seed=seeds)
    assert sum(genre(t) == 2 for t, _ in picks) >= 8
    licensed = [t for t in TRACKS if genre(t) != 2 or t.endswith("-t0")]
    picks = als.candidates("new-listener", als.allowed_mask(licensed), 10, seed=seeds)
    assert {t for t, _ in picks} <= set(licensed)


def test_known_listener_gets_their_genre(als: StationModel) -> None:
    for u in range(8):
        picks = als.candidates(f"u{u}", everything(als), 10)
        assert sum(genre(t) == u % GENRES for t, _ in picks) >= 8


def test_tuned_settings_still_work_on_a_small_station() -> None:
    from dj.recommend import tuned_config

    model = StationModel.train(ROWS, tuned_config(), item_ids=CATALOG, item_artists=ARTIST,
                               num_threads=1)
    assert model.params.regularization < tuned_config().regularization
    for u in range(8):
        picks = model.candidates(f"u{u}", everything(model), 10)
        assert sum(genre(t) == u % GENRES for t, _ in picks) >= 8


def mean_rank(model: StationModel, listener: str, wanted: set[str]) -> float:
    order = [t for t, _ in model.candidates(listener, everything(model), len(CATALOG))]
    return float(np.mean([order.index(t) for t in wanted]))


def test_like_pulls_similar_tracks_forward() -> None:
    model = train("als")
    liked = "g3-a1-t2"
    near = {t for t, _ in model.similar(liked, 10)}
    assert sum(genre(t) == 3 for t in near) >= 8
    before = mean_rank(model, "u0", near)
    version = model.user_vector("u0").copy()
    model.feedback("u0", liked, "like")
    assert not np.allclose(model.user_vector("u0"), version)
    after = mean_rank(model, "u0", near)
    assert after < before - 5


def test_feedback_solves_the_same_normal_equations_as_implicit() -> None:
    from implicit.cpu.als import AlternatingLeastSquares

    model = StationModel.train(ROWS, CONFIG, item_ids=CATALOG, weighting="log", num_threads=1)
    model.feedback("u7", TRACKS[0], "play")
    counts: dict[str, float] = {}
    for u, t, c in ROWS:
        if u == "u7":
            counts[t] = counts.get(t, 0.0) + c
    counts[TRACKS[0]] = counts.get(TRACKS[0], 0.0) + model.rules.play
    index = {t: i for i, t in enumerate(model.item_ids)}
    row = sp.csr_matrix(
        (list(counts.values()), ([0] * len(counts), [index[t] for t in counts])),
        shape=(1, len(model.item_ids)),
    )
    reference = AlternatingLeastSquares(factors=CONFIG.factors,
                                        regularization=model.params.regularization,
                                        alpha=1.0)
    reference.item_factors = np.asarray(model._item_factors)
    reference.user_factors = np.zeros((1, CONFIG.factors), dtype=np.float32)
    expected = reference.recalculate_user(0, log_confidence(row, CONFIG.alpha))
    np.testing.assert_allclose(model.user_vector("u7"), expected, rtol=1e-3, atol=1e-5)


def test_dislike_sinks_the_track_and_a_like_forgives(als: StationModel) -> None:
    model = train("als")
    top = model.candidates("u1", everything(model), 1)[0][0]
    model.feedback("u1", top, "dislike")
    order = [t for t, _ in model.candidates("u1", everything(model), len(CATALOG))]
    assert order.index(top) >= len(CATALOG) - 5
    model.feedback("u1", top, "like")
    assert top in {t for t, _ in model.candidates("u1", everything(model), 5)}


def test_unplayed_tracks_stay_recommendable(als: StationModel) -> None:
    assert UNPLAYED in als.item_ids
    picks = als.candidates("u0", als.allowed_mask([UNPLAYED]), 5)
    assert [t for t, _ in picks] == [UNPLAYED]
    assert all(ARTIST[t] == "g0-a0" for t, _ in als.similar(UNPLAYED, 5))


def test_empty_history_still_serves_seeded_stations() -> None:
    model = StationModel.train([], CONFIG, item_ids=CATALOG, item_artists=ARTIST)
    picks = model.candidates("first-listener", everything(model), 5, seed=["g1-a2-t0"])
    assert len(picks) == 5 and all(ARTIST[t] == "g1-a2" for t, _ in picks)


def test_concurrent_feedback_and_picks(als: StationModel) -> None:
    model = train("als")
    allowed = everything(model)
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def listener(u: int) -> None:
        barrier.wait()
        try:
            for i in range(60):
                picks = model.candidates(f"u{u}", allowed, 5, exclude=TRACKS[:i % 7])
                model.feedback(f"u{u}", picks[0][0], "skip" if i % 3 == 0 else "complete")
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assert below
            errors.append(exc)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(listener, range(4)))
    assert errors == []


# -- swapping models live -----------------------------------------------------------------------
def test_live_swap_keeps_feedback() -> None:
    live = LiveRecommender(train("als"))
    allowed = live.allowed_mask(CATALOG)
    favourite = ARTIST[live.candidates("u4", allowed, 1)[0][0]]
    for track in [t for t in TRACKS if ARTIST[t] == favourite][:3]:
        live.feedback("u4", track, "skip")
    retrained = StationModel.train(synthetic_rows(seed=1), CONFIG, item_ids=CATALOG,
                                   item_artists=ARTIST, num_threads=1)
    assert favourite in {ARTIST[t] for t, _ in retrained.candidates("u4", allowed, 10)}
    version = live.version
    live.swap(retrained)
    assert live.model is retrained and live.version == version + 1
    picks = live.candidates("u4", live.allowed_mask(CATALOG), 10)
    assert favourite not in {ARTIST[t] for t, _ in picks}


def test_live_rejects_a_mask_from_another_catalog() -> None:
    live = LiveRecommender(train("popularity"))
    with pytest.raises(ValueError):
        live.candidates("u0", np.ones(3, dtype=bool), 5)
