"""Artist lines as values: scope, content id, and the checks that say where a line may air.

A line's id is a hash of everything that makes it what it is (artist, text, clip bytes, scope), so
the same line always has the same id, and any change to what is said or where makes a new line
that the artist approves on its own.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from dj.narrate.slots import SlotError, unknown_slots

MOMENTS = ("before", "after", "any")  # before the artist's track, after it, or either
ALL = "all"
MAX_TEXT_CHARS = 400
MAX_NAMES = 300  # per scope list (there are about 250 territories)
MAX_NAME_CHARS = 100
MIN_YEAR, MAX_YEAR = 1970, 2199  # a sane range for scope and consent dates
WORLDWIDE = "WW"
TERRITORY_CODE = re.compile(r"[A-Z]{2}", re.ASCII)
APPROVED, REVOKED = "approved", "revoked"


class LineError(ValueError):
    """A line that cannot be registered; the message is shown to the artist."""


#: Explicit embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069). Right-to-left
#: scripts themselves need none of them.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def check_chars(text: str, what: str) -> str:
    """Reject what cannot be stored or said: lone surrogates and control characters."""
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cs":
            raise LineError(f"{what} is not valid Unicode (it holds a lone surrogate)")
        if category == "Cc":
            raise LineError(f"{what} must not contain control characters ({ch!r})")
        if ch in BIDI_CONTROLS:
            # they reorder what listeners and artists see around them (spoofing), say nothing
            raise LineError(f"{what} must not contain bidirectional control characters"
                            f" (U+{ord(ch):04X})")
    return text


def _names(value: Any, what: str, *, territory: bool = False) -> tuple[str, ...]:
    """``"all"``, ``["all"]``, ``["WW"]`` (territories) or nothing → () meaning every one.

    Names are stripped; a blank one is an error (never stored as ``""``), a territory must be an
    ISO 3166-1 alpha-2 code (or ``WW``), and any name must be printable and at most
    :data:`MAX_NAME_CHARS` long.
    """
    if value is None or value == ALL:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise LineError(f"{what} must be \"all\" or a list of names")
    if len(value) > MAX_NAMES:
        raise LineError(f"{what}: at most {MAX_NAMES} names")
    names: set[str] = set()
    for raw in value:
        name = raw.strip()
        if not name:
            raise LineError(f"{what}: a name is blank ({raw!r}); list real names or use \"all\"")
        check_chars(name, what)
        if len(name) > MAX_NAME_CHARS:
            raise LineError(f"{what}: a name is longer than {MAX_NAME_CHARS} characters")
        if territory:
            name = name.upper()
            if not TERRITORY_CODE.fullmatch(name):
                raise LineError(f"{what}: {raw!r} is not an ISO 3166-1 alpha-2 code (or WW)")
        names.add(name)
    if ALL in {n.lower() for n in names} or (territory and WORLDWIDE in names):
        return ()
    return tuple(sorted(names))


def _check_year(value: date, what: str, raw: Any) -> None:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise LineError(f"{what}: {raw!r} is outside the supported years {MIN_YEAR}-{MAX_YEAR}")


def _instant(value: Any, what: str, end_of_day: bool) -> datetime | None:
    """A UTC instant from a TOML date/datetime or an ISO string; a bare end date is inclusive.

    Years outside :data:`MIN_YEAR`..:data:`MAX_YEAR` are refused before any arithmetic, so no
    offset or end-of-day shift can overflow.
    """
    raw = value
    if value is None or value == "":
        return None
    if isinstance(value, str):
        if len(value) > 64:
            raise LineError(f"{what}: not an ISO date or date-time")
        try:
            value = (date.fromisoformat(value) if len(value) == 10
                     else datetime.fromisoformat(value.replace("Z", "+00:00")))
        except (ValueError, OverflowError):
            raise LineError(f"{what}: not an ISO date or date-time: {value!r}") from None
    if isinstance(value, datetime):
        _check_year(value, what, raw)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        _check_year(value, what, raw)
        if end_of_day:
            next_day = datetime.combine(value + timedelta(days=1), time(), UTC)
            return next_day - timedelta(microseconds=1)
        return datetime.combine(value, time(), UTC)
    raise LineError(f"{what}: expected a date, got {type(raw).__name__}")


@dataclass(frozen=True, slots=True)
class LineScope:
    """Where a line may air. Empty tuples mean "all"; the window is inclusive, in UTC."""

    personas: tuple[str, ...] = ()
    territories: tuple[str, ...] = ()
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    moment: str = "any"
    tracks: tuple[str, ...] = ()  # only with these tracks of the artist (empty: any of them)

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None) -> LineScope:
        data = dict(data or {})
        known = {"personas", "territories", "valid_from", "valid_until", "moment", "tracks"}
        extra = sorted(str(k)[:40] for k in set(data) - known)
        if extra:
            raise LineError(f"unknown scope field(s): {', '.join(extra[:10])}")
        moment = data.get("moment", "any")
        if not isinstance(moment, str) or moment not in MOMENTS:
            raise LineError(f"moment must be one of {', '.join(MOMENTS)}")
        scope = cls(
            personas=_names(data.get("personas"), "personas"),
            territories=_names(data.get("territories"), "territories", territory=True),
            valid_from=_instant(data.get("valid_from"), "valid_from", end_of_day=False),
            valid_until=_instant(data.get("valid_until"), "valid_until", end_of_day=True),
            moment=moment,
            tracks=_names(data.get("tracks"), "tracks"),
        )
        if scope.valid_from and scope.valid_until and scope.valid_until < scope.valid_from:
            raise LineError("valid_until is before valid_from")
        return scope

    def to_json(self) -> dict[str, Any]:
        return {
            "personas": list(self.personas) or ALL,
            "territories": list(self.territories) or ALL,
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
            "moment": self.moment,
            "tracks": list(self.tracks) or ALL,
        }

    def covers(self, persona: str, territory: str | None, now: datetime, *,
               any_territory: bool = False) -> bool:
        """Whether the line may air for ``persona`` in ``territory`` at ``now``.

        A territory-scoped line fails closed when ``territory`` is None or blank; only
        ``any_territory=True`` (rendering ahead, which airs nothing) skips the territory check.
        """
        if self.personas and persona not in self.personas:
            return False
        if not any_territory and not territory_in(territory, self.territories):
            return False
        now = now.replace(tzinfo=UTC) if now.tzinfo is None else now
        if self.valid_from is not None and now < self.valid_from:
            return False
        return not (self.valid_until is not None and now > self.valid_until)

    def fits(self, moment: str, track_id: str | None) -> bool:
        """Whether the line belongs ``before`` or ``after`` this track of the artist."""
        if self.moment not in ("any", moment):
            return False
        return not self.tracks or track_id in self.tracks


def territory_in(territory: str | None, territories: tuple[str, ...]) -> bool:
    """``territories`` empty: everywhere. Otherwise a missing territory is not covered."""
    if not territories:
        return True
    return bool(territory) and str(territory).upper() in territories


def check_text(text: Any) -> str:
    if not isinstance(text, str) or not text.strip():
        raise LineError("text is required")
    if len(text) > 8 * MAX_TEXT_CHARS:
        raise LineError(f"text is too long (at most {MAX_TEXT_CHARS} characters)")
    text = check_chars(" ".join(text.split()), "text")
    if len(text) > MAX_TEXT_CHARS:
        raise LineError(f"text is too long ({len(text)} characters; at most {MAX_TEXT_CHARS})")
    try:
        bad = unknown_slots(text)
    except SlotError as exc:
        raise LineError(str(exc)) from None
    if bad:
        raise LineError(f"unknown slot(s): {', '.join('{' + b + '}' for b in bad)}")
    return text


def line_content_id(artist_id: str, text: str, scope: LineScope, clip_sha256: str | None) -> str:
    """Stable id: sha256 over artist, text, clip bytes' hash and scope (canonical JSON)."""
    canonical = json.dumps(
        {"artist": artist_id, "text": text, "clip": clip_sha256, "scope": scope.to_json()},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Line:
    id: str
    artist_id: str
    text: str
    scope: LineScope
    state: str = APPROVED
    clip_path: Path | None = None
    clip_sha256: str | None = None
    source: str = "api"  # "api" or "file:<path>"
    created_at: str = ""
    updated_at: str = ""

    @property
    def consent_kind(self) -> str:
        """The consent it needs: a clip airs the artist's own voice; text is read by a persona."""
        return "recorded_clips" if self.clip_sha256 else "persona_text"

    @property
    def approved(self) -> bool:
        return self.state == APPROVED

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "artist": self.artist_id, "text": self.text, "state": self.state,
            "scope": self.scope.to_json(), "clip": bool(self.clip_sha256),
            "clip_sha256": self.clip_sha256, "source": self.source,
            "created_at": self.created_at, "updated_at": self.updated_at,
        }
