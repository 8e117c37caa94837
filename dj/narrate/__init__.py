"""The narrator: personas, artist-approved lines, consent, script choice, speech engines, cache.

The programme uses :class:`Narrator` (choose → render ahead → audio_for when due → record_airing);
the artist API uses ``narrator.lines`` (:class:`LineRegistry`).
"""

from dj.narrate.consent import CONSENT_KINDS, NEURAL_VOICE, PERSONA_TEXT, RECORDED_CLIPS, Consent
from dj.narrate.engines import ClipError, SpeechEngine, SpeechError
from dj.narrate.lines import MOMENTS, Line, LineError, LineScope, line_content_id
from dj.narrate.narrator import Narrator
from dj.narrate.persona import (
    Persona,
    PersonaError,
    Template,
    VoiceParams,
    load_persona,
    load_personas,
)
from dj.narrate.registry import AuditEntry, LineNotFound, LineRegistry, Revocation
from dj.narrate.slots import SLOTS
from dj.narrate.utterance import NarrationContext, Utterance

__all__ = [
    "CONSENT_KINDS", "MOMENTS", "NEURAL_VOICE", "PERSONA_TEXT", "RECORDED_CLIPS", "SLOTS",
    "AuditEntry", "ClipError", "Consent", "Line", "LineError", "LineNotFound", "LineRegistry",
    "LineScope", "NarrationContext", "Narrator", "Persona", "PersonaError", "Revocation",
    "SpeechEngine", "SpeechError", "Template", "Utterance", "VoiceParams", "line_content_id",
    "load_persona", "load_personas",
]
