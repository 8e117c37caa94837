"""``dj report``: royalties, performance-rights and aired-lines reports from the ledger, as a table
(for people), CSV or JSON. The arithmetic is in :mod:`dj.ledger.royalties`.

``dj report`` with no subcommand still prints the all-time payout shares as CSV (``--method``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any, TextIO

from dj.catalog import Catalog
from dj.catalog.models import ROLES
from dj.ledger.royalties import (
    DEFAULT_MASTER_PCT,
    MODELS,
    ROUNDING_RULE,
    UNALLOCATED,
    LineRow,
    NoPlays,
    Period,
    PlaysRow,
    RoyaltyError,
    RoyaltyReport,
    by_party,
    format_minor,
    lines_report,
    parse_money,
    parse_pct,
    parse_period,
    plays_report,
    pool_weights,
    qualifying_plays,
    record_revenue,
    royalties,
)
from dj.store import Store

FORMATS = ("table", "csv", "json")
EXIT_NO_PLAYS = 1  # a well-formed request with nothing to report
EXIT_USAGE = 2  # a malformed request (period, amount, currency), as argparse's own errors
EXIT_PIPE = 141  # the output's reader went away (128 + SIGPIPE, as a shell reports it)

MODEL_TEXT = {
    "pro-rata": "each role's pool shared by each rightsholder's part of all qualifying plays",
    "user-centric": "each listener's equal part of a pool shared across only what that listener"
                    " played",
}

# all of time, for the old whole-ledger shares
_ALL_TIME = Period("all", datetime(1970, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC))


# -- the old report: all-time shares --------------------------------------------------------
def payout_shares(catalog: Catalog, method: str = "pro-rata") -> dict[tuple[str, str], float]:
    """Fraction of the pool per ``(party, role)`` over the whole ledger; fractions per role sum
    to 1 where every play carried that role (what no one holds is left out here)."""
    plays = qualifying_plays(catalog.store, _ALL_TIME)
    if not plays:
        return {}
    try:
        weights = pool_weights(plays, method)
    except RoyaltyError:
        raise ValueError(f"unknown payout method {method!r}") from None
    return {(party, role): float(w) for (role, party), w in by_party(weights).items()
            if party != UNALLOCATED}


def run_report(catalog: Catalog, method: str, out: TextIO) -> int:
    shares = payout_shares(catalog, method)
    writer = csv.writer(out)
    writer.writerow(["party", "role", f"{method} share"])
    for (party, role), value in sorted(shares.items(), key=lambda kv: (kv[0][1], -kv[1])):
        writer.writerow([party, role, f"{value:.6f}"])
    return 0


# -- the subcommands ------------------------------------------------------------------------
def add_arguments(report: argparse.ArgumentParser,
                  common: Sequence[tuple[Sequence[str], dict[str, Any]]],
                  ) -> argparse._SubParsersAction:
    """``royalties``, ``plays`` and ``lines`` under ``dj report``; ``common`` are the options
    every subcommand takes too (--config, --data-dir). Returns the subcommands, for others'
    reports (``dj report experiment``)."""
    sub = report.add_subparsers(dest="report_command",
                                metavar="{royalties,plays,lines,experiment}")

    def subparser(name: str, help_: str, description: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=description)
        for flags, kwargs in common:
            # SUPPRESS: given before the subcommand (dj report --data-dir X royalties) it stays
            p.add_argument(*flags, **{**kwargs, "default": argparse.SUPPRESS})
        p.add_argument("--period", required=True, metavar="YYYY-MM",
                       help="a calendar month in UTC (or one day, YYYY-MM-DD) of the plays'"
                            " start")
        p.add_argument("--format", choices=FORMATS, default="table")
        return p

    p = subparser(
        "royalties", "per rightsholder: plays, listeners, shares and payouts",
        "Per rightsholder (party, role): qualifying plays, distinct listeners, and the share of"
        " the role's pool under pro-rata (" + MODEL_TEXT["pro-rata"] + ") and user-centric ("
        + MODEL_TEXT["user-centric"] + "). The revenue splits into a master and a publishing"
        " pool (--master-pct). Money in minor units, rounded by the " + ROUNDING_RULE
        + ": every pool sums to the revenue exactly.")
    p.add_argument("--revenue", metavar="AMOUNT",
                   help="the period's revenue to pay out, e.g. 1000 or 1000.00 (without it:"
                        " shares only)")
    p.add_argument("--currency", default="EUR", help="ISO 4217 code (default EUR)")
    p.add_argument("--master-pct", default=str(DEFAULT_MASTER_PCT), metavar="PCT",
                   help="the master pool's percentage of the revenue; publishing gets the rest"
                        " (default 50)")
    p.add_argument("--model", choices=[*MODELS, "both"], default="both")
    p.add_argument("--record", action="store_true",
                   help="also record this revenue for the period: artists' statements"
                        " (GET /api/artists/{artist}/statement) then show amounts")
    p = subparser(
        "plays", "per track and territory, for performance-rights organisations",
        "One row per track and territory: featured artist, title, ISRC, album, label (the master"
        " rightsholder the plays carried), qualifying plays, performances (= qualifying plays:"
        " on a personal stream each play is one performance to one listener), territory.")
    p = subparser(
        "lines", "aired lines per artist",
        "Lines aired in the period, per artist credited (the line's own, and every artist it"
        " names), line and persona: airings and distinct listeners.")
    p.add_argument("--artist", metavar="ID", help="only this artist")
    return sub


def run(store: Store, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """A ``dj report`` subcommand; errors are a message on ``err`` and a non-zero exit."""
    try:
        period = parse_period(args.period)
        if args.report_command == "royalties":
            return _royalties(store, period, args, out, err)
        if args.report_command == "plays":
            write_plays(plays_report(store, period), args.format, out, period)
            return 0
        rows = lines_report(store, period, args.artist)
        if not rows:
            who = f" of {args.artist}" if args.artist else ""
            raise NoPlays(f"no lines{who} aired in {period.key}")
        write_lines(rows, args.format, out, period)
        return 0
    except NoPlays as exc:
        print(f"dj report {args.report_command}: {exc}", file=err)
        return EXIT_NO_PLAYS
    except RoyaltyError as exc:
        print(f"dj report {args.report_command}: {exc}", file=err)
        return EXIT_USAGE
    except BrokenPipeError:
        # the reader (head, less) has gone: no traceback, and nothing more to flush at exit
        if out is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE


def _royalties(store: Store, period: Period, args: argparse.Namespace, out: TextIO,
               err: TextIO) -> int:
    models = MODELS if args.model == "both" else (args.model,)
    master_pct = parse_pct(args.master_pct)
    revenue = parse_money(args.revenue, args.currency) if args.revenue is not None else None
    if args.record and revenue is None:
        raise RoyaltyError("--record needs --revenue")
    report = royalties(store, period, revenue, master_pct, models)
    write_royalties(report, args.format, out, err)
    if args.record and revenue is not None:
        record_revenue(store, period, revenue, master_pct)
        print(f"recorded {revenue} for {period.key}: artists' statements show amounts",
              file=err)
    return 0


# -- royalties ------------------------------------------------------------------------------
def _share(value: Fraction | None) -> str:
    return f"{float(value or 0):.9f}"


def _pct(value: Fraction | None) -> str:
    return f"{100 * float(value or 0):.4f}"


def _header(report: RoyaltyReport) -> list[str]:
    p = report.period
    lines = [f"Royalties for {p.key} (UTC, {p.start:%Y-%m-%d} to {p.end:%Y-%m-%d} exclusive):"
             f" {report.plays} qualifying plays (30 s heard) by {report.listeners} listeners,"
             f" {report.tracks} tracks."]
    for model in report.models:
        lines.append(f"  {model}: {MODEL_TEXT[model]}.")
    if report.split is not None:
        lines.append(f"  Revenue {report.split.revenue} in two pools: {report.split.describe()}"
                     " (--master-pct; publishing gets the rest).")
        lines.append(f"  Rounding: {ROUNDING_RULE}; every pool sums to its amount exactly.")
    else:
        lines.append("  Shares only (of each role's pool): give --revenue for amounts.")
    lines.append("  A % is of the role's pool; each play pays the rightsholders it carried when"
                 " it was heard.")
    if any(r.party == UNALLOCATED for r in report.rows):
        lines.append(f"  {UNALLOCATED}: the part of plays whose role had no rightsholder on"
                     " record: held, not spread over the others.")
    return lines


def write_royalties(report: RoyaltyReport, fmt: str, out: TextIO, err: TextIO) -> None:
    money = report.split is not None
    currency = report.split.revenue.currency if report.split else ""
    fmt_money = (lambda m: format_minor(m, currency))  # noqa: E731
    if fmt == "json":
        json.dump(royalties_json(report), out, indent=2, ensure_ascii=False)
        out.write("\n")
        return
    if fmt == "csv":
        # stdout stays machine-readable; the rules a person needs go to stderr
        for line in _header(report):
            print(line, file=err)
        writer = csv.writer(out)
        head = ["role", "party", "plays", "listeners"]
        for model in report.models:
            name = model.replace("-", "_")
            head += [f"{name}_share"] + ([f"{name}_amount"] if money else [])
        writer.writerow(head + (["currency"] if money else []))
        for r in report.rows:
            row: list[Any] = [r.role, r.party, r.plays, r.listeners]
            for model in report.models:
                row += [_share(r.share.get(model))]
                row += [fmt_money(r.amount[model])] if money else []
            writer.writerow(row + ([currency] if money else []))
        return
    # a table for people
    columns = ["role", "party", "plays", "listeners"]
    for model in report.models:
        columns += [f"{model} %"] + ([f"{model} {currency}"] if money else [])
    both = money and len(report.models) == 2
    if both:
        columns.append("user-centric - pro-rata")
    body: list[list[str]] = []
    for role in ROLES:
        in_role = [r for r in report.rows if r.role == role]
        for r in in_role:
            cells = [r.role, r.party, str(r.plays), str(r.listeners)]
            for model in report.models:
                cells += [_pct(r.share.get(model))]
                cells += [fmt_money(r.amount[model])] if money else []
            if both:
                cells.append(f"{'+' if r.amount[MODELS[1]] >= r.amount[MODELS[0]] else '-'}"
                             f"{fmt_money(abs(r.amount[MODELS[1]] - r.amount[MODELS[0]]))}")
            body.append(cells)
        cells = [role, "= pool", "", ""]
        for model in report.models:
            cells += [_pct(sum((r.share.get(model, Fraction(0)) for r in in_role), Fraction(0)))]
            cells += [fmt_money(report.pool_total(role, model))] if money else []
        body.append(cells + ([""] if both else []))
    if money:
        cells = ["all", "= revenue", "", ""]
        for model in report.models:
            cells += ["", fmt_money(sum(report.pool_total(role, model) for role in ROLES))]
        body.append(cells + ([""] if both else []))
    print("\n".join(_header(report)), file=out)
    print(file=out)
    _table(columns, body, out, numbers=range(2, len(columns)))


def royalties_json(report: RoyaltyReport) -> dict[str, Any]:
    split = report.split
    return {
        "period": report.period.key,
        "from": report.period.start.isoformat(),
        "until": report.period.end.isoformat(),
        "plays": report.plays,
        "listeners": report.listeners,
        "tracks": report.tracks,
        "models": {m: MODEL_TEXT[m] for m in report.models},
        "revenue": None if split is None else {
            "amount": split.revenue.minor, "currency": split.revenue.currency,
            "exponent": split.revenue.exponent, "master_pct": float(split.master_pct),
            "pools": split.pools, "rounding": ROUNDING_RULE,
        },
        "rows": [
            {"role": r.role, "party": r.party, "plays": r.plays, "listeners": r.listeners,
             **{m.replace("-", "_"): {
                 "share": float(r.share.get(m, 0)),
                 "share_exact": str(r.share.get(m, Fraction(0))),
                 "amount": r.amount.get(m) if split else None} for m in report.models}}
            for r in report.rows
        ],
    }


# -- plays and lines ------------------------------------------------------------------------
PLAYS_COLUMNS = ("featured_artist", "title", "isrc", "album", "label", "plays", "performances",
                 "territory")


def _write_rows(columns: tuple[str, ...], rows: list[Any], fmt: str, out: TextIO,
                period: Period, *, heading: str, numbers: tuple[int, ...],
                about: dict[str, str] | None = None) -> None:
    """One report's rows as JSON, CSV or a table under ``heading``; ``about`` goes into the JSON
    beside the period (what a column means)."""
    values = [[getattr(r, c) for c in columns] for r in rows]
    if fmt == "json":
        json.dump({"period": period.key, **(about or {}),
                   "rows": [dict(zip(columns, v, strict=True)) for v in values]},
                  out, indent=2, ensure_ascii=False)
        out.write("\n")
    elif fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows(values)
    else:
        print(heading + "\n", file=out)
        # text cells are people's words: one line of each, whatever it holds
        _table([c.replace("_", " ") for c in columns],
               [[" ".join(str(v).split()) for v in row] for row in values], out,
               numbers=numbers)


def write_plays(rows: list[PlaysRow], fmt: str, out: TextIO, period: Period) -> None:
    _write_rows(PLAYS_COLUMNS, rows, fmt, out, period, numbers=(5, 6),
                about={"performances": "qualifying plays"},
                heading=f"Qualifying plays per track and territory, {period.key} (UTC);"
                        " performances = qualifying plays; label = master rightsholder.")


LINES_COLUMNS = ("artist_id", "line_id", "persona", "airings", "listeners", "text")


def write_lines(rows: list[LineRow], fmt: str, out: TextIO, period: Period) -> None:
    _write_rows(LINES_COLUMNS, rows, fmt, out, period, numbers=(3, 4),
                heading=f"Aired lines per artist credited, {period.key} (UTC).")


def _table(columns: list[str], rows: list[list[str]], out: TextIO,
           numbers: Sequence[int]) -> None:
    """Aligned columns: those at ``numbers`` to the right, the others to the left."""
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c)
              for i, c in enumerate(columns)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in numbers else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    print(line(columns), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for r in rows:
        print(line(r), file=out)
