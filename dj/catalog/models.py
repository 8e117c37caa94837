"""The catalog's values, named after the music industry's own terms (DDEX deal terms, ISRC)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

RADIO_USE = "non-interactive"  # DDEX UseType for radio-style streaming; "on-demand" is not enough
WORLDWIDE = "WW"
TIERS = ("subscription", "ad-supported")
ROLES = ("master", "publishing")


@dataclass(frozen=True, slots=True)
class Artist:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Analysis:
    """What ingest measured of a track's house-format audio (all in seconds / dB)."""

    duration_s: float
    loudness_lufs: float
    true_peak_dbtp: float
    gain_db: float
    cue_in_s: float
    cue_out_s: float
    outro_s: float  # a sensible crossfade length for the outro
    # loudness of each end (LU, 400 ms windows every 0.2 s), packed; empty when not measured yet
    head_lu: bytes = b""
    tail_lu: bytes = b""


@dataclass(frozen=True, slots=True)
class Track:
    id: str
    title: str
    artist_id: str
    artist_name: str
    audio_path: Path  # house-format (44.1 kHz stereo) copy made at ingest
    analysis: Analysis
    isrc: str = ""
    album: str = ""
    year: int | None = None
    source_sha256: str = ""
    tags: tuple[str, ...] = ()

    def replace(self, **changes: object) -> Track:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Share:
    """A rightsholder's share of a track, per role; a track's shares per role sum to 100."""

    track_id: str
    party: str
    role: str
    share_pct: float


@dataclass(frozen=True, slots=True)
class Deal:
    """A licence: which territories, when (UTC dates, open at either end), which tiers and uses."""

    track_id: str
    territories: frozenset[str]  # ISO 3166-1 alpha-2 codes, or {"WW"} for worldwide
    excluded: frozenset[str] = frozenset()
    start: date | None = None
    end: date | None = None  # inclusive
    tiers: frozenset[str] = frozenset(TIERS)
    uses: frozenset[str] = frozenset({RADIO_USE})
    id: int | None = None


@dataclass(frozen=True, slots=True)
class Listener:
    id: str
    territory: str
    tier: str = "ad-supported"
    display_name: str = ""
    tags: tuple[str, ...] = field(default=())
