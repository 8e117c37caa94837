"""The narrator: decides whether and what the DJ says at a transition, renders it ahead of time,
and checks approval, consent and scope again whenever the audio is asked for.

Thread-safe: the programme calls :meth:`Narrator.choose` on the event loop (fast, no audio) and
:meth:`Narrator.render` in an executor; the artist API revokes from yet another thread.

Memory is bounded: the utterances chosen lately (:data:`MAX_KNOWN_UTTERANCES`, least recently
used dropped first) and each listener's repeat window (:data:`MAX_LISTENERS` listeners, least
recently used dropped first; :meth:`Narrator.forget` drops one when they leave for good).

Neural speech (Kokoro) is slow: about a CPU-second per second of speech. It is rendered in the
background on a few low-priority worker threads (:class:`SpeechWorker`, ``[narrate]
speech_threads``) and never waited for: until it is ready, a stand-in airs. A line that carries
the listener's name stands in with its name-less variant (shared by every listener, so usually
rendered already), and any line stands in with espeak-ng's rendering of it (made at once: about
2 ms). When the Kokoro voice is not installed or fails, the persona speaks with espeak-ng; that
is logged and counted once.

A new listener's first words would always be a stand-in (the line is chosen as the session
starts and due a second later), so a neural persona opens only with a line whose render is
ready (its shared opening lines are rendered at start-up: :meth:`Narrator.warm_openings`);
otherwise the music opens and the DJ speaks at the first transition, prepared a track ahead.

What a session got for a line (:meth:`Narrator.serve`: the audio and which rendering it is)
travels with the audio to that session's airing record, so each airing names what its
listener heard, whatever other listeners got for the same line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import logging
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from dj.catalog.repository import Catalog
from dj.config import Config
from dj.ledger.log import Event, Ledger
from dj.narrate.cache import VoiceCache
from dj.narrate.chain import ChainSpec
from dj.narrate.consent import PERSONA_TEXT
from dj.narrate.engines.base import SpeechEngine
from dj.narrate.engines.clip import ClipEngine
from dj.narrate.engines.espeak import EspeakEngine
from dj.narrate.engines.kokoro import KokoroEngine, engine_id
from dj.narrate.engines.neural import NeuralEngine
from dj.narrate.packs import load_packs
from dj.narrate.persona import FALLBACK_PERSONA, Persona, VoiceParams, load_personas
from dj.narrate.registry import LineRegistry, Revocation
from dj.narrate.script import (
    TEMPLATE_WEIGHTS,
    Candidate,
    draw,
    line_names,
    pick,
    repeat_identity,
    slot_values,
    without_listener_name,
)
from dj.narrate.slots import NEXT_TRACK_SLOTS, PREV_TRACK_SLOTS, fill, time_of_day
from dj.narrate.speech_worker import SpeechWorker
from dj.narrate.utterance import (
    ESPEAK_STAND_IN,
    NAMELESS,
    OWN,
    NarrationContext,
    Served,
    Utterance,
    template_line_id,
    utterance_key,
)
from dj.narrate.voice_dsp import PROCESSING_VERSION, to_house
from dj.narrate.voice_install import kokoro_dir
from dj.store import Store

logger = logging.getLogger(__name__)

#: Utterances remembered for :meth:`Narrator.audio_for` (least recently chosen, rendered or asked
#: for dropped first). A dropped key that was rendered is still found in the voice cache's index;
#: one that never was fails closed (no audio), so this is sized far above what is ever queued.
MAX_KNOWN_UTTERANCES = 4096
#: Listeners whose repeat window is held in memory; a dropped one is re-read from the ledger.
MAX_LISTENERS = 10_000
#: Engines too slow to render on the programme's thread: rendered by the speech worker while a
#: stand-in is ready to air.
DEFERRED_ENGINES = frozenset({"kokoro"})
#: How long a persona that fell back to espeak-ng waits before its own engine is tried again
#: (so a voice installed while the station runs is taken up); doubled after each fall back of
#: that persona, up to an hour, so an engine that keeps failing is not retried every minute.
RECHECK_S = 60.0
MAX_RECHECK_S = 3600.0
#: Template kinds a listener may be greeted with whose words depend on no track: a persona's
#: shared opening lines (name-less), rendered at start-up.
OPENING_KINDS = ("greeting", "station_id")


def synthesize_line(engine: SpeechEngine, text: str, voice: VoiceParams, chain: ChainSpec,
                    lufs: float) -> np.ndarray:
    """What the station airs for ``text``: the engine's speech through the persona's chain,
    at the voice loudness, (2, n) float32 at 44.1 kHz. ``dj say`` uses it too."""
    mono, rate = engine.synthesize(text, voice)
    return to_house(mono, rate, chain, lufs)


class Narrator:
    def __init__(self, store: Store, catalog: Catalog, config: Config, *,
                 voices_dir: Path | None = None, kokoro_path: Path | None = None) -> None:
        self.store = store
        self.catalog = catalog
        self.config = config
        self.voices_dir = voices_dir if voices_dir is not None else config.narrate.voices_dir
        self.ledger = Ledger(store)
        self.lines = LineRegistry(store, config.data_dir / "voice-clips")
        self.cache = VoiceCache(store, config.cache_dir / "voice")
        loaded, problems = load_personas(self.voices_dir / "personas")
        self.personas: Mapping[str, Persona] = MappingProxyType(loaded)
        self.problems: list[str] = list(problems)
        self.failures = 0
        self.failure_reasons: Counter[str] = Counter()
        # speech renders, for /metrics: found in the voice cache, or synthesized (and how long)
        self.cache_hits = 0
        self.renders = 0
        self.render_s = 0.0
        self._lock = threading.Lock()
        self.max_known = MAX_KNOWN_UTTERANCES
        self.max_listeners = MAX_LISTENERS
        self._known: OrderedDict[str, Utterance] = OrderedDict()  # LRU, at most max_known
        self._recent: OrderedDict[str, deque[str]] = OrderedDict()  # LRU, at most max_listeners
        self._callbacks: list[Callable[[str], None]] = []
        self._espeak = EspeakEngine()
        self._clips = ClipEngine()
        self._neural = NeuralEngine()
        # the Kokoro voice installed by `dj voice install` (DATA_DIR/voices/kokoro by default)
        self.kokoro = KokoroEngine(kokoro_path if kokoro_path is not None
                                   else kokoro_dir(config.data_dir))
        self._engines: dict[str, SpeechEngine] = {
            "espeak": self._espeak, "neural": self._neural, "kokoro": self.kokoro}
        self.speech = SpeechWorker(threads=config.narrate.speech_threads)
        # persona -> (engine it speaks with, when that was decided, why not its own engine)
        self._engine_names: dict[str, tuple[str, float, str]] = {}
        #: times a persona fell back to espeak-ng, by the engine it could not use (once a switch)
        self.engine_fallbacks: Counter[str] = Counter()
        self._fallbacks_of: Counter[str] = Counter()  # per persona, for the re-check's backoff
        # per utterance key: its name-less variant, and what may air until its render is
        # ready; bounded like ``_known``
        self._nameless: OrderedDict[str, Utterance] = OrderedDict()
        self._standins: OrderedDict[str, tuple[Utterance, ...]] = OrderedDict()
        #: lines aired, by the engine heard; stand-ins aired, by variant (for /metrics)
        self.aired_engines: Counter[str] = Counter()
        self.stand_ins_aired: Counter[str] = Counter()
        #: sessions whose neural persona had no line ready to open with: the music opened
        self.openings_deferred = 0
        self.problems.extend(self.lines.load_problems)  # stored rows skipped, each logged
        self.lines.on_revoke(self._revoked)
        self.engine_status()  # which voice each persona speaks with, in the log at start
        if config.narrate.default_persona not in self.personas:
            problem = f"default persona {config.narrate.default_persona!r} is not loaded"
            logger.error(problem)
            self.problems.append(problem)
        packs, pack_problems = load_packs(self.voices_dir / "artists")
        self.problems.extend(pack_problems)
        for pack in packs:
            report = self.lines.sync_pack(pack)
            self.problems.extend(p for p in report.problems if p not in pack.problems)
            if report.added or report.revoked:
                logger.info("artist pack %s: %d added, %d revoked", pack.artist_id,
                            len(report.added), len(report.revoked))
        if config.narrate.warm_openings:
            self.warm_openings()

    # -- personas -------------------------------------------------------------------------
    def persona(self, name: str | None) -> Persona:
        """The named persona; an unknown name gets the default (then any loaded, then built-in)."""
        if name and name in self.personas:
            return self.personas[name]
        default = self.personas.get(self.config.narrate.default_persona)
        if default is not None:
            return default
        return next(iter(self.personas.values()), FALLBACK_PERSONA)

    def _engine_name(self, persona: Persona) -> str:
        """The persona's engine when usable here, else espeak; a fall back is logged and counted
        once, and the persona's own engine is tried again after :data:`RECHECK_S` (more)."""
        if persona.engine not in ("neural", "kokoro"):
            return "espeak"
        now = time.monotonic()
        with self._lock:
            cached = self._engine_names.get(persona.name)
            falls = self._fallbacks_of[persona.name]
        wait = min(MAX_RECHECK_S, RECHECK_S * 2 ** max(0, falls - 1))
        if cached is not None and (cached[0] != "espeak" or now - cached[1] < wait):
            return cached[0]
        engine = self._neural if persona.engine == "neural" else self.kokoro
        ok, reason = engine.available(persona.voice)
        self._set_engine(persona, persona.engine if ok else "espeak", reason)
        return persona.engine if ok else "espeak"

    def _set_engine(self, persona: Persona, engine: str, reason: str = "") -> None:
        with self._lock:
            previous = self._engine_names.get(persona.name)
            self._engine_names[persona.name] = (engine, time.monotonic(), reason)
            switched = previous is None or previous[0] != engine
            if switched and engine == "espeak":
                self.engine_fallbacks[persona.engine] += 1
                self._fallbacks_of[persona.name] += 1
        if not switched:
            return
        if engine == "espeak":
            logger.warning("persona %s: %s voice unavailable (%s); speaking with espeak-ng",
                           persona.name, persona.engine, reason)
        else:
            logger.info("persona %s speaks with %s", persona.name, engine)

    def engine_status(self) -> dict[str, dict[str, str]]:
        """Per persona: the engine it asks for, the one it speaks with, and why (diagnostics)."""
        out = {}
        for persona in self.personas.values():
            using = self._engine_name(persona)
            with self._lock:
                reason = self._engine_names.get(persona.name, ("", 0.0, ""))[2]
            out[persona.name] = {"wants": persona.engine, "uses": using,
                                 "reason": reason if using != persona.engine else ""}
        return out

    def speech_state(self) -> dict[str, Any]:
        """The speech engines at a glance (/healthz, /metrics): the engine each persona speaks
        with, fall backs to espeak-ng, lines aired by engine, stand-ins aired, and the speech
        queue (jobs queued or running, refused when full)."""
        with self._lock:
            return {
                "engines": {name: used[0] for name, used in sorted(self._engine_names.items())},
                "engine_fallbacks": dict(self.engine_fallbacks),
                "aired": dict(self.aired_engines),
                "stand_ins_aired": dict(self.stand_ins_aired),
                "openings_deferred": self.openings_deferred,
                "queue": self.speech.pending(),
                "refused": self.speech.refused,
                "threads": self.speech.threads,
            }

    def _fingerprint(self, persona: Persona, engine: str) -> str:
        # the engine's identity (for Kokoro: model and voice pack hashes, voice and speed) is
        # part of every key, so a change of voice never airs an old render
        identity = engine_id(persona.voice) if engine == "kokoro" else engine
        material = repr((persona.name, identity, persona.voice, persona.chain,
                         self.config.audio.voice_lufs, PROCESSING_VERSION))
        return hashlib.sha256(material.encode()).hexdigest()[:16]

    # -- listeners ------------------------------------------------------------------------
    def forget(self, listener_id: str) -> None:
        """Drop what is held in memory for a listener (call when they leave for good).

        Only their repeat window is per listener; it is re-read from the ledger if they return.
        Utterances already chosen for them age out of the bounded utterance memory on their own.
        """
        with self._lock:
            self._recent.pop(listener_id, None)

    def _remember(self, utt: Utterance) -> None:
        """Note (or touch) an utterance for :meth:`audio_for`; the caller holds the lock."""
        self._known[utt.key] = utt
        self._known.move_to_end(utt.key)
        while len(self._known) > self.max_known:
            self._known.popitem(last=False)

    def _note(self, table: OrderedDict, key: str, value: object) -> None:
        """Keep ``value`` under ``key`` in a per-utterance table bounded like ``_known``; the
        caller holds the lock."""
        table[key] = value
        table.move_to_end(key)
        while len(table) > self.max_known:
            table.popitem(last=False)

    # -- choosing -------------------------------------------------------------------------
    def _recent_for(self, listener_id: str) -> deque[str]:
        """What this listener heard lately: seeded from the ledger, then kept in memory."""
        with self._lock:
            recent = self._recent.get(listener_id)
            if recent is not None:
                self._recent.move_to_end(listener_id)
                return recent
        window = self.config.narrate.no_repeat_airings
        airings = self.ledger.airings(listener_id=listener_id, limit=window)
        seeded: deque[str] = deque(maxlen=max(1, window))
        for airing in reversed(airings):
            is_template = airing.line_id.startswith("template:")
            seeded.append(repeat_identity(airing.line_id, airing.text, is_template))
        with self._lock:
            recent = self._recent.setdefault(listener_id, seeded)
            self._recent.move_to_end(listener_id)
            while len(self._recent) > self.max_listeners:
                self._recent.popitem(last=False)
            return recent

    def _artist_candidates(self, ctx: NarrationContext, persona: Persona,
                           recent: deque[str]) -> list[Candidate]:
        out: list[Candidate] = []
        station = self.config.stream.station_name
        for track, moment in ((ctx.next, "before"), (ctx.prev, "after")):
            if track is None:
                continue
            for line in self.lines.lines(track.artist_id, approved_only=True):
                if line.id in recent or not line.scope.fits(moment, track.id):
                    continue
                if not self.lines.line_usable(line.id, track.artist_id, persona.name,
                                              ctx.territory, ctx.now):
                    continue
                named = line_names(line.text, track, ctx.prev)
                if named is None or not self._may_name(named[1:], persona.name, ctx.territory):
                    continue  # a line names another artist only with that artist's consent
                values = slot_values(ctx, station, about=track)
                text = fill(line.text, values)
                if text is None:
                    continue
                engine = "clip" if line.clip_sha256 else self._engine_name(persona)
                nameless = None if line.clip_sha256 else self._without_name(line.text, text,
                                                                             values)
                out.append(Candidate(line.id, track.artist_id, named, text, engine,
                                     1.0, line.id, line.clip_sha256, nameless))
        return out

    def _may_name(self, artists: Iterable[str], persona: str, territory: str | None, *,
                  any_territory: bool = False) -> bool:
        """Every artist here has active persona_text consent (being named) for this use."""
        return all(self.lines.consent_covers(a, PERSONA_TEXT, persona, territory,
                                             any_territory=any_territory) for a in artists)

    def _template_candidates(self, ctx: NarrationContext, persona: Persona,
                             recent: deque[str]) -> list[Candidate]:
        out: list[Candidate] = []
        values = slot_values(ctx, self.config.stream.station_name)
        engine = self._engine_name(persona)
        for template in persona.templates:
            if template.kind == "intro" and ctx.next is None:
                continue
            if template.kind == "back_announce" and ctx.prev is None:
                continue
            named: list[str] = []
            if template.slots & NEXT_TRACK_SLOTS:
                if ctx.next is None:
                    continue
                named.append(ctx.next.artist_id)
            if template.slots & PREV_TRACK_SLOTS:
                if ctx.prev is None:
                    continue
                named.append(ctx.prev.artist_id)
            if not self._may_name(named, persona.name, ctx.territory):
                continue  # templates name an artist only with their persona_text consent
            text = fill(template.text, values)
            if text is None:
                continue
            line_id = template_line_id(persona.name, template.id)
            identity = repeat_identity(line_id, text, True)
            if identity in recent:
                continue
            out.append(Candidate(line_id, named[0] if named else None,
                                 tuple(dict.fromkeys(named)), text, engine,
                                 TEMPLATE_WEIGHTS.get(template.kind, 1.0), identity,
                                 nameless=self._without_name(template.text, text, values)))
        return out

    @staticmethod
    def _without_name(source: str, text: str, values: Mapping[str, str]) -> str | None:
        """The name-less variant of a line that says the listener's name (None otherwise)."""
        if "{listener_name}" not in source:
            return None
        variant = fill(without_listener_name(source), values)
        return variant if variant and variant != text else None

    def choose(self, ctx: NarrationContext) -> Utterance | None:
        """Whether to talk at this transition and what to say; fast (no audio), never raises."""
        try:
            return self._choose(ctx)
        except Exception:
            logger.exception("narration choice failed for listener %s", ctx.listener_id)
            self._fail("choose")
            return None

    def _choose(self, ctx: NarrationContext) -> Utterance | None:
        persona = ctx.session_persona or self.persona(ctx.persona)
        if ctx.prev is None and ctx.next is None:
            return None
        seed = (ctx.listener_id, ctx.prev.id if ctx.prev else "", ctx.next.id if ctx.next else "",
                ctx.now.isoformat())
        if ctx.since_last_voice_s is not None:
            if ctx.since_last_voice_s < persona.min_gap_s:
                return None
            if draw("talk", *seed) >= persona.talk_probability:
                return None
        recent = self._recent_for(ctx.listener_id)
        candidates = self._artist_candidates(ctx, persona, recent)
        if (ctx.prev is None and ctx.since_last_voice_s is None
                and self._engine_name(persona) in DEFERRED_ENGINES):
            # a session's opening line is due at once, too soon for a neural render: only a
            # line whose render is ready opens; otherwise the music does, and the DJ speaks at
            # the first transition (chosen a track ahead; the programme's first voice-over is
            # never subject to the talk gap)
            candidates += self._template_candidates(ctx, persona, recent)
            candidates = [c for c in candidates if self._ready(persona, c)]
            if not candidates:
                with self._lock:
                    self.openings_deferred += 1
                return None
        elif not candidates:  # approved artist lines come first; templates otherwise
            candidates = self._template_candidates(ctx, persona, recent)
        chosen = pick(candidates, *seed)
        if chosen is None:
            return None
        key = utterance_key(self._fingerprint(persona, chosen.engine), chosen.line_id,
                            chosen.text, chosen.clip_sha256)
        utt = Utterance(key, chosen.line_id, chosen.artist_id, persona.name, chosen.text,
                        chosen.engine, chosen.artists)
        with self._lock:
            self._remember(utt)
            recent.append(chosen.identity)
            if chosen.nameless and chosen.engine in DEFERRED_ENGINES:
                # the same line without the name: every listener shares its render
                nameless_key = utterance_key(self._fingerprint(persona, chosen.engine),
                                             chosen.line_id, chosen.nameless, None)
                self._note(self._nameless, key, dataclasses.replace(
                    utt, key=nameless_key, text=chosen.nameless))
        return utt

    def _ready(self, persona: Persona, candidate: Candidate) -> bool:
        """Whether ``candidate`` can air in the persona's own engine now: made at once (espeak-ng,
        a clip), or rendered already (itself, or its name-less variant)."""
        if candidate.engine not in DEFERRED_ENGINES:
            return True
        fingerprint = self._fingerprint(persona, candidate.engine)
        if self.cache.has(utterance_key(fingerprint, candidate.line_id, candidate.text,
                                        candidate.clip_sha256)):
            return True
        return candidate.nameless is not None and self.cache.has(
            utterance_key(fingerprint, candidate.line_id, candidate.nameless, None))

    def warm_openings(self, now: datetime | None = None) -> int:
        """Queue every neural persona's shared opening lines (:meth:`opening_lines`) for
        background rendering, one of each persona in turn, so every persona soon has one to
        open with. Renders already cached are skipped (they stay on disk). Returns how many
        were queued."""
        queued = 0
        for turn in itertools.zip_longest(*self.opening_lines(now)):
            for utt in turn:
                if (utt is not None and not self.cache.has(utt.key)
                        and self._submit(utt) is not None):
                    queued += 1
        if queued:
            logger.info("rendering %d opening lines in the background", queued)
        return queued

    def opening_lines(self, now: datetime | None = None) -> list[list[Utterance]]:
        """Per neural persona (the default first): the lines it may open a session with that
        every listener shares: station ids and greetings without the listener's name, for the
        time of day ``now`` and in an hour."""
        now = now or datetime.now(UTC)
        station = self.config.stream.station_name
        default = self.persona(None).name
        queues: list[list[Utterance]] = []
        for persona in sorted(self.personas.values(), key=lambda p: p.name != default):
            engine = self._engine_name(persona)
            if engine not in DEFERRED_ENGINES:
                continue
            fingerprint = self._fingerprint(persona, engine)
            lines: dict[str, Utterance] = {}
            for template in persona.templates:
                if (template.kind not in OPENING_KINDS
                        or template.slots & (NEXT_TRACK_SLOTS | PREV_TRACK_SLOTS)):
                    continue
                source = (without_listener_name(template.text)
                          if "{listener_name}" in template.text else template.text)
                line_id = template_line_id(persona.name, template.id)
                for when in (now, now + timedelta(hours=1)):
                    text = fill(source, {"listener_name": "", "station": station,
                                         "time_of_day": time_of_day(when)})
                    if text is None:
                        continue
                    key = utterance_key(fingerprint, line_id, text, None)
                    lines.setdefault(key, Utterance(key, line_id, None, persona.name, text,
                                                    engine))
            queues.append(list(lines.values()))
        return queues

    # -- checks ---------------------------------------------------------------------------
    def is_airable(self, utt: Utterance, territory: str | None = None,
                   now: datetime | None = None) -> bool:
        """Approval, consent and scope, checked now, for a listener in ``territory``.

        Every artist the words name (``utt.artists``: the line's own artist, and any artist a
        slot such as ``{prev_artist}`` filled in) needs active consent for it. Fails closed: a
        line or consent limited to territories is not airable when ``territory`` is None.
        """
        return self._airable(utt, territory, now)

    def _airable(self, utt: Utterance, territory: str | None, now: datetime | None, *,
                 any_territory: bool = False) -> bool:
        now = now or datetime.now(UTC)
        persona = self.personas.get(utt.persona)
        if persona is None and utt.persona == FALLBACK_PERSONA.name:
            persona = FALLBACK_PERSONA
        if persona is None:
            return False
        if utt.is_template:
            if persona.template(utt.template_id or "") is None:
                return False
            return self._may_name(utt.artists, persona.name, territory,
                                  any_territory=any_territory)
        line = self.lines.get(utt.line_id)
        if line is None or (utt.engine == "clip") != bool(line.clip_sha256):
            return False
        if line.artist_id not in utt.artists:
            return False  # an utterance that does not record its own artist is not trusted
        if not self.lines.line_usable(utt.line_id, utt.artist_id, persona.name, territory, now,
                                      any_territory=any_territory):
            return False
        others = [a for a in utt.artists if a != line.artist_id]
        return self._may_name(others, persona.name, territory, any_territory=any_territory)

    # -- audio ----------------------------------------------------------------------------
    def _fail(self, reason: str) -> None:
        with self._lock:
            self.failures += 1
            self.failure_reasons[reason] += 1

    def _synthesize(self, utt: Utterance) -> np.ndarray:
        lufs = self.config.audio.voice_lufs
        if utt.engine == "clip":
            line = self.lines.get(utt.line_id)
            if line is None or line.clip_path is None:
                raise LookupError(f"clip of line {utt.line_id} is gone")
            mono, rate = self._clips.synthesize(utt.text, VoiceParams(clip_path=line.clip_path))
            return to_house(mono, rate, (), lufs)
        persona = self.persona(utt.persona)
        engine = self._engines.get(utt.engine, self._espeak)
        return synthesize_line(engine, utt.text, persona.voice, persona.chain, lufs)

    def _timed_synthesize(self, utt: Utterance) -> np.ndarray:
        started = time.perf_counter()
        try:
            return self._synthesize(utt)
        finally:
            with self._lock:
                self.renders += 1
                self.render_s += time.perf_counter() - started

    def render(self, utt: Utterance, *, wait_s: float = 0.0) -> np.ndarray | None:
        """(2, n) float32 at 44.1 kHz and the voice loudness, or None (not airable, or failed).

        Blocking for espeak-ng and clips (milliseconds); call it in an executor right after
        :meth:`choose`, so speech is ready long before it is due. A Kokoro line is handed to the
        speech worker and not waited for (up to ``wait_s`` if given): what comes back then is
        its stand-in, and :meth:`audio_for` gives the Kokoro render once it is there. Nothing
        airs from here, so the territory is not checked (it was when the line was chosen, and
        is again in :meth:`audio_for`, with the listener's).
        """
        if not self._airable(utt, None, None, any_territory=True):
            return None
        with self._lock:
            self._remember(self._known.get(utt.key, utt))
        cached = self.cache.get(utt.key)
        if cached is not None:
            with self._lock:
                self.cache_hits += 1
            self.cache.ensure_indexed(utt)  # who it names, as chosen now, for revocations
            return cached
        if utt.engine in DEFERRED_ENGINES:
            return self._render_deferred(utt, wait_s)
        return self._render_now(utt)

    def _render_now(self, utt: Utterance) -> np.ndarray | None:
        try:
            audio = self._timed_synthesize(utt)
        except Exception as exc:
            logger.error("speech render failed (%s, %s): %s", utt.engine, utt.line_id, exc)
            self._fail(f"render:{utt.engine}")
            return None
        return audio if self._keep(utt, audio) else None

    def _keep(self, utt: Utterance, audio: np.ndarray) -> bool:
        """Cache a render unless its line stopped being airable meanwhile."""
        with self.lines.lock:  # no revocation can slip between this check and the write
            if not self._airable(utt, None, None, any_territory=True):
                return False
            try:
                self.cache.put(utt, audio)
            except OSError as exc:
                logger.warning("voice cache write failed for %s: %s", utt.key, exc)
        return True

    def _render_deferred(self, utt: Utterance, wait_s: float) -> np.ndarray | None:
        persona = self.persona(utt.persona)
        with self._lock:
            nameless = self._nameless.get(utt.key)
        standins: list[Utterance] = []
        if nameless is not None:
            standins.append(nameless)
            if self.cache.get(nameless.key) is None:
                self._submit(nameless)  # first: every listener's greeting can use it
        future = self._submit(utt)
        espeak = dataclasses.replace(
            utt, engine="espeak",
            key=utterance_key(self._fingerprint(persona, "espeak"), utt.line_id, utt.text, None))
        standins.append(espeak)
        with self._lock:
            self._note(self._standins, utt.key, tuple(standins))
        if future is not None and wait_s > 0:
            # a timeout or a failed render: the stand-in is there for that
            with contextlib.suppress(Exception):
                future.result(timeout=wait_s)
        for candidate in (utt, *standins):
            audio = self.cache.get(candidate.key)
            if audio is not None:
                return audio
        return self._render_now(espeak)  # about 2 ms: something can always air

    def _submit(self, utt: Utterance) -> Future[None] | None:
        """Hand a deferred render to the speech worker (None when its queue is full)."""

        def job() -> None:
            # checked again here: the line may have been revoked while it waited
            if not self._airable(utt, None, None, any_territory=True):
                return
            if self.cache.get(utt.key) is not None:
                return
            try:
                audio = self._timed_synthesize(utt)
            except Exception as exc:
                logger.error("speech render failed (%s, %s): %s", utt.engine, utt.line_id, exc)
                persona = self.persona(utt.persona)
                if persona.engine == utt.engine:
                    self._set_engine(persona, "espeak", str(exc))
                return
            self._keep(utt, audio)

        future = self.speech.submit(utt.key, job)
        if future is None:
            logger.warning("speech queue full (%d): %s airs its stand-in", self.speech.max_pending,
                           utt.line_id)
        return future

    def wait_for_speech(self, timeout: float) -> bool:
        """Block until the speech worker has nothing left to do (tests and tools)."""
        return self.speech.wait_idle(timeout)

    def close(self) -> None:
        """Drop queued background renders (a render in progress finishes)."""
        self.speech.close()

    def audio_for(self, key: str, territory: str | None = None) -> np.ndarray | None:
        """The audio :meth:`serve` gives, without saying which rendering it is."""
        served = self.serve(key, territory)
        return None if served is None else served.audio

    def serve(self, key: str, territory: str | None = None) -> Served | None:
        """For the renderer when the voice is due: the cached audio and which rendering it is
        (the line's own, or the best stand-in ready), only if still airable for a listener in
        ``territory`` (the last check before airing). The session keeps what it got for its
        airing record.

        Pass the listener's territory: without one, a line or consent limited to territories
        fails closed (no audio), so a narrowed consent is in force for queued lines too.
        """
        with self._lock:
            utt = self._known.get(key)
            if utt is not None:
                self._known.move_to_end(key)
        if utt is None:
            utt = self.cache.utterance(key)
        if utt is None or not self.is_airable(utt, territory):
            return None
        audio = self.cache.get(key)
        if audio is not None:
            return Served(audio, utt, OWN, self._voice_of(utt))
        with self._lock:
            standins = self._standins.get(key, ())
        for standin in standins:  # its own render is not ready: the best stand-in airs
            audio = self.cache.get(standin.key)
            if audio is not None:
                variant = ESPEAK_STAND_IN if standin.engine == "espeak" else NAMELESS
                return Served(audio, standin, variant, self._voice_of(standin))
        return None

    def _voice_of(self, utt: Utterance) -> str:
        """The voice ``utt``'s engine speaks it with, for the airing record."""
        voice = self.persona(utt.persona).voice
        if utt.engine == "kokoro":
            return voice.kokoro_voice or ""
        if utt.engine == "espeak":
            return voice.voice
        if utt.engine == "neural":
            return voice.speaker or (voice.model_path.name if voice.model_path else "")
        return utt.engine

    def airing_event(self, utt: Utterance, *, listener_id: str, session_id: str,
                     event_id: str, served: Served | None = None, **context: str) -> Event:
        """The ledger event for ``utt`` heard to its end: it credits the line's artist and every
        artist its words name. ``context``: territory, tier, experiment, arm. ``served``: what
        this listener's session got for it (:meth:`serve`); when a stand-in aired in its place,
        the words, engine and voice recorded are the stand-in's. Counted for /metrics."""
        aired = served.utterance if served is not None else utt
        variant = served.variant if served is not None else OWN
        artists = sorted(set(utt.artists) | ({utt.artist_id} if utt.artist_id else set()))
        detail = {"engine": aired.engine,
                  "voice": served.voice if served is not None else self._voice_of(utt),
                  "variant": variant, "text": aired.text, "artists": artists}
        if variant != OWN:
            detail["stand_in_for"] = utt.engine
        with self._lock:
            self.aired_engines[aired.engine] += 1
            if variant != OWN:
                self.stand_ins_aired[variant] += 1
        return Event(event_id, "line_aired", listener_id, session_id=session_id,
                     persona=utt.persona, line_id=utt.line_id, artist_id=utt.artist_id,
                     detail=detail, **context)

    def record_airing(self, utt: Utterance, *, listener_id: str, session_id: str,
                      event_id: str) -> None:
        """Write the airing at once (blocking); the stream batches :meth:`airing_event`."""
        self.ledger.append([self.airing_event(utt, listener_id=listener_id,
                                              session_id=session_id, event_id=event_id)])

    # -- revocation -----------------------------------------------------------------------
    def on_revoke(self, callback: Callable[[str], None]) -> None:
        """``callback(line_id)`` after a revoke is committed and before it is acknowledged.

        A line revocation reports that line. A consent revocation reports every line id it
        silences: the artist's lines and the template line ids of utterances that name the artist
        (a template id is shared with other artists' utterances, so re-check queued ones with
        :meth:`is_airable` rather than assuming all are gone).
        """
        self._callbacks.append(callback)

    def _revoked(self, event: Revocation) -> None:
        if event.narrowed:
            # the renders stay: holders re-check each queued line in their own territory
            self._announce([event.line_id] if event.line_id is not None
                           else [ln.id for ln in self.lines.lines(event.artist_id)]
                           + [u.line_id for u in self._known_naming(event.artist_id)])
            return
        if event.line_id is not None:
            deleted = self.cache.delete_line(event.line_id)
        else:
            deleted = self.cache.delete_artist(event.artist_id)
        with self._lock:
            if event.line_id is not None:
                gone = [k for k, u in self._known.items() if u.line_id == event.line_id]
                subjects = [event.line_id]
            else:
                gone = [k for k, u in self._known.items() if event.artist_id in u.artists
                        or u.artist_id == event.artist_id]
                subjects = [ln.id for ln in self.lines.lines(event.artist_id)]
                subjects += [self._known[k].line_id for k in gone]
            for key in gone:
                self._known.pop(key, None)
                for table in (self._nameless, self._standins):
                    table.pop(key, None)
        deleted += self.cache.discard(gone)
        logger.info("revoked %s: %d cached renders deleted", event.subject, deleted)
        self._announce(subjects)

    def _known_naming(self, artist_id: str) -> list[Utterance]:
        with self._lock:
            return [u for u in self._known.values()
                    if artist_id in u.artists or u.artist_id == artist_id]

    def _announce(self, subjects: list[str]) -> None:
        for subject in dict.fromkeys(subjects):
            for callback in list(self._callbacks):
                try:
                    callback(subject)
                except Exception:
                    logger.exception("on_revoke callback failed for %s", subject)
