"""What the programme asks the narrator about (a transition) and what it gets (an utterance)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from dj.catalog.models import Track
from dj.narrate.persona import Persona

TEMPLATE_PREFIX = "template:"


@dataclass(frozen=True)
class NarrationContext:
    listener_id: str
    listener_name: str
    territory: str
    persona: str
    prev: Track | None  # the track that is ending
    next: Track | None  # the track about to start
    now: datetime  # the listener's local time if known; time_of_day is taken from its hour
    since_last_voice_s: float | None  # None: the DJ has not spoken in this session yet
    #: the session's own copy of ``persona`` when it differs from the loaded one (an experiment
    #: arm's overrides, such as its talk probability): the narrator decides with it. None: the
    #: persona as loaded.
    session_persona: Persona | None = None

    def __post_init__(self) -> None:
        if self.session_persona is not None and self.session_persona.name != self.persona:
            raise ValueError(f"session persona {self.session_persona.name!r} is not"
                             f" {self.persona!r}")


@dataclass(frozen=True)
class Utterance:
    key: str  # content id of what is spoken (persona + line id + final text/clip): the cache key
    line_id: str  # artist line content id, or "template:<persona>:<template id>"
    artist_id: str | None  # the artist the line is about / by (None for station IDs)
    persona: str
    text: str
    engine: str  # "espeak" | "kokoro" | "clip" | "neural"
    artists: tuple[str, ...] = ()  # every artist the words name (a template may name two)

    @property
    def is_template(self) -> bool:
        return self.line_id.startswith(TEMPLATE_PREFIX)

    @property
    def template_id(self) -> str | None:
        if not self.is_template:
            return None
        return self.line_id.split(":", 2)[2]


#: Which rendering of a line was served: its own, its name-less variant (a line that says the
#: listener's name), or espeak-ng's rendering of its words (a neural render not ready in time).
OWN, NAMELESS, ESPEAK_STAND_IN = "own", "name-less", "espeak"


@dataclass(frozen=True, slots=True)
class Served:
    """What a listener's session got for a line when it was due: the audio and which rendering it
    is. It travels with the audio to that session's airing record, so each airing names the
    engine, voice and words that listener heard."""

    audio: np.ndarray  # (2, n) float32 at 44.1 kHz
    utterance: Utterance  # what aired: the line itself, or the stand-in that aired for it
    variant: str  # OWN, NAMELESS or ESPEAK_STAND_IN
    voice: str = ""  # the engine's voice: a Kokoro pack, an espeak-ng voice, or "clip"

    @property
    def engine(self) -> str:
        return self.utterance.engine


def template_line_id(persona: str, template_id: str) -> str:
    return f"{TEMPLATE_PREFIX}{persona}:{template_id}"


def utterance_key(persona_fingerprint: str, line_id: str, text: str,
                  clip_sha256: str | None) -> str:
    material = "\x1f".join((persona_fingerprint, line_id, text, clip_sha256 or ""))
    return hashlib.sha256(material.encode()).hexdigest()[:32]
