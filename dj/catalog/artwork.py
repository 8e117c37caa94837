"""Cover art: a track's stored image, or one drawn from its id.

A stored cover is a file ``artwork/<track id>.png`` (or ``.jpg``, ``.webp``) in the media
folder; the demo draws its albums' covers there. A track without one gets a cover drawn from its
id, so every track has art and the player never asks anyone else for it. Drawing is deterministic
(the same id and colours give the same bytes) and needs only numpy: a PNG is a few zlib-packed
rows.
"""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from pathlib import Path

import numpy as np

ARTWORK_DIR = "artwork"
COVER_PX = 384  # sharp at the player's size on a 2x screen, and for the OS media controls
MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".webp": "image/webp"}
_SAFE_STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}")

Colour = tuple[float, float, float]


def file_stem(track_id: str) -> str:
    """The file name (without suffix) of a track's cover: the id where it is a safe file name,
    otherwise a hash of it (ids come from manifests and may hold anything)."""
    if _SAFE_STEM.fullmatch(track_id) and ".." not in track_id:
        return track_id
    return "id-" + hashlib.sha256(track_id.encode()).hexdigest()[:32]


def cover_path(media_dir: Path, track_id: str, suffix: str = ".png") -> Path:
    return media_dir / ARTWORK_DIR / (file_stem(track_id) + suffix)


def stored_cover(media_dir: Path, track_id: str) -> tuple[bytes, str] | None:
    """The track's stored cover and its media type, or None (blocking: reads a file)."""
    for suffix, media_type in MEDIA_TYPES.items():
        path = cover_path(media_dir, track_id, suffix)
        try:
            return path.read_bytes(), media_type
        except (FileNotFoundError, NotADirectoryError):
            continue
    return None


def png(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of ``rgb`` (height, width, 3), every row filtered by "Up" (smooth
    gradients pack small that way)."""
    pixels = np.ascontiguousarray(rgb, dtype=np.uint8)
    height, width, _ = pixels.shape
    up = pixels.copy()
    up[1:] = pixels[1:] - pixels[:-1]  # uint8 arithmetic wraps, as the filter wants
    rows = np.concatenate([np.full((height, 1), 2, np.uint8), up.reshape(height, -1)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))


def hex_colour(value: str) -> Colour:
    value = value.lstrip("#")
    return tuple(int(value[i:i + 2], 16) / 255 for i in (0, 2, 4))  # type: ignore[return-value]


def _hsv(h: float, s: float, v: float) -> Colour:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


def _numbers(seed: str, n: int) -> list[float]:
    """``n`` numbers in [0, 1) from ``seed``: the same seed, the same picture."""
    digest = hashlib.sha256(seed.encode()).digest()
    return [int.from_bytes(digest[2 * i:2 * i + 2], "big") / 65536 for i in range(n)]


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    axis = (np.arange(size) + 0.5) / size
    return np.meshgrid(axis, axis)  # x grows to the right, y downwards


def _paint(canvas: np.ndarray, mask: np.ndarray, colour: Colour | np.ndarray) -> None:
    """Blend ``colour`` over ``canvas`` where ``mask`` (0..1) says."""
    m = mask[..., None]
    canvas *= 1 - m
    canvas += m * np.asarray(colour)


def _disc(x: np.ndarray, y: np.ndarray, cx: float, cy: float, r: float, size: int) -> np.ndarray:
    """A circle's coverage with an edge about a pixel wide (smooth, not stair-stepped)."""
    d = np.hypot(x - cx, y - cy)
    return np.clip((r - d) * size + 0.5, 0.0, 1.0)


def album_cover(seed: str, colours: tuple[str, str, str], size: int = COVER_PX) -> bytes:
    """An album's cover in its three colours (background from, background to, accent), one of
    three motifs (a sun over water, rings, an equaliser) chosen by ``seed``."""
    c0, c1, accent = (np.array(hex_colour(c)) for c in colours)
    n = _numbers(seed, 8)
    x, y = _grid(size)
    angle = n[0] * np.pi
    t = np.clip((x - 0.5) * np.cos(angle) + (y - 0.5) * np.sin(angle) + 0.5, 0, 1)
    canvas = c0 * (1 - t[..., None]) + c1 * t[..., None]
    motif = int(n[1] * 3)
    if motif == 0:  # a sun over water: a disc, cut by horizontal bands below the horizon
        horizon = 0.58 + 0.12 * n[2]
        sun = _disc(x, y, 0.3 + 0.4 * n[3], horizon - 0.02, 0.2 + 0.08 * n[4], size)
        _paint(canvas, sun * np.clip((horizon - y) * size, 0, 1), accent)
        water = np.clip((y - horizon) * size, 0, 1)
        bands = (np.sin(np.clip(y - horizon, 0, None) ** 0.7 * (60 + 40 * n[5])) > 0).astype(float)
        _paint(canvas, water * (0.35 + 0.35 * bands), c0 * 0.55)
        reflection = water * _disc(x, horizon + (horizon - y), 0.3 + 0.4 * n[3], horizon,
                                   0.2 + 0.08 * n[4], size) * bands
        _paint(canvas, reflection * 0.6, accent)
    elif motif == 1:  # rings around a point, alternating accent and shade
        cx, cy = 0.25 + 0.5 * n[2], 0.25 + 0.5 * n[3]
        d = np.hypot(x - cx, y - cy)
        ring = 0.5 + 0.5 * np.sin(d * (14 + 14 * n[4]) * np.pi)
        _paint(canvas, np.clip(ring * 1.6 - 0.6, 0, 1) * np.clip(0.9 - d, 0, 1), accent)
        _paint(canvas, _disc(x, y, cx, cy, 0.06 + 0.05 * n[5], size), c0 * 0.4)
    else:  # an equaliser: bars of heights from the seed
        bars = 9 + int(n[2] * 6)
        heights = np.array(_numbers(seed + ":bars", bars)) * 0.55 + 0.15
        col = np.minimum((x * bars).astype(int), bars - 1)
        inside = ((x * bars) % 1 > 0.22) & ((x * bars) % 1 < 0.78)
        top = 0.88 - heights[col]
        mask = (inside & (y > top) & (y < 0.88)).astype(float)
        _paint(canvas, mask * (0.55 + 0.45 * (1 - (y - top) / 0.7)), accent)
    # a soft vignette, so every cover has an edge against a dark page
    vignette = np.clip(np.hypot(x - 0.5, y - 0.5) * 1.4 - 0.35, 0, 1) * 0.35
    _paint(canvas, vignette, np.zeros(3))
    return png(np.round(np.clip(canvas, 0, 1) * 255))


def generated_cover(track_id: str, size: int = COVER_PX) -> bytes:
    """The cover of a track without art: a record, its label coloured by the track id."""
    n = _numbers("track:" + track_id, 4)
    x, y = _grid(size)
    label = np.array(_hsv(n[0], 0.55 + 0.3 * n[1], 0.85))
    canvas = np.empty((size, size, 3))
    canvas[:] = np.array(_hsv((n[0] + 0.5) % 1.0, 0.25, 0.22))  # a muted opposite behind it
    d = np.hypot(x - 0.5, y - 0.5)
    _paint(canvas, _disc(x, y, 0.5, 0.5, 0.46, size), np.array((0.06, 0.06, 0.07)))
    grooves = (0.5 + 0.5 * np.sin(d * 260)) * np.clip((0.45 - d) * size, 0, 1)
    _paint(canvas, grooves * 0.08 * (d > 0.17), np.array((0.8, 0.8, 0.85)))
    _paint(canvas, _disc(x, y, 0.5, 0.5, 0.16, size), label)
    sheen = np.clip(1 - np.abs(np.arctan2(y - 0.5, x - 0.5) - (n[2] - 0.5) * 2) * 2, 0, 1)
    _paint(canvas, sheen * 0.07 * (d < 0.46) * (d > 0.16), np.ones(3))
    _paint(canvas, _disc(x, y, 0.5, 0.5, 0.012, size), np.array((0.1, 0.1, 0.1)))
    return png(np.round(np.clip(canvas, 0, 1) * 255))
