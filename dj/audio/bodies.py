"""Track bodies: each track mastered on its own and MP3-encoded once, in the house format, shared
by every listener who hears it.

A body is the track from its cue-in to its cue-out (or to a dead-air cut), multiplied by its
mastering curve (:mod:`dj.audio.mastering`: loudness gain, intro ride, level rider, limiter),
encoded in one piece without the bit reservoir on the frame grid from its cue-in. Frame ``i`` of
a body holds samples from ``i * FRAME`` on, so it can be joined to a listener's transition frames
(rendered from the same mastered samples, :meth:`Body.samples`) at any frame.

Bodies are built on first use (or ahead, by :meth:`BodyStore.warm`), kept on disk in the cache
dir, and held in memory up to a byte bound, least recently used first out.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dj.audio.analysis import unpack_levels
from dj.audio.deadair import WINDOW_S, silent_windows
from dj.audio.decode import DecodeError, HouseReader
from dj.audio.dsp import EDGE_FADE_S
from dj.audio.encode import FRAME_SAMPLES, encode_frames
from dj.audio.mastering import CURVE_HOP, apply_curve, track_curve
from dj.audio.plan import TrackCue
from dj.audio.transition import intro_ride, level_times
from dj.config import HOUSE_SAMPLE_RATE, AudioConfig, Config

logger = logging.getLogger(__name__)

BODY_FORMAT = 1  # bump when what a body holds or how it is made changes
DEAD_AIR_MARGIN_S = 0.25  # cut this long before the dead-air limit is reached (as the full render)


class BodyError(Exception):
    """A track whose body cannot be made (unreadable file, nothing between its cue points)."""


@dataclass(frozen=True, slots=True)
class Body:
    key: str
    path: Path  # the house file
    in_frame: int  # file sample of the cue-in (body sample 0)
    usable: int  # body samples that play
    dead_air_s: float  # > 0: ``usable`` ends at a dead-air cut after this much silence
    curve: np.ndarray  # mastering gain control points
    data: bytes  # MP3 frames
    offsets: np.ndarray  # byte offset of each frame, end last

    @property
    def frames(self) -> int:
        return len(self.offsets) - 1

    @property
    def nbytes(self) -> int:
        return len(self.data) + self.curve.nbytes + self.offsets.nbytes

    def frame_bytes(self, first: int, last: int) -> bytes:
        """Frames ``[first, last)`` as bytes."""
        first, last = max(0, first), min(self.frames, last)
        if last <= first:
            return b""
        return self.data[self.offsets[first] : self.offsets[last]]

    def samples(self, reader: HouseReader, start: int, n: int) -> np.ndarray:
        """Mastered body samples ``[start, start + n)``, exactly as the body was encoded from;
        zeros outside ``[0, usable)``."""
        out = np.zeros((2, n), np.float32)
        lo, hi = max(0, start), min(self.usable, start + n)
        if hi > lo:
            raw = reader.read(self.in_frame + lo, hi - lo)
            out[:, lo - start : hi - start] = apply_curve(raw, self.curve, lo)
        return out


def _ride_gain(cue: TrackCue, config: AudioConfig, n: int, sr: int) -> np.ndarray | None:
    """The intro ride as a gain per body sample over its span (``None`` when it does not lift)."""
    head = unpack_levels(cue.head_lu)
    ride = intro_ride(head, config.intro_ride_db)
    if not np.any(ride > 0):
        return None
    last = int(np.flatnonzero(ride > 0)[-1]) + 1
    x, db = level_times(last + 1) * sr, ride[: last + 1]
    span = min(n, int(np.ceil(x[-1])) + 1)
    return np.power(10.0, np.interp(np.arange(span), x, db) / 20.0).astype(np.float32)


def _dead_air_cut(mastered: np.ndarray, config: AudioConfig, sr: int) -> tuple[int, float]:
    """Where a silent stretch inside the body would reach the dead-air limit: (sample, seconds of
    silence there), or (len, 0)."""
    limit = config.dead_air_s - DEAD_AIR_MARGIN_S
    silent = silent_windows(mastered, sr, config.dead_air_dbfs)
    need = int(np.ceil(limit / WINDOW_S))
    if need <= 0 or silent.size < need:
        return mastered.shape[1], 0.0
    run = np.convolve(silent.astype(np.int32), np.ones(need, np.int32), mode="valid")
    hits = np.flatnonzero(run >= need)
    if hits.size == 0:
        return mastered.shape[1], 0.0
    window = int(sr * WINDOW_S)
    at = int(hits[0]) * window + int(round(limit * sr))
    return min(mastered.shape[1], at), round(limit, 3)


def build_body(cue: TrackCue, config: AudioConfig, sr: int = HOUSE_SAMPLE_RATE) -> Body:
    """Master and encode one track body (blocking: a second or two per track)."""
    try:
        reader = HouseReader(cue.path)
    except DecodeError as exc:
        raise BodyError(exc.reason) from exc
    except Exception as exc:  # anything else a broken file can do
        raise BodyError(f"unreadable: {exc}") from exc
    with reader:
        in_frame = max(0, int(round(cue.cue_in_s * sr)))
        out_frame = min(reader.frames, int(round(cue.cue_out_s * sr)))
        edge = int(round(EDGE_FADE_S * sr))
        if out_frame - in_frame < edge * 2 + FRAME_SAMPLES * 4:
            raise BodyError("nothing to play between the cue points")
        try:
            audio = reader.read(in_frame, out_frame - in_frame)
        except Exception as exc:
            raise BodyError(f"unreadable: {exc}") from exc
    ride = _ride_gain(cue, config, audio.shape[1], sr)
    ridden = audio
    if ride is not None:
        ridden = audio.copy()
        ridden[:, : ride.size] *= ride
    curve = track_curve(ridden, gain_db=cue.gain_db, config=config, sample_rate=sr)
    if ride is not None:
        points = np.arange(curve.size) * CURVE_HOP
        curve = curve * np.interp(points, np.arange(ride.size), ride, right=1.0).astype(
            np.float32
        )
    mastered = apply_curve(audio, curve, 0)
    usable, dead_air_s = _dead_air_cut(mastered, config, sr)
    if usable < edge * 2 + FRAME_SAMPLES * 4:
        raise BodyError("silent from the cue-in on")
    data, offsets = encode_frames(mastered[:, :usable], config.bitrate_kbps, sr)
    return Body(cue.key, Path(cue.path), in_frame, usable, dead_air_s,
                np.ascontiguousarray(curve, np.float32), data, offsets)


def _digest(cue: TrackCue, config: AudioConfig) -> str:
    try:
        st = os.stat(cue.path)
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        stamp = "missing"
    parts = (BODY_FORMAT, str(cue.path), stamp, cue.gain_db, cue.cue_in_s, cue.cue_out_s,
             cue.head_lu.hex(), config.target_lufs, config.true_peak_dbtp, config.agc_range_db,
             config.agc_window_s, config.agc_speed_db_s, config.intro_ride_db,
             config.dead_air_dbfs, config.dead_air_s, config.bitrate_kbps)
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:20]


class BodyStore:
    """Bodies by track, on disk under ``directory`` and up to ``max_bytes`` in memory.
    Thread-safe; one build per track however many listeners ask at once."""

    def __init__(self, directory: Path, config: AudioConfig, max_bytes: int) -> None:
        self.directory = Path(directory)
        self.config = config
        self.max_bytes = max_bytes
        self._mem: OrderedDict[str, tuple[str, Body]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._building: dict[str, threading.Lock] = {}
        self.built = 0
        self.loaded = 0

    @classmethod
    def for_config(cls, config: Config) -> BodyStore:
        return cls(config.cache_dir / "bodies", config.audio, config.stream.body_cache_mb << 20)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._mem)

    def get(self, cue: TrackCue) -> Body:
        """The body of ``cue``'s track (blocking when it has to be read or built)."""
        body = self._get(cue, wait=True)
        assert body is not None
        return body

    def _get(self, cue: TrackCue, *, wait: bool) -> Body | None:
        """As :meth:`get`; with ``wait`` False, None at once when another serving process is
        making this body."""
        digest = _digest(cue, self.config)
        body = self._cached(cue.key, digest)
        if body is not None:
            return body
        with self._lock:
            gate = self._building.setdefault(cue.key, threading.Lock())
        with gate:
            body = self._cached(cue.key, digest)
            if body is None:
                body = self._load(cue.key, digest)
                if body is None:
                    body = self._make(cue, digest, wait)
                    if body is None:
                        return None
                else:
                    self.loaded += 1
                self._remember(cue.key, digest, body)
        return body

    def _make(self, cue: TrackCue, digest: str, wait: bool) -> Body | None:
        with self._disk_lock(cue.key, digest, wait) as held:
            if not held:
                return None
            body = self._load(cue.key, digest)  # made by another process while this one waited
            if body is not None:
                self.loaded += 1
                return body
            body = build_body(cue, self.config)
            self.built += 1
            self._save(body, digest)
            return body

    @contextlib.contextmanager
    def _disk_lock(self, key: str, digest: str, wait: bool) -> Iterator[bool]:
        """Held while a body is made, so that serving processes sharing the cache dir make
        each body once, not once each. Yields False when ``wait`` is False and another
        process holds it; True, unlocked, where no lock file can be made."""
        path = self._paths(key, digest)[0].with_suffix(".lock")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            yield True
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # releases the lock

    def warm_all(
        self,
        cues: list[TrackCue],
        *,
        stop: threading.Event | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> int:
        """Build (or load) every body in ``cues``, one after another; returns how many failed.
        A track that cannot be made is logged; the player passes over it when it comes up.
        Bodies another serving process is making are passed over and fetched at the end, so
        processes warming the same catalog make different bodies at the same time."""
        failed = done = 0
        later: list[TrackCue] = []
        for wait, batch in ((False, cues), (True, later)):
            for cue in batch:
                if stop is not None and stop.is_set():
                    return failed
                try:
                    if self._get(cue, wait=wait) is None:
                        later.append(cue)
                        continue
                except Exception as exc:
                    failed += 1
                    logger.warning("no body for %s: %s", cue.key, exc)
                done += 1
                if progress is not None:
                    progress(done, len(cues))
        return failed

    def _cached(self, key: str, digest: str) -> Body | None:
        with self._lock:
            hit = self._mem.get(key)
            if hit is None or hit[0] != digest:
                return None
            self._mem.move_to_end(key)
            return hit[1]

    def _remember(self, key: str, digest: str, body: Body) -> None:
        with self._lock:
            old = self._mem.pop(key, None)
            if old is not None:
                self._bytes -= old[1].nbytes
            self._mem[key] = (digest, body)
            self._bytes += body.nbytes
            while self._bytes > self.max_bytes and len(self._mem) > 1:
                _, (_, dropped) = self._mem.popitem(last=False)
                self._bytes -= dropped.nbytes

    def _paths(self, key: str, digest: str) -> tuple[Path, Path]:
        safe = hashlib.sha256(key.encode()).hexdigest()[:16]
        stem = self.directory / f"{safe}-{digest}"
        return stem.with_suffix(".mp3"), stem.with_suffix(".npz")

    def _load(self, key: str, digest: str) -> Body | None:
        mp3, meta = self._paths(key, digest)
        try:
            data = mp3.read_bytes()
            with np.load(meta, allow_pickle=False) as npz:
                fields = {k: npz[k] for k in npz.files}
            offsets = fields["offsets"].astype(np.int64)
            if int(offsets[-1]) != len(data):
                raise ValueError("frame index does not match the frames")
            return Body(key, Path(str(fields["path"])), int(fields["in_frame"]),
                        int(fields["usable"]), float(fields["dead_air_s"]),
                        fields["curve"].astype(np.float32), data, offsets)
        except FileNotFoundError:
            return None
        except Exception:  # a damaged cache entry is rebuilt
            logger.warning("body cache entry for %s unreadable; rebuilding it", key)
            return None

    def _save(self, body: Body, digest: str) -> None:
        mp3, meta = self._paths(body.key, digest)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for target, write in (
                (mp3, lambda f: f.write(body.data)),
                (meta, lambda f: np.savez(f, offsets=body.offsets, curve=body.curve,
                                          path=str(body.path), in_frame=body.in_frame,
                                          usable=body.usable, dead_air_s=body.dead_air_s)),
            ):
                # several serving processes may make the same body at once
                tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
                with open(tmp, "wb") as f:
                    write(f)
                os.replace(tmp, target)
        except OSError:
            logger.warning("could not cache the body of %s on disk", body.key, exc_info=True)
