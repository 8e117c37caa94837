"""Personas: the DJ's voices, one TOML file each under ``voices/personas/`` (see voices/README.md).

A persona that fails to load is reported (logged and kept in ``problems``) and skipped; the station
goes on with the others. Template slots are checked against :data:`dj.narrate.slots.SLOTS` at load,
and an unknown slot is reported with the file and line where it is written.
"""

from __future__ import annotations

import hashlib
import logging
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dj.narrate.chain import ChainError, ChainSpec, parse_chain
from dj.narrate.slots import SLOTS, SlotError, template_slots
from dj.narrate.voice_install import VOICE_SHA256

logger = logging.getLogger(__name__)

TEMPLATE_KINDS = ("intro", "back_announce", "station_id", "greeting")
ENGINES = ("espeak", "kokoro", "neural")


class PersonaError(ValueError):
    def __init__(self, path: Path, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.path = path
        self.problems = problems


@dataclass(frozen=True, slots=True)
class VoiceParams:
    """What a speech engine needs to speak: espeak voice and prosody (also the fallback of every
    other engine), a Kokoro voice pack and speed, neural model files, or (for the clip engine)
    the recorded clip to play."""

    voice: str = "en-us"
    rate_wpm: int = 170
    pitch: int = 50  # espeak 0-100
    range: int = 50  # espeak 0-100: how much the pitch moves
    model_path: Path | None = None  # neural: local model file
    config_path: Path | None = None  # neural: its config.json
    speaker: str | None = None  # neural: multi-speaker models
    clip_path: Path | None = None  # clip engine: the recording to play
    kokoro_voice: str | None = None  # kokoro: the voice pack, e.g. "af_heart"
    speed: float = 1.0  # kokoro: 0.5-2.0


@dataclass(frozen=True, slots=True)
class Template:
    id: str  # "<kind>-<8 hex of its text>": stable while the text is unchanged
    kind: str
    text: str
    slots: frozenset[str]


@dataclass(frozen=True, slots=True)
class Persona:
    name: str
    engine: str = "espeak"
    description: str = ""
    voice: VoiceParams = field(default_factory=VoiceParams)
    chain: ChainSpec = ()
    talk_probability: float = 0.5
    min_gap_s: float = 180.0
    duck_db: float = 12.0
    templates: tuple[Template, ...] = ()
    path: Path | None = None
    seed_tags: tuple[str, ...] = ()  # the sound a new listener's station starts from

    def templates_of(self, kind: str) -> list[Template]:
        return [t for t in self.templates if t.kind == kind]

    def template(self, template_id: str) -> Template | None:
        return next((t for t in self.templates if t.id == template_id), None)


#: Used when no persona file loads at all, so the station still has a (quiet) voice.
FALLBACK_PERSONA = Persona(
    name="fallback",
    description="built-in: used only when no persona file could be loaded",
    talk_probability=0.3,
    min_gap_s=600.0,
    templates=(
        Template(
            "station_id-builtin",
            "station_id",
            "You are listening to {station}.",
            frozenset({"station"}),
        ),
    ),
)


def _line_of(raw_lines: list[str], needle: str, occurrence: int) -> int:
    """1-based line of the ``occurrence``-th line containing ``needle`` (0 if not found)."""
    seen = 0
    for number, line in enumerate(raw_lines, start=1):
        if needle in line:
            if seen == occurrence:
                return number
            seen += 1
    return 0


def _num(
    data: Mapping[str, Any],
    key: str,
    default: float,
    lo: float,
    hi: float,
    where: str,
    problems: list[str],
) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        problems.append(f"{where}{key}: expected a number in [{lo}, {hi}], got {value!r}")
        return default
    return float(value)


def _templates(data: Any, path: Path, raw: str, problems: list[str]) -> tuple[Template, ...]:
    if not isinstance(data, Mapping):
        problems.append(f"{path}: [templates] must be a table of lists")
        return ()
    raw_lines = raw.splitlines()
    seen_slot: dict[str, int] = {}
    out: list[Template] = []
    for kind, texts in data.items():
        if kind not in TEMPLATE_KINDS:
            line = _line_of(raw_lines, kind, 0)
            problems.append(
                f"{path}:{line}: unknown template kind {kind!r} "
                f"(allowed: {', '.join(TEMPLATE_KINDS)})"
            )
            continue
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            problems.append(f"{path}: templates.{kind} must be a list of strings")
            continue
        for i, text in enumerate(texts):
            try:
                names = template_slots(text)
            except SlotError as exc:
                line = _line_of(raw_lines, text[:30], 0)
                problems.append(f"{path}:{line}: templates.{kind}[{i}]: {exc}")
                continue
            bad = False
            for name in names:
                needle = "{" + name + "}"
                line = _line_of(raw_lines, needle, seen_slot.get(needle, 0))
                seen_slot[needle] = seen_slot.get(needle, 0) + 1
                if name not in SLOTS:
                    problems.append(
                        f"{path}:{line}: templates.{kind}[{i}]: unknown slot {needle} "
                        f"(allowed: {', '.join(sorted(SLOTS))})"
                    )
                    bad = True
            if not bad:
                digest = hashlib.sha256(text.encode()).hexdigest()[:8]
                out.append(Template(f"{kind}-{digest}", kind, text, frozenset(names)))
    return tuple(out)


def _voice(data: Any, base: Path, problems: list[str]) -> VoiceParams:
    if not isinstance(data, Mapping):
        problems.append("[voice] must be a table")
        return VoiceParams()

    def path_of(key: str) -> Path | None:
        value = data.get(key)
        if value is None:
            return None
        p = Path(str(value)).expanduser()
        return p if p.is_absolute() else (base / p)

    name = data.get("name", "en-us")
    if not isinstance(name, str) or not name:
        problems.append(f"voice.name: expected a string, got {name!r}")
        name = "en-us"
    kokoro = data.get("kokoro")
    if kokoro is not None and kokoro not in VOICE_SHA256:
        problems.append(f"voice.kokoro: unknown Kokoro voice {kokoro!r} (known: "
                        + ", ".join(sorted(VOICE_SHA256)) + ")")
        kokoro = None
    return VoiceParams(
        voice=name,
        rate_wpm=int(_num(data, "rate_wpm", 170, 80, 450, "voice.", problems)),
        pitch=int(_num(data, "pitch", 50, 0, 100, "voice.", problems)),
        range=int(_num(data, "range", 50, 0, 100, "voice.", problems)),
        model_path=path_of("model_path"),
        config_path=path_of("config_path"),
        speaker=data.get("speaker"),
        kokoro_voice=kokoro,
        speed=_num(data, "speed", 1.0, 0.5, 2.0, "voice.", problems),
    )


def load_persona(path: Path) -> Persona:
    """Load one persona file; raises :class:`PersonaError` listing every problem found."""
    try:
        raw = path.read_text(encoding="utf-8")
        data = tomllib.loads(raw)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PersonaError(path, [f"{path}: {exc}"]) from None
    problems: list[str] = []
    known = {
        "name",
        "engine",
        "description",
        "voice",
        "chain",
        "talk",
        "duck_db",
        "templates",
        "seed_tags",
    }
    for key in data:
        if key not in known:
            problems.append(f"{path}:{_line_of(raw.splitlines(), key, 0)}: unknown key {key!r}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{path}: 'name' is required")
        name = path.stem
    engine = data.get("engine", "espeak")
    if engine not in ENGINES:
        problems.append(f"{path}: engine {engine!r} is not one of {', '.join(ENGINES)}")
    voice = _voice(data.get("voice", {}), path.parent, problems)
    if engine == "kokoro" and not voice.kokoro_voice:
        problems.append(f"{path}: engine \"kokoro\" needs [voice] kokoro = \"<voice pack>\"")
    try:
        chain = parse_chain(data.get("chain", []))
    except ChainError as exc:
        problems.append(f"{path}: {exc}")
        chain = ()
    talk = data.get("talk", {})
    if not isinstance(talk, Mapping):
        problems.append(f"{path}: [talk] must be a table")
        talk = {}
    where = f"{path}: "
    probability = _num(talk, "probability", 0.5, 0.0, 1.0, where + "talk.", problems)
    min_gap_s = _num(talk, "min_gap_s", 180.0, 0.0, 86_400.0, where + "talk.", problems)
    duck_db = _num(data, "duck_db", 12.0, 10.0, 14.0, where, problems)
    templates = _templates(data.get("templates", {}), path, raw, problems)
    seed_tags = data.get("seed_tags", [])
    if not isinstance(seed_tags, list) or not all(isinstance(t, str) for t in seed_tags):
        problems.append(f"{path}: seed_tags must be a list of words")
        seed_tags = []
    if not templates and not problems:
        problems.append(f"{path}: no templates")
    if problems:
        raise PersonaError(path, problems)
    return Persona(
        name=name.strip(),
        engine=engine,
        description=str(data.get("description", "")),
        voice=voice,
        chain=chain,
        talk_probability=probability,
        min_gap_s=min_gap_s,
        duck_db=duck_db,
        templates=templates,
        path=path,
        seed_tags=tuple(t.lower() for t in seed_tags),
    )


def load_personas(directory: Path) -> tuple[dict[str, Persona], list[str]]:
    """Every ``*.toml`` persona in ``directory``; broken ones are logged, listed, and skipped."""
    personas: dict[str, Persona] = {}
    problems: list[str] = []
    if not directory.is_dir():
        problems.append(f"{directory}: persona directory not found")
        logger.error("persona directory not found: %s", directory)
        return personas, problems
    for path in sorted(directory.glob("*.toml")):
        try:
            persona = load_persona(path)
        except PersonaError as exc:
            for problem in exc.problems:
                logger.error("persona skipped: %s", problem)
            problems.extend(exc.problems)
            continue
        if persona.name in personas:
            first = personas[persona.name].path
            problem = f"{path}: persona name {persona.name!r} already used by {first}"
            logger.error("persona skipped: %s", problem)
            problems.append(problem)
            continue
        personas[persona.name] = persona
    return personas, problems
