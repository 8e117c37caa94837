"""Consent: explicit, per artist and per kind, with evidence; nothing is assumed.

Kinds are separate on purpose: agreeing that a persona may read your approved text is not agreeing
that your recorded voice may air, nor that a neural voice of yours may speak.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dj.narrate.lines import LineError, _names, territory_in

PERSONA_TEXT = "persona_text"  # a persona may read my approved text, and name me in templates
RECORDED_CLIPS = "recorded_clips"  # my recorded clips may air
NEURAL_VOICE = "neural_voice"  # a neural voice modelled on mine may speak (no engine uses it yet)
CONSENT_KINDS = (PERSONA_TEXT, RECORDED_CLIPS, NEURAL_VOICE)


@dataclass(frozen=True, slots=True)
class Consent:
    artist_id: str
    kind: str
    active: bool
    evidence: str = ""
    personas: tuple[str, ...] = ()  # empty: all personas
    territories: tuple[str, ...] = ()  # empty: all territories
    granted_at: str | None = None
    revoked_at: str | None = None
    source: str = "api"
    updated_at: str = ""

    def covers(self, persona: str, territory: str | None, *, any_territory: bool = False) -> bool:
        """Fail closed: inactive, another persona, or (when limited to territories) a missing or
        other territory means no. ``any_territory`` skips only the territory check, for
        rendering ahead (nothing airs); every check before airing passes the listener's."""
        if not self.active:
            return False
        if self.personas and persona not in self.personas:
            return False
        return any_territory or territory_in(territory, self.territories)

    def to_json(self) -> dict[str, Any]:
        return {
            "artist": self.artist_id, "kind": self.kind, "active": self.active,
            "evidence": self.evidence, "personas": list(self.personas) or "all",
            "territories": list(self.territories) or "all", "granted_at": self.granted_at,
            "revoked_at": self.revoked_at, "source": self.source, "updated_at": self.updated_at,
        }


def check_kind(kind: Any) -> str:
    if not isinstance(kind, str) or kind not in CONSENT_KINDS:
        raise LineError(f"consent kind must be one of {', '.join(CONSENT_KINDS)}")
    return str(kind)


def consent_scope(personas: Any, territories: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return _names(personas, "personas"), _names(territories, "territories", territory=True)
