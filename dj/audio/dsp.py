"""Pure DSP maths on numpy arrays: gains, equal-power crossfade curves, ducking envelopes, voice
placement and short edge fades. No state, no I/O: every function is tested against a numpy
reference, and the renderer composes them block by block using absolute frame positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# a hard start or stop (no crossfade available) gets this raised-cosine edge so it never clicks
EDGE_FADE_S = 0.005


def as_stereo(audio, channels: int = 2) -> np.ndarray | None:
    """A voice line's audio as contiguous float32 ``(channels, n)`` (mono is copied to every
    channel); ``None`` when it holds no samples."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[np.newaxis, :]
    if audio.shape[0] == 1:
        audio = np.repeat(audio, channels, axis=0)
    audio = np.ascontiguousarray(audio[:channels])
    return audio if audio.shape[1] else None


def db_to_gain(db: float | np.ndarray) -> float | np.ndarray:
    if isinstance(db, np.ndarray):
        return np.power(10.0, db.astype(np.float64) / 20.0)
    return 10.0 ** (db / 20.0)


def gain_to_db(gain: float | np.ndarray, floor_db: float = -200.0) -> float | np.ndarray:
    g = np.maximum(np.abs(np.asarray(gain, dtype=np.float64)), 10.0 ** (floor_db / 20.0))
    out = 20.0 * np.log10(g)
    return float(out) if out.ndim == 0 else out


def fade_in_curve(positions: np.ndarray, length: int) -> np.ndarray:
    """Equal-power fade-in gain at integer ``positions`` into a fade of ``length`` frames.

    ``sin(pi/2 * k/length)``: 0 at the first frame, 1 from ``length`` on, and −3.01 dB at the
    midpoint, where it meets :func:`fade_out_curve` so that ``in² + out² == 1`` at every frame.
    A length of 0 is a cut (1 everywhere from position 0).
    """
    pos = np.asarray(positions, dtype=np.float64)
    if length <= 0:
        return (pos >= 0).astype(np.float32)
    x = np.clip(pos / length, 0.0, 1.0)
    return np.sin(0.5 * np.pi * x).astype(np.float32)


def fade_out_curve(positions: np.ndarray, length: int) -> np.ndarray:
    """Equal-power fade-out (``cos``), the mirror of :func:`fade_in_curve`; 0 from ``length`` on."""
    pos = np.asarray(positions, dtype=np.float64)
    if length <= 0:
        return (pos < 0).astype(np.float32)
    x = np.clip(pos / length, 0.0, 1.0)
    return np.cos(0.5 * np.pi * x).astype(np.float32)


def equal_power_crossfade(n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The (outgoing, incoming) gain curves of an ``n_frames`` crossfade."""
    k = np.arange(n_frames)
    return fade_out_curve(k, n_frames), fade_in_curve(k, n_frames)


def edge_fade(positions: np.ndarray, length: int, rising: bool) -> np.ndarray:
    """A short raised-cosine edge (used where a track starts or stops without a crossfade)."""
    pos = np.asarray(positions, dtype=np.float64)
    if length <= 0:
        return ((pos >= 0) if rising else (pos < 0)).astype(np.float32)
    x = np.clip(pos / length, 0.0, 1.0)
    up = 0.5 - 0.5 * np.cos(np.pi * x)
    return (up if rising else 1.0 - up).astype(np.float32)


@dataclass(frozen=True, slots=True)
class Duck:
    """Music ducked by ``depth_db`` while a voice plays from ``voice_start`` to ``voice_end``
    (absolute frames). The attack runs over the ``attack`` frames *before* ``voice_start`` so the
    music is fully down when the first word starts. The release (``release`` frames) is centred on
    ``voice_end``: speech audio ends in its own short decay, and a release that only began after it
    leaves a momentary-loudness hole (measured: −5 LU with a 500 ms release) after the voice."""

    voice_start: int
    voice_end: int
    depth_db: float
    attack: int
    release: int

    @property
    def start(self) -> int:
        return self.voice_start - self.attack

    @property
    def release_start(self) -> int:
        return self.voice_end - self.release // 2

    @property
    def end(self) -> int:
        return self.release_start + self.release


def duck_gain_db(positions: np.ndarray, duck: Duck) -> np.ndarray:
    """The duck's gain in dB at absolute ``positions``: raised-cosine ramps (in dB), flat between.

    Shaping the ramps in dB keeps the perceived level change even over the attack and release."""
    pos = np.asarray(positions, dtype=np.float64)
    amount = np.zeros(pos.shape, dtype=np.float64)
    if duck.attack > 0:
        x = np.clip((pos - duck.start) / duck.attack, 0.0, 1.0)
        attack = 0.5 - 0.5 * np.cos(np.pi * x)
    else:
        attack = (pos >= duck.voice_start).astype(np.float64)
    if duck.release > 0:
        x = np.clip((pos - duck.release_start) / duck.release, 0.0, 1.0)
        release = 0.5 + 0.5 * np.cos(np.pi * x)
    else:
        release = (pos < duck.voice_end).astype(np.float64)
    amount = np.minimum(attack, release)
    return -abs(duck.depth_db) * amount


def add_duck(ducks: list[Duck], new: Duck) -> list[Duck]:
    """Add a duck; one whose attack would start less than a release time after the previous one
    has released joins it, so two voice lines close together keep the music down between them
    instead of pumping up and down."""
    if ducks and new.start < ducks[-1].end + new.release:
        prev = ducks[-1]
        joined = Duck(
            prev.voice_start,
            max(prev.voice_end, new.voice_end),
            max(abs(prev.depth_db), abs(new.depth_db)),
            prev.attack,
            new.release,
        )
        return [*ducks[:-1], joined]
    return [*ducks, new]


def duck_envelope(positions: np.ndarray, ducks: list[Duck] | tuple[Duck, ...]) -> np.ndarray:
    """Linear gain at ``positions`` under several ducks (the deepest one wins at each frame)."""
    if not ducks:
        return np.ones(np.shape(positions), dtype=np.float32)
    db = np.min(np.stack([duck_gain_db(positions, d) for d in ducks]), axis=0)
    return np.power(10.0, db / 20.0).astype(np.float32)


def place_voice(
    transition_start: int, attack: int, not_before: int, previous_voice_end: int, gap: int
) -> int:
    """Where a voice line starts (absolute frame).

    The voice starts with the transition (the crossfade start), but never before the duck's attack
    can complete (``not_before`` + ``attack``: the output already sent cannot be ducked any more),
    and never over the previous voice line (``previous_voice_end`` + ``gap``).
    """
    return max(transition_start, not_before + attack, previous_voice_end + gap)


def crossfade_frames(
    requested_s: float,
    outgoing_outro_s: float,
    outgoing_usable: int,
    incoming_usable: int,
    sample_rate: int,
) -> int:
    """The crossfade length between two tracks, in frames.

    ``min(outro, 2 × requested, outgoing usable / 2, incoming usable / 2)``, where ``outro`` is the
    outgoing track's outro length (``requested`` when unknown). Ingest sets the outro to the
    default crossfade for an ordinary ending, longer for a track that fades out (the fade is ridden,
    up to twice the request), shorter for short tracks, and the renderer lengthens it to where the
    track's measured fade starts; the halves keep a short track's fade-in and fade-out from
    overlapping, so a track shorter than twice the crossfade still plays whole.
    """
    if requested_s <= 0:
        return 0
    outro = outgoing_outro_s if outgoing_outro_s > 0 else requested_s
    seconds = min(outro, 2.0 * requested_s)
    frames = int(round(seconds * sample_rate))
    return max(0, min(frames, outgoing_usable // 2, incoming_usable // 2))


def max_abs_jump(audio: np.ndarray) -> float:
    """The largest sample-to-sample step (a click is a step larger than the music's own)."""
    if audio.shape[-1] < 2:
        return 0.0
    return float(np.max(np.abs(np.diff(audio, axis=-1))))


def window_rms_db(audio: np.ndarray, window: int) -> np.ndarray:
    """RMS level in dBFS of consecutive ``window``-frame windows (channels averaged in power)."""
    n = audio.shape[-1] // window
    if n == 0:
        return np.zeros(0)
    x = audio[..., : n * window].astype(np.float64)
    power = np.mean(np.square(x.reshape(-1, n, window)), axis=(0, 2))
    return 10.0 * np.log10(np.maximum(power, 1e-20))
