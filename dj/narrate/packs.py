"""Artist line packs on disk: ``voices/artists/<artist-id>/lines.toml`` (and optional consent.toml).

Parsing only; :meth:`dj.narrate.registry.LineRegistry.sync_pack` decides what changes in the
database. A line or consent entry that cannot be understood is reported and skipped; a file that
cannot be parsed at all leaves that artist's stored state as it was.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dj.narrate.consent import check_kind, consent_scope
from dj.narrate.lines import APPROVED, REVOKED, LineError, LineScope, check_text

logger = logging.getLogger(__name__)

LINES_FILE = "lines.toml"
CONSENT_FILE = "consent.toml"
_SCOPE_KEYS = ("personas", "territories", "valid_from", "valid_until", "moment", "tracks")


class PackError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class PackLine:
    text: str
    scope: LineScope
    clip_path: Path | None = None
    state: str = APPROVED


@dataclass(frozen=True, slots=True)
class PackConsent:
    kind: str
    active: bool
    evidence: str
    personas: tuple[str, ...] = ()
    territories: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ArtistPack:
    artist_id: str
    path: Path  # the lines.toml file: the "who" of every change this pack makes
    lines: tuple[PackLine, ...]
    consents: tuple[PackConsent, ...]
    problems: tuple[str, ...] = ()

    @property
    def who(self) -> str:
        return f"file:{self.path}"


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PackError(f"{path}: {exc}") from None


def _line(entry: Any, base: Path) -> PackLine:
    if not isinstance(entry, Mapping):
        raise LineError("expected a table")
    extra = sorted(set(entry) - {"text", "clip", "state", *_SCOPE_KEYS})
    if extra:
        raise LineError(f"unknown key(s): {', '.join(extra)}")
    state = entry.get("state", APPROVED)
    if state not in (APPROVED, REVOKED):
        raise LineError(f"state must be {APPROVED!r} or {REVOKED!r}")
    clip = entry.get("clip")
    clip_path = None
    if clip is not None:
        if not isinstance(clip, str):
            raise LineError("clip must be a path relative to the pack")
        clip_path = (base / clip).resolve()
        if not clip_path.is_relative_to(base.resolve()):
            raise LineError("clip must be inside the artist's pack folder")
    return PackLine(
        text=check_text(entry.get("text")),
        scope=LineScope.parse({k: entry[k] for k in _SCOPE_KEYS if k in entry}),
        clip_path=clip_path,
        state=state,
    )


def _consent(entry: Any) -> PackConsent:
    if not isinstance(entry, Mapping):
        raise LineError("expected a table")
    known = {"kind", "active", "evidence", "personas", "territories", "granted"}
    extra = sorted(set(entry) - known)
    if extra:
        raise LineError(f"unknown key(s): {', '.join(extra)}")
    kind = check_kind(entry.get("kind"))
    evidence = entry.get("evidence")
    active = entry.get("active", True)
    if not isinstance(active, bool):
        raise LineError("active must be true or false")
    if active and (not isinstance(evidence, str) or not evidence.strip()):
        raise LineError("a consent needs an evidence reference")
    personas, territories = consent_scope(entry.get("personas"), entry.get("territories"))
    return PackConsent(kind, active, str(evidence or ""), personas, territories)


def load_pack(directory: Path) -> ArtistPack:
    """Parse one artist's folder; raises :class:`PackError` if its lines.toml is unusable."""
    path = directory / LINES_FILE
    data = _read(path)
    artist_id = data.get("artist", directory.name)
    if artist_id != directory.name:
        raise PackError(
            f"{path}: artist {artist_id!r} does not match its folder {directory.name!r}")
    consents_data = list(data.get("consent", []))
    if (directory / CONSENT_FILE).exists():
        consents_data += list(_read(directory / CONSENT_FILE).get("consent", []))
    problems: list[str] = []
    lines: list[PackLine] = []
    for i, entry in enumerate(data.get("line", [])):
        try:
            lines.append(_line(entry, directory))
        except LineError as exc:
            problems.append(f"{path}: line[{i}]: {exc}")
    consents: dict[str, PackConsent] = {}
    for i, entry in enumerate(consents_data):
        try:
            consent = _consent(entry)
        except LineError as exc:
            problems.append(f"{path}: consent[{i}]: {exc}")
            continue
        if consent.kind in consents:
            problems.append(f"{path}: consent[{i}]: {consent.kind} declared twice")
            continue
        consents[consent.kind] = consent
    for problem in problems:
        logger.error("artist pack entry skipped: %s", problem)
    return ArtistPack(artist_id, path, tuple(lines), tuple(consents.values()), tuple(problems))


def load_packs(artists_dir: Path) -> tuple[list[ArtistPack], list[str]]:
    packs: list[ArtistPack] = []
    problems: list[str] = []
    if not artists_dir.is_dir():
        return packs, problems
    for directory in sorted(p for p in artists_dir.iterdir() if p.is_dir()):
        if not (directory / LINES_FILE).exists():
            continue
        try:
            pack = load_pack(directory)
        except PackError as exc:
            logger.error("artist pack skipped (stored state kept): %s", exc)
            problems.append(str(exc))
            continue
        packs.append(pack)
        problems.extend(pack.problems)
    return packs, problems
