"""The ``dj`` command: demo, serve, ingest, train, eval, recommend, token, report."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from dj.auth.roles import ROLES
from dj.config import Config, ConfigError, load_config

logger = logging.getLogger("dj")


def _config(args: argparse.Namespace, **extra) -> Config:
    overrides = {
        "data_dir": getattr(args, "data_dir", None),
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
    }
    config = load_config(getattr(args, "config", None), **overrides, **extra)
    if getattr(args, "no_pacing", False):
        config = config.replace(stream=dataclasses.replace(config.stream, pacing=False))
    return config


def _open_catalog(config: Config):
    from dj.catalog import Catalog
    from dj.store import Store

    store = Store(config.db_path)
    return Catalog(store, config.media_dir)


def _make_bodies(config: Config, catalog, quiet: bool = False) -> None:
    """Master and encode every track's body once (the spliced path shares them); made bodies
    stay in the cache dir, so this is quick after the first time."""
    if config.stream.path != "spliced":
        return
    from dj.audio.bodies import BodyStore
    from dj.program.programme import track_cue

    def progress(done: int, total: int) -> None:
        print(f"\r  track bodies: {done}/{total}", end="" if done < total else "\n", flush=True)

    cues = [track_cue(t) for t in catalog.tracks()]
    if cues:
        BodyStore.for_config(config).warm_all(cues, progress=None if quiet else progress)


def _serve(config: Config, banner: list[str]) -> int:
    from aiohttp import web

    from dj.server.access_log import KeyHidingAccessLogger
    from dj.server.app import create_app
    from dj.server.memory import tune as tune_malloc
    from dj.server.wiring import build_station

    station = build_station(config)
    tune_malloc(station)  # before the worker threads start: they get the capped arenas
    app = create_app(config, station, own_station=True)
    base = f"http://{config.host}:{config.port}"
    personas = ", ".join(sorted(station.narrator.personas)) if station.narrator else "none"
    who = ("a free name listens anonymously; an account needs its ?key="
           if config.access.anonymous else "every listener needs their ?key=")
    print(
        "\n".join(
            [
                "",
                f"  dj is on the air: {len(station.catalog.tracks())} tracks, "
                f"personas: {personas}",
                f"  Web player:   {base}/",
                f"  Stream (VLC, mpv, ffmpeg): {base}/stream/NAME.mp3   ({who})",
                f"  e.g.          mpv --no-video {base}/stream/guest.mp3",
                f"  Now playing:  {base}/api/listeners/guest/now-playing",
                *banner,
                "",
            ]
        ),
        flush=True,
    )
    # streams are cancelled at shutdown, not waited for: SIGTERM ends within seconds
    web.run_app(app, host=config.host, port=config.port, print=None, shutdown_timeout=2.0,
                access_log_class=KeyHidingAccessLogger)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from dj.demo.build import build_demo
    from dj.demo.tokens import DEMO_LISTENER, FILE_NAME, demo_tokens

    config = _config(args)
    catalog = _open_catalog(config)
    summary = build_demo(config, catalog, progress=True)
    _make_bodies(config, catalog)
    print(f"{summary.describe()}\n  data dir: {config.data_dir}", flush=True)
    tokens = demo_tokens(config, catalog)
    base = f"http://{config.host}:{config.port}"
    banner = ["", f"  Demo tokens (kept in {config.data_dir / FILE_NAME}; Authorization: Bearer"
                  " <token>; dj token list / revoke):"]
    for t in tokens:
        if t.role == "stream-key":
            banner.append(f"    {DEMO_LISTENER}'s own stream: {base}/stream/{DEMO_LISTENER}.mp3"
                          f"?key={t.token}")
        else:
            banner.append(f"    {t.role:<9} {t.subject or '':<15} {t.token}")
    return _serve(config, banner)


def cmd_serve(args: argparse.Namespace) -> int:
    return _serve(_config(args), [])


def cmd_ingest(args: argparse.Namespace) -> int:
    from dj.catalog import WORLDWIDE, Deal
    from dj.catalog.ingest import ingest

    config = _config(args)
    catalog = _open_catalog(config)
    default_deals = None
    if args.default_territories:
        terr = frozenset(t.strip().upper() for t in args.default_territories.split(","))
        default_deals = [Deal(track_id="", territories=terr or frozenset({WORLDWIDE}))]
    report = ingest(
        catalog,
        config.media_dir,
        Path(args.directory),
        args.manifest,
        target_lufs=config.audio.target_lufs,
        crossfade_s=config.audio.crossfade_s,
        progress=not args.quiet,
        default_deals=default_deals,
    )
    print(report.format_table())
    _make_bodies(config, catalog, quiet=args.quiet)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from dj.ledger import Ledger
    from dj.server.wiring import load_or_train, pin_blas_threads, training_interactions

    pin_blas_threads()
    config = _config(args)
    catalog = _open_catalog(config)
    ledger = Ledger(catalog.store)
    model = load_or_train(config, catalog, retrain=True, ledger=ledger)
    logged = len(training_interactions(catalog, ledger)) - len(catalog.interactions())
    print(
        f"trained on {len(catalog.interactions())} history interactions and {logged:+d} pairs"
        f" from what the station logged; {len(model.item_ids)} tracks; saved in"
        f" {config.model_dir} (a running server picks it up)"
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from dj.recommend.evaluate import run_eval

    return run_eval(Path(args.interactions), seed=args.seed)


def cmd_recommend(args: argparse.Namespace) -> int:
    from dj.recommend.evaluate import run_recommend

    return run_recommend(Path(args.interactions), Path(args.users), n=args.n)


def cmd_token(args: argparse.Namespace) -> int:
    from dj.auth import RoleError, TokenStore
    from dj.catalog import Listener

    config = _config(args)
    catalog = _open_catalog(config)
    tokens = TokenStore(catalog.store)
    if args.token_command == "list":
        rows = tokens.list(role=args.role)
        print("id        role        subject          state    created_at                 "
              "expires_at                 label")
        for t in rows:
            print(f"{t.id:<9} {t.role:<11} {t.subject or '-':<16} {t.state():<8} "
                  f"{t.created_at:<26} {t.expires_at or '-':<26} {t.label}")
        return 0
    if args.token_command == "revoke":
        if not tokens.revoke(args.id):
            print(f"no live token {args.id!r} (see dj token list)", file=sys.stderr)
            return 1
        print(f"token {args.id} revoked")
        return 0
    subject = {"artist": args.artist, "listener": args.listener,
               "stream-key": args.listener}.get(args.role) or args.subject
    if args.role == "artist" and catalog.artist(subject or "") is None:
        print(f"unknown artist {subject!r} (dj token create --role artist --artist ID)",
              file=sys.stderr)
        return 2
    if args.role in ("listener", "stream-key"):
        from dj.stream.station import BadRequest, check_listener_id

        try:
            check_listener_id(subject or "")
        except BadRequest as exc:
            print(f"--listener: {exc}", file=sys.stderr)
            return 2
        if catalog.listener(subject) is None:  # the token is the account's: make it
            territory = (args.territory or config.default_territory).upper()
            if not (len(territory) == 2 and territory.isascii() and territory.isalpha()):
                print(f"--territory: {territory!r} is not an ISO 3166-1 alpha-2 code",
                      file=sys.stderr)
                return 2
            catalog.add_listener(Listener(subject, territory, config.default_tier))
    try:
        print(tokens.create(args.role, subject, args.label, expires_days=args.expires))
    except (RoleError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from dj.ledger import Ledger
    from dj.ledger.report import run, run_report

    config = _config(args)
    catalog = _open_catalog(config)
    Ledger(catalog.store)  # an empty data dir has no ledger tables yet
    if getattr(args, "report_command", None) is None:  # the old all-time shares
        return run_report(catalog, method=args.method, out=sys.stdout)
    return run(catalog.store, args, sys.stdout, sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dj", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, server: bool = False) -> None:
        p.add_argument("--config", type=Path, help="a TOML file over config/default.toml")
        p.add_argument("--data-dir", type=Path, help="catalog, database, models and caches")
        if server:
            p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
            p.add_argument("--port", type=int, help="port (default 8000)")
            p.add_argument(
                "--no-pacing",
                action="store_true",
                help="stream as fast as the client reads (tests and tools only)",
            )

    p = sub.add_parser("demo", help="make the demo catalog if missing, then serve it")
    common(p, server=True)
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("serve", help="serve the catalog in the data dir")
    common(p, server=True)
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("ingest", help="add audio files (and a manifest's metadata and deals)")
    common(p)
    p.add_argument("directory")
    p.add_argument("--manifest", type=Path)
    p.add_argument(
        "--default-territories", help="deal for files the manifest does not cover, e.g. WW or US,GB"
    )
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_ingest)
    p = sub.add_parser("train", help="retrain the station's recommender now")
    common(p)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("eval", help="offline evaluation against baselines")
    p.add_argument("--interactions", required=True, help="TSV user<TAB>item<TAB>count")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_eval)
    p = sub.add_parser("recommend", help="top-n recommendations for listed users")
    p.add_argument("--interactions", required=True)
    p.add_argument("--users", required=True, help="one user id per line")
    p.add_argument("-n", type=int, default=10)
    p.set_defaults(func=cmd_recommend)
    p = sub.add_parser("token", help="API tokens")
    tsub = p.add_subparsers(dest="token_command", required=True)
    t = tsub.add_parser("create", help="create a bearer token (shown once)")
    common(t)
    t.add_argument("--role", required=True, choices=list(ROLES))
    t.add_argument("--artist", help="the artist id, for --role artist")
    t.add_argument("--listener", help="the listener id, for --role listener or stream-key"
                   " (the account is made if it is new)")
    t.add_argument("--territory", help="a new listener account's territory (default:"
                   " default_territory)")
    t.add_argument("--subject", help="the subject, for other roles (product: a team)")
    t.add_argument("--expires", type=float, metavar="DAYS", help="stops working after DAYS")
    t.add_argument("--label", default="", help="a note, e.g. which device holds it")
    t.set_defaults(func=cmd_token)
    t = tsub.add_parser("list", help="every token: id, role, subject, state (no secrets)")
    common(t)
    t.add_argument("--role", choices=list(ROLES))
    t.set_defaults(func=cmd_token)
    t = tsub.add_parser("revoke", help="revoke a token by its id (it stops working at once)")
    common(t)
    t.add_argument("id")
    t.set_defaults(func=cmd_token)
    p = sub.add_parser("report", help="royalties, plays and lines reports from the ledger",
                       description="Without a subcommand: all-time payout shares as CSV.")
    common(p)
    p.add_argument("--method", choices=["pro-rata", "user-centric"], default="pro-rata",
                   help="without a subcommand: the payout model of the shares")
    p.set_defaults(func=cmd_report)
    from dj.ledger.report import add_arguments as report_arguments

    report_arguments(p, [(("--config",), {"type": Path, "help": "a TOML file over"
                                          " config/default.toml"}),
                         (("--data-dir",), {"type": Path, "help": "catalog, database, models"
                                            " and caches"})])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
