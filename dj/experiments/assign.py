"""Which persona a listener hears: an experiment splits listeners into arms by a stable hash, so a
listener stays in one arm across sessions and restarts; each exposure is logged once a session."""

from __future__ import annotations

import hashlib
import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path

from dj.store import Migration, Store

logger = logging.getLogger(__name__)

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


@dataclass(frozen=True, slots=True)
class Arm:
    name: str
    persona: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Experiment:
    name: str
    arms: tuple[Arm, ...]
    salt: str = ""

    def assign(self, listener_id: str) -> Arm:
        """Stable for a listener: the same id always lands in the same arm."""
        digest = hashlib.sha256(f"{self.name}:{self.salt}:{listener_id}".encode()).digest()
        point = int.from_bytes(digest[:8], "big") / 2**64 * sum(a.weight for a in self.arms)
        for arm in self.arms:
            point -= arm.weight
            if point < 0:
                return arm
        return self.arms[-1]


def load_experiments(path: Path) -> list[Experiment]:
    """Read ``[[experiment]]`` tables. A file that is not TOML is logged (with its line) and gives
    no experiment; a malformed experiment is logged with its place and skipped alone."""
    if not path.exists():
        return []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        logger.error("experiments file %s ignored: %s", path, exc)
        return []
    raw = data.get("experiment", [])
    if not isinstance(raw, list):
        logger.error("experiments file %s ignored: [[experiment]] must be an array of tables",
                     path)
        return []
    experiments = []
    for i, e in enumerate(raw):
        try:
            if not e.get("active", True):
                continue
            arms = tuple(
                Arm(str(a["name"]), str(a["persona"]), float(a.get("weight", 1.0)))
                for a in e["arm"]
            )
            if not arms or any(not a.weight > 0 for a in arms):
                raise ValueError("needs arms, each with a weight above 0")
            experiments.append(Experiment(str(e["name"]), arms, str(e.get("salt", ""))))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            logger.error("%s: experiment[%d] skipped: %s", path, i, exc)
    return experiments


class Experiments:
    def __init__(self, store: Store, experiments: list[Experiment]) -> None:
        self.store = store
        store.migrate(MIGRATIONS)
        self.experiments = experiments

    def persona_for(self, listener_id: str, default: str) -> tuple[str, str, str]:
        """``(persona, experiment, arm)`` for a listener; the first active experiment decides."""
        if not self.experiments:
            return default, "", ""
        experiment = self.experiments[0]
        arm = experiment.assign(listener_id)
        return arm.persona, experiment.name, arm.name

    def record_exposure(self, session_id: str, experiment: str, arm: str, listener_id: str) -> None:
        if not experiment:
            return
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO exposures (session_id, experiment, arm, listener_id)"
                " VALUES (?,?,?,?)",
                (session_id, experiment, arm, listener_id),
            )
