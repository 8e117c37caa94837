"""The fixed set of named slots that templates and artist lines may use, and how they are filled.

Slots are a closed set on purpose: a persona designer cannot make the DJ say something the catalog
does not know (or something about an artist that consent does not cover), and a typo such as
``{titel}`` is caught when the file is loaded rather than heard on air.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from datetime import datetime

#: Slots about the *next* track (the one about to play) and its artist.
NEXT_TRACK_SLOTS = frozenset({"title", "artist", "album", "year"})
#: Slots about the *previous* track (the one that just played) and its artist.
PREV_TRACK_SLOTS = frozenset({"prev_title", "prev_artist", "prev_album", "prev_year"})
#: Slots that name no artist.
STATION_SLOTS = frozenset({"listener_name", "time_of_day", "station"})

SLOTS = NEXT_TRACK_SLOTS | PREV_TRACK_SLOTS | STATION_SLOTS


class SlotError(ValueError):
    """A template that cannot be used: malformed braces, positional or formatted fields."""


def template_slots(text: str) -> list[str]:
    """The slot names in ``text`` in order of appearance; raises :class:`SlotError` if malformed.

    Only plain ``{name}`` fields are allowed (no ``{0}``, ``{x.y}``, ``{x!r}`` or ``{x:>3}``), so a
    template can never reach into an object or change formatting.
    """
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise SlotError(f"malformed braces: {exc}") from None
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if not field or not field.isidentifier():
            raise SlotError(f"slot {{{field}}} is not a plain name")
        if spec or conversion:
            raise SlotError(f"slot {{{field}}} may not carry a format or conversion")
        names.append(field)
    return names


def unknown_slots(text: str) -> list[str]:
    return [name for name in template_slots(text) if name not in SLOTS]


def fill(text: str, values: Mapping[str, str]) -> str | None:
    """``text`` with its slots filled, or None when a slot it uses has no (non-empty) value.

    A template about an album is simply not used for a track without one: better silence than
    "from the album ." on air.
    """
    needed = template_slots(text)
    if any(not values.get(name) for name in needed):
        return None
    return text.format_map({name: values[name] for name in needed})


def time_of_day(now: datetime) -> str:
    """morning / afternoon / evening / night, from ``now``'s own hour (the caller's local time)."""
    hour = now.hour
    if 5 <= hour < 12:
        return "morning"
    if 12 <= hour < 17:
        return "afternoon"
    if 17 <= hour < 22:
        return "evening"
    return "night"
