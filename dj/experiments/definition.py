"""What an experiment is, as a product team writes it: one TOML file per experiment under
``config/experiments/`` (name, salt, arms, traffic, window, territories, primary metric,
guardrails with their non-inferiority margins). The older ``[[experiment]]`` list in one file
is still read.

A malformed file is logged with its path and reason and skipped alone: the station plays on
with the other experiments (and without any, everyone hears the default persona).
"""

from __future__ import annotations

import logging
import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, TypeVar

from dj.experiments.metrics import DEFAULT_MARGINS, METRICS, PRIMARY_DEFAULT

logger = logging.getLogger(__name__)

NAME = re.compile(r"[a-z0-9][a-z0-9_.\-]{0,63}")
#: the persona settings an arm may change (fields of ``dj.narrate.Persona``), with their ranges
#: (those of a persona file's ``[talk]`` table)
OVERRIDES: dict[str, tuple[float, float]] = {
    "talk_probability": (0.0, 1.0),  # chance of speaking at a transition once the gap passed
    "min_gap_s": (0.0, 86_400.0),  # never speaks again sooner than this
}

P = TypeVar("P")


class ExperimentError(ValueError):
    """A definition that cannot run; the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class Arm:
    name: str
    persona: str
    weight: float = 1.0
    #: persona settings this arm changes, e.g. (("talk_probability", 0.3),)
    overrides: tuple[tuple[str, float], ...] = ()

    def apply(self, persona: P) -> P:
        """``persona`` as this arm's sessions hear it: a copy with the overrides replaced
        (personas are frozen and shared by every session, so the loaded one never changes);
        ``persona`` itself when the arm changes nothing."""
        return replace(persona, **dict(self.overrides)) if self.overrides else persona


@dataclass(frozen=True, slots=True)
class Guardrail:
    """``metric`` may get worse by at most ``margin`` (in the metric's unit, or, when
    ``relative``, as a fraction of the control arm's mean) before the experiment must not ship."""

    metric: str
    margin: float
    relative: bool = True


DEFAULT_GUARDRAILS = tuple(Guardrail(m, margin, relative)
                           for m, (margin, relative) in DEFAULT_MARGINS.items())


@dataclass(frozen=True, slots=True)
class Experiment:
    name: str
    arms: tuple[Arm, ...]
    salt: str = ""
    traffic: float = 1.0  # the share of eligible listeners enrolled at all
    start: datetime | None = None  # UTC, inclusive; None: open
    end: datetime | None = None  # UTC, exclusive; None: open
    territories: tuple[str, ...] = ()  # ISO 3166-1 alpha-2; empty: every territory
    primary: str = PRIMARY_DEFAULT
    guardrails: tuple[Guardrail, ...] = DEFAULT_GUARDRAILS
    alpha: float = 0.05
    description: str = ""
    source: str = field(default="", compare=False)

    @property
    def control(self) -> Arm:
        """The first arm: every other arm is compared with it."""
        return self.arms[0]

    def arm(self, name: str) -> Arm | None:
        return next((a for a in self.arms if a.name == name), None)

    def live(self, now: datetime) -> bool:
        return (self.start is None or now >= self.start) and (self.end is None or now < self.end)

    def eligible(self, territory: str | None) -> bool:
        """Territory unknown (a page asking what a listener would get) counts as eligible."""
        return not self.territories or territory is None or territory.upper() in self.territories

    def assign(self, listener_id: str) -> Arm | None:
        from dj.experiments.assign import assign

        return assign(self, listener_id)


def _when(value: Any, where: str) -> datetime | None:
    """A TOML datetime or date (a date is its midnight), always UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ExperimentError(f"{where}: not an ISO 8601 date or time: {value!r}") from exc
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC)
    raise ExperimentError(f"{where}: expected a date or date-time, got {value!r}")


def _number(value: Any, where: str, low: float, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ExperimentError(f"{where}: expected a number, got {value!r}")
    if not low <= value <= high:
        raise ExperimentError(f"{where}: {value} is outside [{low}, {high}]")
    return float(value)


def _arm(raw: Any, where: str) -> Arm:
    if not isinstance(raw, Mapping):
        raise ExperimentError(f"{where}: expected a table")
    name, persona = raw.get("name"), raw.get("persona")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ExperimentError(f"{where}.name: expected a short lower-case name, got {name!r}")
    if not isinstance(persona, str) or not persona:
        raise ExperimentError(f"{where}.persona: expected a persona name")
    weight = _number(raw.get("weight", 1.0), f"{where}.weight", 0.0)
    if weight <= 0:
        raise ExperimentError(f"{where}.weight: must be above 0")
    overrides = raw.get("overrides", {})
    if not isinstance(overrides, Mapping):
        raise ExperimentError(f"{where}.overrides: expected a table")
    for key in overrides:
        if key not in OVERRIDES:
            raise ExperimentError(f"{where}.overrides.{key}: unknown; known: "
                                  + ", ".join(OVERRIDES))
    pairs = tuple(sorted((k, _number(v, f"{where}.overrides.{k}", *OVERRIDES[k]))
                         for k, v in overrides.items()))
    return Arm(name, persona, weight, pairs)


def _guardrail(raw: Any, where: str) -> Guardrail:
    if not isinstance(raw, Mapping) or raw.get("metric") not in METRICS:
        raise ExperimentError(f"{where}.metric: expected one of " + ", ".join(METRICS))
    if ("margin" in raw) == ("margin_pct" in raw):
        raise ExperimentError(f"{where}: give exactly one of margin (in the metric's unit)"
                              " or margin_pct (of the control mean)")
    if "margin_pct" in raw:
        return Guardrail(raw["metric"], _number(raw["margin_pct"], f"{where}.margin_pct", 0.0)
                         / 100.0, True)
    return Guardrail(raw["metric"], _number(raw["margin"], f"{where}.margin", 0.0), False)


def parse_experiment(raw: Mapping[str, Any], source: str = "") -> Experiment:
    """One experiment from its TOML table; raises :class:`ExperimentError` naming the field."""
    name = raw.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ExperimentError("name: expected 1-64 characters of a-z, 0-9, '_', '-' or '.'"
                              f" (got {name!r})")
    arms_raw = raw.get("arms", raw.get("arm"))
    if not isinstance(arms_raw, list) or len(arms_raw) < 2:
        raise ExperimentError("arms: an experiment needs at least two [[arms]]")
    arms = tuple(_arm(a, f"arms[{i}]") for i, a in enumerate(arms_raw))
    if len({a.name for a in arms}) != len(arms):
        raise ExperimentError("arms: arm names must differ")
    territories = raw.get("territories", [])
    if not isinstance(territories, list) or not all(
            isinstance(t, str) and len(t) == 2 and t.isascii() and t.isalpha()
            for t in territories):
        raise ExperimentError("territories: expected a list of ISO 3166-1 alpha-2 codes")
    primary = raw.get("primary", PRIMARY_DEFAULT)
    if primary not in METRICS:
        raise ExperimentError("primary: expected one of " + ", ".join(METRICS))
    guard_raw = raw.get("guardrails")
    guardrails = DEFAULT_GUARDRAILS if guard_raw is None else (
        tuple(_guardrail(g, f"guardrails[{i}]") for i, g in enumerate(guard_raw))
        if isinstance(guard_raw, list) else None)
    if guardrails is None:
        raise ExperimentError("guardrails: expected an array of tables")
    start, end = _when(raw.get("start"), "start"), _when(raw.get("end"), "end")
    if start and end and end <= start:
        raise ExperimentError("end: must be after start")
    salt = raw.get("salt", "")
    description = raw.get("description", "")
    if not isinstance(salt, str) or not isinstance(description, str):
        raise ExperimentError("salt and description must be strings")
    return Experiment(
        name=name, arms=arms, salt=salt,
        traffic=_number(raw.get("traffic", 1.0), "traffic", 0.0, 1.0),
        start=start, end=end, territories=tuple(t.upper() for t in territories),
        primary=primary, guardrails=tuple(g for g in guardrails if g.metric != primary),
        alpha=_number(raw.get("alpha", 0.05), "alpha", 1e-6, 0.5),
        description=description, source=source,
    )


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        logger.error("experiment file %s ignored: %s", path, exc)
        return None


def load_file(path: Path) -> list[Experiment]:
    """The older list form: ``[[experiment]]`` tables (with ``[[experiment.arm]]``), where
    ``active = false`` leaves one out. Each malformed experiment is skipped alone."""
    if not path.exists():
        return []
    data = _read(path)
    if data is None:
        return []
    raw = data.get("experiment", [])
    if not isinstance(raw, list):
        logger.error("experiments file %s ignored: [[experiment]] must be an array of tables",
                     path)
        return []
    out = []
    for i, e in enumerate(raw):
        try:
            if not isinstance(e, Mapping):
                raise ExperimentError("expected a table")
            if e.get("active", True):
                out.append(parse_experiment(e, f"{path}[{i}]"))
        except ExperimentError as exc:
            logger.error("%s: experiment[%d] skipped: %s", path, i, exc)
    return out


def load_dir(directory: Path) -> list[Experiment]:
    """Every ``*.toml`` in ``directory``, one experiment each, in file-name order (which also
    decides which experiment a listener eligible for two joins: the first)."""
    if not directory.is_dir():
        return []
    out = []
    for path in sorted(directory.glob("*.toml")):
        data = _read(path)
        if data is None:
            continue
        if data.get("active", True) is False:
            continue
        try:
            out.append(parse_experiment(data, str(path)))
        except ExperimentError as exc:
            logger.error("experiment file %s skipped: %s", path, exc)
    return out


def load_all(directory: Path, legacy_file: Path | None = None) -> list[Experiment]:
    """The experiments of ``directory`` then those of the older single file; a name defined
    twice keeps its first definition (and says so)."""
    seen: dict[str, Experiment] = {}
    for e in [*load_dir(directory), *(load_file(legacy_file) if legacy_file else [])]:
        if e.name in seen:
            logger.error("experiment %s in %s ignored: already defined in %s", e.name,
                         e.source, seen[e.name].source)
            continue
        seen[e.name] = e
    return list(seen.values())


def names(experiments: Iterable[Experiment]) -> list[str]:
    return [e.name for e in experiments]
