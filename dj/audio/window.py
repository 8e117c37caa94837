"""Rendering one transition window (dj.audio.segments.Window) into MP3 frames for one listener.

The window's tracks come from their bodies' mastered samples, so wherever only one track plays
at full gain the mix *is* that body's samples, bit for bit. The mix is ducked under the voice,
the voice added, and the sum limited by :func:`dj.audio.mastering.limit_window` (the identity
where nothing is over the ceiling, as at both joins). It is encoded on the listener's frame grid
from :data:`PRE_ROLL` frames before the first kept frame to :data:`POST_ROLL` frames after the
last; those extra frames are dropped.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping

import numpy as np

from dj.audio.bodies import Body
from dj.audio.decode import HouseReader
from dj.audio.dsp import duck_envelope
from dj.audio.encode import FRAME_SAMPLES as FRAME
from dj.audio.encode import encode_frames
from dj.audio.mastering import limit_window
from dj.audio.segments import POST_ROLL, PRE_ROLL, Window
from dj.audio.window_disk import WindowDisk
from dj.config import HOUSE_SAMPLE_RATE


def mix_window(
    window: Window,
    lo: int,
    hi: int,
    bodies: Mapping[str, Body],
    voices: Mapping[str, np.ndarray],
    edge: int,
) -> np.ndarray:
    """The window's mix over listener samples ``[lo, hi)``, before the limiter."""
    n = hi - lo
    mix = np.zeros((2, n), np.float32)
    for deck in window.decks:
        a, b = max(lo, deck.origin), min(hi, deck.end)
        if b <= a:
            continue
        body = bodies[deck.side.key]
        with HouseReader(body.path) as reader:
            data = body.samples(reader, a - deck.origin, b - a)
        env = deck.envelope(a, b - a, edge)
        if isinstance(env, float):
            mix[:, a - lo : b - lo] += data
        else:
            mix[:, a - lo : b - lo] += data * env
    for dk in window.ducks:
        a, b = max(lo, dk.start), min(hi, dk.end)
        if b > a:
            mix[:, a - lo : b - lo] *= duck_envelope(np.arange(a, b, dtype=np.int64), [dk])
    for v in window.voices:
        audio = voices.get(v.key)
        if audio is None:
            continue
        a, b = max(lo, v.start), min(hi, v.end)
        if b > a:
            part = audio[:, a - v.start : b - v.start]
            mix[:, a - lo : a - lo + part.shape[1]] += part
            if v.end < v.start + audio.shape[1]:  # cut short (a revoked line): no click
                tail = min(edge, part.shape[1])
                if b == v.end and tail > 0:
                    mix[:, b - lo - tail : b - lo] -= part[:, -tail:] * np.linspace(
                        0.0, 1.0, tail, dtype=np.float32
                    )
    return mix


PIECE_FRAMES = 38  # a window is rendered this many frames at a time (about 1 s), as needed
# a stream's first frames: a piece this short (a few ms to render, not a whole piece's tens) is
# what a listener who just connected waits for; enough for any decoder to lock on (ffmpeg's MP3
# demuxer wants two frames in a row)
OPENING_FRAMES = 4
INFLIGHT_WAIT_S = 5.0  # longest wait for another listener's render of the same piece
# the limiter sees this much more mix on each side of a piece than is encoded, so its gain at a
# piece's edges is what it is in the whole window (its release recovers 12 dB over this span)
LIMIT_CONTEXT = 12


def _shape_id(shape) -> bytes:
    return b"" if shape is None else hashlib.sha1(np.asarray(shape[1]).tobytes()).digest()


_curve_ids: dict[int, tuple[np.ndarray, bytes]] = {}  # id(curve) -> (curve, its digest)
CURVE_IDS_KEPT = 1024


def _body_id(body: Body) -> tuple:
    """What of a body decides its samples: its file, where it is cut, and its mastering curve
    (a body made again under other settings is other audio). A curve is hashed once."""
    known = _curve_ids.get(id(body.curve))
    if known is None or known[0] is not body.curve:
        if len(_curve_ids) >= CURVE_IDS_KEPT:
            _curve_ids.clear()
        known = _curve_ids[id(body.curve)] = (
            body.curve, hashlib.sha1(np.ascontiguousarray(body.curve).tobytes()).digest())
    return (body.path.name, body.in_frame, body.usable, known[1])


def _fade_in_id(deck, rendered_from: int, edge: int) -> tuple:
    """A deck's fade-in as far as it decides the audio from listener sample ``rendered_from``
    on: nothing once it is over (the track playing out of a crossfade sounds the same however
    it came in)."""
    if deck.origin + (deck.fade_in or edge) <= rendered_from:
        return ()
    return (deck.fade_in, _shape_id(deck.shape))


def signature(window: Window, first: int, bodies: Mapping[str, Body], edge: int) -> tuple:
    """Everything that decides a window's audio from listener frame ``first`` on, relative to
    it: two listeners whose windows have the same signature get the same frames."""
    base = first * FRAME
    # the first sample any piece of it mixes (see piece_pcm)
    rendered_from = (first - PRE_ROLL - LIMIT_CONTEXT) * FRAME
    decks = tuple(
        (d.side.key, _body_id(bodies[d.side.key]), d.origin - base,
         _fade_in_id(d, rendered_from, edge), tuple((s - base, n) for s, n in d.fade_outs))
        for d in window.decks
    )
    voices = tuple((v.key, v.start - base, v.length, v.duck_db) for v in window.voices)
    ducks = tuple((dk.voice_start - base, dk.voice_end - base, dk.depth_db, dk.attack,
                   dk.release) for dk in window.ducks)
    return (decks, voices, ducks, window.end - first)


class PieceCache:
    """Rendered window pieces shared by every listener (a popular transition is rendered once),
    up to ``max_bytes``, least recently used first out. Thread-safe."""

    def __init__(self, max_bytes: int, disk: WindowDisk | None = None) -> None:
        self.max_bytes = max_bytes
        self.disk = disk  # what other serving processes rendered, and earlier runs
        self._items: OrderedDict[tuple, tuple[bytes, np.ndarray]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._inflight: dict[tuple, threading.Event] = {}
        self.hits = 0
        self.misses = 0

    @property
    def nbytes(self) -> int:
        return self._bytes

    def fetch(
        self, key: tuple, make: Callable[[], tuple[bytes, np.ndarray]]
    ) -> tuple[bytes, np.ndarray]:
        """The piece under ``key``, made by ``make`` if nobody has it; listeners who need a
        piece that another is rendering wait for that render instead of repeating it."""
        with self._lock:
            got = self._held(key)
            if got is not None:
                return got
            waiter = self._inflight.get(key)
            mine = waiter is None
            if mine:
                waiter = self._inflight[key] = threading.Event()
        assert waiter is not None
        if not mine:
            waiter.wait(INFLIGHT_WAIT_S)
            with self._lock:
                got = self._held(key)
            return got if got is not None else make()  # that render failed (or was too big)
        try:
            got = self.disk.load(key) if self.disk is not None else None
            if got is None:
                got = make()
                self.misses += 1
                if self.disk is not None:
                    self.disk.save(key, got[0])
            else:
                self.hits += 1
            self._put(key, got)
            return got
        finally:
            with self._lock:
                self._inflight.pop(key, None)
            waiter.set()

    def peek(self, key: tuple) -> tuple[bytes, np.ndarray] | None:
        """The piece under ``key`` if it is made; never renders nor waits."""
        with self._lock:
            return self._held(key)

    def _held(self, key: tuple) -> tuple[bytes, np.ndarray] | None:
        """The piece under ``key`` in memory, now the most recently used (hold the lock)."""
        got = self._items.get(key)
        if got is not None:
            self._items.move_to_end(key)
            self.hits += 1
        return got

    def _put(self, key: tuple, value: tuple[bytes, np.ndarray]) -> None:
        size = len(value[0]) + value[1].nbytes
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (data, offsets) = self._items.popitem(last=False)
                self._bytes -= len(data) + offsets.nbytes


def piece_pcm(
    window: Window,
    lo: int,
    hi: int,
    bodies: Mapping[str, Body],
    voices: Mapping[str, np.ndarray],
    *,
    edge: int,
    ceiling_db: float,
    sample_rate: int = HOUSE_SAMPLE_RATE,
) -> np.ndarray:
    """The limited mix a piece of frames ``[lo, hi)`` is encoded from: listener samples from
    ``PRE_ROLL`` frames before ``lo`` to ``POST_ROLL`` frames after ``hi``."""
    context = LIMIT_CONTEXT * FRAME
    a = (lo - PRE_ROLL) * FRAME - context
    b = (hi + POST_ROLL) * FRAME + context
    mix = limit_window(mix_window(window, a, b, bodies, voices, edge), ceiling_db, sample_rate)
    return mix[:, context:-context]


def render_frames(
    window: Window,
    lo: int,
    hi: int,
    bodies: Mapping[str, Body],
    voices: Mapping[str, np.ndarray],
    *,
    edge: int,
    ceiling_db: float,
    bitrate_kbps: int = 128,
    sample_rate: int = HOUSE_SAMPLE_RATE,
) -> tuple[bytes, np.ndarray]:
    """Listener frames ``[lo, hi)`` of ``window`` as MP3 frames with their offsets."""
    pcm = piece_pcm(window, lo, hi, bodies, voices, edge=edge, ceiling_db=ceiling_db,
                    sample_rate=sample_rate)
    data, offsets = encode_frames(pcm, bitrate_kbps, sample_rate)
    keep = hi - lo
    if len(offsets) - 1 < PRE_ROLL + keep:
        raise RuntimeError("the encoder returned fewer frames than the window holds")
    a, b = offsets[PRE_ROLL], offsets[PRE_ROLL + keep]
    return data[a:b], offsets[PRE_ROLL : PRE_ROLL + keep + 1] - a


class WindowFrames:
    """A window's frames from listener frame ``first`` to its end, rendered a piece at a time
    when first asked for (or taken from the shared cache). The pieces are ``lead`` (frames
    each, in order), then :data:`PIECE_FRAMES` each: a stream's opening leads with short
    pieces so its first frames are out before a whole piece could be rendered. A window
    rendered ahead of need (``whole``) is one piece: nothing waits on it, and the limiter's
    context and the encoder's pre- and post-roll are then paid once, not once a piece."""

    def __init__(
        self,
        window: Window,
        first: int,
        bodies: Mapping[str, Body],
        voices: Mapping[str, np.ndarray],
        *,
        edge: int,
        ceiling_db: float,
        bitrate_kbps: int = 128,
        sample_rate: int = HOUSE_SAMPLE_RATE,
        cache: PieceCache | None = None,
        lead: tuple[int, ...] = (),
        whole: bool = False,
    ) -> None:
        if any(n <= 0 for n in lead):
            raise ValueError(f"lead pieces must hold frames: {lead}")
        if whole and lead:
            raise ValueError("a window rendered whole has no lead pieces")
        self.window = window
        self.first = first
        self.lead = lead
        self.whole = whole
        keys = {d.side.key for d in window.decks}
        self._bodies = {k: bodies[k] for k in keys}
        self._voices = {v.key: voices[v.key] for v in window.voices if v.key in voices}
        self._args = dict(edge=edge, ceiling_db=ceiling_db, bitrate_kbps=bitrate_kbps,
                          sample_rate=sample_rate)
        self._settings = (edge, float(ceiling_db), bitrate_kbps, sample_rate)
        self._cache = cache
        self._signature = (signature(window, first, self._bodies, edge) if cache is not None
                           else ())
        self._pieces: dict[int, tuple[bytes, np.ndarray]] = {}

    def piece(self, at: int) -> tuple[int, int]:
        """Listener frames ``[lo, hi)`` of the piece that holds frame ``at``."""
        if self.whole:
            return self.first, self.window.end
        lo = self.first
        for n in self.lead:
            if at < lo + n:
                return lo, min(self.window.end, lo + n)
            lo += n
        lo += (at - lo) // PIECE_FRAMES * PIECE_FRAMES
        return lo, min(self.window.end, lo + PIECE_FRAMES)

    def _key(self, lo: int, hi: int) -> tuple:
        # the piece's place relative to ``first`` is in the key: the same window cut into
        # other pieces (an opening's short lead) is other frames
        return (self._signature, lo - self.first, hi - self.first, self._settings)

    def _piece(self, lo: int, hi: int) -> tuple[bytes, np.ndarray]:
        got = self._pieces.get(lo)
        if got is not None:
            return got

        def make() -> tuple[bytes, np.ndarray]:
            return render_frames(self.window, lo, hi, self._bodies, self._voices, **self._args)

        key = self._key(lo, hi)
        got = make() if self._cache is None else self._cache.fetch(key, make)
        self._pieces = {lo: got}  # only the piece being handed out is kept here
        return got

    def rendered(self, lo: int, hi: int) -> bool:
        """True when frames ``[lo, hi)`` lie in one piece that is already made (here or in the
        shared cache): handing them out is a copy. The piece is then held here, so a cache
        eviction meanwhile cannot turn that copy into a render."""
        base, end = self.piece(lo)
        if hi > end:
            return False
        if base in self._pieces:
            return True
        got = None if self._cache is None else self._cache.peek(self._key(base, end))
        if got is None:
            return False
        self._pieces = {base: got}
        return True

    def prepare(self) -> None:
        """Render the first piece now (ahead of need, while the body before it plays)."""
        self._piece(*self.piece(self.first))

    def frame_bytes(self, lo: int, hi: int) -> bytes:
        """Listener frames ``[lo, hi)`` (within the window)."""
        out: list[bytes] = []
        at = lo
        while at < hi:
            base, end = self.piece(at)
            data, offsets = self._piece(base, end)
            stop = min(hi, base + len(offsets) - 1)
            out.append(data[offsets[at - base] : offsets[stop - base]])
            at = stop
        return b"".join(out)
