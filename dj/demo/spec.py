"""What a demo song is: the parameters one synthesized track is rendered from, and mood presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Mood:
    """How a mood colours a song: space, brightness, harmony and how busy the parts are."""

    reverb_room: float
    reverb_wet: float
    cutoff_hz: float  # master low-pass: darker moods roll off the top
    sevenths: bool  # seventh chords sound softer and jazzier than triads
    arp_step: int  # arpeggio note length in 16ths (0 = no arpeggio)
    lead_density: float  # 0 sparse, long notes … 1 busy
    harmonic_v: bool  # major V chord in minor keys
    chorus_fx: bool
    delay_mix: float


MOODS: dict[str, Mood] = {
    "mellow": Mood(0.55, 0.22, 9000.0, True, 4, 0.35, False, True, 0.18),
    "upbeat": Mood(0.4, 0.15, 14000.0, False, 2, 0.6, False, False, 0.12),
    "dark": Mood(0.7, 0.25, 7000.0, False, 1, 0.45, True, False, 0.22),
    "dreamy": Mood(0.85, 0.33, 9000.0, True, 2, 0.35, False, True, 0.28),
    "driving": Mood(0.35, 0.12, 12000.0, False, 2, 0.55, False, False, 0.08),
    "warm": Mood(0.5, 0.2, 10000.0, True, 2, 0.5, True, False, 0.1),
    "bright": Mood(0.4, 0.16, 16000.0, False, 1, 0.65, False, False, 0.12),
    "ambient": Mood(0.95, 0.42, 7000.0, True, 4, 0.2, False, True, 0.35),
    "jazzy": Mood(0.45, 0.2, 11000.0, True, 0, 0.55, True, False, 0.0),
}

CHORD_RHYTHMS = ("sustain", "comp", "pulse", "strum")
BASS_LINES = ("sustain", "roots", "eighths", "pop", "octaves", "walking", "tumbao")
ENDINGS = ("fade", "clean")


@dataclass(frozen=True, slots=True)
class SongSpec:
    """Everything one demo track is rendered from; the same spec always gives the same audio."""

    seed: int
    tempo_bpm: float = 110.0
    key: str = "C"
    mode: str = "major"  # or "minor"
    mood: str = "mellow"
    duration_s: float = 90.0
    loudness_lufs: float = -14.0  # integrated loudness of the rendered file
    pad: str = "saw_pad"
    lead: str = "sine_lead"
    arp: str = "pluck"  # "" = no arpeggio
    bass: str = "sub_bass"
    groove: str = "pop"
    kit: str = "acoustic"  # acoustic, electronic, soft
    chord_rhythm: str = "sustain"
    bass_line: str = "roots"
    swing: float = 0.0  # 0 straight … 1 triplet swing of the off-beat eighths
    ending: str = "fade"
    fade_s: float = 8.0
    silence_start_s: float = 0.0
    silence_end_s: float = 0.0
    effects: bool = True
    progression: tuple[int, ...] | None = None
    chorus_progression: tuple[int, ...] | None = None

    def replace(self, **changes: object) -> SongSpec:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def problems(self) -> list[str]:
        """Every invalid parameter, so a bad catalog entry fails with one clear message."""
        from dj.demo.compose import GROOVES, KEYS  # local: compose imports this module
        from dj.demo.instruments import VOICES

        out = []
        if not 40.0 <= self.tempo_bpm <= 220.0:
            out.append(f"tempo_bpm {self.tempo_bpm} outside 40–220")
        if self.key not in KEYS:
            out.append(f"unknown key {self.key!r}")
        if self.mode not in ("major", "minor"):
            out.append(f"unknown mode {self.mode!r}")
        if self.mood not in MOODS:
            out.append(f"unknown mood {self.mood!r}")
        for part in ("pad", "lead", "bass"):
            if getattr(self, part) not in VOICES:
                out.append(f"unknown {part} voice {getattr(self, part)!r}")
        if self.arp and self.arp not in VOICES:
            out.append(f"unknown arp voice {self.arp!r}")
        if self.groove not in GROOVES:
            out.append(f"unknown groove {self.groove!r}")
        if self.chord_rhythm not in CHORD_RHYTHMS:
            out.append(f"unknown chord_rhythm {self.chord_rhythm!r}")
        if self.bass_line not in BASS_LINES:
            out.append(f"unknown bass_line {self.bass_line!r}")
        if self.ending not in ENDINGS:
            out.append(f"unknown ending {self.ending!r}")
        if self.duration_s < 8.0:
            out.append(f"duration_s {self.duration_s} shorter than 8 s")
        return out
