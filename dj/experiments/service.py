"""Reports for the people who run experiments: read an experiment's events from the ledger, analyse
them, and keep the result briefly (a report page reloaded, or polled by a dashboard, does not
re-read the ledger each time; it is at most CACHE_S old)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from dj.experiments.analysis import analyse
from dj.experiments.definition import Experiment
from dj.experiments.exposure import parse_at
from dj.experiments.metrics import PRE_DAYS, EventLike

CACHE_S = 30.0


class LedgerReader(Protocol):
    """What the analysis reads of the ledger (``dj.ledger.Ledger`` has it)."""

    def experiment_events(self, experiment: str) -> list[Any]: ...

    def listening(self, listener_ids: Iterable[str], since: str, until: str,
                  exclude_experiment: str = "") -> list[Any]: ...


class UnknownExperiment(LookupError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        super().__init__(f"unknown experiment {name!r}; known: "
                         + (", ".join(self.known) or "none"))


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds")


def read_and_analyse(experiment: Experiment, ledger: LedgerReader,
                     now: datetime | None = None) -> dict[str, Any]:
    """The experiment's analysis from what the ledger holds (blocking)."""
    events: list[EventLike] = ledger.experiment_events(experiment.name)
    pre: list[EventLike] = []
    if events:
        first = min(parse_at(e.at) for e in events)
        last = max(parse_at(e.at) for e in events)
        pre = ledger.listening({e.listener_id for e in events},
                               _iso(first - timedelta(days=PRE_DAYS + 1)), _iso(last),
                               exclude_experiment=experiment.name)
    return analyse(experiment, events, pre, now=now)


class ExperimentReports:
    def __init__(self, experiments: Iterable[Experiment], ledger: LedgerReader,
                 cache_s: float = CACHE_S) -> None:
        self._experiments = {e.name: e for e in experiments}
        self._ledger = ledger
        self._cache_s = cache_s
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return sorted(self._experiments)

    def experiment(self, name: str) -> Experiment:
        found = self._experiments.get(name)
        if found is None:
            raise UnknownExperiment(name, self._experiments)
        return found

    def analysis(self, name: str) -> dict[str, Any]:
        """The analysis of ``name`` (blocking); raises :class:`UnknownExperiment`."""
        experiment = self.experiment(name)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(name)
            if hit is not None and now - hit[0] < self._cache_s:
                return hit[1]
        result = read_and_analyse(experiment, self._ledger)
        with self._lock:
            self._cache[name] = (now, result)
        return result
