"""The ingest manifest (TOML): artists, and per file its metadata, rightsholder shares and deals.

``file`` paths are resolved against the *source directory* given to ``dj ingest`` first and, when
no such file is there, against the manifest's own folder (so a manifest kept beside its audio works
both ways). Every problem in a manifest is reported at once.

Example: ``config/ingest-example.toml``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from dj.catalog.models import RADIO_USE, ROLES, TIERS, Artist, Deal, Share


class ManifestError(ValueError):
    def __init__(self, path: Path, problems: list[str]) -> None:
        super().__init__(f"{path}: invalid manifest:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class ManifestTrack:
    file: Path  # resolved
    title: str
    artist: str  # artist id
    id: str | None = None
    album: str = ""
    year: int | None = None
    isrc: str = ""
    tags: tuple[str, ...] = ()
    shares: tuple[Share, ...] = ()  # track_id filled in at ingest
    deals: tuple[Deal, ...] = ()


@dataclass(frozen=True, slots=True)
class Manifest:
    artists: dict[str, Artist]
    tracks: tuple[ManifestTrack, ...]

    def for_file(self, path: Path) -> ManifestTrack | None:
        resolved = path.resolve()
        for t in self.tracks:
            if t.file == resolved:
                return t
        return None


def _date(value: Any, where: str, problems: list[str]) -> date | None:
    if value is None:
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        problems.append(f"{where}: not an ISO date: {value!r}")
        return None


def _deal(raw: Any, where: str, problems: list[str]) -> Deal | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: expected a table")
        return None
    territories = [str(t).upper() for t in raw.get("territories", [])]
    if not territories:
        problems.append(f"{where}: territories missing")
    tiers = frozenset(raw.get("tiers", TIERS))
    if bad := tiers - set(TIERS):
        problems.append(f"{where}: unknown tiers {sorted(bad)}")
    unknown = set(raw) - {"territories", "exclude", "start", "end", "tiers", "uses"}
    if unknown:
        problems.append(f"{where}: unknown keys {sorted(unknown)}")
    return Deal(
        track_id="",
        territories=frozenset(territories),
        excluded=frozenset(str(t).upper() for t in raw.get("exclude", [])),
        start=_date(raw.get("start"), f"{where}.start", problems),
        end=_date(raw.get("end"), f"{where}.end", problems),
        tiers=tiers,
        uses=frozenset(raw.get("uses", [RADIO_USE])),
    )


def _resolve(file: str, source_dir: Path | None, manifest_dir: Path) -> Path:
    candidate = Path(file).expanduser()
    if candidate.is_absolute():
        return candidate.resolve()
    if source_dir is not None and (source_dir / candidate).exists():
        return (source_dir / candidate).resolve()
    return (manifest_dir / candidate).resolve()


def load_manifest(path: Path, source_dir: Path | None = None) -> Manifest:
    """Parse and validate a manifest; raises :class:`ManifestError` listing every problem."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ManifestError(path, [str(exc)]) from exc
    problems: list[str] = []
    artists: dict[str, Artist] = {}
    for i, a in enumerate(raw.get("artist", [])):
        if not isinstance(a, dict) or not a.get("id") or not a.get("name"):
            problems.append(f"artist[{i}]: needs id and name")
            continue
        artists[str(a["id"])] = Artist(str(a["id"]), str(a["name"]))
    tracks: list[ManifestTrack] = []
    seen: set[Path] = set()
    for i, t in enumerate(raw.get("track", [])):
        where = f"track[{i}]"
        if not isinstance(t, dict):
            problems.append(f"{where}: expected a table")
            continue
        for key in ("file", "title", "artist"):
            if not t.get(key):
                problems.append(f"{where}: {key} missing")
        if not t.get("file") or not t.get("title") or not t.get("artist"):
            continue
        file = _resolve(str(t["file"]), source_dir, path.parent)
        if file in seen:
            problems.append(f"{where}: {t['file']} listed twice")
        seen.add(file)
        shares: list[Share] = []
        for j, s in enumerate(t.get("shares", [])):
            if not isinstance(s, dict) or s.get("role") not in ROLES or "party" not in s:
                problems.append(
                    f"{where}.shares[{j}]: needs party, role (master|publishing), share"
                )
                continue
            shares.append(Share("", str(s["party"]), str(s["role"]), float(s.get("share", 100))))
        for role in {s.role for s in shares}:
            total = sum(s.share_pct for s in shares if s.role == role)
            if abs(total - 100.0) > 1e-6:
                problems.append(f"{where}: {role} shares sum to {total:g}, not 100")
        deals = [
            _deal(d, f"{where}.deals[{j}]", problems) for j, d in enumerate(t.get("deals", []))
        ]
        year = t.get("year")
        tracks.append(
            ManifestTrack(
                file=file,
                title=str(t["title"]),
                artist=str(t["artist"]),
                id=str(t["id"]) if t.get("id") else None,
                album=str(t.get("album", "")),
                year=int(year) if isinstance(year, int) else None,
                isrc=str(t.get("isrc", "")),
                tags=tuple(str(x) for x in t.get("tags", [])),
                shares=tuple(shares),
                deals=tuple(d for d in deals if d is not None),
            )
        )
    if problems:
        raise ManifestError(path, problems)
    return Manifest(artists=artists, tracks=tuple(tracks))
