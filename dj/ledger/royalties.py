"""Royalties from the ledger: who is owed what for a period, under two models, from the same plays.

What counts: a *qualifying* play (30 s heard: its ``play_qualified`` event; a play written by a
tool with only an end of at least 30 s heard counts too) whose ``started_at`` falls in the period
(a calendar month, or one day, in UTC). Each play pays the rightsholders it carried when it was
heard (the ``rightsholders`` snapshot on the play), not today's shares.

Pools. The revenue splits into a master pool and a publishing pool (``master_pct``, default 50:
50/50), and each pool is divided among that role's rightsholders:

* **pro-rata**: every qualifying play in the period weighs the same, ``1 / plays``; a party gets
  the sum over plays of ``weight x its share of the play's role``.
* **user-centric**: every listener with a qualifying play weighs the same, ``1 / listeners``, and
  that part is divided across only that listener's own plays, ``1 / (listeners x their plays)``
  each; then as above.

A play whose role has no rightsholder (or shares under 100 %) leaves that part *unallocated*: it
is reported as the party ``(unallocated)`` and held, not spread over everyone else.

Money is in integer minor units (cents; the exponent per currency is in :data:`CURRENCIES`).
Weights are exact fractions; amounts are apportioned by the largest remainder (Hamilton) method:
each gets the floor of its exact quota, and the cents left over go one each to the largest
fractional remainders (ties: the larger weight, then the party's name in order). So the two role
pools sum to the revenue and each pool's amounts sum to the pool, exactly, under either model.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, TypeVar

from dj.catalog.models import ROLES
from dj.ledger.log import QUALIFYING_PLAY_S, now_iso
from dj.store import Migration, Store

MODELS = ("pro-rata", "user-centric")
UNALLOCATED = "(unallocated)"
DEFAULT_MASTER_PCT = Fraction(50)
ROUNDING_RULE = ("largest remainder (Hamilton): floor of each exact quota, the cents left go one"
                 " each to the largest remainders (ties: larger weight, then name)")

#: ISO 4217 minor-unit exponents of the currencies the station may be paid in
CURRENCIES: dict[str, int] = {
    "EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "CAD": 2, "AUD": 2, "NZD": 2, "SEK": 2, "NOK": 2,
    "DKK": 2, "PLN": 2, "CZK": 2, "BRL": 2, "MXN": 2, "INR": 2, "CNY": 2, "ZAR": 2,
    "JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "VND": 0,
    "BHD": 3, "KWD": 3, "JOD": 3, "TND": 3,
}
MAX_MINOR = 10**15  # a revenue beyond this is a typo, not a month's takings

# the royalty tables' own schema: revenue the operator records for a period, so that artists'
# statements can show amounts; append-only like the ledger (the latest record wins)
MIGRATIONS = [
    Migration(
        "royalties-0001-revenue",
        """
        CREATE TABLE royalty_revenue (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            period TEXT NOT NULL,
            amount_minor INTEGER NOT NULL,
            currency TEXT NOT NULL,
            master_pct TEXT NOT NULL,
            recorded_at TEXT NOT NULL
        );
        CREATE INDEX royalty_revenue_period ON royalty_revenue(period, seq);
        CREATE TRIGGER royalty_revenue_no_update BEFORE UPDATE ON royalty_revenue
        BEGIN SELECT RAISE(ABORT, 'royalty_revenue is append-only'); END;
        CREATE TRIGGER royalty_revenue_no_delete BEFORE DELETE ON royalty_revenue
        BEGIN SELECT RAISE(ABORT, 'royalty_revenue is append-only'); END;
        """,
    ),
]


class RoyaltyError(ValueError):
    """A request that cannot be answered: a malformed period or amount, an unknown currency."""


class NoPlays(RoyaltyError):
    """No qualifying play in the period: there is nothing to divide."""


# -- periods --------------------------------------------------------------------------------
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_DAY = re.compile(r"(\d{4})-(\d{2})-(\d{2})")


@dataclass(frozen=True, slots=True)
class Period:
    """A calendar month or day in UTC: ``start <= t < end``."""

    key: str
    start: datetime
    end: datetime

    def contains(self, iso: str) -> bool:
        at = _utc(iso)
        return at is not None and self.start <= at < self.end


def parse_period(text: str) -> Period:
    """``YYYY-MM`` (a month) or ``YYYY-MM-DD`` (a day), in UTC."""
    text = text.strip() if isinstance(text, str) else ""
    try:
        if m := _MONTH.fullmatch(text):
            year, month = int(m[1]), int(m[2])
            start = datetime(year, month, 1, tzinfo=UTC)
            end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
        elif m := _DAY.fullmatch(text):
            start = datetime(int(m[1]), int(m[2]), int(m[3]), tzinfo=UTC)
            end = start + timedelta(days=1)
        else:
            raise RoyaltyError(f"period {text[:40]!r}: expected YYYY-MM (a month) or YYYY-MM-DD")
    except (ValueError, OverflowError) as exc:
        if isinstance(exc, RoyaltyError):
            raise
        raise RoyaltyError(f"period {text[:40]!r} is not a date: {exc}") from None
    if start.year < 1970:
        raise RoyaltyError(f"period {text!r} is before the station could have played anything")
    return Period(text, start, end)


def current_period(today: date | None = None) -> Period:
    today = today or datetime.now(UTC).date()
    return parse_period(f"{today.year:04d}-{today.month:02d}")


def _utc(iso: str | None) -> datetime | None:
    """A ledger time as aware UTC (a time without an offset is taken to be UTC)."""
    if not iso:
        return None
    try:
        at = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


# -- money ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Money:
    minor: int
    currency: str

    @property
    def exponent(self) -> int:
        return CURRENCIES[self.currency]

    def __str__(self) -> str:
        return f"{format_minor(self.minor, self.currency)} {self.currency}"


def currency_exponent(currency: str) -> int:
    code = currency.strip().upper() if isinstance(currency, str) else ""
    if code not in CURRENCIES:
        raise RoyaltyError(f"unknown currency {currency[:10]!r}; known: {', '.join(CURRENCIES)}")
    return CURRENCIES[code]


def parse_money(amount: str, currency: str) -> Money:
    """``"100.00"`` EUR as 10000 cents; more decimals than the currency has is an error (never
    silently rounded), as is a negative, infinite or absurd amount."""
    exponent = currency_exponent(currency)
    try:
        value = Decimal(amount.strip().replace("_", ""))
    except (InvalidOperation, AttributeError):
        raise RoyaltyError(f"revenue {amount!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise RoyaltyError(f"revenue {amount!r} must be zero or more")
    minor = value.scaleb(exponent)
    if minor != minor.to_integral_value():
        raise RoyaltyError(f"revenue {amount!r} has more than {exponent} decimals for"
                           f" {currency.upper()}")
    if minor > MAX_MINOR:
        raise RoyaltyError(f"revenue {amount!r} is implausibly large")
    return Money(int(minor), currency.strip().upper())


def format_minor(minor: int, currency: str) -> str:
    exponent = CURRENCIES[currency]
    if exponent == 0:
        return str(minor)
    sign = "-" if minor < 0 else ""
    whole, part = divmod(abs(minor), 10**exponent)
    return f"{sign}{whole}.{part:0{exponent}d}"


def parse_pct(text: str) -> Fraction:
    """A percentage 0..100 as an exact fraction (``"50"``, ``"62.5"``)."""
    try:
        value = Fraction(Decimal(str(text).strip()))
    except (InvalidOperation, ValueError):
        raise RoyaltyError(f"{text!r} is not a percentage") from None
    if not 0 <= value <= 100:
        raise RoyaltyError(f"{text!r}: a percentage is from 0 to 100")
    return value


K = TypeVar("K", bound=Hashable)


def largest_remainder(total: int, weights: Mapping[K, Fraction]) -> dict[K, int]:
    """``total`` minor units apportioned in proportion to ``weights`` (Hamilton's method): each
    key gets the floor of its exact quota, and what is left goes one unit each to the largest
    remainders; ties go to the larger weight, then to the key in sorted order (deterministic).
    The result sums to ``total`` exactly, and each part is within one unit of its quota."""
    if total < 0:
        raise ValueError("total must not be negative")
    if any(w < 0 for w in weights.values()):
        raise ValueError("weights must not be negative")
    whole = sum(weights.values(), Fraction(0))
    if whole == 0:
        if total:
            raise ValueError("nothing to apportion among: every weight is zero")
        return {k: 0 for k in weights}
    out: dict[K, int] = {}
    remainders: list[tuple[Fraction, Fraction, str, K]] = []
    for key, weight in weights.items():
        quota = Fraction(total) * weight / whole
        floor = math.floor(quota)
        out[key] = floor
        remainders.append((quota - floor, weight, repr(key), key))
    left = total - sum(out.values())
    remainders.sort(key=lambda r: (-r[0], -r[1], r[2]))
    for _, _, _, key in remainders[:left]:
        out[key] += 1
    return out


# -- qualifying plays -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Holder:
    party: str
    role: str
    share: Fraction  # of the role, 0..1


@dataclass(frozen=True, slots=True)
class QualifyingPlay:
    play_id: str
    listener_id: str
    track_id: str
    artist_id: str
    territory: str
    started_at: str
    holders: tuple[Holder, ...]


def _holders(raw: str | None) -> tuple[Holder, ...]:
    try:
        items = json.loads(raw or "[]")
    except ValueError:
        return ()
    out = []
    for h in items if isinstance(items, list) else []:
        if not isinstance(h, dict) or h.get("role") not in ROLES:
            continue
        try:
            pct = Fraction(Decimal(str(h.get("share_pct"))))
        except (InvalidOperation, ValueError, TypeError):
            continue
        if pct > 0:
            out.append(Holder(str(h.get("party", "")), h["role"], pct / 100))
    return tuple(out)


def _widened(period: Period) -> tuple[str, str]:
    """SQL bounds a day wider than the period: the ledger's times are ISO strings and usually UTC,
    but one with another offset still sorts within a day of its instant; Python then decides."""
    return ((period.start - timedelta(days=1)).date().isoformat(),
            (period.end + timedelta(days=1)).date().isoformat())


def qualifying_plays(store: Store, period: Period) -> list[QualifyingPlay]:
    """The period's qualifying plays, oldest first."""
    low, high = _widened(period)
    rows = store.query(
        "SELECT event_id, listener_id, track_id, artist_id, territory, started_at, rightsholders"
        " FROM plays WHERE started_at >= ? AND started_at < ?"
        " AND (qualified = 1 OR played_s >= ?) ORDER BY started_at, event_id",
        (low, high, QUALIFYING_PLAY_S),
    )
    snapshots: dict[str, tuple[Holder, ...]] = {}  # one object per distinct rights snapshot
    out = []
    for r in rows:
        if not period.contains(r["started_at"]):
            continue
        raw = r["rightsholders"]
        if raw not in snapshots:
            snapshots[raw] = _holders(raw)
        out.append(QualifyingPlay(r["event_id"], r["listener_id"], r["track_id"],
                                  r["artist_id"], r["territory"], r["started_at"],
                                  snapshots[raw]))
    return out


# -- the two models -------------------------------------------------------------------------
#: (role, party, track_id) -> exact fraction of that role's pool
Weights = dict[tuple[str, str, str], Fraction]


def play_weights(plays: list[QualifyingPlay], model: str) -> dict[str, Fraction]:
    """Each play's exact weight under ``model``; they sum to 1."""
    if model == "pro-rata":
        return {p.play_id: Fraction(1, len(plays)) for p in plays}
    if model == "user-centric":
        per_listener: dict[str, int] = defaultdict(int)
        for p in plays:
            per_listener[p.listener_id] += 1
        n = len(per_listener)
        return {p.play_id: Fraction(1, n * per_listener[p.listener_id]) for p in plays}
    raise RoyaltyError(f"unknown model {model!r}; known: {', '.join(MODELS)}")


def pool_weights(plays: list[QualifyingPlay], model: str) -> Weights:
    """Who each role's pool goes to, per (role, party, track), exactly; each role sums to 1."""
    play_weights(plays[:1], model)  # an unknown model fails here, before any work
    # identical plays (listener, track, rights as heard) counted once: exact fractions are
    # slow, and a month is mostly repeats
    # (pro-rata weighs every play alike: the listener does not matter); rights snapshots are
    # shared objects (see qualifying_plays), so they group by identity, without hashing
    groups: dict[tuple[str, str, int], int] = defaultdict(int)
    snapshots: dict[int, tuple[Holder, ...]] = {}
    per_listener: dict[str, int] = defaultdict(int)
    for p in plays:
        who = p.listener_id if model == "user-centric" else ""
        groups[(who, p.track_id, id(p.holders))] += 1
        snapshots[id(p.holders)] = p.holders
        per_listener[p.listener_id] += 1
    out: Weights = defaultdict(Fraction)
    for (listener, track_id, snapshot), count in groups.items():
        holders = snapshots[snapshot]
        if model == "pro-rata":
            w = Fraction(count, len(plays))
        else:
            w = Fraction(count, len(per_listener) * per_listener[listener])
        for role in ROLES:
            in_role = [h for h in holders if h.role == role]
            total = sum((h.share for h in in_role), Fraction(0))
            scale = 1 / total if total > 1 else Fraction(1)  # over 100 %: scaled to 100 %
            for h in in_role:
                out[(role, h.party, track_id)] += w * h.share * scale
            if total < 1:  # held for whoever it belongs to, not spread over the others
                out[(role, UNALLOCATED, track_id)] += w * (1 - total)
    return dict(out)


def by_party(weights: Weights) -> dict[tuple[str, str], Fraction]:
    out: dict[tuple[str, str], Fraction] = defaultdict(Fraction)
    for (role, party, _), w in weights.items():
        out[(role, party)] += w
    return dict(out)


# -- the report -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Split:
    """How the revenue divides into role pools."""

    revenue: Money
    master_pct: Fraction
    pools: dict[str, int]  # role -> minor units

    @classmethod
    def of(cls, revenue: Money, master_pct: Fraction = DEFAULT_MASTER_PCT) -> Split:
        pools = largest_remainder(revenue.minor, {"master": master_pct,
                                                  "publishing": 100 - master_pct})
        return cls(revenue, master_pct, pools)

    def describe(self) -> str:
        parts = [f"{role} {_pct(pct)} % = {format_minor(self.pools[role], self.revenue.currency)}"
                 f" {self.revenue.currency}"
                 for role, pct in (("master", self.master_pct),
                                   ("publishing", 100 - self.master_pct))]
        return "; ".join(parts)


@dataclass(slots=True)
class Row:
    role: str
    party: str
    plays: int = 0
    listeners: int = 0
    share: dict[str, Fraction] = field(default_factory=dict)  # model -> fraction of the pool
    amount: dict[str, int] = field(default_factory=dict)  # model -> minor units


@dataclass(slots=True)
class RoyaltyReport:
    period: Period
    models: tuple[str, ...]
    plays: int
    listeners: int
    tracks: int
    rows: list[Row]
    split: Split | None
    qualifying: list[QualifyingPlay]
    #: model -> (role, party, track) -> exact weight; kept for per-track statements
    weights: dict[str, Weights]

    def pool_total(self, role: str, model: str) -> int:
        return sum(r.amount.get(model, 0) for r in self.rows if r.role == role)


def royalties(store: Store, period: Period, revenue: Money | None = None,
              master_pct: Fraction = DEFAULT_MASTER_PCT,
              models: Iterable[str] = MODELS,
              plays: list[QualifyingPlay] | None = None) -> RoyaltyReport:
    """The period's royalties per (role, party); amounts too when ``revenue`` is given.
    Raises :class:`NoPlays` when nothing qualified. ``plays``: the period's qualifying plays,
    when the caller has read them already."""
    models = tuple(models)
    for model in models:
        if model not in MODELS:
            raise RoyaltyError(f"unknown model {model!r}; known: {', '.join(MODELS)}")
    if plays is None:
        plays = qualifying_plays(store, period)
    if not plays:
        raise NoPlays(f"no qualifying plays in {period.key} (a play qualifies once"
                      f" {QUALIFYING_PLAY_S:g} s of it were heard)")
    rows: dict[tuple[str, str], Row] = {}
    listeners: dict[tuple[str, str], set[str]] = defaultdict(set)
    parties_of: dict[int, set[tuple[str, str]]] = {}  # per rights snapshot (shared objects)
    for p in plays:
        parties = parties_of.get(id(p.holders))
        if parties is None:
            parties = {(h.role, h.party) for h in p.holders}
            for role in ROLES:
                if sum((h.share for h in p.holders if h.role == role), Fraction(0)) < 1:
                    parties.add((role, UNALLOCATED))
            parties_of[id(p.holders)] = parties
        for key in parties:
            row = rows.setdefault(key, Row(*key))
            row.plays += 1
            listeners[key].add(p.listener_id)
    for key, row in rows.items():
        row.listeners = len(listeners[key])
    split = Split.of(revenue, master_pct) if revenue is not None else None
    weights = {model: pool_weights(plays, model) for model in models}
    for model, w in weights.items():
        parties = by_party(w)
        for key, share in parties.items():
            rows[key].share[model] = share
        if split is not None:
            for role in ROLES:
                in_role = {key: share for key, share in parties.items() if key[0] == role}
                for key, minor in largest_remainder(split.pools[role], in_role).items():
                    rows[key].amount[model] = minor
    ordered = sorted(rows.values(), key=lambda r: (ROLES.index(r.role), r.party == UNALLOCATED,
                                                   -r.share.get(models[0], Fraction(0)),
                                                   r.party))
    return RoyaltyReport(period, models, len(plays), len({p.listener_id for p in plays}),
                         len({p.track_id for p in plays}), ordered, split, plays, weights)


def per_track_amounts(report: RoyaltyReport, model: str) -> dict[tuple[str, str, str], int]:
    """Each party's amount under ``model`` divided across the tracks that earned it, again by the
    largest remainder, so that the parts add up to the party's amount in the report exactly."""
    if report.split is None:
        return {}
    weights = report.weights[model]
    by_key: dict[tuple[str, str], dict[tuple[str, str, str], Fraction]] = defaultdict(dict)
    for key, w in weights.items():
        by_key[(key[0], key[1])][key] = w
    out: dict[tuple[str, str, str], int] = {}
    for row in report.rows:
        out.update(largest_remainder(row.amount[model], by_key[(row.role, row.party)]))
    return out


def _pct(value: Fraction) -> str:
    return f"{float(value):g}"


# -- revenue the operator records -----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RecordedRevenue:
    period: str
    revenue: Money
    master_pct: Fraction
    recorded_at: str


def record_revenue(store: Store, period: Period, revenue: Money,
                   master_pct: Fraction = DEFAULT_MASTER_PCT) -> RecordedRevenue:
    """Record the period's revenue: artists' statements then show amounts. A later record for
    the same period supersedes it (both are kept)."""
    store.migrate(MIGRATIONS)
    at = now_iso()
    with store.transaction() as db:
        db.execute("INSERT INTO royalty_revenue (period, amount_minor, currency, master_pct,"
                   " recorded_at) VALUES (?, ?, ?, ?, ?)",
                   (period.key, revenue.minor, revenue.currency, str(master_pct), at))
    return RecordedRevenue(period.key, revenue, master_pct, at)


def recorded_revenue(store: Store, period: Period) -> RecordedRevenue | None:
    """The latest revenue recorded for the period, or None. Read only: never migrates (the
    table exists once something was recorded)."""
    if store.query_one("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                       " AND name = 'royalty_revenue'") is None:
        return None
    row = store.query_one("SELECT * FROM royalty_revenue WHERE period = ? ORDER BY seq DESC"
                          " LIMIT 1", (period.key,))
    if row is None or row["currency"] not in CURRENCIES:
        return None
    return RecordedRevenue(row["period"], Money(row["amount_minor"], row["currency"]),
                           Fraction(row["master_pct"]), row["recorded_at"])


# -- catalog metadata and other per-period reports ------------------------------------------
@dataclass(frozen=True, slots=True)
class TrackInfo:
    title: str
    artist_name: str
    isrc: str
    album: str


def track_info(store: Store) -> dict[str, TrackInfo]:
    """Titles, artist names, ISRCs and albums as the catalog has them now (empty where the
    database has no catalog)."""
    if store.query_one("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                       " AND name = 'tracks'") is None:
        return {}
    rows = store.query("SELECT t.id, t.title, t.isrc, t.album, COALESCE(a.name, t.artist_id)"
                       " AS artist_name FROM tracks t LEFT JOIN artists a ON a.id = t.artist_id")
    return {r["id"]: TrackInfo(r["title"], r["artist_name"], r["isrc"], r["album"])
            for r in rows}


@dataclass(frozen=True, slots=True)
class PlaysRow:
    """One line of a performance-rights report: a track in a territory."""

    featured_artist: str
    title: str
    isrc: str
    album: str
    label: str
    plays: int
    performances: int
    territory: str
    track_id: str


def plays_report(store: Store, period: Period) -> list[PlaysRow]:
    """Qualifying plays per track and territory. ``performances`` = qualifying plays: on a
    personal stream each play is one performance to one listener. ``label`` is the master
    rightsholder (several joined by "; ", the larger share first) as the plays carried it."""
    plays = qualifying_plays(store, period)
    if not plays:
        raise NoPlays(f"no qualifying plays in {period.key}")
    info = track_info(store)
    groups: dict[tuple[str, str], list[QualifyingPlay]] = defaultdict(list)
    for p in plays:
        groups[(p.track_id, p.territory)].append(p)
    out = []
    for (track_id, territory), group in groups.items():
        labels: dict[str, Fraction] = defaultdict(Fraction)
        for p in group:
            for h in p.holders:
                if h.role == "master":
                    labels[h.party] += h.share
        t = info.get(track_id)
        out.append(PlaysRow(
            featured_artist=t.artist_name if t else group[0].artist_id,
            title=t.title if t else track_id, isrc=t.isrc if t else "",
            album=t.album if t else "",
            label="; ".join(sorted(labels, key=lambda k: (-labels[k], k))),
            plays=len(group), performances=len(group), territory=territory, track_id=track_id))
    out.sort(key=lambda r: (r.territory, -r.plays, r.featured_artist, r.title, r.track_id))
    return out


@dataclass(frozen=True, slots=True)
class LineRow:
    artist_id: str
    line_id: str
    persona: str
    text: str
    airings: int
    listeners: int


def _period_airings(store: Store, period: Period, artist_id: str | None) -> list[Any]:
    low, high = _widened(period)
    rows = store.query(
        "SELECT line_id, artist_id, artists, persona, listener_id, text, aired_at FROM airings"
        " WHERE aired_at >= ? AND aired_at < ? ORDER BY aired_at, event_id", (low, high))
    out = []
    for r in rows:
        if not period.contains(r["aired_at"]):
            continue
        try:
            named = json.loads(r["artists"] or "[]")
        except ValueError:
            named = []
        # an airing credits the line's artist and every artist it names
        artists = {a for a in named if isinstance(a, str)} | ({r["artist_id"]} - {None})
        for artist in sorted(artists):
            if artist_id is None or artist == artist_id:
                out.append((artist, r))
    return out


def lines_report(store: Store, period: Period, artist_id: str | None = None) -> list[LineRow]:
    """Aired lines per artist credited (the line's own, and every artist it names), line and
    persona: airings and distinct listeners; the text as it last aired."""
    groups: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
    for artist, r in _period_airings(store, period, artist_id):
        groups[(artist, r["line_id"], r["persona"])].append(r)
    out = [LineRow(artist, line, persona, rows[-1]["text"], len(rows),
                   len({r["listener_id"] for r in rows}))
           for (artist, line, persona), rows in groups.items()]
    out.sort(key=lambda r: (r.artist_id, -r.airings, r.line_id, r.persona))
    return out


# -- an artist's statement ------------------------------------------------------------------
def _share_json(value: Fraction | None) -> float:
    return round(float(value or 0), 9)


#: a period's report, reused by statements while the ledger and its revenue are as they were,
#: or for STATEMENT_FRESH_S while the period is still being played (its ledger changes by the
#: second): every artist's statement needs the whole period, which is seconds for a big month
STATEMENT_FRESH_S = 60.0
_CACHED_PERIODS = 8
_period_cache: OrderedDict[tuple[str, str], tuple[float, tuple[Any, ...], _PeriodData]] = \
    OrderedDict()
_cache_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class _PeriodData:
    revenue: RecordedRevenue | None
    plays: list[QualifyingPlay]
    report: RoyaltyReport | None
    amounts: dict[str, dict[tuple[str, str, str], int]]


def _version(store: Store, period: Period) -> tuple[Any, ...]:
    seq = store.query_one("SELECT MAX(seq) FROM ledger_events")[0]
    revenue = recorded_revenue(store, period)
    return seq, revenue.recorded_at if revenue else None


def _period_data(store: Store, period: Period) -> _PeriodData:
    key = (str(store.path), period.key)
    version = _version(store, period)
    now = time.monotonic()
    with _cache_lock:
        hit = _period_cache.get(key)
        if hit is not None and (hit[1] == version or (
                now - hit[0] < STATEMENT_FRESH_S and hit[1][1] == version[1])):
            _period_cache.move_to_end(key)
            return hit[2]
    revenue = recorded_revenue(store, period)
    plays = qualifying_plays(store, period)
    # the whole period's plays make the pools: an artist's share depends on everyone's plays
    report = royalties(store, period, revenue.revenue if revenue else None,
                       revenue.master_pct if revenue else DEFAULT_MASTER_PCT,
                       plays=plays) if plays else None
    amounts = {m: per_track_amounts(report, m) for m in MODELS} if report else {}
    data = _PeriodData(revenue, plays, report, amounts)
    with _cache_lock:
        _period_cache[key] = (now, version, data)
        _period_cache.move_to_end(key)
        while len(_period_cache) > _CACHED_PERIODS:
            _period_cache.popitem(last=False)
    return data


def artist_statement(store: Store, artist_id: str, period: Period) -> dict[str, Any]:
    """What the API shows an artist: the period's qualifying plays of their tracks, listeners,
    aired lines, and for each track the share of each role's pool its rightsholders earned under
    both models; with amounts (minor units) once the operator recorded the period's revenue.
    A period without plays is an empty statement, not an error. While the period is being
    played, counts may be up to STATEMENT_FRESH_S old."""
    data = _period_data(store, period)
    revenue, report, amounts = data.revenue, data.report, data.amounts
    split = Split.of(revenue.revenue, revenue.master_pct) if revenue else None
    plays = [p for p in data.plays if p.artist_id == artist_id]
    info = track_info(store)
    holders_of: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for w in report.weights.values() if report else ():
        for role, party, track_id in w:
            holders_of[track_id].add((role, party))
    tracks = []
    for track_id in sorted({p.track_id for p in plays}):
        mine = [p for p in plays if p.track_id == track_id]
        rightsholders = []
        for role, party in sorted(holders_of[track_id], key=lambda k: (ROLES.index(k[0]), k[1])):
            key = (role, party, track_id)
            entry: dict[str, Any] = {"party": party, "role": role}
            for model in MODELS:
                name = model.replace("-", "_")
                entry[name] = _share_json(report.weights[model].get(key) if report else None)
                entry[f"{name}_amount"] = amounts[model].get(key, 0) if revenue else None
            rightsholders.append(entry)
        t = info.get(track_id)
        tracks.append({"track_id": track_id, "title": t.title if t else track_id,
                       "plays": len(mine), "listeners": len({p.listener_id for p in mine}),
                       "rightsholders": rightsholders})
    line_groups: dict[str, list[Any]] = defaultdict(list)
    for _, r in _period_airings(store, period, artist_id):
        line_groups[r["line_id"]].append(r)
    lines = [{"line_id": line_id, "text": rows[-1]["text"], "airings": len(rows),
              "listeners": len({r["listener_id"] for r in rows})}
             for line_id, rows in sorted(line_groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))]
    all_airings = [r for rows in line_groups.values() for r in rows]
    return {
        "artist": artist_id,
        "period": period.key,
        "from": period.start.isoformat(),
        "until": period.end.isoformat(),
        "plays": len(plays),
        "listeners": len({p.listener_id for p in plays}),
        "tracks": tracks,
        "lines": {"airings": len(all_airings),
                  "listeners": len({r["listener_id"] for r in all_airings}),
                  "lines": lines},
        "station": {"plays": report.plays if report else 0,
                    "listeners": report.listeners if report else 0},
        "revenue": None if revenue is None else {
            "amount": revenue.revenue.minor, "currency": revenue.revenue.currency,
            "exponent": revenue.revenue.exponent, "master_pct": float(revenue.master_pct),
            "pools": split.pools if split else {},
            "recorded_at": revenue.recorded_at,
        },
    }
