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

Which lines air in the Kokoro voice is simulated too: each render is queued when its line is
chosen (a track ahead of its transition) on a pool of ``--threads`` speech threads (first in,
first out, same-key jobs merged, at most 64 waiting as in :class:`SpeechWorker`), each taken to
have a core to itself (they are niced: on a busy box they get less); a line airs in Kokoro when
its own render or its name-less variant is done by the time it is due. A new listener's opening
line airs only when ready: the personas' shared opening lines are rendered at start-up
(``warm_openings``); otherwise the music opens and the DJ speaks at the first transition.

    python bench/speech_cost.py [--listeners 10,100,1000] [--tracks 24] [--names unique|zipf]
                                [--threads 1,2]

Hour 1 starts with an empty voice cache (except the opening lines, rendered at start-up);
hour 2 counts only what hour 1 did not render. Every listener tunes in at the start of hour 1:
the first transitions of all of them fall within minutes (the worst case for the queue).
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
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
from dj.narrate.speech_worker import MAX_PENDING  # noqa: E402
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
    openings_deferred: int = 0  # sessions whose music opened (no line ready)


@dataclass(frozen=True)
class Airing:
    """A chosen line: queued at ``queued_s`` (when chosen), due at ``due_s``."""

    queued_s: float
    due_s: float
    key: str
    chars: int
    nameless: str | None = None  # its name-less variant's key, queued just before it
    nameless_chars: int = 0


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
             rng: random.Random, warmed: set[str]) -> tuple[list[Tally], list[Airing]]:
    """Every listener's programme for ``hours``; one tally per hour (distinct renders new in
    that hour), and every line chosen with when it was queued and when it is due."""
    tallies = [Tally() for _ in range(hours)]
    airings: list[Airing] = []
    seen: set[str] = set(warmed)
    for i, name in enumerate(names):
        listener = f"l{i}"
        persona = persona_of(listener)
        t, prev, last_voice, prepared_at = 0.0, None, None, 0.0
        while t < hours * 3600:
            nxt = rng.choice(tracks)
            since = None if last_voice is None else t - last_voice
            ctx = NarrationContext(listener, name, "US", persona, prev, nxt,
                                   START + timedelta(seconds=t), since)
            utt = narrator.choose(ctx)
            hour = int(t // 3600)
            if utt is None and prev is None:
                tallies[hour].openings_deferred += 1
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
                airings.append(Airing(
                    prepared_at, t, utt.key, len(utt.text),
                    nameless.key if nameless is not None else None,
                    len(nameless.text) if nameless is not None else 0))
            prepared_at = t  # the next item is chosen as this track starts
            t += nxt.analysis.duration_s - CROSSFADE_S
            prev = nxt
    return tallies, airings


def kokoro_share(airings: list[Airing], warmed: set[str], per_char: float, threads: int,
                 hours: int) -> list[tuple[float, float]]:
    """Per hour: the share of lines that air in Kokoro, and the busiest speech thread's load,
    with ``threads`` speech threads (see the module's docstring)."""
    done: dict[str, float] = dict.fromkeys(warmed, 0.0)  # key -> when its render is done
    free = [(0.0, n) for n in range(threads)]  # (when next free, thread): a heap
    busy = [0.0] * threads
    pending: list[float] = []  # completion times of jobs not done yet (a heap)
    jobs = sorted(((a.queued_s, i) for i, a in enumerate(airings)))

    def queue(key: str, chars: int, at: float) -> None:
        if key in done:
            return  # rendered or queued already: merged
        while pending and pending[0] <= at:
            heapq.heappop(pending)
        if len(pending) >= MAX_PENDING:
            return  # refused: a stand-in airs, and the next listener's choice queues it again
        free_at, thread = heapq.heappop(free)
        start = max(at, free_at)
        cost = per_char * chars
        heapq.heappush(free, (start + cost, thread))
        busy[thread] += cost
        done[key] = start + cost
        heapq.heappush(pending, start + cost)

    aired = [[0, 0] for _ in range(hours)]
    for _, i in jobs:
        a = airings[i]
        if a.nameless is not None:
            queue(a.nameless, a.nameless_chars, a.queued_s)  # first, as the narrator does
        queue(a.key, a.chars, a.queued_s)
    for a in airings:
        hour = min(hours - 1, int(a.due_s // 3600))
        ready = [done.get(k, float("inf")) for k in (a.key, a.nameless) if k is not None]
        aired[hour][0] += min(ready) <= a.due_s
        aired[hour][1] += 1
    load = max(busy) / (hours * 3600)
    return [(k / n if n else 1.0, load) for k, n in aired]


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
    parser.add_argument("--threads", default="1,2",
                        help="speech thread counts to simulate ([narrate] speech_threads)")
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
            # the opening lines rendered at start-up are the only renders ready at first
            warmed = {u.key for lines in narrator.opening_lines(START) for u in lines}
            narrator.cache.has = warmed.__contains__  # type: ignore[method-assign]
            t0 = time.perf_counter()
            tallies, airings = simulate(narrator, tracks, listener_names(n, args.names, rng),
                                        2, rng, warmed)
            choose_s = time.perf_counter() - t0
            results.append((n, tallies, airings, warmed, choose_s))
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
    pools = [int(x) for x in args.threads.split(",")]
    shares = {(n, k): kokoro_share(airings, warmed, k_fit, k, 2)
              for n, _, airings, warmed, _ in results for k in pools}
    for n, tallies, _, _, _ in results:
        for hour, tally in enumerate(tallies, start=1):
            k_cpu = cpu(k_fit, tally.kokoro)  # without the model: 1 CPU-s a speech-s, 15 char/s
            e_cpu = cpu(e_fit, tally.espeak)
            print(f"{n:>9} {hour:>4} {tally.chosen:>6} {tally.named:>6} {len(tally.kokoro):>7} "
                  f"{k_cpu + e_cpu:>12.1f} {(k_cpu + e_cpu) / n:>14.2f} "
                  f"{(k_cpu + e_cpu) / 3600:>12.0%} {min(1.0, 3600 / max(k_cpu, 1e-9)):>14.0%} "
                  f"{e_cpu / n:>23.4f}")
    print("\nrenders: distinct Kokoro renders new in that hour (own lines and name-less"
          " variants); each also has an espeak-ng stand-in, included in the CPU."
          "\nspeech thread: share of one speech thread's hour that the renders take;"
          " past 100% the rest air as stand-ins\n(Kokoro in time: at most the share that one"
          " thread can render; lines not rendered in time air in espeak-ng).")
    head = (f"\n{'listeners':>9} {'hour':>4} {'openings':>8} "
            + " ".join(f"{f'{k} thr: Kokoro aired':>19} {'load/thr':>8}" for k in pools))
    print(head)
    print("-" * len(head.strip()))
    for n, tallies, _, _, _ in results:
        for hour, tally in enumerate(tallies, start=1):
            cells = " ".join(f"{shares[n, k][hour - 1][0]:>19.1%} {shares[n, k][hour - 1][1]:>8.0%}"
                             for k in pools)
            print(f"{n:>9} {hour:>4} {'music' if tally.openings_deferred else 'voice':>8} "
                  f"{cells}")
    print("\nopenings: 'voice' when every session opened with a line ready (the warmed opening"
          " lines), 'music' when some opened with music (their DJ speaks at the first"
          " transition)\nKokoro aired: lines heard in Kokoro (own render or name-less variant)"
          " out of all lines aired; load/thr: the busiest speech thread's share of the 2 h")
    for n, _, _, _, choose_s in results:
        print(f"  choosing for {n} listeners over 2 h took {choose_s:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
