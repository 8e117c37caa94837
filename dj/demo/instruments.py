"""Instrument voices for the demo synthesizer: one note or one drum hit as a numpy array.

Every voice is vectorised (no per-sample Python) and every note starts and ends at exactly zero
(raised-cosine attack and release), so notes can be summed anywhere without clicks. A song reuses
the same few hundred notes many times, so :class:`VoiceBank` renders each distinct note once and
hands out the cached array; rendering a song is then mostly slice-adds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import signal

Wave = np.ndarray  # float32, shape (n,) for mono voices or (2, n) for stereo voices


def midi_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def _t(n: int, sr: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / sr


def envelope(
    n_on: int, n_rel: int, sr: int, attack_s: float, decay_s: float, sustain: float
) -> np.ndarray:
    """Attack (raised cosine), exponential decay to ``sustain``, then a raised-cosine release.

    The release starts from whatever level the note reached at note-off and ends at exactly 0.
    """
    n_on = max(n_on, 1)
    t = _t(n_on, sr)
    a = max(attack_s, 0.002)
    env = sustain + (1.0 - sustain) * np.exp(-np.maximum(t - a, 0.0) / max(decay_s, 1e-3))
    rise = t < a
    env[rise] *= 0.5 - 0.5 * np.cos(np.pi * t[rise] / a)
    if n_rel <= 0:
        env[-1] = 0.0
        return env
    level = env[-1]
    rel = level * 0.5 * (1.0 + np.cos(np.pi * np.linspace(0.0, 1.0, n_rel)))
    return np.concatenate([env, rel])


def _polyblep(p: np.ndarray, dt: np.ndarray | float) -> np.ndarray:
    """PolyBLEP correction for a unit-step discontinuity at phase 0 (alias-reduced saw/square)."""
    out = np.zeros_like(p)
    dt_arr = np.broadcast_to(dt, p.shape)
    lo = p < dt_arr
    x = p[lo] / dt_arr[lo]
    out[lo] = x + x - x * x - 1.0
    hi = p > 1.0 - dt_arr
    x = (p[hi] - 1.0) / dt_arr[hi]
    out[hi] = x * x + x + x + 1.0
    return out


def saw(phase: np.ndarray, dt: np.ndarray | float) -> np.ndarray:
    p = phase % 1.0
    return 2.0 * p - 1.0 - _polyblep(p, dt)


def square(phase: np.ndarray, dt: np.ndarray | float) -> np.ndarray:
    return saw(phase, dt) - saw(phase + 0.5, dt)


def phase_cycles(
    freq_hz: float, n: int, sr: int, vibrato_hz: float = 0.0, vibrato_cents: float = 0.0,
    vibrato_delay_s: float = 0.25,
) -> tuple[np.ndarray, np.ndarray | float]:
    """Phase in cycles (and per-sample increment) of an oscillator, optionally with vibrato."""
    if vibrato_cents <= 0.0:
        return freq_hz * _t(n, sr), freq_hz / sr
    t = _t(n, sr)
    depth = np.clip((t - vibrato_delay_s) / 0.4, 0.0, 1.0) * vibrato_cents
    f = freq_hz * 2.0 ** (depth * np.sin(2 * np.pi * vibrato_hz * t) / 1200.0)
    return np.cumsum(f) / sr, f / sr


def _lowpass(x: np.ndarray, cutoff_hz: float, sr: int, order: int = 2) -> np.ndarray:
    cutoff_hz = min(cutoff_hz, 0.45 * sr)
    sos = signal.butter(order, cutoff_hz, btype="low", fs=sr, output="sos")
    return signal.sosfilt(sos, x)


def _band(x: np.ndarray, lo_hz: float, hi_hz: float, sr: int, order: int = 2) -> np.ndarray:
    sos = signal.butter(order, [lo_hz, min(hi_hz, 0.45 * sr)], btype="band", fs=sr, output="sos")
    return signal.sosfilt(sos, x)


def _highpass(x: np.ndarray, cutoff_hz: float, sr: int, order: int = 2) -> np.ndarray:
    sos = signal.butter(order, cutoff_hz, btype="high", fs=sr, output="sos")
    return signal.sosfilt(sos, x)


def _additive(
    f: float, t: np.ndarray, sr: int, n_harm: int, tilt: float, decay0: float, decay_k: float,
    inharm: float = 0.0,
) -> np.ndarray:
    """Harmonics 1..n with 1/k^tilt amplitudes, higher ones dying faster (a plucked string)."""
    k = np.arange(1, n_harm + 1, dtype=np.float64)
    fk = f * k * np.sqrt(1.0 + inharm * k * k)
    keep = fk < 0.42 * sr
    k, fk = k[keep], fk[keep]
    amps = 1.0 / k**tilt
    rates = decay0 + decay_k * (k - 1.0)
    parts = amps[:, None] * np.exp(-rates[:, None] * t[None, :]) * np.sin(
        2 * np.pi * fk[:, None] * t[None, :] + k[:, None] * 0.7
    )
    return parts.sum(axis=0) / amps.sum() * 1.6


def _detuned(f: float, cents: float) -> float:
    return f * 2.0 ** (cents / 1200.0)


# -- pitched voices: (freq_hz, n_on, n_rel, sr, rng) -> Wave ----------------------------------


def _saw_pad(f: float, n_on: int, n_rel: int, sr: int, rng: np.random.Generator) -> Wave:
    n = n_on + n_rel
    env = envelope(n_on, n_rel, sr, attack_s=0.35, decay_s=1.5, sustain=0.8)
    chans = []
    for cents in ((-9.0, 4.0), (9.0, -4.0)):
        x = np.zeros(n)
        for c in cents:
            fd = _detuned(f, c)
            ph, dt = phase_cycles(fd, n, sr)
            x += saw(ph + rng.random(), dt)
        x += 0.6 * np.sin(2 * np.pi * f * _t(n, sr))
        chans.append(_lowpass(x, min(6.0 * f, 3500.0), sr) * env * 0.35)
    return np.stack(chans)


def _strings(f: float, n_on: int, n_rel: int, sr: int, rng: np.random.Generator) -> Wave:
    n = n_on + n_rel
    env = envelope(n_on, n_rel, sr, attack_s=0.6, decay_s=2.0, sustain=0.9)
    chans = []
    for c in (-6.0, 6.0):
        ph, dt = phase_cycles(_detuned(f, c), n, sr, vibrato_hz=5.2 + c / 20, vibrato_cents=9.0)
        x = saw(ph + rng.random(), dt)
        chans.append(_lowpass(x, min(5.0 * f, 3000.0), sr) * env * 0.4)
    return np.stack(chans)


def _glass_pad(f: float, n_on: int, n_rel: int, sr: int, rng: np.random.Generator) -> Wave:
    n = n_on + n_rel
    t = _t(n, sr)
    env = envelope(n_on, n_rel, sr, attack_s=0.9, decay_s=3.0, sustain=0.85)
    chans = []
    for c, lfo in ((-5.0, 0.21), (5.0, 0.17)):
        fd = _detuned(f, c)
        x = (np.sin(2 * np.pi * fd * t) + 0.35 * np.sin(2 * np.pi * 2 * fd * t + 1.0)
             + 0.12 * np.sin(2 * np.pi * 3 * fd * t + 2.0))
        trem = 1.0 - 0.15 * (0.5 + 0.5 * np.sin(2 * np.pi * lfo * t + rng.random() * 6.28))
        chans.append(x * trem * env * 0.45)
    return np.stack(chans)


def _organ(f: float, n_on: int, n_rel: int, sr: int, rng: np.random.Generator) -> Wave:
    n = n_on + n_rel
    t = _t(n, sr)
    env = envelope(n_on, n_rel, sr, attack_s=0.02, decay_s=1.0, sustain=1.0)
    x = np.zeros(n)
    for k, w in ((1, 1.0), (2, 0.55), (3, 0.3), (4, 0.22), (6, 0.08)):
        if k * f < 0.42 * sr:
            x += w * np.sin(2 * np.pi * k * f * t + k)
    x *= env * 0.3
    rot = 2 * np.pi * 5.8 * t
    return np.stack([x * (1.0 + 0.25 * np.sin(rot)), x * (1.0 + 0.25 * np.sin(rot + 2.0))])


def _ep(f: float, n_on: int, n_rel: int, sr: int, rng: np.random.Generator) -> Wave:
    """Electric piano by FM (ratio 1, decaying index): bell-ish attack, round body."""
    n = n_on + n_rel
    t = _t(n, sr)
    index = 1.6 * np.exp(-t / 0.35) + 0.25
    x = np.sin(2 * np.pi * f * t + index * np.sin(2 * np.pi * f * t))
    if 7 * f < 0.42 * sr:
        x += 0.12 * np.sin(2 * np.pi * 7 * f * t) * np.exp(-t / 0.05)
    env = envelope(n_on, n_rel, sr, attack_s=0.004, decay_s=1.8, sustain=0.15)
    return x * env * 0.55


def _bell(f: float, n_on: int, n_rel: int, sr: int, rng: np.random.Generator) -> Wave:
    n = n_on + n_rel
    t = _t(n, sr)
    index = 2.2 * np.exp(-t / 0.5)
    ratio = 3.5 if 3.5 * f < 0.42 * sr else 1.0
    x = np.sin(2 * np.pi * f * t + index * np.sin(2 * np.pi * ratio * f * t))
    env = envelope(n_on, n_rel, sr, attack_s=0.003, decay_s=1.2, sustain=0.0)
    return x * env * 0.45


def _vibes(f: float, n_on: int, n_rel: int, sr: int, rng: np.random.Generator) -> Wave:
    n = n_on + n_rel
    t = _t(n, sr)
    x = np.sin(2 * np.pi * f * t)
    if 4 * f < 0.42 * sr:
        x += 0.25 * np.sin(2 * np.pi * 4 * f * t) * np.exp(-t / 0.25)
    x *= 1.0 - 0.3 * (0.5 + 0.5 * np.sin(2 * np.pi * 5.0 * t))
    env = envelope(n_on, n_rel, sr, attack_s=0.003, decay_s=1.4, sustain=0.0)
    return x * env * 0.55


def _pluck(f: float, n_on: int, n_rel: int, sr: int, rng: np.random.Generator) -> Wave:
    t = _t(n_on + n_rel, sr)
    x = _additive(f, t, sr, n_harm=14, tilt=1.1, decay0=2.5, decay_k=1.6)
    env = envelope(n_on, n_rel, sr, attack_s=0.003, decay_s=10.0, sustain=1.0)
    return x * env * 0.5


def _nylon(f: float, n_on: int, n_rel: int, sr: int, rng: np.random.Generator) -> Wave:
    t = _t(n_on + n_rel, sr)
    x = _additive(f, t, sr, n_harm=12, tilt=1.3, decay0=1.4, decay_k=1.1, inharm=8e-5)
    env = envelope(n_on, n_rel, sr, attack_s=0.004, decay_s=10.0, sustain=1.0)
    return x * env * 0.55


def _pulse_guitar(f: float, n_on: int, n_rel: int, sr: int, rng: np.random.Generator) -> Wave:
    """A bright saw/square stab; the bus distortion turns chords of these into a rock guitar."""
    n = n_on + n_rel
    ph, dt = phase_cycles(f, n, sr)
    x = 0.6 * saw(ph, dt) + 0.4 * square(ph * 1.0 + 0.1, dt)
    x = _lowpass(x, min(8.0 * f, 4000.0), sr)
    env = envelope(n_on, n_rel, sr, attack_s=0.004, decay_s=0.6, sustain=0.55)
    return x * env * 0.35


def _sine_lead(f: float, n_on: int, n_rel: int, sr: int, rng: np.random.Generator) -> Wave:
    n = n_on + n_rel
    ph, _ = phase_cycles(f, n, sr, vibrato_hz=5.0, vibrato_cents=14.0)
    w = 2 * np.pi * ph
    x = np.sin(w) + 0.18 * np.sin(2 * w + 0.5) + 0.06 * np.sin(3 * w + 1.0)
    env = envelope(n_on, n_rel, sr, attack_s=0.04, decay_s=1.2, sustain=0.75)
    return x * env * 0.5


def _saw_lead(f: float, n_on: int, n_rel: int, sr: int, rng: np.random.Generator) -> Wave:
    n = n_on + n_rel
    ph, dt = phase_cycles(f, n, sr, vibrato_hz=5.5, vibrato_cents=12.0)
    x = 0.7 * saw(ph, dt) + 0.3 * square(ph, dt)
    x = _lowpass(x, min(5.0 * f, 5000.0), sr)
    env = envelope(n_on, n_rel, sr, attack_s=0.012, decay_s=0.8, sustain=0.7)
    return x * env * 0.4


def _square_lead(f: float, n_on: int, n_rel: int, sr: int, rng: np.random.Generator) -> Wave:
    n = n_on + n_rel
    ph, dt = phase_cycles(f, n, sr, vibrato_hz=6.0, vibrato_cents=10.0)
    x = _lowpass(square(ph, dt), min(7.0 * f, 6000.0), sr)
    env = envelope(n_on, n_rel, sr, attack_s=0.008, decay_s=0.5, sustain=0.6)
    return x * env * 0.3


def _sub_bass(f: float, n_on: int, n_rel: int, sr: int, rng: np.random.Generator) -> Wave:
    t = _t(n_on + n_rel, sr)
    x = np.tanh(1.4 * (np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t)))
    env = envelope(n_on, n_rel, sr, attack_s=0.008, decay_s=0.9, sustain=0.7)
    return x * env * 0.6


def _synth_bass(f: float, n_on: int, n_rel: int, sr: int, rng: np.random.Generator) -> Wave:
    n = n_on + n_rel
    ph, dt = phase_cycles(f, n, sr)
    x = _lowpass(saw(ph, dt), min(7.0 * f, 900.0), sr, order=4) + 0.5 * np.sin(2 * np.pi * ph)
    env = envelope(n_on, n_rel, sr, attack_s=0.005, decay_s=0.35, sustain=0.6)
    return x * env * 0.55


def _pick_bass(f: float, n_on: int, n_rel: int, sr: int, rng: np.random.Generator) -> Wave:
    n = n_on + n_rel
    ph, dt = phase_cycles(f, n, sr)
    x = _lowpass(0.6 * saw(ph, dt) + 0.4 * square(ph, dt), 1100.0, sr)
    x += 0.5 * np.sin(2 * np.pi * ph)
    env = envelope(n_on, n_rel, sr, attack_s=0.004, decay_s=0.5, sustain=0.55)
    return np.tanh(1.5 * x) * env * 0.5


def _upright(f: float, n_on: int, n_rel: int, sr: int, rng: np.random.Generator) -> Wave:
    t = _t(n_on + n_rel, sr)
    x = _additive(f, t, sr, n_harm=7, tilt=1.6, decay0=1.3, decay_k=3.0)
    env = envelope(n_on, n_rel, sr, attack_s=0.012, decay_s=10.0, sustain=1.0)
    return x * env * 0.8


VOICES: dict[str, Callable[[float, int, int, int, np.random.Generator], Wave]] = {
    "saw_pad": _saw_pad, "strings": _strings, "glass_pad": _glass_pad, "organ": _organ,
    "ep": _ep, "bell": _bell, "vibes": _vibes, "pluck": _pluck, "nylon": _nylon,
    "pulse_guitar": _pulse_guitar, "sine_lead": _sine_lead, "saw_lead": _saw_lead,
    "square_lead": _square_lead, "sub_bass": _sub_bass, "synth_bass": _synth_bass,
    "pick_bass": _pick_bass, "upright": _upright,
}

RELEASE_S = {
    "saw_pad": 0.9, "strings": 1.0, "glass_pad": 1.4, "organ": 0.08, "ep": 0.35, "bell": 0.8,
    "vibes": 0.6, "pluck": 0.12, "nylon": 0.15, "pulse_guitar": 0.06, "sine_lead": 0.15,
    "saw_lead": 0.12, "square_lead": 0.08, "sub_bass": 0.06, "synth_bass": 0.05,
    "pick_bass": 0.06, "upright": 0.1,
}


# -- drum hits: (sr, rng, kit) -> mono Wave ----------------------------------------------------


def _fade_tail(x: np.ndarray, sr: int, attack_s: float = 0.0015) -> np.ndarray:
    n_a = max(2, int(attack_s * sr))
    n_r = max(2, int(0.01 * sr))
    x[:n_a] *= 0.5 - 0.5 * np.cos(np.pi * np.arange(n_a) / n_a)
    x[-n_r:] *= 0.5 + 0.5 * np.cos(np.pi * np.linspace(0.0, 1.0, n_r))
    return x


def _kick(sr: int, rng: np.random.Generator, kit: str) -> Wave:
    f0, f1, tp, ta, length, click = {
        "electronic": (170.0, 44.0, 0.045, 0.42, 0.85, 0.15),
        "acoustic": (125.0, 55.0, 0.035, 0.2, 0.45, 0.35),
        "soft": (95.0, 50.0, 0.04, 0.16, 0.4, 0.0),
    }.get(kit, (125.0, 55.0, 0.035, 0.2, 0.45, 0.35))
    t = _t(int(length * sr), sr)
    f = f1 + (f0 - f1) * np.exp(-t / tp)
    x = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / ta)
    if click:
        x += click * _lowpass(rng.standard_normal(t.size), 3500.0, sr) * np.exp(-t / 0.004)
    return _fade_tail(x * 0.95, sr)


def _snare(sr: int, rng: np.random.Generator, kit: str) -> Wave:
    t = _t(int(0.35 * sr), sr)
    decay = 0.11 if kit == "electronic" else 0.15
    noise = _band(rng.standard_normal(t.size), 1200.0, 9000.0, sr) * np.exp(-t / decay)
    body = np.sin(2 * np.pi * 185.0 * t) * np.exp(-t / 0.05)
    return _fade_tail(0.7 * noise + 0.55 * body, sr)


def _clap(sr: int, rng: np.random.Generator, kit: str) -> Wave:
    t = _t(int(0.35 * sr), sr)
    env = np.exp(-t / 0.11) * 0.6
    for offset in (0.0, 0.011, 0.022):
        env += np.where(t >= offset, np.exp(-np.maximum(t - offset, 0) / 0.006), 0.0)
    x = _band(rng.standard_normal(t.size), 900.0, 3500.0, sr) * env
    return _fade_tail(x * 0.6, sr)


def _hat(sr: int, rng: np.random.Generator, kit: str) -> Wave:
    t = _t(int(0.09 * sr), sr)
    x = _highpass(rng.standard_normal(t.size), 7000.0, sr) * np.exp(-t / 0.022)
    return _fade_tail(x * 0.5, sr, attack_s=0.001)


def _open_hat(sr: int, rng: np.random.Generator, kit: str) -> Wave:
    t = _t(int(0.5 * sr), sr)
    x = _highpass(rng.standard_normal(t.size), 6500.0, sr) * np.exp(-t / 0.16)
    return _fade_tail(x * 0.4, sr, attack_s=0.002)


def _ride(sr: int, rng: np.random.Generator, kit: str) -> Wave:
    t = _t(int(0.9 * sr), sr)
    noise = _highpass(rng.standard_normal(t.size), 5000.0, sr) * np.exp(-t / 0.35) * 0.3
    ping = sum(np.sin(2 * np.pi * f * t + i) for i, f in enumerate((3150.0, 4410.0, 5520.0)))
    return _fade_tail(noise + 0.06 * ping * np.exp(-t / 0.3), sr)


def _crash(sr: int, rng: np.random.Generator, kit: str) -> Wave:
    t = _t(int(2.4 * sr), sr)
    x = _highpass(rng.standard_normal(t.size), 3500.0, sr) * np.exp(-t / 0.7)
    return _fade_tail(x * 0.35, sr, attack_s=0.004)


def _rim(sr: int, rng: np.random.Generator, kit: str) -> Wave:
    t = _t(int(0.08 * sr), sr)
    x = np.sin(2 * np.pi * 1750.0 * t) * np.exp(-t / 0.012)
    x += 0.4 * _band(rng.standard_normal(t.size), 2000.0, 6000.0, sr) * np.exp(-t / 0.006)
    return _fade_tail(x * 0.5, sr, attack_s=0.0008)


def _shaker(sr: int, rng: np.random.Generator, kit: str) -> Wave:
    t = _t(int(0.12 * sr), sr)
    env = (1.0 - np.exp(-t / 0.012)) * np.exp(-t / 0.035)
    x = _band(rng.standard_normal(t.size), 4500.0, 11000.0, sr) * env
    return _fade_tail(x * 0.7, sr)


def _brush(sr: int, rng: np.random.Generator, kit: str) -> Wave:
    t = _t(int(0.3 * sr), sr)
    env = (1.0 - np.exp(-t / 0.02)) * np.exp(-t / 0.09)
    x = _band(rng.standard_normal(t.size), 1500.0, 7000.0, sr) * env
    return _fade_tail(x * 0.6, sr)


DRUMS: dict[str, Callable[[int, np.random.Generator, str], Wave]] = {
    "kick": _kick, "snare": _snare, "clap": _clap, "hat": _hat, "open_hat": _open_hat,
    "ride": _ride, "crash": _crash, "rim": _rim, "shaker": _shaker, "brush": _brush,
}
DRUM_VARIANTS = 4  # noise-based hits come in a few takes so repeated hits don't sound stamped


class VoiceBank:
    """Renders each distinct (instrument, pitch, length) once and hands out the cached array."""

    def __init__(self, sr: int, seed: int, kit: str = "acoustic") -> None:
        self.sr = sr
        self.kit = kit
        self._seed = seed
        self._cache: dict[tuple, Wave] = {}

    def note(self, instrument: str, midi: int, dur_s: float) -> Wave:
        n_on = max(1, int(round(dur_s * self.sr / 64.0)) * 64)  # quantised so repeats hit the cache
        key = (instrument, midi, n_on)
        wave = self._cache.get(key)
        if wave is None:
            n_rel = int(RELEASE_S[instrument] * self.sr)
            rng = np.random.default_rng([self._seed, midi, n_on])
            wave = VOICES[instrument](midi_hz(midi), n_on, n_rel, self.sr, rng).astype(np.float32)
            self._cache[key] = wave
        return wave

    def hit(self, drum: str, variant: int) -> Wave:
        key = (drum, variant % DRUM_VARIANTS)
        wave = self._cache.get(key)
        if wave is None:
            rng = np.random.default_rng([self._seed, 7919, key[1], len(drum)])
            wave = DRUMS[drum](self.sr, rng, self.kit).astype(np.float32)
            self._cache[key] = wave
        return wave
