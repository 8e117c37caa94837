"""The demo albums' covers: one drawn per album in its artist's colours, stored for each of its
tracks where the server looks for a track's art (``dj.catalog.artwork``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from dj.catalog.artwork import album_cover, cover_path
from dj.demo.catalog import DemoTrack

logger = logging.getLogger(__name__)

# (background from, background to, accent): each artist's mood in colour
PALETTES: dict[str, tuple[str, str, str]] = {
    "nova-lake": ("#1d2b64", "#5b86e5", "#f8cdda"),
    "copper-kites": ("#b24c2a", "#f2a65a", "#fff3c4"),
    "mira-sol": ("#7a1f3d", "#f0803c", "#ffd23f"),
    "dust-parade": ("#1c1c1c", "#5a3e2b", "#e2483d"),
    "lowlight": ("#0b1d33", "#23395b", "#74c0fc"),
    "kai-ferro": ("#0d0d0d", "#3a0ca3", "#f72585"),
    "saffron-youth": ("#ff9f1c", "#ffbf69", "#2ec4b6"),
    "night-orchard": ("#0b3d2e", "#1b5e4a", "#c7f9cc"),
}
DEFAULT_PALETTE = ("#222831", "#393e46", "#ffd369")


def write_covers(media_dir: Path, tracks: Sequence[DemoTrack]) -> int:
    """Store a cover for every demo track that has none (each album drawn once); returns how
    many files were written. A cover that cannot be written is logged: the track still gets a
    generated one when it is asked for."""
    drawn: dict[tuple[str, str], bytes] = {}
    written = 0
    for track in tracks:
        path = cover_path(media_dir, track.id)
        if path.exists():
            continue
        album = (track.artist_id, track.album)
        if album not in drawn:
            drawn[album] = album_cover(f"{track.artist_id}/{track.album}",
                                       PALETTES.get(track.artist_id, DEFAULT_PALETTE))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(drawn[album])
            tmp.replace(path)  # a reader never sees half a file
            written += 1
        except OSError as exc:
            logger.warning("demo cover for %s not written: %s", track.id, exc)
    return written
