"""The recommender learns from what the station logged (qualifying plays, skips, likes and
dislikes, as well as the histories), and a running server picks up a model trained by another
process (`dj train`)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from dj.catalog import Catalog
from dj.ledger import Ledger
from dj.ledger.log import Event, ended, qualified
from dj.server.wiring import training_interactions
from dj.store import Store


def _play(ledger: Ledger, play_id: str, listener: str, track: str, heard_s: float,
          outcome: str) -> None:
    start = Event(play_id, "play_started", listener, play_id=play_id, track_id=track,
                  artist_id="a")
    events = [start, ended(start, heard_s, outcome)]
    if heard_s >= 30:
        events.insert(1, qualified(start, 30.0))
    ledger.append(events)


def test_logged_plays_skips_and_likes_become_training_weights(tmp_path: Path) -> None:
    store = Store(tmp_path / "dj.sqlite3")
    catalog = Catalog(store, tmp_path / "media")
    ledger = Ledger(store)
    catalog.add_interactions([("ann", "t1", 5.0), ("ann", "t9", 2.0)])
    _play(ledger, "p1", "ann", "t2", 180.0, "completed")
    _play(ledger, "p2", "ann", "t2", 45.0, "skipped")  # qualified, then skipped: 1 - 0.5
    _play(ledger, "p3", "ann", "t3", 12.0, "skipped")  # skipped early: nothing to learn
    _play(ledger, "p4", "bo", "t1", 90.0, "completed")
    ledger.feedback(event_id="f1", listener_id="bo", track_id="t4", kind="like")
    ledger.feedback(event_id="f2", listener_id="ann", track_id="t9", kind="dislike")
    rows = training_interactions(catalog, ledger)
    weights: dict[tuple[str, str], float] = {}
    for listener, track, w in rows:
        weights[(listener, track)] = weights.get((listener, track), 0.0) + w
    assert weights == {("ann", "t1"): 5.0, ("ann", "t2"): 1.5, ("bo", "t1"): 1.0,
                       ("bo", "t4"): 3.0}


async def test_a_running_server_picks_up_a_model_dj_train_saved(fast, demo_config, demo_station):
    version = demo_station.recommender.version
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJ_")}
    train = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dj.cli", "train", "--data-dir", str(demo_config.data_dir),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await train.communicate()
    assert train.returncode == 0, err.decode()[-2000:]
    assert b"from what the station logged" in out
    deadline = time.monotonic() + 20  # the server looks at the model file every few seconds
    while demo_station.recommender.version == version:
        assert time.monotonic() < deadline, "the new model was not picked up"
        await asyncio.sleep(0.2)
