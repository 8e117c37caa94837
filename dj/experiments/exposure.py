"""When a listener was exposed to an experiment, and who deviated from their arm.

A listener is exposed when they first hear the arm's voice: the first ``line_aired`` event (fired
at the position the listener heard the line's end) that carries the experiment. Being assigned,
or opening a session, is not exposure: a listener who left before the DJ spoke never met the
treatment. The ledger is the durable record of that moment, so exposures are read from it and
never written twice.

A deviating listener (events of the experiment under another arm than the one the hash gives
them, or in a persona that is not their arm's) is left out of the analysis and counted.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from dj.experiments.definition import Experiment


class ExperimentEvent(Protocol):
    """The fields of a ledger event that place it in an experiment (``dj.ledger.log.Event``)."""

    kind: str
    at: str
    listener_id: str
    session_id: str
    experiment: str
    arm: str
    persona: str


@dataclass(frozen=True, slots=True)
class Exposure:
    listener_id: str
    arm: str
    at: datetime
    session_id: str


@functools.lru_cache(maxsize=1 << 16)  # each event's time is read by several metrics
def parse_at(value: str) -> datetime:
    at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def exposures(events: Iterable[ExperimentEvent], experiment: str) -> dict[str, Exposure]:
    """Each listener's first heard line in ``experiment`` (events in any order)."""
    first: dict[str, Exposure] = {}
    for e in events:
        if e.kind != "line_aired" or e.experiment != experiment:
            continue
        at = parse_at(e.at)
        seen = first.get(e.listener_id)
        if seen is None or at < seen.at:
            first[e.listener_id] = Exposure(e.listener_id, e.arm, at, e.session_id)
    return first


def deviations(events: Iterable[ExperimentEvent], experiment: Experiment) -> dict[str, str]:
    """Listener -> why their data cannot be analysed as their arm's."""
    arms: dict[str, set[str]] = defaultdict(set)
    personas: dict[str, set[str]] = defaultdict(set)
    for e in events:
        if e.experiment != experiment.name:
            continue
        arms[e.listener_id].add(e.arm)
        if e.kind in ("play_started", "line_aired") and e.persona:
            personas[e.listener_id].add(e.persona)
    out: dict[str, str] = {}
    for listener, seen in arms.items():
        assigned = experiment.assign(listener)
        if assigned is None or seen != {assigned.name}:
            out[listener] = (f"logged in arm(s) {', '.join(sorted(seen))}, assigned"
                             f" {assigned.name if assigned else 'none'}")
            continue
        if personas[listener] - {assigned.persona}:
            out[listener] = ("heard persona(s) "
                             + ", ".join(sorted(personas[listener] - {assigned.persona}))
                             + f" instead of {assigned.persona}")
    return out
