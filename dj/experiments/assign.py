"""Which arm a listener is in: a pure function of (listener, experiment name, salt), so it is the
same on every node and after every restart, with nothing stored; a new salt re-randomises.

Enrolment (``traffic``) and the arm come from two independent hashes, so growing the traffic
share adds listeners without moving anyone already enrolled to another arm.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path

from dj.experiments.definition import Arm, Experiment, load_file
from dj.store import Migration, Store

logger = logging.getLogger(__name__)

# the exposures of the first design (one row per session opened); nothing writes it now that
# exposure is the first heard line in the ledger, but the step stays so old databases migrate
MIGRATIONS = [
    Migration(
        "experiments-0001-exposures",
        """
        CREATE TABLE exposures (
            session_id TEXT PRIMARY KEY, experiment TEXT NOT NULL, arm TEXT NOT NULL,
            listener_id TEXT NOT NULL,
            at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
        );
        """,
    )
]


def unit_hash(key: str) -> float:
    """A uniform point in [0, 1) from ``key`` (the first 64 bits of its SHA-256)."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(experiment: Experiment, listener_id: str) -> Arm | None:
    """The listener's arm, or None when the traffic share leaves them out."""
    if experiment.traffic < 1.0 and unit_hash(
            f"traffic:{experiment.name}:{experiment.salt}:{listener_id}") >= experiment.traffic:
        return None
    # the same key as the first design, so listeners kept their arms across the change
    point = unit_hash(f"{experiment.name}:{experiment.salt}:{listener_id}") * sum(
        a.weight for a in experiment.arms)
    for arm in experiment.arms:
        point -= arm.weight
        if point < 0:
            return arm
    return experiment.arms[-1]


def load_experiments(path: Path) -> list[Experiment]:
    """The older single-file form (kept for existing configs); see :func:`load_file`."""
    return load_file(path)


class Experiments:
    """The running station's experiments: which persona a new session gets."""

    def __init__(self, store: Store, experiments: list[Experiment]) -> None:
        self.store = store
        store.migrate(MIGRATIONS)
        self.experiments = list(experiments)

    def get(self, name: str) -> Experiment | None:
        return next((e for e in self.experiments if e.name == name), None)

    def arm(self, experiment: str, arm: str) -> Arm | None:
        """The arm ``arm`` of the running experiment ``experiment``; None outside any."""
        found = self.get(experiment) if experiment else None
        return found.arm(arm) if found is not None else None

    def enrolment(self, listener_id: str, territory: str | None = None,
                  now: datetime | None = None) -> tuple[Experiment, Arm] | None:
        """The first live experiment (in definition order) that takes this listener."""
        now = now or datetime.now(UTC)
        for experiment in self.experiments:
            if not experiment.live(now) or not experiment.eligible(territory):
                continue
            arm = assign(experiment, listener_id)
            if arm is not None:
                return experiment, arm
        return None

    def persona_for(self, listener_id: str, default: str, territory: str | None = None,
                    ) -> tuple[str, str, str]:
        """``(persona, experiment, arm)`` for a listener; ``(default, "", "")`` outside every
        experiment."""
        enrolled = self.enrolment(listener_id, territory)
        if enrolled is None:
            return default, "", ""
        experiment, arm = enrolled
        return arm.persona, experiment.name, arm.name
