"""The catalog in SQLite: artists, tracks with their ingest analysis, shares, deals, listeners,
and the listening history the recommender trains on."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from pathlib import Path

from dj.catalog.licence import is_licensed
from dj.catalog.models import Analysis, Artist, Deal, Listener, Share, Track
from dj.store import Migration, Store, change_counter

CHANGE_TOPIC = "catalog"

MIGRATIONS = [
    Migration(
        "catalog-0001-initial",
        """
        CREATE TABLE artists (id TEXT PRIMARY KEY, name TEXT NOT NULL);
        CREATE TABLE tracks (
            id TEXT PRIMARY KEY, isrc TEXT NOT NULL DEFAULT '', title TEXT NOT NULL,
            artist_id TEXT NOT NULL REFERENCES artists(id), album TEXT NOT NULL DEFAULT '',
            year INTEGER, audio_path TEXT NOT NULL, source_sha256 TEXT NOT NULL DEFAULT '',
            tags TEXT NOT NULL DEFAULT '[]',
            duration_s REAL NOT NULL, loudness_lufs REAL NOT NULL, true_peak_dbtp REAL NOT NULL,
            gain_db REAL NOT NULL, cue_in_s REAL NOT NULL, cue_out_s REAL NOT NULL,
            outro_s REAL NOT NULL
        );
        CREATE UNIQUE INDEX tracks_source ON tracks(source_sha256) WHERE source_sha256 != '';
        CREATE TABLE shares (
            track_id TEXT NOT NULL REFERENCES tracks(id), party TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('master', 'publishing')),
            share_pct REAL NOT NULL, PRIMARY KEY (track_id, party, role)
        );
        CREATE TABLE deals (
            id INTEGER PRIMARY KEY, track_id TEXT NOT NULL REFERENCES tracks(id),
            territories TEXT NOT NULL, excluded TEXT NOT NULL DEFAULT '[]',
            start TEXT, "end" TEXT, tiers TEXT NOT NULL, uses TEXT NOT NULL
        );
        CREATE INDEX deals_track ON deals(track_id);
        CREATE TABLE listeners (
            id TEXT PRIMARY KEY, territory TEXT NOT NULL, tier TEXT NOT NULL,
            display_name TEXT NOT NULL DEFAULT '', tags TEXT NOT NULL DEFAULT '[]'
        );
        CREATE TABLE interactions (
            listener_id TEXT NOT NULL, track_id TEXT NOT NULL, count REAL NOT NULL,
            PRIMARY KEY (listener_id, track_id)
        );
        """,
    ),
    Migration(
        "catalog-0002-edge-levels",
        """
        ALTER TABLE tracks ADD COLUMN head_lu BLOB NOT NULL DEFAULT x'';
        ALTER TABLE tracks ADD COLUMN tail_lu BLOB NOT NULL DEFAULT x'';
        """,
    ),
    # what the in-memory cache holds: a write to these from any process drops it (refresh)
    change_counter("catalog-0003-change-counters", CHANGE_TOPIC,
                   ("artists", "tracks", "shares", "deals")),
]


def _deal_from_row(row) -> Deal:
    return Deal(
        id=row["id"],
        track_id=row["track_id"],
        territories=frozenset(json.loads(row["territories"])),
        excluded=frozenset(json.loads(row["excluded"])),
        start=date.fromisoformat(row["start"]) if row["start"] else None,
        end=date.fromisoformat(row["end"]) if row["end"] else None,
        tiers=frozenset(json.loads(row["tiers"])),
        uses=frozenset(json.loads(row["uses"])),
    )


def _listener_from_row(row) -> Listener:
    tags = tuple(json.loads(row["tags"]))
    return Listener(row["id"], row["territory"], row["tier"], row["display_name"], tags)


def _track_from_row(row, media_dir: Path | None) -> Track:
    path = Path(row["audio_path"])
    if not path.is_absolute() and media_dir is not None:
        path = media_dir / path
    return Track(
        id=row["id"],
        isrc=row["isrc"],
        title=row["title"],
        artist_id=row["artist_id"],
        artist_name=row["artist_name"],
        album=row["album"],
        year=row["year"],
        audio_path=path,
        source_sha256=row["source_sha256"],
        tags=tuple(json.loads(row["tags"])),
        analysis=Analysis(
            duration_s=row["duration_s"],
            loudness_lufs=row["loudness_lufs"],
            true_peak_dbtp=row["true_peak_dbtp"],
            gain_db=row["gain_db"],
            cue_in_s=row["cue_in_s"],
            cue_out_s=row["cue_out_s"],
            outro_s=row["outro_s"],
            head_lu=bytes(row["head_lu"]),
            tail_lu=bytes(row["tail_lu"]),
        ),
    )


class Catalog:
    """Reads and writes the catalog. Track paths relative to ``media_dir`` are resolved on read.

    Tracks and deals are cached in memory (the station asks on every pick) and the cache is
    dropped on every write, so a deal that changes is seen at the next check.
    """

    def __init__(self, store: Store, media_dir: Path | None = None) -> None:
        self.store = store
        self.media_dir = media_dir
        store.migrate(MIGRATIONS)
        self._lock = threading.Lock()
        self._tracks: dict[str, Track] | None = None
        self._deals: dict[str, list[Deal]] | None = None
        self._playable: dict[tuple[str, str, date], frozenset[str]] = {}

    def refresh(self) -> None:
        """Drop what is cached: the next read sees the database as it is (another process may
        have written it; see :func:`dj.store.change_counter`)."""
        self._invalidate()

    def _invalidate(self) -> None:
        with self._lock:
            self._tracks = None
            self._deals = None
            self._playable.clear()

    # -- writes ---------------------------------------------------------------------------
    def add_artist(self, artist: Artist) -> None:
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO artists (id, name) VALUES (?, ?)"
                " ON CONFLICT(id) DO UPDATE SET name = excluded.name",
                (artist.id, artist.name),
            )

    def add_track(
        self, track: Track, shares: Iterable[Share] = (), deals: Iterable[Deal] = ()
    ) -> None:
        """Insert or replace a track with its shares and deals, in one transaction."""
        shares, deals = list(shares), list(deals)
        for role in {s.role for s in shares}:
            total = sum(s.share_pct for s in shares if s.role == role)
            if abs(total - 100.0) > 1e-6:
                raise ValueError(f"track {track.id!r}: {role} shares sum to {total}, not 100")
        a = track.analysis
        path = track.audio_path
        if (
            self.media_dir is not None
            and path.is_absolute()
            and path.is_relative_to(self.media_dir)
        ):
            path = path.relative_to(self.media_dir)
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO artists (id, name) VALUES (?, ?) ON CONFLICT(id) DO NOTHING",
                (track.artist_id, track.artist_name),
            )
            db.execute(
                "INSERT OR REPLACE INTO tracks (id, isrc, title, artist_id, album, year,"
                " audio_path, source_sha256, tags, duration_s, loudness_lufs, true_peak_dbtp,"
                " gain_db, cue_in_s,"
                " cue_out_s, outro_s, head_lu, tail_lu)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    track.id,
                    track.isrc,
                    track.title,
                    track.artist_id,
                    track.album,
                    track.year,
                    str(path),
                    track.source_sha256,
                    json.dumps(list(track.tags)),
                    a.duration_s,
                    a.loudness_lufs,
                    a.true_peak_dbtp,
                    a.gain_db,
                    a.cue_in_s,
                    a.cue_out_s,
                    a.outro_s,
                    a.head_lu,
                    a.tail_lu,
                ),
            )
            if shares:
                db.execute("DELETE FROM shares WHERE track_id = ?", (track.id,))
                db.executemany(
                    "INSERT INTO shares (track_id, party, role, share_pct) VALUES (?,?,?,?)",
                    [(track.id, s.party, s.role, s.share_pct) for s in shares],
                )
            if deals:
                db.execute("DELETE FROM deals WHERE track_id = ?", (track.id,))
                for d in deals:
                    self._insert_deal(db, d.__class__(**{**_deal_dict(d), "track_id": track.id}))
        self._invalidate()

    def set_edge_levels(self, track_id: str, head_lu: bytes, tail_lu: bytes) -> None:
        """Store the edge levels of a track ingested before they were measured."""
        with self.store.transaction() as db:
            db.execute(
                "UPDATE tracks SET head_lu = ?, tail_lu = ? WHERE id = ?",
                (head_lu, tail_lu, track_id),
            )
        self._invalidate()

    def add_deal(self, deal: Deal) -> None:
        with self.store.transaction() as db:
            self._insert_deal(db, deal)
        self._invalidate()

    @staticmethod
    def _insert_deal(db, deal: Deal) -> None:
        db.execute(
            'INSERT INTO deals (track_id, territories, excluded, start, "end", tiers, uses)'
            " VALUES (?,?,?,?,?,?,?)",
            (
                deal.track_id,
                json.dumps(sorted(deal.territories)),
                json.dumps(sorted(deal.excluded)),
                deal.start.isoformat() if deal.start else None,
                deal.end.isoformat() if deal.end else None,
                json.dumps(sorted(deal.tiers)),
                json.dumps(sorted(deal.uses)),
            ),
        )

    def end_deals(self, track_id: str, end: date) -> None:
        """End every deal of a track on ``end`` (inclusive): used when a licence is withdrawn."""
        with self.store.transaction() as db:
            db.execute('UPDATE deals SET "end" = ? WHERE track_id = ?', (end.isoformat(), track_id))
        self._invalidate()

    def add_listener(self, listener: Listener) -> None:
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO listeners (id, territory, tier, display_name, tags)"
                " VALUES (?,?,?,?,?)",
                (
                    listener.id,
                    listener.territory.upper(),
                    listener.tier,
                    listener.display_name,
                    json.dumps(list(listener.tags)),
                ),
            )

    def add_interactions(self, rows: Iterable[tuple[str, str, float]]) -> None:
        """Add plays to the history: ``(listener_id, track_id, count)``; counts accumulate."""
        with self.store.transaction() as db:
            db.executemany(
                "INSERT INTO interactions (listener_id, track_id, count) VALUES (?,?,?)"
                " ON CONFLICT(listener_id, track_id) DO UPDATE SET count = count + excluded.count",
                list(rows),
            )

    # -- reads ----------------------------------------------------------------------------
    def _load(self) -> tuple[dict[str, Track], dict[str, list[Deal]]]:
        with self._lock:
            if self._tracks is None or self._deals is None:
                rows = self.store.query(
                    "SELECT t.*, a.name AS artist_name FROM tracks t JOIN artists a"
                    " ON a.id = t.artist_id ORDER BY t.id"
                )
                self._tracks = {r["id"]: _track_from_row(r, self.media_dir) for r in rows}
                deals: dict[str, list[Deal]] = defaultdict(list)
                for r in self.store.query("SELECT * FROM deals ORDER BY id"):
                    deals[r["track_id"]].append(_deal_from_row(r))
                self._deals = dict(deals)
            return self._tracks, self._deals

    def tracks(self) -> list[Track]:
        return list(self._load()[0].values())

    def track(self, track_id: str) -> Track | None:
        return self._load()[0].get(track_id)

    def artists(self) -> list[Artist]:
        return [
            Artist(r["id"], r["name"])
            for r in self.store.query("SELECT * FROM artists ORDER BY id")
        ]

    def artist(self, artist_id: str) -> Artist | None:
        row = self.store.query_one("SELECT * FROM artists WHERE id = ?", (artist_id,))
        return Artist(row["id"], row["name"]) if row else None

    def deals(self, track_id: str) -> list[Deal]:
        return list(self._load()[1].get(track_id, []))

    def shares(self, track_id: str) -> list[Share]:
        rows = self.store.query(
            "SELECT * FROM shares WHERE track_id = ? ORDER BY role, party", (track_id,)
        )
        return [Share(r["track_id"], r["party"], r["role"], r["share_pct"]) for r in rows]

    def is_playable(self, track_id: str, territory: str, tier: str, day: date) -> bool:
        return is_licensed(self.deals(track_id), territory, tier, day)

    def is_playable_now(self, track_id: str, territory: str, tier: str, day: date) -> bool:
        """:meth:`is_playable` from the database itself, not the cache: the check just before
        a track airs, so a deal ended by another process a moment ago is already seen."""
        rows = self.store.query("SELECT * FROM deals WHERE track_id = ? ORDER BY id", (track_id,))
        return is_licensed([_deal_from_row(r) for r in rows], territory, tier, day)

    def playable_ids(self, territory: str, tier: str, day: date) -> frozenset[str]:
        """Memoised per (territory, tier, day) until the catalog changes: every pick asks."""
        key = (territory.upper(), tier, day)
        cached = self._playable.get(key)
        if cached is not None:
            return cached
        tracks, deals = self._load()
        ids = frozenset(t for t in tracks if is_licensed(deals.get(t, ()), territory, tier, day))
        with self._lock:
            if len(self._playable) > 1024:
                self._playable.clear()
            self._playable[key] = ids
        return ids

    def listener(self, listener_id: str) -> Listener | None:
        row = self.store.query_one("SELECT * FROM listeners WHERE id = ?", (listener_id,))
        return None if row is None else _listener_from_row(row)

    def listeners(self) -> list[Listener]:
        return [
            _listener_from_row(r) for r in self.store.query("SELECT * FROM listeners ORDER BY id")
        ]

    def interactions(self) -> list[tuple[str, str, float]]:
        rows = self.store.query("SELECT listener_id, track_id, count FROM interactions")
        return [(r[0], r[1], r[2]) for r in rows]

    def has_source(self, sha256: str) -> str | None:
        row = self.store.query_one("SELECT id FROM tracks WHERE source_sha256 = ?", (sha256,))
        return row["id"] if row else None


def _deal_dict(d: Deal) -> dict:
    return {f: getattr(d, f) for f in Deal.__slots__}
