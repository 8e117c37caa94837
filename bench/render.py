"""Render benchmark: CPU seconds per second of programme for decode, DSP, voice mix and MP3 encode.

Builds a programme from ../shared/data/audio (ingested into a temporary folder), renders N minutes
through :class:`dj.audio.render.Renderer` and :class:`dj.audio.encode.Mp3Encoder` with synthetic
voice lines over every other transition, and prints a table to compare between commits.

    python bench/render.py [--minutes 10] [--audio DIR]
"""

from __future__ import annotations

import argparse
import logging
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from dj.audio.analysis import integrated_loudness
from dj.audio.encode import Mp3Encoder
from dj.audio.plan import Item, VoiceCue
from dj.audio.render import Renderer
from dj.catalog import Catalog, Deal
from dj.catalog.ingest import ingest
from dj.config import HOUSE_SAMPLE_RATE, AudioConfig
from dj.program.programme import track_cue
from dj.store import Store

DEFAULT_AUDIO = Path(__file__).resolve().parents[2] / "shared" / "data" / "audio"


def synthetic_voice(seconds: float, seed: int, lufs: float = -16.0) -> np.ndarray:
    """Speech-like audio: a buzzy voiced tone with syllable-rate amplitude modulation."""
    rng = np.random.default_rng(seed)
    sr = HOUSE_SAMPLE_RATE
    t = np.arange(int(seconds * sr)) / sr
    f0 = 140 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    tone = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)), 0, None) ** 0.5
    x = (tone * syllables + rng.normal(0, 0.02, t.size)).astype(np.float32)
    x = np.stack([x, x])
    return (x * 10 ** ((lufs - integrated_loudness(x, sr)) / 20)).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--audio", type=Path, default=DEFAULT_AUDIO)
    ap.add_argument("--block-s", type=float, default=0.5)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        catalog = Catalog(Store(data / "dj.sqlite3"), data / "media")
        t = time.perf_counter()
        report = ingest(
            catalog,
            data / "media",
            args.audio,
            default_deals=[Deal("", frozenset({"WW"}))],
            workers=2,
        )
        print(f"ingested {len(report.added)} files in {time.perf_counter() - t:.1f} s wall\n")
        tracks = catalog.tracks()
        rng = random.Random(7)
        voices = {f"v{i}": synthetic_voice(rng.uniform(2.0, 6.0), i) for i in range(8)}
        counter = 0

        def next_item() -> Item:
            nonlocal counter
            counter += 1
            tr = rng.choice(tracks)
            cue = track_cue(tr)
            voice = VoiceCue(f"v{counter % 8}", 12.0) if counter % 2 == 0 else None
            return Item(cue, 4.0, voice)

        config = AudioConfig()
        renderer = Renderer(config, next_item, voices.get, profile=True)
        encoder = Mp3Encoder(config.bitrate_kbps)
        block = int(args.block_s * HOUSE_SAMPLE_RATE)
        total_frames = int(args.minutes * 60 * HOUSE_SAMPLE_RATE)
        encode_s = 0.0
        markers = 0
        mp3_bytes = 0
        start = time.process_time()
        wall = time.perf_counter()
        while renderer.frames_rendered < total_frames:
            audio, ms = renderer.render(block)
            markers += len(ms)
            t = time.process_time()
            mp3_bytes += len(encoder.encode(audio))
            encode_s += time.process_time() - t
        total_s = time.process_time() - start
        wall = time.perf_counter() - wall
        programme_s = renderer.frames_rendered / HOUSE_SAMPLE_RATE
        tm = renderer.timings
        other = total_s - encode_s - tm["decode"] - tm["dsp"] - tm["voice"]
        print(
            f"programme: {programme_s:.0f} s, {counter} items, {markers} markers, "
            f"{mp3_bytes / 1e6:.1f} MB MP3, wall {wall:.2f} s "
            f"({programme_s / wall:.0f}x real time)\n"
        )
        print(f"{'stage':<28}{'CPU s':>10}{'CPU s / programme s':>22}")
        rows = [
            ("decode (FLAC read)", tm["decode"]),
            ("DSP (mix, fades, limiter)", tm["dsp"]),
            ("voice mix + ducking", tm["voice"]),
            ("MP3 encode", encode_s),
            ("other (scheduling)", other),
            ("total", total_s),
        ]
        for name, secs in rows:
            print(f"{name:<28}{secs:>10.3f}{secs / programme_s:>22.5f}")
        target = 0.02
        print(
            f"\ntarget total <= {target} CPU s / programme s: "
            f"{'met' if total_s / programme_s <= target else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
