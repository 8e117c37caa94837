"""The demo synthesizer: a :class:`SongSpec` in, a finished house-format stereo track out.

Steps: compose (events) → render each part onto its bus from cached notes → bus effects and a
shared reverb (pedalboard) → mix and master → ending (fade or natural decay) → loudness to the
spec's level (pyloudnorm; compressor and clip at the ceiling for hot levels) → optional silence
at either end.

All audio is license-clean: it is made here, from sine waves and noise.
"""

from __future__ import annotations

import logging

import numpy as np
import pyloudnorm
from pedalboard import (
    Chorus,
    Clipping,
    Compressor,
    Delay,
    Distortion,
    Gain,
    HighpassFilter,
    LowpassFilter,
    Pedalboard,
    Reverb,
)

from dj.config import HOUSE_SAMPLE_RATE
from dj.demo.compose import Arrangement, compose
from dj.demo.instruments import VoiceBank
from dj.demo.spec import MOODS, SongSpec

logger = logging.getLogger(__name__)

PARTS = ("pad", "bass", "lead", "arp", "drums")
PART_GAIN = {"pad": 0.32, "bass": 0.75, "lead": 0.7, "arp": 0.35, "drums": 0.85}
DRUM_GAIN = {"kick": 1.0, "snare": 0.55, "clap": 0.55, "hat": 0.3, "open_hat": 0.22,
             "ride": 0.4, "crash": 0.3, "rim": 0.35, "shaker": 0.3, "brush": 0.6}
REVERB_SEND = {"pad": 0.6, "lead": 0.75, "drums": 0.15}  # arp shares the lead bus
EDGE_S = 0.01  # raised-cosine ramp at both ends of the file: it starts and ends at exactly zero
PEAK_CEILING = 0.98
BLOCK = 32_768  # samples per effects block
LOUDNESS_TOLERANCE_LU = 0.3  # hot tracks only: peak control makes loudness non-linear in gain


def render(spec: SongSpec, sample_rate: int = HOUSE_SAMPLE_RATE) -> np.ndarray:
    """Render one track as float32 ``(2, frames)``; deterministic for a given spec."""
    arrangement = compose(spec)
    buses = render_parts(arrangement, spec, sample_rate)
    mix = mix_parts(buses, spec, sample_rate)
    mix = apply_ending(mix, spec, sample_rate)
    mix = to_loudness(mix, spec.loudness_lufs, sample_rate)
    _edge_ramps(mix, sample_rate)
    lead = np.zeros((2, int(round(spec.silence_start_s * sample_rate))), np.float32)
    tail = np.zeros((2, int(round(spec.silence_end_s * sample_rate))), np.float32)
    return np.ascontiguousarray(np.concatenate([lead, mix, tail], axis=1), dtype=np.float32)


def render_parts(
    arrangement: Arrangement, spec: SongSpec, sample_rate: int
) -> dict[str, np.ndarray]:
    """Each part's stereo bus (with its part gain); a note is a cached array added at its start."""
    n = int(round(arrangement.music_s * sample_rate))
    buses = {p: np.zeros((2, n), np.float32) for p in PARTS}
    bank = VoiceBank(sample_rate, spec.seed, spec.kit)
    hits: dict[str, int] = {}
    for ev in arrangement.events:
        if ev.part == "drums":
            hits[ev.voice] = hits.get(ev.voice, 0) + 1
            wave = bank.hit(ev.voice, hits[ev.voice])
            level = ev.velocity * DRUM_GAIN[ev.voice] * PART_GAIN["drums"]
        else:
            wave = bank.note(ev.voice, ev.midi, ev.dur_s)
            level = ev.velocity * PART_GAIN[ev.part]
        start = max(0, int(round(ev.start_s * sample_rate)))
        m = min(wave.shape[-1], n - start)
        if m <= 0:
            continue
        angle = (ev.pan + 1.0) * np.pi / 4.0  # equal-power pan, unity at centre
        gains = np.sqrt(2.0) * np.array([np.cos(angle), np.sin(angle)], np.float32) * level
        bus = buses[ev.part]
        if wave.ndim == 1:
            bus[:, start:start + m] += gains[:, None] * wave[None, :m]
        else:
            bus[:, start:start + m] += gains[:, None] * wave[:, :m]
    return buses


def mix_parts(buses: dict[str, np.ndarray], spec: SongSpec, sample_rate: int) -> np.ndarray:
    """Bus effects, a shared reverb send, and a gentle master chain.

    Processed in blocks (the plugins keep their state across blocks, ``reset=False``), so the
    working set stays in cache: on whole-track arrays, allocating and touching memory cost as
    much as the effects themselves.
    """
    mood = MOODS[spec.mood]
    beat_s = 60.0 / spec.tempo_bpm
    n = buses["pad"].shape[1]
    mix = np.zeros((2, n), np.float32)
    if not spec.effects:
        for bus in buses.values():
            mix += bus
        return mix
    pad_chain = []
    if spec.pad == "pulse_guitar":
        pad_chain += [Distortion(drive_db=16.0), LowpassFilter(cutoff_frequency_hz=4200.0),
                      Gain(gain_db=-6.0)]
    if mood.chorus_fx:
        pad_chain.append(Chorus(rate_hz=0.5, depth=0.25, centre_delay_ms=8.0, mix=0.4))
    pad_fx = Pedalboard(pad_chain) if pad_chain else None
    lead_fx = Delay(delay_seconds=0.75 * beat_s, feedback=0.3, mix=max(mood.delay_mix, 0.1))
    drum_fx = Compressor(threshold_db=-12.0, ratio=3.0, attack_ms=8.0, release_ms=90.0)
    reverb = Reverb(room_size=mood.reverb_room, damping=0.55, wet_level=mood.reverb_wet * 1.6,
                    dry_level=0.0, width=1.0)
    master = Pedalboard([
        HighpassFilter(cutoff_frequency_hz=30.0),
        LowpassFilter(cutoff_frequency_hz=mood.cutoff_hz),
        Compressor(threshold_db=-16.0, ratio=2.0, attack_ms=15.0, release_ms=150.0),
    ])
    sends = {p: np.float32(REVERB_SEND[p]) for p in ("pad", "lead", "drums")}
    for a in range(0, n, BLOCK):
        b = min(n, a + BLOCK)
        pad = buses["pad"][:, a:b]
        if pad_fx is not None:
            pad = pad_fx(pad, sample_rate, reset=False)
        lead = lead_fx(buses["lead"][:, a:b] + buses["arp"][:, a:b], sample_rate, reset=False)
        drums = drum_fx(buses["drums"][:, a:b], sample_rate, reset=False)
        send = pad * sends["pad"]
        send += lead * sends["lead"]
        send += drums * sends["drums"]
        block = reverb(send, sample_rate, reset=False)
        block += pad
        block += lead
        block += drums
        block += buses["bass"][:, a:b]
        mix[:, a:b] = master(block, sample_rate, reset=False)
    return mix


def apply_ending(mix: np.ndarray, spec: SongSpec, sample_rate: int) -> np.ndarray:
    """Fade endings fade over ``fade_s``; clean endings let the last chord ring out, then close."""
    n = mix.shape[1]
    fade_s = spec.fade_s if spec.ending == "fade" else 1.2
    k = min(n // 2, int(fade_s * sample_rate))
    if k > 1:
        x = np.linspace(0.0, 1.0, k, dtype=np.float32)
        mix[:, n - k:] *= (np.cos(np.pi * x) * 0.5 + 0.5) ** (1.5 if spec.ending == "fade" else 1)
    return mix


def to_loudness(mix: np.ndarray, target_lufs: float, sample_rate: int) -> np.ndarray:
    """Gain to ``target_lufs`` integrated; hot targets are compressed and clipped, re-measured.

    A plain gain moves integrated loudness exactly, so most tracks need one measurement. Behind the
    compressor loudness grows slower than gain, so the gain is found by the secant method.
    """
    meter = pyloudnorm.Meter(sample_rate)
    measured = meter.integrated_loudness(mix.T)
    if not np.isfinite(measured):
        return mix
    gain_db = target_lufs - measured
    y = mix * np.float32(10.0 ** (gain_db / 20.0))
    if float(np.max(np.abs(y))) <= PEAK_CEILING:
        return y
    points: list[tuple[float, float]] = []
    gain_db += 0.5  # the compressor takes a little loudness back
    for _ in range(4):
        y = _limited(mix, gain_db, sample_rate)
        got = meter.integrated_loudness(y.T)
        points.append((gain_db, got))
        if abs(got - target_lufs) < LOUDNESS_TOLERANCE_LU:
            break
        slope = 1.0
        if len(points) >= 2:
            (g0, l0), (g1, l1) = points[-2], points[-1]
            slope = (l1 - l0) / (g1 - g0) if abs(g1 - g0) > 1e-6 else slope
        gain_db += (target_lufs - got) / float(np.clip(slope, 0.25, 1.0))
    return np.ascontiguousarray(y, np.float32)


def _limited(mix: np.ndarray, gain_db: float, sample_rate: int) -> np.ndarray:
    """Gain, a fast high-ratio compressor, then a clip at the ceiling for what slips through.

    Unlike pedalboard's Limiter (which adds make-up gain), this chain's loudness grows
    monotonically with ``gain_db``, so the secant search above converges in a few passes.
    """
    chain = Pedalboard([
        Gain(gain_db=gain_db),
        Compressor(threshold_db=-4.0, ratio=10.0, attack_ms=0.5, release_ms=60.0),
        Clipping(threshold_db=20.0 * float(np.log10(PEAK_CEILING))),
    ])
    return chain(mix, sample_rate)


def _edge_ramps(mix: np.ndarray, sample_rate: int) -> None:
    k = min(mix.shape[1] // 2, int(EDGE_S * sample_rate))
    ramp = (0.5 - 0.5 * np.cos(np.pi * np.linspace(0.0, 1.0, k))).astype(np.float32)
    mix[:, :k] *= ramp
    mix[:, -k:] *= ramp[::-1]
