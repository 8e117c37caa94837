"""What the renderer is asked to play, as plain data (no audio): the programme builds these values,
the renderer turns them into samples. Times are seconds in the track's own house-format file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class TrackCue:
    key: str  # the track id; markers report it back
    path: Path  # house-format file (44.1 kHz stereo) written at ingest
    gain_db: float  # to the loudness target, measured at ingest
    cue_in_s: float  # first audible sample worth playing
    cue_out_s: float  # where the usable audio ends (fade tails and silence trimmed)
    outro_s: float  # ingest's suggested crossfade length for this track's ending
    head_lu: bytes = b""  # ingest's edge levels (dj.audio.analysis.edge_levels), packed
    tail_lu: bytes = b""


@dataclass(frozen=True, slots=True)
class VoiceCue:
    key: str  # content id of what is spoken; the renderer asks for its audio by this key
    duck_db: float  # how far the music goes down under the voice (positive number, e.g. 12)
    text: str = ""


@dataclass(frozen=True, slots=True)
class Item:
    """One track to play next, and what is said over the transition into it."""

    track: TrackCue
    crossfade_s: float  # requested; the renderer shortens it to what both sides can give
    voice: VoiceCue | None = None
    play_id: str = ""  # this airing of the track: its start and end markers carry it


@dataclass(frozen=True, slots=True)
class Marker:
    """Something that happens at an exact frame of the rendered output.

    kinds: ``track_start`` (the new track becomes audible), ``track_end`` (it is no longer
    audible; ``value`` holds the seconds played), ``track_cut`` (the renderer was restarted
    after a fault while it played; ``value`` holds the seconds played), ``voice_start``,
    ``voice_end``,
    ``voice_dropped`` (its audio was not available or no longer allowed when it was due),
    ``skipped`` (a track could not be read and was passed over; ``value`` is the reason),
    ``dead_air`` (a silent stretch was cut short).
    """

    frame: int  # absolute output frame since the renderer started
    kind: str
    key: str
    value: float | str | None = None
    play: str = ""  # the item's play id, on track_start, track_end and track_cut


# markers at the same frame come out in this order (an end before the next start)
MARKER_ORDER = {
    k: i
    for i, k in enumerate(
        ("skipped", "dead_air", "voice_end", "track_cut", "track_end", "track_start",
         "voice_dropped", "voice_start")
    )
}
