"""Choosing what to say, as small pure functions: slot values, candidate weights, seeded draws.

Draws are hashes of the transition (listener, tracks, time), not a shared random generator, so a
choice is reproducible in tests and needs no lock.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from dj.catalog.models import Track
from dj.narrate.slots import PREV_TRACK_SLOTS, SlotError, template_slots, time_of_day
from dj.narrate.utterance import NarrationContext

#: How likely each template kind is, relative to the others, when no artist line fits.
TEMPLATE_WEIGHTS = {"intro": 4.0, "back_announce": 3.0, "greeting": 1.5, "station_id": 1.0}


def draw(*parts: object) -> float:
    """A number in [0, 1) determined by ``parts``."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def track_values(track: Track | None, prefix: str = "") -> dict[str, str]:
    if track is None:
        return {}
    return {
        f"{prefix}title": track.title,
        f"{prefix}artist": track.artist_name,
        f"{prefix}album": track.album,
        f"{prefix}year": str(track.year) if track.year else "",
    }


def slot_values(ctx: NarrationContext, station: str, about: Track | None = None) -> dict[str, str]:
    """Values for every slot. ``about`` (an artist line's track) takes the un-prefixed slots;
    for templates they describe the next track, and ``prev_*`` the one that just played."""
    values = {
        "listener_name": ctx.listener_name,
        "time_of_day": time_of_day(ctx.now),
        "station": station,
    }
    values.update(track_values(ctx.prev, "prev_"))
    values.update(track_values(about if about is not None else ctx.next))
    return values


def line_names(text: str, about: Track, prev: Track | None) -> tuple[str, ...] | None:
    """Every artist an artist line names once its slots are filled: its own (``about``, first),
    and the previous track's artist when it uses a ``prev_*`` slot (as :func:`slot_values` fills
    them). None when the text is malformed (such a line is never said)."""
    try:
        used = set(template_slots(text))
    except SlotError:
        return None
    named = [about.artist_id]
    if used & PREV_TRACK_SLOTS and prev is not None:
        named.append(prev.artist_id)
    return tuple(dict.fromkeys(named))


@dataclass(frozen=True, slots=True)
class Candidate:
    line_id: str
    artist_id: str | None
    artists: tuple[str, ...]
    text: str
    engine: str
    weight: float
    identity: str  # what "the same line" means for repeat avoidance
    clip_sha256: str | None = None
    nameless: str | None = None  # the same words without the listener's name, if it has it


def pick(candidates: Sequence[Candidate], *seed: object) -> Candidate | None:
    total = sum(c.weight for c in candidates)
    if not candidates or total <= 0:
        return None
    point = draw("pick", *seed) * total
    for candidate in candidates:
        point -= candidate.weight
        if point < 0:
            return candidate
    return candidates[-1]


def without_listener_name(text: str) -> str:
    """A template or line with its ``{listener_name}`` slot taken out, punctuation mended:
    "Good {time_of_day}, {listener_name}." -> "Good {time_of_day}."; "Hey {listener_name}!
    Happy {time_of_day}!" -> "Hey! Happy {time_of_day}!". Used as the stand-in for a greeting
    whose own render is not ready in time."""
    out = re.sub(r",\s*\{listener_name\}\s*,", "", text)
    out = re.sub(r",\s*\{listener_name\}", "", out)
    out = re.sub(r"\{listener_name\}\s*,\s*", "", out)
    out = re.sub(r"\s*\{listener_name\}", "", out)
    out = re.sub(r"\s+([,.!?;:])", r"\1", out)
    out = re.sub(r"([,;:])(?=[.!?])", "", out)
    out = " ".join(out.split())
    # a sentence that lost its first word starts with a capital again
    return re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), out)


def repeat_identity(line_id: str, text: str, is_template: bool) -> str:
    """An artist line is the same line whatever it fills in; a template is the same line only
    with the same words (a template reused for another track is a different thing to hear)."""
    return f"{line_id}\x1f{text}" if is_template else line_id
