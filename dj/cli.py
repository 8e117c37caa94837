"""The ``dj`` command: demo, serve, ingest, train, eval, recommend, token, report."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

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

    from dj.server.app import create_app
    from dj.server.wiring import build_station

    station = build_station(config)
    app = create_app(config, station, own_station=True)
    base = f"http://{config.host}:{config.port}"
    personas = ", ".join(sorted(station.narrator.personas)) if station.narrator else "none"
    print(
        "\n".join(
            [
                "",
                f"  dj is on the air: {len(station.catalog.tracks())} tracks, "
                f"personas: {personas}",
                f"  Web player:   {base}/",
                f"  Stream (VLC, mpv, ffmpeg): {base}/stream/alice.mp3   (any listener name works)",
                f"  e.g.          mpv --no-video {base}/stream/alice.mp3",
                f"  Now playing:  {base}/api/listeners/alice/now-playing",
                *banner,
                "",
            ]
        ),
        flush=True,
    )
    # streams are cancelled at shutdown, not waited for: SIGTERM ends within seconds
    web.run_app(app, host=config.host, port=config.port, print=None, shutdown_timeout=2.0)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from dj.auth import create_token
    from dj.demo.build import build_demo

    config = _config(args)
    catalog = _open_catalog(config)
    summary = build_demo(config, catalog, progress=True)
    _make_bodies(config, catalog)
    print(f"{summary.describe()}\n  data dir: {config.data_dir}", flush=True)
    banner = ["", "  Artist API tokens (show once; Authorization: Bearer <token>):"]
    for artist in catalog.artists():
        token = create_token(catalog.store, "artist", artist.id)
        banner.append(f"    {artist.id:<15} {token}")
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
    from dj.server.wiring import load_or_train, pin_blas_threads

    pin_blas_threads()
    config = _config(args)
    catalog = _open_catalog(config)
    model = load_or_train(config, catalog, retrain=True)
    print(
        f"trained on {len(catalog.interactions())} interactions; {len(model.item_ids)} tracks;"
        f" saved in {config.model_dir}"
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from dj.recommend.evaluate import run_eval

    return run_eval(Path(args.interactions), seed=args.seed)


def cmd_recommend(args: argparse.Namespace) -> int:
    from dj.recommend.evaluate import run_recommend

    return run_recommend(Path(args.interactions), Path(args.users), n=args.n)


def cmd_token(args: argparse.Namespace) -> int:
    from dj.auth import create_token

    config = _config(args)
    catalog = _open_catalog(config)
    if args.role == "artist" and not args.artist:
        print("dj token create --role artist needs --artist ID", file=sys.stderr)
        return 2
    subject = args.artist or args.subject or ""
    if args.role == "artist" and catalog.artist(subject) is None:
        print(f"unknown artist {subject!r}", file=sys.stderr)
        return 2
    print(create_token(catalog.store, args.role, subject))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from dj.ledger import Ledger
    from dj.ledger.report import run_report

    config = _config(args)
    catalog = _open_catalog(config)
    Ledger(catalog.store)  # an empty data dir has no ledger tables yet
    return run_report(catalog, method=args.method, out=sys.stdout)


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
    t.add_argument("--role", required=True, choices=["artist", "listener", "product", "admin"])
    t.add_argument("--artist", help="the artist id, for --role artist")
    t.add_argument("--subject", help="the subject id, for other roles")
    t.set_defaults(func=cmd_token)
    p = sub.add_parser("report", help="payout report from the ledger")
    common(p)
    p.add_argument("--method", choices=["pro-rata", "user-centric"], default="pro-rata")
    p.set_defaults(func=cmd_report)
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
