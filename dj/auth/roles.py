"""Roles a token can carry, declared as data so a new role is one entry here, not a rework.

``subject`` is what the token speaks for: an artist id for ``artist``, a listener id for
``listener`` and ``stream-key``, a team name for ``product``; ``admin`` has none.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    subject: str | None  # what the subject names, or None when the role has no subject
    description: str


ROLES: dict[str, Role] = {
    r.name: r
    for r in (
        Role("artist", "artist id", "manages that artist's lines and consent, reads its airings"),
        Role("listener", "listener id", "plays that listener's stream, uses its controls"
             " and reads what it played"),
        Role("stream-key", "listener id", "plays that listener's stream and nothing else: for"
             " players that cannot send headers (?key= in the stream URL)"),
        Role("product", "team", "designs personas and experiments (not used yet)"),
        Role("admin", None, "operates the station (not used yet)"),
    )
}


class RoleError(ValueError):
    pass


def check_role(role: str, subject: str | None) -> Role:
    spec = ROLES.get(role)
    if spec is None:
        raise RoleError(f"unknown role {role!r} (known: {', '.join(ROLES)})")
    if spec.subject is not None and not (subject and subject.strip()):
        raise RoleError(f"role {role!r} needs a subject ({spec.subject})")
    if spec.subject is None and subject:
        raise RoleError(f"role {role!r} takes no subject")
    return spec
