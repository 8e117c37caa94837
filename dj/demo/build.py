"""`dj demo`'s content: synthesize the demo catalog, ingest it, add listeners and their histories.

Synthesis runs in worker processes (the synthesizer is numpy- and GIL-bound, so threads would not
help); each worker writes its FLAC straight into a temporary folder next to the media folder, and
the regular ingest path (the same one `dj ingest` uses) turns the folder and its manifest into
catalog entries. Running it again on a catalog that already has the demo does nothing.
"""

from __future__ import annotations

import inspect
import logging
import multiprocessing
import os
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from tqdm import tqdm

from dj.catalog import Catalog
from dj.config import HOUSE_CHANNELS, HOUSE_SAMPLE_RATE, Config
from dj.demo.catalog import ARTISTS, DemoTrack, demo_tracks
from dj.demo.covers import write_covers
from dj.demo.listeners import make_listeners
from dj.demo.manifest import manifest_toml
from dj.demo.spec import SongSpec

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.toml"
BIT_DEPTH = 16
FLAC_QUALITY = 0  # fastest FLAC level: the files are temporary, ingest re-encodes them


@dataclass(frozen=True, slots=True)
class DemoSummary:
    tracks: int
    artists: int
    listeners: int
    interactions: int
    unplayable: tuple[tuple[str, str], ...]  # (track id, why it does not air for some listeners)
    seconds: float
    built: bool = True  # False when the catalog already held the demo
    audio_s: float = 0.0  # total synthesized audio
    synth_s: float = 0.0  # wall time spent synthesizing
    failed: tuple[str, ...] = ()  # tracks the ingest rejected

    def describe(self) -> str:
        what = "built" if self.built else "already present"
        lines = [
            f"demo {what}: {self.tracks} tracks by {self.artists} artists, {self.listeners}"
            f" listeners, {self.interactions} history rows ({self.seconds:.1f} s)",
        ]
        lines += [f"  not airable for some listeners: {tid} ({why})"
                  for tid, why in self.unplayable]
        lines += [f"  failed to ingest: {tid}" for tid in self.failed]
        return "\n".join(lines)


def synth_file(spec: SongSpec, path: str) -> float:
    """Render one spec and write it as FLAC; returns its duration (s). Runs in a worker process."""
    from pedalboard.io import AudioFile

    from dj.demo.synth import render

    audio = render(spec, HOUSE_SAMPLE_RATE)
    with AudioFile(path, "w", samplerate=HOUSE_SAMPLE_RATE, num_channels=HOUSE_CHANNELS,
                   bit_depth=BIT_DEPTH, quality=FLAC_QUALITY) as f:
        f.write(audio)
    return audio.shape[1] / HOUSE_SAMPLE_RATE


def synthesize(
    tracks: Sequence[DemoTrack], folder: Path, *, workers: int | None = None,
    progress: bool | tqdm = False,
) -> float:
    """Write every track's FLAC (``<track id>.flac``) into ``folder``; returns total seconds.
    ``progress``: True for a bar of its own, or a bar to advance (one step a track)."""
    workers = max(1, min(len(tracks), workers or os.cpu_count() or 1))
    jobs = [(t.spec, str(folder / f"{t.id}.flac")) for t in tracks]
    # Longest first, so the last worker does not start a long track alone at the end.
    jobs.sort(key=lambda j: -j[0].duration_s)
    # a caller's bar (dj demo's one bar over every stage) is advanced, not closed
    shared = isinstance(progress, tqdm)
    bar = progress if shared else tqdm(total=len(jobs), desc="synthesize", unit="track",
                                       disable=not progress)
    total = 0.0
    try:
        if workers == 1:
            for spec, path in jobs:
                total += synth_file(spec, path)
                bar.update(1)
        else:
            done: set[str] = set()
            try:
                ctx = multiprocessing.get_context("spawn")  # safe even when threads are running
                with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
                    futures = {pool.submit(synth_file, spec, path): path for spec, path in jobs}
                    for fut in as_completed(futures):
                        total += fut.result()
                        done.add(futures[fut])
                        bar.update(1)
            except BrokenProcessPool as exc:  # e.g. a __main__ that cannot be re-imported
                logger.warning("synth worker processes failed (%s); rendering in-process", exc)
                for spec, path in jobs:
                    if path not in done:
                        total += synth_file(spec, path)
                        bar.update(1)
    finally:
        if not shared:
            bar.close()
    return total


def _summary(catalog: Catalog, tracks: Sequence[DemoTrack], started: float, **extra) -> DemoSummary:
    present = {t.id for t in catalog.tracks()}
    ids = {t.id for t in tracks}
    demo_ids = ids & present
    listeners = [x for x in catalog.listeners()]
    rows = [r for r in catalog.interactions() if r[1] in ids]
    return DemoSummary(
        tracks=len(demo_ids),
        artists=len({t.artist_id for t in tracks if t.id in demo_ids}),
        listeners=len(listeners),
        interactions=len(rows),
        unplayable=tuple((t.id, t.unplayable) for t in tracks if t.unplayable and t.id in demo_ids),
        seconds=time.perf_counter() - started,
        **extra,
    )


def build_demo(
    config: Config, catalog: Catalog, *, n_listeners: int = 240, seed: int = 0,
    short: bool = False, progress: bool | tqdm = False, today: date | None = None,
    workers: int | None = None,
) -> DemoSummary:
    """Create the demo catalog and listeners unless the catalog already has them.

    ``short`` renders every track at 20–30 s (for tests); ``today`` (UTC, default now) anchors the
    deal dates; ``workers`` defaults to the number of CPUs.
    """
    started = time.perf_counter()
    today = today or datetime.now(UTC).date()
    tracks = demo_tracks(today, short=short)
    present = {t.id for t in catalog.tracks()}
    missing = [t for t in tracks if t.id not in present]
    audio_s = synth_s = 0.0
    failed: tuple[str, ...] = ()
    if missing:
        for artist in ARTISTS:
            catalog.add_artist(artist)
        config.media_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="demo-", dir=config.data_dir) as tmp:
            folder = Path(tmp)
            t0 = time.perf_counter()
            audio_s = synthesize(missing, folder, workers=workers, progress=progress)
            synth_s = time.perf_counter() - t0
            logger.info("synthesized %d demo tracks (%.0f s of audio) in %.1f s",
                        len(missing), audio_s, synth_s)
            manifest = folder / MANIFEST_NAME
            manifest.write_text(
                manifest_toml(ARTISTS, missing, lambda t: f"{t.id}.flac"), encoding="utf-8"
            )
            failed = _ingest(config, catalog, folder, manifest, progress, workers)
    write_covers(config.media_dir, tracks)  # also for a demo built before covers existed
    if catalog.listener("alice") is None:
        histories = make_listeners(tracks, n=n_listeners, seed=seed)
        for listener in histories.listeners:
            catalog.add_listener(listener)
        catalog.add_interactions(histories.rows)
    return _summary(catalog, tracks, started, built=bool(missing), audio_s=audio_s,
                    synth_s=synth_s, failed=failed)


def _ingest(
    config: Config, catalog: Catalog, folder: Path, manifest: Path, progress: bool | tqdm,
    workers: int | None,
) -> tuple[str, ...]:
    from dj.catalog.ingest import ingest

    extra = {}
    if "workers" in inspect.signature(ingest).parameters:
        extra["workers"] = max(1, min(4, workers or os.cpu_count() or 1))
    report = ingest(catalog, config.media_dir, folder, manifest,
                    target_lufs=config.audio.target_lufs, crossfade_s=config.audio.crossfade_s,
                    progress=progress, **extra)
    failed = tuple(getattr(r, "file", str(r)) for r in getattr(report, "failed", ()))
    if failed:
        logger.warning("demo ingest: %d tracks failed: %s", len(failed), ", ".join(failed))
    return failed
