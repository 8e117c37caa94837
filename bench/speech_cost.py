"""Speech CPU per listener-hour with the Kokoro voice, at 10, 100 and 1,000 listeners.

The narrator's own choices are simulated (the real :class:`~dj.narrate.Narrator`, the
repository's personas and artist packs, a catalog of ``--tracks`` tracks by the demo artists):
each listener gets a persona by a stable hash (as the persona experiment does), a track every
2.5-5 minutes, and at each transition the narrator decides whether and what to say. Renders are
counted as the station makes them: once per distinct utterance key (the voice cache is shared
by every listener), plus each greeting's name-less variant and the espeak-ng stand-in of every
Kokoro line. The CPU per render is measured with the real engines (one onnxruntime thread) on a
sample of the chosen lines and fitted per character, so the table needs the voice installed
(``dj voice install``; or ``--kokoro-dir``); without it the brief's 1 CPU-s per speech-second is
used and said so.

    python bench/speech_cost.py [--listeners 10,100,1000] [--tracks 24] [--names unique|zipf]

Hour 1 starts with an empty voice cache; hour 2 counts only what hour 1 did not render.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dj.catalog import Analysis, Catalog, Track  # noqa: E402
from dj.config import Config, NarrateConfig  # noqa: E402
from dj.narrate import NarrationContext, Narrator  # noqa: E402
from dj.narrate.engines import EspeakEngine  # noqa: E402
from dj.narrate.engines.kokoro import KokoroEngine  # noqa: E402
from dj.narrate.narrator import synthesize_line  # noqa: E402
from dj.narrate.voice_install import kokoro_dir  # noqa: E402
from dj.store import Store  # noqa: E402

START = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
PERSONAS = ("nova", "atlas", "spark")
CROSSFADE_S = 6.0


class AlwaysAvailable:
    """Stands in for the Kokoro engine while choosing: lines are chosen as with the voice
    installed, and nothing is synthesized."""

    name = "kokoro"

    def available(self, voice=None) -> tuple[bool, str]:
        return True, ""


@dataclass
class Tally:
    chosen: int = 0
    named: int = 0
    kokoro: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (persona, text)
    espeak: dict[str, tuple[str, str]] = field(default_factory=dict)


def catalog_tracks(n: int, rng: random.Random) -> list[Track]:
    artists = sorted(p.name for p in (REPO / "voices" / "artists").iterdir() if p.is_dir())
    words = ["Harbour", "Lights", "Blue", "Hour", "Paper", "Moon", "Slow", "River", "Neon",
             "Garden", "Static", "Summer", "Glass", "Kites", "Orchard", "Road", "Velvet", "Rain"]
    tracks = []
    for i in range(n):
        artist = artists[i % len(artists)]
        title = " ".join(rng.sample(words, 2))
        duration = rng.uniform(150, 300)
        tracks.append(Track(
            id=f"t{i:05d}", title=title, artist_id=artist,
            artist_name=artist.replace("-", " ").title(), audio_path=Path(f"/none/{i}.flac"),
            album=f"{title} Sessions", year=2025,
            analysis=Analysis(duration, -14.0, -1.0, 0.0, 0.0, duration, 4.0)))
    return tracks


def listener_names(n: int, how: str, rng: random.Random) -> list[str]:
    if how == "unique":
        return [f"Listener{i}" for i in range(n)]
    # Zipf over 2,000 first names: common names repeat, as among real listeners
    pool = [f"Name{i}" for i in range(2000)]
    weights = 1.0 / np.arange(1, len(pool) + 1) ** 1.1
    return rng.choices(pool, weights=weights.tolist(), k=n)


def persona_of(listener: str) -> str:
    return PERSONAS[int(hashlib.sha256(listener.encode()).hexdigest(), 16) % len(PERSONAS)]


def simulate(narrator: Narrator, tracks: list[Track], names: list[str], hours: int,
             rng: random.Random) -> list[Tally]:
    """Every listener's programme for ``hours``; one tally per hour (distinct renders new in
    that hour)."""
    tallies = [Tally() for _ in range(hours)]
    seen: set[str] = set()
    for i, name in enumerate(names):
        listener = f"l{i}"
        persona = persona_of(listener)
        t, prev, last_voice = 0.0, None, None
        while t < hours * 3600:
            nxt = rng.choice(tracks)
            since = None if last_voice is None else t - last_voice
            ctx = NarrationContext(listener, name, "US", persona, prev, nxt,
                                   START + timedelta(seconds=t), since)
            utt = narrator.choose(ctx)
            hour = int(t // 3600)
            if utt is not None:
                last_voice = t
                tally = tallies[hour]
                tally.chosen += 1
                nameless = narrator._nameless.get(utt.key)
                tally.named += nameless is not None
                for u in ([utt, nameless] if nameless is not None else [utt]):
                    if u.key not in seen:
                        seen.add(u.key)
                        tally.kokoro[u.key] = (u.persona, u.text)
                        tally.espeak[u.key] = (u.persona, u.text)  # its stand-in
            t += nxt.analysis.duration_s - CROSSFADE_S
            prev = nxt
    return tallies


def measure(kokoro: KokoroEngine | None, narrator: Narrator, sample: list[tuple[str, str]]
            ) -> tuple[float, float, float]:
    """CPU-seconds per character for Kokoro and espeak-ng (with the voice chain and loudness),
    measured on ``sample``; also Kokoro's CPU-seconds per second of speech."""
    lufs = narrator.config.audio.voice_lufs
    espeak = EspeakEngine()
    rows_k, rows_e, speech_s, cpu_k = [], [], 0.0, 0.0
    if kokoro is not None:  # load the model outside the measurement
        synthesize_line(kokoro, "Warm up.", narrator.persona("nova").voice, (), lufs)
    for persona_name, text in sample:
        persona = narrator.persona(persona_name)
        t0 = time.thread_time()
        synthesize_line(espeak, text, persona.voice, persona.chain, lufs)
        rows_e.append((len(text), time.thread_time() - t0))
        if kokoro is not None:
            t0 = time.thread_time()
            audio = synthesize_line(kokoro, text, persona.voice, persona.chain, lufs)
            cpu = time.thread_time() - t0
            rows_k.append((len(text), cpu))
            speech_s += audio.shape[1] / 44_100
            cpu_k += cpu

    def fit(rows: list[tuple[int, float]]) -> float:
        # CPU in proportion to the characters: steadier than a line fit on a few similar lines
        return sum(s for _, s in rows) / max(1, sum(c for c, _ in rows))

    per_speech_s = cpu_k / speech_s if speech_s else 1.0
    return (fit(rows_k) if rows_k else 1 / 15.0), fit(rows_e), per_speech_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listeners", default="10,100,1000")
    parser.add_argument("--tracks", type=int, default=24, help="catalog size (the demo's: 24)")
    parser.add_argument("--names", choices=["unique", "zipf"], default="unique",
                        help="unique: every listener's name differs (worst case)")
    parser.add_argument("--samples", type=int, default=8, help="lines rendered to measure CPU")
    parser.add_argument("--kokoro-dir", type=Path, help="default: the default data dir's voice")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    import logging

    import platformdirs

    logging.basicConfig(level=logging.ERROR)  # the narrator's start-up notes are not the table

    voice = args.kokoro_dir or kokoro_dir(Path(platformdirs.user_data_dir("dj")))
    rng = random.Random(args.seed)
    tracks = catalog_tracks(args.tracks, rng)
    results = []
    sample_lines: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="dj-speech-cost-") as tmp:
        for n in (int(x) for x in args.listeners.split(",")):
            config = Config(data_dir=Path(tmp) / f"n{n}",
                            narrate=NarrateConfig(voices_dir=REPO / "voices"))
            store = Store(config.db_path)
            narrator = Narrator(store, Catalog(store), config)
            narrator.close()
            narrator.kokoro = AlwaysAvailable()  # type: ignore[assignment]
            narrator._engine_names.clear()
            t0 = time.perf_counter()
            tallies = simulate(narrator, tracks, listener_names(n, args.names, rng), 2, rng)
            choose_s = time.perf_counter() - t0
            results.append((n, tallies, choose_s))
            if not sample_lines:
                pool = sorted(set(tallies[0].kokoro.values()))
                sample_lines = random.Random(args.seed).sample(pool, min(args.samples, len(pool)))
        engine = KokoroEngine(voice)
        ok, why = engine.available()
        k_fit, e_fit, per_speech_s = measure(engine if ok else None, narrator, sample_lines)
    if not ok:
        print(f"Kokoro not installed ({why}): Kokoro CPU taken as 1.0 CPU-s per speech-second"
              " (espeak-ng measured; speech length from espeak-ng)")

    def cpu(per_char: float, lines: dict[str, tuple[str, str]]) -> float:
        return per_char * sum(len(text) for _, text in lines.values())

    print(f"\nCPU per render (one thread; fitted on {len(sample_lines)} lines): "
          f"Kokoro {k_fit * 1000:.1f} ms/char ({per_speech_s:.2f} CPU-s per speech-s); "
          f"espeak-ng {e_fit * 1000:.2f} ms/char")
    print(f"catalog {args.tracks} tracks, listener names: {args.names}\n")
    head = (f"{'listeners':>9} {'hour':>4} {'lines':>6} {'named':>6} {'renders':>7} "
            f"{'speech CPU-s':>12} {'per listener-h':>14} {'speech thread':>13} "
            f"{'Kokoro in time':>14} {'espeak-only /listener-h':>23}")
    print(head)
    print("-" * len(head))
    for n, tallies, _ in results:
        for hour, tally in enumerate(tallies, start=1):
            k_cpu = cpu(k_fit, tally.kokoro)  # without the model: 1 CPU-s a speech-s, 15 char/s
            e_cpu = cpu(e_fit, tally.espeak)
            print(f"{n:>9} {hour:>4} {tally.chosen:>6} {tally.named:>6} {len(tally.kokoro):>7} "
                  f"{k_cpu + e_cpu:>12.1f} {(k_cpu + e_cpu) / n:>14.2f} "
                  f"{(k_cpu + e_cpu) / 3600:>12.0%} {min(1.0, 3600 / max(k_cpu, 1e-9)):>14.0%} "
                  f"{e_cpu / n:>23.4f}")
    print("\nrenders: distinct Kokoro renders new in that hour (own lines and name-less"
          " variants); each also has an espeak-ng stand-in, included in the CPU."
          "\nspeech thread: share of the one speech worker's hour that the renders take;"
          " past 100% the rest air as stand-ins\n(Kokoro in time: at most the share that one"
          " thread can render; lines not rendered in time air in espeak-ng).")
    for n, _, choose_s in results:
        print(f"  choosing for {n} listeners over 2 h took {choose_s:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
