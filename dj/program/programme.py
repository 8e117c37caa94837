"""One listener's programme. The renderer pulls :class:`~dj.audio.plan.Item` values from it; it
prepares the next item (track pick, narration choice and speech render) ahead of time so that
neither the recommender nor the speech engine can delay the music."""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import uuid
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from dj.audio.plan import Item, TrackCue, VoiceCue
from dj.catalog import Catalog, Listener, Track
from dj.program.rules import PlayedTrack, RadioRules, pick_track

if TYPE_CHECKING:
    from dj.narrate import Narrator, Persona, Utterance
    from dj.recommend import LiveRecommender

logger = logging.getLogger(__name__)

SKIPS_TO_REST_ARTIST = 3
UTTERANCES_KEPT = 16  # prepared lines remembered: far more than can be queued or on air
REST_PICKS = 10


def track_cue(track: Track) -> TrackCue:
    """What the renderer needs of a catalog track: its house file and ingest's analysis."""
    a = track.analysis
    return TrackCue(
        key=track.id,
        path=track.audio_path,
        gain_db=a.gain_db,
        cue_in_s=a.cue_in_s,
        cue_out_s=a.cue_out_s,
        outro_s=a.outro_s,
        head_lu=a.head_lu,
        tail_lu=a.tail_lu,
    )


@dataclass(slots=True)
class ProgrammeHistory:
    """What this programme has aired and how the listener reacted, in programme seconds."""

    played: deque[PlayedTrack] = field(default_factory=lambda: deque(maxlen=200))
    artist_skips: Counter[str] = field(default_factory=Counter)
    rested: dict[str, int] = field(default_factory=dict)  # artist -> picks left
    picks: int = 0


@dataclass(frozen=True, slots=True)
class Prepared:
    item: Item
    track: Track
    utterance: Utterance | None


class Programme:
    """Thread-safe: the renderer calls :meth:`next_item` from an executor thread while the server
    reports feedback and revocations from others."""

    def __init__(
        self,
        *,
        listener: Listener,
        persona: str,
        catalog: Catalog,
        recommender: LiveRecommender,
        narrator: Narrator | None,
        rules: RadioRules,
        crossfade_s: float,
        seed: int | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_failure: Callable[[str], None] = lambda kind: None,
        session_persona: Persona | None = None,
    ) -> None:
        self.listener = listener
        self.persona = persona
        # this listener's copy of the persona when an experiment arm changes some of its
        # settings (see NarrationContext.session_persona); None: the narrator's, as loaded
        self.session_persona = session_persona
        self.catalog = catalog
        self.recommender = recommender
        self.narrator = narrator
        self.rules = rules
        self.crossfade_s = crossfade_s
        self.clock = clock
        self.on_failure = on_failure
        self.rng = random.Random(seed if seed is not None else uuid.uuid4().int)
        self.history = ProgrammeHistory()
        self.programme_s = 0.0  # programme time at the start of the last handed-out track
        self._lock = threading.RLock()
        self._prepared: Prepared | None = None
        self._last_track: Track | None = None  # the track playing before the prepared one
        self._last_voice_s: float | None = None
        # lines prepared for this listener, newest last; only the last few can still air
        self._utterances: OrderedDict[str, Utterance] = OrderedDict()
        self._renarrate = False
        self._mask_key: tuple | None = None
        self._mask: Any = None

    # -- picking -------------------------------------------------------------------------
    def _allowed(self, today: date) -> tuple[frozenset[str], Any]:
        playable = self.catalog.playable_ids(self.listener.territory, self.listener.tier, today)
        key = (
            self.listener.territory,
            self.listener.tier,
            today,
            hash(frozenset(playable)),
            getattr(self.recommender, "version", 0),
        )
        if key != self._mask_key:
            self._mask = self.recommender.allowed_mask(playable)
            self._mask_key = key
        return playable, self._mask

    def _pick(self) -> Track | None:
        today = self.clock().date()
        playable, mask = self._allowed(today)
        if not playable:
            logger.error(
                "no track is licensed for %s in %s", self.listener.id, self.listener.territory
            )
            return None
        seed = [self._last_track.id] if self._last_track else self._persona_seed(playable)
        try:
            candidates = self.recommender.candidates(self.listener.id, mask, n=60, seed=seed)
        except Exception:  # a failing recommender must not stop the music
            logger.exception(
                "recommender failed for %s; falling back to the licensed catalog", self.listener.id
            )
            self.on_failure("recommender")
            candidates = []
        candidates = [(t, s) for t, s in candidates if t in playable]
        if not candidates:  # cold fallback: the licensed catalog in a shuffled order
            ids = sorted(playable)
            self.rng.shuffle(ids)
            candidates = [(t, 0.0) for t in ids]
        tracks = {t: self.catalog.track(t) for t, _ in candidates}
        artist_of = {t: track.artist_id for t, track in tracks.items() if track is not None}
        blocked = frozenset(a for a, left in self.history.rested.items() if left > 0)
        choice = pick_track(
            candidates,
            artist_of,
            list(self.history.played),
            self.programme_s,
            self.rules,
            self.rng,
            blocked,
        )
        return tracks.get(choice) if choice else None

    def _persona_seed(self, playable: frozenset[str]) -> list[str]:
        """Licensed tracks carrying the persona's seed tags: where a new station starts from."""
        if self.narrator is None:
            return []
        tags = set(getattr(self._persona(), "seed_tags", ()))
        if not tags:
            return []
        tracks = (self.catalog.track(t) for t in sorted(playable))
        return [t.id for t in tracks if t is not None and tags & {x.lower() for x in t.tags}][:20]

    def _persona(self) -> Persona:
        assert self.narrator is not None
        return self.session_persona or self.narrator.persona(self.persona)

    def _narrate(self, prev: Track | None, nxt: Track) -> tuple[Utterance | None, VoiceCue | None]:
        if self.narrator is None:
            return None, None
        since = None if self._last_voice_s is None else self._airs_at_s() - self._last_voice_s
        try:
            from dj.narrate import NarrationContext

            ctx = NarrationContext(
                listener_id=self.listener.id,
                listener_name=self.listener.display_name,
                territory=self.listener.territory,
                persona=self.persona,
                prev=prev,
                next=nxt,
                now=self.clock(),
                since_last_voice_s=since,
                session_persona=self.session_persona,
            )
            utt = self.narrator.choose(ctx)
            if utt is None:
                return None, None
            audio = self.narrator.render(utt)  # rendered ahead; cached by content id
            if audio is None:
                self.on_failure("tts")
                return None, None
        except Exception:
            logger.exception(
                "narration failed for %s; the music goes on without it", self.listener.id
            )
            self.on_failure("narrator")
            return None, None
        persona = self._persona()
        self._utterances[utt.key] = utt
        self._utterances.move_to_end(utt.key)
        while len(self._utterances) > UTTERANCES_KEPT:
            self._utterances.popitem(last=False)
        return utt, VoiceCue(key=utt.key, duck_db=float(persona.duck_db), text=utt.text)

    def _airs_at_s(self) -> float:
        """Programme time at which an item prepared now will start: after the current track."""
        if self._last_track is None:
            return self.programme_s
        return self.programme_s + max(self._last_track.analysis.duration_s - self.crossfade_s, 1.0)

    def _prepare_locked(self) -> Prepared | None:
        track = self._pick()
        if track is None:
            return None
        utt, voice = self._narrate(self._last_track, track)
        cue = track_cue(track)
        return Prepared(Item(track=cue, crossfade_s=self.crossfade_s, voice=voice), track, utt)

    def prepare_ahead(self) -> None:
        """Pick and render the next item now, off the hot path; a no-op when one is ready."""
        with self._lock:
            if self._prepared is None:
                self._prepared = self._prepare_locked()
            elif self._renarrate:  # its voice-over was revoked: choose another line
                p = self._prepared
                utt, voice = self._narrate(self._last_track, p.track)
                self._prepared = Prepared(
                    Item(p.item.track, p.item.crossfade_s, voice), p.track, utt
                )
            self._renarrate = False

    def prepared_tracks(self) -> list[TrackCue]:
        """The track prepared to air next (none when nothing is ready)."""
        with self._lock:
            return [] if self._prepared is None else [self._prepared.item.track]

    # -- the renderer's side ---------------------------------------------------------------
    def next_item(self) -> Item | None:
        """The next item to air. The licence is checked again here: a deal can end while queued."""
        with self._lock:
            for _ in range(5):
                prepared = self._prepared or self._prepare_locked()
                self._prepared = None
                if prepared is None:
                    return None
                today = self.clock().date()
                if not self.catalog.is_playable_now(
                    prepared.track.id, self.listener.territory, self.listener.tier, today
                ):
                    logger.warning(
                        "track %s lost its licence while queued; picking another", prepared.track.id
                    )
                    self.history.played.append(
                        PlayedTrack(prepared.track.id, prepared.track.artist_id, -1e12)
                    )
                    continue
                self._hand_out(prepared)
                # every airing is its own play, even the same track twice in a row
                return dataclasses.replace(prepared.item, play_id=uuid.uuid4().hex)
            return None

    def _hand_out(self, prepared: Prepared) -> None:
        track = prepared.track
        self.programme_s = self._airs_at_s()
        self.history.played.append(PlayedTrack(track.id, track.artist_id, self.programme_s))
        self.history.picks += 1
        for artist in list(self.history.rested):
            self.history.rested[artist] -= 1
            if self.history.rested[artist] <= 0:
                del self.history.rested[artist]
        if prepared.utterance is not None:
            self._last_voice_s = self.programme_s
        self._last_track = track

    def utterance(self, key: str) -> Utterance | None:
        return self._utterances.get(key)

    def utterances(self) -> list[Utterance]:
        """The lines prepared lately (the ones that may still air)."""
        with self._lock:
            return list(self._utterances.values())

    # -- feedback and control ---------------------------------------------------------------
    def skipped(self, track: Track) -> None:
        with self._lock:
            self.history.artist_skips[track.artist_id] += 1
            if self.history.artist_skips[track.artist_id] >= SKIPS_TO_REST_ARTIST:
                self.history.rested[track.artist_id] = REST_PICKS
                if self._prepared and self._prepared.track.artist_id == track.artist_id:
                    self._prepared = None

    def liked(self, track: Track) -> None:
        with self._lock:
            self.history.artist_skips.pop(track.artist_id, None)
            self.history.rested.pop(track.artist_id, None)
            self._prepared = None  # the like should shape the very next pick

    def line_revoked(self, line_id: str) -> bool:
        """Take a queued voice-over made of ``line_id`` out at once; another line is chosen for
        that transition at the next :meth:`prepare_ahead`. True when one was queued."""
        with self._lock:
            p = self._prepared
            if p is None or p.utterance is None or p.utterance.line_id != line_id:
                return False
            self._prepared = Prepared(Item(p.item.track, p.item.crossfade_s, None), p.track, None)
            self._renarrate = True
            return True
