"""Per-listener metrics of an experiment, from the events the station logged at the position the
listener heard (the ledger): plays with the seconds heard and how they ended, aired lines,
sessions. Pure functions over event values, so the station, the reports and the simulation
(bench/ab_sim.py) compute them with the same code.

Every metric is one number per listener (the unit of randomisation), or, for a ratio such as
skips per play, a numerator and a denominator per listener, analysed with the delta method:
pooling counts across listeners would treat plays as independent, and they are not.

The time windows (the play a line introduced starts within VOICE_PLAY_WINDOW_S of it, a tune-out
ends within TUNE_OUT_S of it) compare the events' times, which are wall-clock times of heard
positions: right for paced streams, where a listener hears in real time; a stream served with
``--no-pacing`` (a tool reading faster than real time) squeezes them together.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal, Protocol

from dj.experiments.exposure import ExperimentEvent, Exposure, parse_at

VOICE_PLAY_WINDOW_S = 30.0  # a line introduces the play whose start is nearest, within this
TUNE_OUT_S = 10.0  # leaving within this after the DJ's line ends counts as a tune-out
PRE_DAYS = 14  # pre-experiment listening (the CUPED covariate) is read from this many days


class EventLike(ExperimentEvent, Protocol):
    """The fields of a ledger event the metrics read (``dj.ledger.log.Event`` has them)."""

    play_id: str | None
    heard_s: float | None
    outcome: str | None
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class MetricInfo:
    name: str
    label: str
    unit: str
    kind: Literal["mean", "ratio"]
    higher_is_better: bool
    description: str


METRICS: dict[str, MetricInfo] = {m.name: m for m in (
    MetricInfo("listening_s_per_day", "Listening time per listener-day", "s", "mean", True,
               "seconds heard, over the days from the listener's first session in the"
               " experiment to the analysis day"),
    MetricInfo("skip_after_voice", "Skip rate after a voice line", "skips/play", "ratio", False,
               "plays a DJ line introduced that the listener skipped, per such play"),
    MetricInfo("tuneout_after_voice", "Tune-out within 10 s of the DJ", "tune-outs/line",
               "ratio", False, "lines after whose end the listener left within 10 s, per line"),
    MetricInfo("sessions", "Sessions per listener", "sessions", "mean", True,
               "sessions in the experiment per listener"),
    MetricInfo("next_day_return", "Next-day return", "share", "mean", True,
               "listened again the UTC day after the first exposure (listeners whose next day"
               " has not ended are left out)"),
    MetricInfo("dead_air_s", "Dead air heard", "s", "mean", False,
               "seconds of silence heard before the dead-air guard cut them short"),
)}
PRIMARY_DEFAULT = "listening_s_per_day"
#: guardrail -> (margin, relative): relative margins are a fraction of the control mean; a rare
#: event (tune-outs) gets an absolute one, as a share of its small base could never be shown
DEFAULT_MARGINS: dict[str, tuple[float, bool]] = {
    "skip_after_voice": (0.10, True),
    "tuneout_after_voice": (0.02, False),
    "sessions": (0.05, True),
    "next_day_return": (0.05, True),
    "dead_air_s": (1.0, False),
}


@dataclass(slots=True)
class ListenerMetrics:
    listener_id: str
    arm: str
    exposed_at: datetime
    values: dict[str, float] = field(default_factory=dict)  # NaN: not defined yet
    ratios: dict[str, tuple[float, float]] = field(default_factory=dict)
    pre: float | None = None  # pre-experiment listening seconds per day, when there was any


@dataclass(slots=True)
class _Play:
    session_id: str
    started: datetime
    heard_s: float = 0.0
    outcome: str | None = None
    ended: datetime | None = None
    dead_air_s: float = 0.0


def _plays(events: Iterable[EventLike]) -> dict[str, _Play]:
    plays: dict[str, _Play] = {}
    pending: list[EventLike] = []
    for e in events:
        if e.kind == "play_started" and e.play_id:
            plays[e.play_id] = _Play(e.session_id, parse_at(e.at))
        elif e.kind in ("play_heard", "play_qualified", "play_ended") and e.play_id:
            pending.append(e)
    for e in pending:
        play = plays.get(e.play_id or "")
        if play is None:  # its start is outside what was read: nothing to attribute it to
            continue
        play.heard_s = max(play.heard_s, float(e.heard_s or 0.0))
        if e.kind == "play_ended":
            play.outcome, play.ended = e.outcome, parse_at(e.at)
            play.dead_air_s = float(e.detail.get("dead_air_s", 0.0) or 0.0)
    return plays


def _introduced(line_at: datetime, plays: Sequence[_Play]) -> _Play | None:
    """The play a line introduced: the one in its session whose start is nearest the line's
    end (voice-overs sit on the transition into the next track), within VOICE_PLAY_WINDOW_S."""
    best = min(plays, key=lambda p: abs((p.started - line_at).total_seconds()), default=None)
    if best is None or abs((best.started - line_at).total_seconds()) > VOICE_PLAY_WINDOW_S:
        return None
    return best


def one_listener(in_experiment: Sequence[EventLike], exposure: Exposure, until: datetime,
                 pre_events: Sequence[EventLike] = ()) -> ListenerMetrics:
    """The metrics of one exposed listener from their events in the experiment (read up to
    ``until``) and, for CUPED, their listening before it."""
    seen = [e for e in in_experiment if parse_at(e.at) <= until]
    out = ListenerMetrics(exposure.listener_id, exposure.arm, exposure.at)
    plays = _plays(seen)
    first_day = min((parse_at(e.at).date() for e in seen), default=exposure.at.date())
    days = max(1, (until.date() - first_day).days + 1)
    out.values["listening_s_per_day"] = sum(p.heard_s for p in plays.values()) / days
    out.values["sessions"] = float(len({e.session_id for e in seen if e.session_id}))
    out.values["dead_air_s"] = sum(p.dead_air_s for p in plays.values())
    next_day = exposure.at.date() + timedelta(days=1)
    out.values["next_day_return"] = (
        float(any(parse_at(e.at).date() == next_day for e in seen))
        if until.date() > next_day else float("nan"))
    by_session: dict[str, list[_Play]] = defaultdict(list)
    for p in plays.values():
        by_session[p.session_id].append(p)
    lines = [e for e in seen if e.kind == "line_aired"]
    introduced = {id(p): p for e in lines
                  if (p := _introduced(parse_at(e.at), by_session[e.session_id])) is not None}
    skipped = sum(1 for p in introduced.values() if p.outcome == "skipped")
    out.ratios["skip_after_voice"] = (float(skipped), float(len(introduced)))
    tuned_out = 0
    for e in lines:
        at = parse_at(e.at)
        if any(p.outcome == "left" and p.ended is not None
               and 0 <= (p.ended - at).total_seconds() <= TUNE_OUT_S
               for p in by_session[e.session_id]):
            tuned_out += 1
    out.ratios["tuneout_after_voice"] = (float(tuned_out), float(len(lines)))
    out.pre = pre_listening(pre_events, first_day)
    return out


def pre_listening(events: Sequence[EventLike], before: date) -> float | None:
    """Seconds heard per day over the PRE_DAYS days before ``before``; None without any play
    there (the listener is new: CUPED leaves them unadjusted)."""
    since = before - timedelta(days=PRE_DAYS)
    window = [e for e in events if since <= parse_at(e.at).date() < before]
    plays = _plays(window)
    if not plays:
        return None
    return sum(p.heard_s for p in plays.values()) / PRE_DAYS


def listener_metrics(
    in_experiment: Iterable[EventLike],
    exposures: Mapping[str, Exposure],
    until: datetime,
    pre_events: Iterable[EventLike] = (),
) -> list[ListenerMetrics]:
    """Every exposed listener's metrics (those not in ``exposures`` are left out)."""
    mine: dict[str, list[EventLike]] = defaultdict(list)
    for e in in_experiment:
        if e.listener_id in exposures:
            mine[e.listener_id].append(e)
    before: dict[str, list[EventLike]] = defaultdict(list)
    for e in pre_events:
        if e.listener_id in exposures:
            before[e.listener_id].append(e)
    return [one_listener(mine[lid], exp, until, before[lid])
            for lid, exp in sorted(exposures.items()) if exp.at <= until]


def value_of(row: ListenerMetrics, metric: str) -> float | tuple[float, float]:
    info = METRICS[metric]
    return row.ratios[metric] if info.kind == "ratio" else row.values[metric]
