"""The approved-line registry: lines, consents and their append-only audit trail in SQLite.

Every change is committed, with its audit row, before the call returns, and the in-memory view
that :meth:`LineRegistry.line_usable` reads is updated under the same lock, so a revocation is in
force for every thread the moment ``revoke`` returns. Revocation hooks (cache deletion, live
sessions) run before it returns too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from dj.narrate.consent import Consent, check_kind, consent_scope
from dj.narrate.engines.clip import CLIP_SUFFIXES, validate_clip
from dj.narrate.lines import (
    APPROVED,
    REVOKED,
    Line,
    LineError,
    LineScope,
    check_text,
    line_content_id,
)
from dj.narrate.packs import ArtistPack
from dj.store import Migration, Store, change_counter, where_equal

logger = logging.getLogger(__name__)

T = TypeVar("T")

CHANGE_TOPIC = "narrate"

MIGRATIONS = [
    Migration(
        "narrate-0001-lines-consent-audit",
        """
        CREATE TABLE narrate_lines (
            id TEXT PRIMARY KEY, artist_id TEXT NOT NULL, text TEXT NOT NULL, scope TEXT NOT NULL,
            clip_path TEXT, clip_sha256 TEXT,
            state TEXT NOT NULL CHECK (state IN ('approved', 'revoked')),
            source TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL
        );
        CREATE INDEX narrate_lines_artist ON narrate_lines(artist_id);
        CREATE TABLE narrate_consents (
            artist_id TEXT NOT NULL, kind TEXT NOT NULL, active INTEGER NOT NULL,
            evidence TEXT NOT NULL DEFAULT '', personas TEXT NOT NULL DEFAULT '[]',
            territories TEXT NOT NULL DEFAULT '[]', granted_at TEXT, revoked_at TEXT,
            source TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (artist_id, kind)
        );
        CREATE TABLE narrate_audit (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, who TEXT NOT NULL,
            artist_id TEXT NOT NULL, action TEXT NOT NULL, subject TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '{}'
        );
        CREATE INDEX narrate_audit_artist ON narrate_audit(artist_id, seq);
        CREATE TRIGGER narrate_audit_no_update BEFORE UPDATE ON narrate_audit
        BEGIN SELECT RAISE(ABORT, 'narrate_audit is append-only'); END;
        CREATE TRIGGER narrate_audit_no_delete BEFORE DELETE ON narrate_audit
        BEGIN SELECT RAISE(ABORT, 'narrate_audit is append-only'); END;
        """,
    ),
    # a line or consent changed by another process reaches this one's memory (refresh)
    change_counter("narrate-0002-change-counters", CHANGE_TOPIC,
                   ("narrate_lines", "narrate_consents")),
]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class LineNotFound(KeyError):
    pass


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: str
    who: str
    artist_id: str
    action: str  # line_added, line_reapproved, line_revoked, consent_granted, consent_revoked, ...
    subject: str  # line id or consent kind
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "who": self.who, "action": self.action,
                "subject": self.subject, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Revocation:
    """What a hook is told: a line was revoked, or an artist's consent of a kind was."""

    artist_id: str
    line_id: str | None = None  # set for a line revocation
    consent_kind: str | None = None  # set for a consent revocation
    #: still approved or active, with another scope: renders stay valid where it still holds,
    #: and whoever holds one queued checks it again in their own territory
    narrowed: bool = False

    @property
    def subject(self) -> str:
        return self.line_id or f"consent:{self.artist_id}:{self.consent_kind}"


@dataclass(slots=True)
class SyncReport:
    added: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    kept_revoked: list[str] = field(default_factory=list)
    consents_changed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _line_from_row(row: Any) -> Line:
    return Line(
        id=row["id"], artist_id=row["artist_id"], text=check_text(row["text"]),
        scope=LineScope.parse(json.loads(row["scope"])), state=row["state"],
        clip_path=Path(row["clip_path"]) if row["clip_path"] else None,
        clip_sha256=row["clip_sha256"], source=row["source"],
        created_at=row["created_at"], updated_at=row["updated_at"],
    )


def _consent_from_row(row: Any) -> Consent:
    personas, territories = consent_scope(json.loads(row["personas"]),
                                          json.loads(row["territories"]))
    return Consent(
        artist_id=row["artist_id"], kind=check_kind(row["kind"]), active=bool(row["active"]),
        evidence=row["evidence"], personas=personas, territories=territories,
        granted_at=row["granted_at"], revoked_at=row["revoked_at"], source=row["source"],
        updated_at=row["updated_at"],
    )


def _load_rows(rows: list[Any], parse: Callable[[Any], T], what: str,
               problems: list[str]) -> list[T]:
    """Parse every row; one that cannot be understood is logged, reported and skipped alone
    (it stays stored, and what it would have allowed is simply not allowed: fail closed)."""
    out: list[T] = []
    for row in rows:
        try:
            out.append(parse(row))
        except (ValueError, TypeError, KeyError) as exc:
            ident = row["id"] if what == "narrate_lines" else f"{row['artist_id']}/{row['kind']}"
            problem = f"{what} row {ident!r} skipped: {exc}"
            logger.error("stored narration row unreadable: %s", problem)
            problems.append(problem)
    return out


class LineRegistry:
    def __init__(self, store: Store, clips_dir: Path) -> None:
        self.store = store
        self.clips_dir = clips_dir
        store.migrate(MIGRATIONS)
        self.lock = threading.RLock()
        self._hooks: list[Callable[[Revocation], None]] = []
        #: Stored rows that could not be loaded (skipped, each logged): path/row and reason.
        self.load_problems: list[str] = []
        self._lines, self._consents = self._read(self.load_problems)

    def _read(self, problems: list[str]) -> tuple[dict[str, Line], dict[tuple[str, str], Consent]]:
        lines = _load_rows(self.store.query("SELECT * FROM narrate_lines"), _line_from_row,
                           "narrate_lines", problems)
        consents = _load_rows(self.store.query("SELECT * FROM narrate_consents"),
                              _consent_from_row, "narrate_consents", problems)
        return {ln.id: ln for ln in lines}, {(c.artist_id, c.kind): c for c in consents}

    def refresh(self) -> list[Revocation]:
        """Read the stored lines and consents again (another process may have changed them).

        Whatever is no longer allowed as it was (a line no longer approved, or changed; a
        consent no longer active, or with another scope; a row that no longer loads) is
        announced to the hooks exactly like a revocation made here. Blocking.
        """
        problems: list[str] = []
        lines, consents = self._read(problems)
        events: list[Revocation] = []
        with self.lock:
            for line_id, old in self._lines.items():
                new = lines.get(line_id)
                if old.approved and (new is None or not new.approved
                                     or (new.text, new.scope) != (old.text, old.scope)):
                    narrowed = (new is not None and new.approved and new.text == old.text)
                    events.append(Revocation(old.artist_id, line_id=line_id, narrowed=narrowed))
            for (artist_id, kind), old in self._consents.items():
                new = consents.get((artist_id, kind))
                if old.active and (new is None or not new.active
                                   or (new.personas, new.territories, new.evidence)
                                   != (old.personas, old.territories, old.evidence)):
                    events.append(Revocation(artist_id, consent_kind=kind,
                                             narrowed=new is not None and new.active))
            self._lines, self._consents = lines, consents
            self.load_problems = problems
        for event in events:
            logger.info("changed elsewhere, in force here now: %s", event.subject)
            self._notify(event)
        return events

    @property
    def rows_skipped(self) -> int:
        """How many stored rows failed to load at start (see :attr:`load_problems`)."""
        return len(self.load_problems)

    # -- reads (memory) -------------------------------------------------------------------
    def get(self, line_id: str) -> Line | None:
        with self.lock:
            return self._lines.get(line_id)

    def lines(self, artist_id: str | None = None, *, approved_only: bool = False) -> list[Line]:
        with self.lock:
            out = [ln for ln in self._lines.values()
                   if (artist_id is None or ln.artist_id == artist_id)
                   and (not approved_only or ln.approved)]
        return sorted(out, key=lambda ln: (ln.created_at, ln.id))

    def consent(self, artist_id: str, kind: str) -> Consent | None:
        with self.lock:
            return self._consents.get((artist_id, kind))

    def consents(self, artist_id: str) -> list[Consent]:
        with self.lock:
            return sorted((c for (a, _k), c in self._consents.items() if a == artist_id),
                          key=lambda c: c.kind)

    def consent_covers(self, artist_id: str, kind: str, persona: str,
                       territory: str | None, *, any_territory: bool = False) -> bool:
        """Fail closed: no record, an inactive one, or one limited to territories when
        ``territory`` is missing or another, means no."""
        consent = self.consent(artist_id, kind)
        return consent is not None and consent.covers(persona, territory,
                                                      any_territory=any_territory)

    def line_usable(self, line_id: str, artist_id: str | None, persona: str,
                    territory: str | None, now: datetime, *, any_territory: bool = False) -> bool:
        """Approved, in scope now, and the artist's consent of the line's kind is active.

        ``territory=None`` fails closed for a line or consent limited to territories;
        ``any_territory=True`` skips only the territory checks (rendering ahead airs nothing).
        """
        with self.lock:
            line = self._lines.get(line_id)
            if line is None or not line.approved or line.artist_id != artist_id:
                return False
            if not line.scope.covers(persona, territory, now, any_territory=any_territory):
                return False
            return self.consent_covers(line.artist_id, line.consent_kind, persona, territory,
                                       any_territory=any_territory)

    def audit(self, artist_id: str | None = None, subject: str | None = None) -> list[AuditEntry]:
        """Oldest first, as written."""
        where, params = where_equal(artist_id=artist_id, subject=subject)
        rows = self.store.query(f"SELECT * FROM narrate_audit{where} ORDER BY seq", params)
        return [AuditEntry(r["seq"], r["at"], r["who"], r["artist_id"], r["action"], r["subject"],
                           json.loads(r["detail"])) for r in rows]

    # -- hooks ----------------------------------------------------------------------------
    def on_revoke(self, hook: Callable[[Revocation], None]) -> None:
        """``hook`` runs after a revocation is committed, before the revoking call returns."""
        self._hooks.append(hook)

    def _notify(self, event: Revocation) -> None:
        for hook in list(self._hooks):
            try:
                hook(event)
            except Exception:
                logger.exception("revocation hook failed for %s", event.subject)

    @staticmethod
    def _audit(db: Any, who: str, artist_id: str, action: str, subject: str,
               detail: dict[str, Any], at: str) -> None:
        db.execute(
            "INSERT INTO narrate_audit (at, who, artist_id, action, subject, detail)"
            " VALUES (?,?,?,?,?,?)",
            (at, who, artist_id, action, subject, json.dumps(detail, sort_keys=True)),
        )

    # -- lines ----------------------------------------------------------------------------
    def _store_clip(self, data: bytes, filename: str) -> tuple[Path, str]:
        validate_clip(data, filename)
        sha = hashlib.sha256(data).hexdigest()
        suffix = Path(filename).suffix.lower()
        suffix = suffix if suffix in CLIP_SUFFIXES else ""
        path = self.clips_dir / f"{sha}{suffix or '.clip'}"
        if not path.exists():
            self.clips_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return path, sha

    def add(self, artist_id: str, text: str, scope: LineScope, *, who: str,
            clip: bytes | None = None, clip_name: str = "", clip_path: Path | None = None,
            source: str = "api") -> Line:
        """Register (approve) a line. Raises LineError / ClipError with a reason for the artist.

        ``clip`` is the recording's bytes (kept under ``clips_dir`` unless ``clip_path`` says where
        they already are). Adding a line that exists is a no-op; adding through the API a line the
        artist revoked earlier approves it again (audited); a file sync never does that.
        """
        text = check_text(text)
        sha = None
        if clip is not None:
            if clip_path is None:
                clip_path, sha = self._store_clip(clip, clip_name)
            else:
                validate_clip(clip, clip_path.name)
                sha = hashlib.sha256(clip).hexdigest()
        line_id = line_content_id(artist_id, text, scope, sha)
        at = _now()
        with self.lock:
            existing = self._lines.get(line_id)
            if existing is not None and (existing.approved or source != "api"):
                return existing
            with self.store.transaction() as db:
                if existing is None:  # OR REPLACE: a stored row that failed to load is redone
                    db.execute(
                        "INSERT OR REPLACE INTO narrate_lines (id, artist_id, text, scope,"
                        " clip_path, clip_sha256, state, source, created_at, updated_at)"
                        " VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (line_id, artist_id, text, json.dumps(scope.to_json()),
                         str(clip_path) if clip_path else None, sha, APPROVED, source, at, at),
                    )
                    self._audit(db, who, artist_id, "line_added", line_id,
                                {"text": text, "scope": scope.to_json(), "clip_sha256": sha}, at)
                else:
                    db.execute("UPDATE narrate_lines SET state = ?, updated_at = ? WHERE id = ?",
                               (APPROVED, at, line_id))
                    self._audit(db, who, artist_id, "line_reapproved", line_id, {}, at)
            line = existing or Line(line_id, artist_id, text, scope, APPROVED, clip_path, sha,
                                    source, at, at)
            line = replace(line, state=APPROVED, updated_at=at)
            self._lines[line_id] = line
        logger.info("line %s of %s approved by %s", line_id, artist_id, who)
        return line

    def revoke(self, artist_id: str, line_id: str, *, who: str, reason: str = "") -> Line:
        """Revoke: committed, then in force in memory, then hooks run; idempotent."""
        at = _now()
        with self.lock:
            line = self._lines.get(line_id)
            if line is None or line.artist_id != artist_id:
                raise LineNotFound(line_id)
            if not line.approved:
                return line
            with self.store.transaction() as db:
                db.execute("UPDATE narrate_lines SET state = ?, updated_at = ? WHERE id = ?",
                           (REVOKED, at, line_id))
                self._audit(db, who, artist_id, "line_revoked", line_id,
                            {"reason": reason} if reason else {}, at)
            line = replace(line, state=REVOKED, updated_at=at)
            self._lines[line_id] = line
        logger.info("line %s of %s revoked by %s", line_id, artist_id, who)
        self._notify(Revocation(artist_id, line_id=line_id))
        return line

    # -- consent --------------------------------------------------------------------------
    def set_consent(self, artist_id: str, kind: str, active: bool, *, who: str,
                    evidence: str = "", personas: Any = None, territories: Any = None,
                    source: str = "api") -> Consent:
        """Grant or revoke one kind of consent; a grant needs an evidence reference."""
        kind = check_kind(kind)
        evidence = (evidence or "").strip()
        if active and not evidence:
            raise LineError("a consent grant needs an evidence reference")
        personas_t, territories_t = consent_scope(personas, territories)
        at = _now()
        with self.lock:
            old = self._consents.get((artist_id, kind))
            if old is not None and old.active == active and (
                not active or (old.evidence, old.personas, old.territories)
                == (evidence, personas_t, territories_t)
            ):
                return old
            if active:
                new = Consent(artist_id, kind, True, evidence, personas_t, territories_t,
                              granted_at=at, revoked_at=None, source=source, updated_at=at)
            else:
                base = old or Consent(artist_id, kind, False)
                new = replace(base, active=False, revoked_at=at, source=source, updated_at=at)
            with self.store.transaction() as db:
                db.execute(
                    "INSERT OR REPLACE INTO narrate_consents (artist_id, kind, active, evidence,"
                    " personas, territories, granted_at, revoked_at, source, updated_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (artist_id, kind, int(new.active), new.evidence, json.dumps(list(new.personas)),
                     json.dumps(list(new.territories)), new.granted_at, new.revoked_at, source, at),
                )
                detail = {"evidence": new.evidence, "personas": list(new.personas) or "all",
                          "territories": list(new.territories) or "all"} if active else {}
                self._audit(db, who, artist_id, "consent_granted" if active else "consent_revoked",
                            kind, detail, at)
            self._consents[(artist_id, kind)] = new
        logger.info("consent %s of %s %s by %s", kind, artist_id,
                    "granted" if active else "revoked", who)
        if old is not None and old.active:  # revoked, or its scope changed (maybe narrowed)
            self._notify(Revocation(artist_id, consent_kind=kind, narrowed=active))
        return new

    # -- files ----------------------------------------------------------------------------
    def sync_pack(self, pack: ArtistPack) -> SyncReport:
        """Bring the database in line with an artist's pack; running it twice changes nothing.

        Revocations made through the API stick even when the file still lists the line or the
        consent (fail closed); only the API can approve again what the API revoked. A line that
        disappears from the file is revoked.
        """
        report = SyncReport(problems=list(pack.problems))
        who, source, artist = pack.who, f"file:{pack.path}", pack.artist_id
        for pc in pack.consents:
            old = self.consent(artist, pc.kind)
            if old is not None and not old.active and old.source == "api" and pc.active:
                report.problems.append(f"{pack.path}: consent {pc.kind} was revoked through the "
                                       "API; the file cannot grant it again")
                continue
            if old is not None and old.active and old.source == "api":
                continue  # managed through the API
            new = self.set_consent(artist, pc.kind, pc.active, who=who, evidence=pc.evidence,
                                   personas=list(pc.personas) or None,
                                   territories=list(pc.territories) or None, source=source)
            if new is not old:
                report.consents_changed.append(pc.kind)
        declared = {pc.kind for pc in pack.consents}
        for consent in self.consents(artist):
            if consent.active and consent.source == source and consent.kind not in declared:
                self.set_consent(artist, consent.kind, False, who=who, source=source)
                report.consents_changed.append(consent.kind)
        in_file: set[str] = set()
        for i, pl in enumerate(pack.lines):
            try:
                clip = pl.clip_path.read_bytes() if pl.clip_path else None
                sha = hashlib.sha256(clip).hexdigest() if clip is not None else None
                line_id = line_content_id(artist, check_text(pl.text), pl.scope, sha)
                existed = self.get(line_id)
                if pl.state == REVOKED and existed is None:
                    in_file.add(line_id)  # withdrawn before it was ever approved: nothing to do
                    continue
                line = self.add(artist, pl.text, pl.scope, who=who, clip=clip,
                                clip_path=pl.clip_path, source=source)
            except (OSError, ValueError) as exc:
                clip_note = f" (clip {pl.clip_path.name})" if pl.clip_path else ""
                problem = f"{pack.path}: line[{i}]{clip_note}: {exc}"
                logger.error("artist pack line skipped: %s", problem)
                report.problems.append(problem)
                continue
            in_file.add(line.id)
            if existed is None:
                report.added.append(line.id)
            if pl.state == REVOKED and line.approved:
                self.revoke(artist, line.id, who=who, reason="marked revoked in the pack")
                report.revoked.append(line.id)
            elif not line.approved and pl.state == APPROVED:
                report.kept_revoked.append(line.id)
        for line in self.lines(artist, approved_only=True):
            if line.source == source and line.id not in in_file:
                self.revoke(artist, line.id, who=who, reason="removed from the pack")
                report.revoked.append(line.id)
        return report
