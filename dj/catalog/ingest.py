"""Ingest: delivered audio files in, house-format copies plus analysis, metadata, shares and deals
into the catalog. A visible list of plain stages, each testable alone:

    scan → fingerprint → decode (to house format) → analyse → write

Conversion to the house format (44.1 kHz stereo FLAC, 24-bit) happens here, once. Every file gets
a report row; a bad file (zero bytes, truncated, not audio, unsupported, silent throughout) is
reported with its reason and the ingest carries on. A file whose bytes are already in the catalog
(same sha256) is skipped, so running the same ingest twice adds nothing twice.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from pedalboard.io import AudioFile
from tqdm import tqdm

from dj.audio.analysis import (
    SilentAudioError,
    TrackAnalysis,
    analyse,
    edge_levels,
    pack_levels,
)
from dj.audio.decode import DecodeError, decode_file, read_tags, to_house
from dj.catalog.manifest import Manifest, ManifestTrack, load_manifest
from dj.catalog.models import Analysis, Artist, Deal, Share, Track
from dj.catalog.repository import Catalog
from dj.config import HOUSE_CHANNELS, HOUSE_SAMPLE_RATE

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = frozenset(
    {
        ".mp3",
        ".mp2",
        ".flac",
        ".wav",
        ".wave",
        ".aif",
        ".aiff",
        ".aifc",
        ".ogg",
        ".oga",
        ".opus",
        ".m4a",
        ".mp4",
        ".aac",
        ".alac",
        ".wma",
        ".webm",
        ".mka",
        ".caf",
        ".wv",
        ".ape",
    }
)
HOUSE_BIT_DEPTH = 24

ADDED, SKIPPED, FAILED = "added", "skipped", "failed"


@dataclass(frozen=True, slots=True)
class SourceFile:
    path: Path
    entry: ManifestTrack | None = None


@dataclass(frozen=True, slots=True)
class ReportRow:
    file: str
    status: str  # added | skipped | failed
    track_id: str = ""
    reason: str = ""
    duration_s: float | None = None
    loudness_lufs: float | None = None
    gain_db: float | None = None


@dataclass(slots=True)
class IngestReport:
    rows: list[ReportRow]

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r.status == status)

    @property
    def added(self) -> list[ReportRow]:
        return [r for r in self.rows if r.status == ADDED]

    @property
    def failed(self) -> list[ReportRow]:
        return [r for r in self.rows if r.status == FAILED]

    def format_table(self) -> str:
        """A plain-text summary table, one row per file, and the totals."""
        head = ("file", "status", "track", "duration", "LUFS", "gain dB", "reason")
        body = [
            (
                r.file,
                r.status,
                r.track_id,
                "" if r.duration_s is None else f"{r.duration_s:.1f} s",
                "" if r.loudness_lufs is None else f"{r.loudness_lufs:.1f}",
                "" if r.gain_db is None else f"{r.gain_db:+.1f}",
                r.reason,
            )
            for r in self.rows
        ]
        widths = [
            max(len(h), *(len(row[i]) for row in body)) if body else len(h)
            for i, h in enumerate(head)
        ]
        widths[-1] = len(head[-1])  # the reason column is last and left ragged

        def line(cells: tuple[str, ...]) -> str:
            return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

        out = [line(head), line(tuple("-" * w for w in widths))]
        out += [line(row) for row in body]
        out.append(
            f"{self.count(ADDED)} added, {self.count(SKIPPED)} skipped, {self.count(FAILED)} failed"
        )
        return "\n".join(out)


# -- stages ---------------------------------------------------------------------------------
def scan(source_dir: Path, manifest: Manifest | None = None) -> list[SourceFile]:
    """Audio files under ``source_dir`` (by extension, recursively, sorted), each with its
    manifest entry; manifest entries outside the folder are included too (a missing one is
    reported by the decode stage)."""
    source_dir = Path(source_dir)
    found: dict[Path, SourceFile] = {}
    if source_dir.is_file():
        candidates = [source_dir]
    else:
        candidates = sorted(
            p
            for p in source_dir.rglob("*")
            if p.is_file()
            and p.suffix.lower() in AUDIO_EXTENSIONS
            and not any(part.startswith(".") for part in p.relative_to(source_dir).parts)
        )
    for p in candidates:
        found[p.resolve()] = SourceFile(p, manifest.for_file(p) if manifest else None)
    if manifest is not None:
        for entry in manifest.tracks:
            if entry.file not in found:
                found[entry.file] = SourceFile(entry.file, entry)
    return sorted(found.values(), key=lambda s: str(s.path))


def fingerprint(path: Path) -> str:
    """sha256 of the file's bytes: the identity used to never ingest the same delivery twice."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def decode(path: Path) -> np.ndarray:
    """Decode any supported file to the house format (raises DecodeError)."""
    audio, sr = decode_file(path)
    return to_house(audio, sr)


def analyse_house(
    house: np.ndarray, target_lufs: float = -14.0, crossfade_s: float = 4.0
) -> TrackAnalysis:
    return analyse(house, HOUSE_SAMPLE_RATE, target_lufs=target_lufs, crossfade_s=crossfade_s)


def write_house(house: np.ndarray, media_dir: Path, track_id: str) -> Path:
    """Write the house-format FLAC atomically (temp file + rename), so a crash never leaves a
    half-written file under a track's name."""
    media_dir.mkdir(parents=True, exist_ok=True)
    target = media_dir / f"{track_id}.flac"
    fd, tmp = tempfile.mkstemp(prefix=f".{track_id}.", suffix=".flac", dir=media_dir)
    os.close(fd)
    try:
        with AudioFile(tmp, "w", HOUSE_SAMPLE_RATE, HOUSE_CHANNELS, bit_depth=HOUSE_BIT_DEPTH) as f:
            f.write(np.clip(house, -1.0, 1.0))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s or "unknown-artist"


@dataclass(frozen=True, slots=True)
class Metadata:
    title: str
    artist: Artist
    album: str = ""
    year: int | None = None
    isrc: str = ""
    tags: tuple[str, ...] = ()


def metadata_for(
    path: Path, entry: ManifestTrack | None, manifest: Manifest | None, catalog: Catalog
) -> Metadata:
    """Manifest first; otherwise the file's tags; otherwise its name (``Artist - Title.ext``)."""
    if entry is not None:
        artist = (manifest.artists.get(entry.artist) if manifest else None) or catalog.artist(
            entry.artist
        )
        if artist is None:
            artist = Artist(entry.artist, entry.artist)
        return Metadata(entry.title, artist, entry.album, entry.year, entry.isrc, entry.tags)
    tags = read_tags(path)
    title = tags.get("title", "")
    artist_name = tags.get("artist") or tags.get("album_artist") or ""
    if not title or not artist_name:
        stem = path.stem.replace("_", " ")
        if " - " in stem:
            a, t = stem.split(" - ", 1)
            artist_name, title = artist_name or a.strip(), title or t.strip()
    year_match = re.match(r"\d{4}", tags.get("date", ""))
    return Metadata(
        title=title or path.stem,
        artist=Artist(slug(artist_name or "unknown artist"), artist_name or "Unknown artist"),
        album=tags.get("album", ""),
        year=int(year_match.group()) if year_match else None,
        isrc=tags.get("isrc", ""),
    )


# -- the whole ingest -----------------------------------------------------------------------
@dataclass(slots=True)
class _Prepared:
    source: SourceFile
    sha256: str = ""
    house: np.ndarray | None = None
    analysis: TrackAnalysis | None = None
    row: ReportRow | None = None  # set when the file is done (skipped or failed)


def _prepare(
    source: SourceFile, catalog: Catalog, target_lufs: float, crossfade_s: float
) -> _Prepared:
    name = source.path.name
    prep = _Prepared(source)
    try:
        prep.sha256 = fingerprint(source.path)
    except OSError as exc:
        prep.row = ReportRow(name, FAILED, reason=f"unreadable: {exc.strerror or exc}")
        return prep
    existing = catalog.has_source(prep.sha256)
    if existing:
        prep.row = ReportRow(name, SKIPPED, existing, _complete(catalog, existing))
        return prep
    try:
        prep.house = decode(source.path)
        prep.analysis = analyse_house(prep.house, target_lufs, crossfade_s)
    except DecodeError as exc:
        prep.row = ReportRow(name, FAILED, reason=exc.reason)
    except SilentAudioError:
        prep.row = ReportRow(name, FAILED, reason="silent throughout")
    except Exception as exc:  # one strange file must not stop the ingest
        logger.exception("ingest of %s failed", source.path)
        prep.row = ReportRow(name, FAILED, reason=f"error: {exc}")
    return prep


def _complete(catalog: Catalog, track_id: str) -> str:
    """Measure what an older ingest did not (the edge levels), from the house file: an upgraded
    station gets level-aware transitions without decoding its sources again."""
    track = catalog.track(track_id)
    if track is None or track.analysis.head_lu:
        return "already in the catalog"
    a = track.analysis
    try:
        house = decode(track.audio_path)
        head, tail = edge_levels(
            house, HOUSE_SAMPLE_RATE, a.loudness_lufs, a.cue_in_s, a.cue_out_s
        )
    except Exception as exc:  # the track stays as it was; the renderer copes without levels
        logger.warning("could not measure the edge levels of %s: %s", track_id, exc)
        return "already in the catalog"
    if head.size == 0:  # shorter than one window: nothing to measure, now or later
        return "already in the catalog"
    catalog.set_edge_levels(track_id, pack_levels(head), pack_levels(tail))
    return "already in the catalog; edge levels measured"


def _commit(
    prep: _Prepared,
    catalog: Catalog,
    media_dir: Path,
    manifest: Manifest | None,
    default_deals: list[Deal] | None,
    lock: threading.Lock,
) -> ReportRow:
    if prep.row is not None:
        return prep.row
    source, a = prep.source, prep.analysis
    assert prep.house is not None and a is not None
    name = source.path.name
    entry = source.entry
    track_id = entry.id if entry and entry.id else f"t-{prep.sha256[:12]}"
    with lock:  # dedupe and id checks and the write are one step
        existing = catalog.has_source(prep.sha256)
        if existing:
            return ReportRow(name, SKIPPED, existing, "already in the catalog")
        other = catalog.track(track_id)
        if other is not None and other.source_sha256 != prep.sha256:
            return ReportRow(name, FAILED, track_id, "track id already used by another file")
        meta = metadata_for(source.path, entry, manifest, catalog)
        path = write_house(prep.house, media_dir, track_id)
        if entry is not None:
            shares = [replace(s, track_id=track_id) for s in entry.shares]
            deals = [replace(d, track_id=track_id) for d in entry.deals]
        else:
            shares = [Share(track_id, meta.artist.name, "master", 100.0)]
            deals = [replace(d, track_id=track_id, id=None) for d in default_deals or []]
        catalog.add_artist(meta.artist)
        catalog.add_track(
            Track(
                id=track_id,
                title=meta.title,
                artist_id=meta.artist.id,
                artist_name=meta.artist.name,
                audio_path=path,
                analysis=Analysis(**asdict(a)),
                isrc=meta.isrc,
                album=meta.album,
                year=meta.year,
                source_sha256=prep.sha256,
                tags=meta.tags,
            ),
            shares,
            deals,
        )
    reason = "" if deals else "no deal: it will not air until one is added"
    return ReportRow(name, ADDED, track_id, reason, a.duration_s, a.loudness_lufs, a.gain_db)


def ingest(
    catalog: Catalog,
    media_dir: Path,
    source_dir: Path,
    manifest: Path | None = None,
    *,
    target_lufs: float = -14.0,
    crossfade_s: float = 4.0,
    progress: bool | tqdm = False,
    default_deals: list[Deal] | None = None,
    workers: int = 1,
) -> IngestReport:
    """Ingest every audio file under ``source_dir`` (and every file the manifest lists).

    Manifest ``file`` paths are resolved against ``source_dir`` first, then against the
    manifest's folder. Files without a manifest entry take title/artist from their tags or name
    and get ``default_deals`` (none → added, but reported as not airable). ``workers`` > 1 decodes
    and analyses files in parallel threads; catalog writes are serialised.
    Raises :class:`dj.catalog.manifest.ManifestError` for an invalid manifest (nothing ingested).
    """
    media_dir = Path(media_dir)
    source_dir = Path(source_dir)
    parsed = load_manifest(manifest, source_dir) if manifest is not None else None
    if parsed is not None:
        for artist in parsed.artists.values():
            catalog.add_artist(artist)
    sources = scan(source_dir, parsed)
    lock = threading.Lock()
    rows: list[ReportRow] = []
    # a caller's bar (dj demo's one bar) is advanced, not closed; True makes one of its own
    shared = isinstance(progress, tqdm)
    bar = progress if shared else tqdm(total=len(sources), desc="ingest", unit="file",
                                       disable=not progress)
    try:

        def work(s: SourceFile) -> _Prepared:
            return _prepare(s, catalog, target_lufs, crossfade_s)

        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for prep in pool.map(work, sources):
                    rows.append(_commit(prep, catalog, media_dir, parsed, default_deals, lock))
                    bar.update(1)
        else:
            for s in sources:
                bar.set_postfix_str(s.path.name[:40])
                rows.append(_commit(work(s), catalog, media_dir, parsed, default_deals, lock))
                bar.update(1)
    finally:
        if not shared:
            bar.close()
    for r in rows:
        if r.status == FAILED:
            logger.warning("ingest: %s failed: %s", r.file, r.reason)
    return IngestReport(rows)
