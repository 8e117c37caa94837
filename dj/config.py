"""One typed configuration schema, loaded from TOML files and ``DJ_*`` environment variables.

Every problem in the configuration is collected and reported at once, so that a broken file is
fixed in one pass rather than one error per start-up.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

HOUSE_SAMPLE_RATE = 44_100
HOUSE_CHANNELS = 2

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "config" / "default.toml"


class ConfigError(ValueError):
    """Raised with every problem found in a configuration, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class AudioConfig:
    target_lufs: float = -14.0
    voice_lufs: float = -16.0
    true_peak_dbtp: float = -1.0
    crossfade_s: float = 4.0
    duck_attack_ms: float = 150.0
    duck_release_ms: float = 500.0
    bitrate_kbps: int = 128
    block_s: float = 0.5
    dead_air_dbfs: float = -50.0
    dead_air_s: float = 2.0
    agc_range_db: float = 6.0  # slow level rider before the limiter; 0 turns it off
    agc_window_s: float = 1.5
    agc_speed_db_s: float = 6.0
    intro_ride_db: float = 6.0  # most a quiet intro is lifted at a transition; 0 turns it off


STREAM_PATHS = ("spliced", "full")
MAX_WORKERS = 64
ICY_CHARSETS = ("utf-8", "utf8", "latin-1", "latin1", "iso-8859-1")


@dataclass(frozen=True, slots=True)
class StreamConfig:
    station_name: str = "dj"
    # what players and directories show: icy-* stream headers and /status-json.xsl
    station_description: str = "a personal AI DJ station for every listener"
    station_genre: str = "Various"
    station_url: str = ""  # empty: the address the request came to
    station_admin: str = ""  # a contact, for /status-json.xsl
    station_location: str = ""
    icy_charset: str = "utf-8"  # of ICY StreamTitle: "utf-8", or "latin-1" for old players
    metaint: int = 16_000
    # sent ahead of real time: the player's start-up buffer, and so how far the stream runs ahead
    # of the ear (a skip is heard this much later)
    burst_s: float = 1.0
    pacing: bool = True
    resume_window_s: float = 600.0  # a reconnection within this resumes the programme
    stall_s: float = 30.0  # a client whose ear makes no progress for this long is dropped
    send_buffer_bytes: int = 16_384  # the kernel's share of what a client has not yet read
    # audio an unknown player holds before it starts playing; browsers and VLC, known by their
    # User-Agent, have their own (dj.stream.ear.PLAYER_BUFFER_S)
    player_buffer_s: float = 1.0
    # "spliced": shared pre-encoded track bodies with per-listener transitions (dj.audio.splice);
    # "full": every listener's whole stream rendered and encoded for them (the fallback)
    path: str = "spliced"
    body_cache_mb: int = 256  # encoded track bodies held in memory (all listeners share them)
    window_cache_mb: int = 64  # rendered transition pieces shared by listeners who get the same
    # rendered transitions kept on disk: shared by the serving processes and kept over restarts
    window_disk_mb: int = 512


@dataclass(frozen=True, slots=True)
class RecommendConfig:
    factors: int = 256
    regularization: float = 80.0
    iterations: int = 15
    alpha: float = 1.0
    exploration: float = 0.15
    repeat_window_s: float = 3600.0
    retrain_interval_s: float = 3600.0


@dataclass(frozen=True, slots=True)
class NarrateConfig:
    voices_dir: Path = REPO_ROOT / "voices"
    default_persona: str = "nova"
    no_repeat_airings: int = 8
    # threads rendering the neural voice (Kokoro), each niced so it only takes CPU the
    # stream's renderers leave idle; about 1 CPU-s per speech-s, so one thread covers a few
    # hundred listeners (bench/speech_cost.py)
    speech_threads: int = 2
    # at start-up, render each persona's shared opening lines (station ids, name-less
    # greetings) in the background, so a new listener's first words are the neural voice
    warm_openings: bool = True


@dataclass(frozen=True, slots=True)
class AccessConfig:
    # listeners without an account (any free name) may listen without a key; an account's
    # stream and controls always need its own key or token
    anonymous: bool = True
    anonymous_territory: str = "US"  # where anonymous listeners are taken to be, for licences
    # writes and controls (POST under /api) per token, or per client address without one:
    # a sustained rate and the burst allowed above it; 0 turns the limit off
    writes_per_minute: float = 60.0
    write_burst: int = 20


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path = field(default_factory=lambda: Path(platformdirs.user_data_dir("dj")))
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1  # serving processes behind the port (dj.server.workers); 0: one per core
    default_territory: str = "US"
    default_tier: str = "ad-supported"
    # one TOML file per experiment; the older single file of [[experiment]] tables is read too
    experiments_dir: Path = REPO_ROOT / "config" / "experiments"
    experiments_file: Path = REPO_ROOT / "config" / "experiments.toml"
    audio: AudioConfig = field(default_factory=AudioConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    recommend: RecommendConfig = field(default_factory=RecommendConfig)
    narrate: NarrateConfig = field(default_factory=NarrateConfig)
    access: AccessConfig = field(default_factory=AccessConfig)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "dj.sqlite3"

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def model_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


def _coerce(value: Any, default: Any, where: str, problems: list[str]) -> Any:
    kind = type(default)
    if isinstance(default, Path):
        if isinstance(value, str | Path):
            return Path(value).expanduser()
    elif isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {"1", "0", "true", "false", "yes", "no"}:
            return value.lower() in {"1", "true", "yes"}
    elif isinstance(default, int | float):
        try:
            return kind(value)
        except (TypeError, ValueError):
            pass
    elif isinstance(default, str) and isinstance(value, str):
        return value
    problems.append(f"{where}: expected {kind.__name__}, got {value!r}")
    return default


def _build(cls: type, data: Mapping[str, Any], prefix: str, problems: list[str]) -> Any:
    base = cls()
    known = {f.name: f for f in fields(cls)}
    changes: dict[str, Any] = {}
    for key, value in data.items():
        where = f"{prefix}{key}"
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            problems.append(
                f"{where}: unknown setting" + (f" (did you mean {hint[0]!r}?)" if hint else "")
            )
            continue
        current = getattr(base, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, Mapping):
                problems.append(f"{where}: expected a table")
                continue
            changes[key] = _build(type(current), value, f"{where}.", problems)
        else:
            changes[key] = _coerce(value, current, where, problems)
    return dataclasses.replace(base, **changes)


def _merge(into: dict[str, Any], data: Mapping[str, Any]) -> None:
    for key, value in data.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """``DJ_PORT=9000`` sets ``port``; ``DJ_AUDIO__TARGET_LUFS=-16`` sets ``audio.target_lufs``."""
    out: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith("DJ_"):
            continue
        path = name[3:].lower().split("__")
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def load_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Config:
    """Load ``config/default.toml``, then ``path``, then ``DJ_*`` variables, then ``overrides``."""
    raw: dict[str, Any] = {}
    problems: list[str] = []
    for source in (DEFAULT_CONFIG, path):
        if source is None or (source == DEFAULT_CONFIG and not source.exists()):
            continue
        try:
            _merge(raw, tomllib.loads(Path(source).read_text(encoding="utf-8")))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            problems.append(f"{source}: {exc}")
    _merge(raw, _env_overrides(os.environ if env is None else env))
    _merge(raw, {k: v for k, v in overrides.items() if v is not None})
    config = _build(Config, raw, "", problems)
    if config.stream.path not in STREAM_PATHS:
        problems.append(f"stream.path: {config.stream.path!r} is not one of "
                        + ", ".join(STREAM_PATHS))
    for where, code in (("default_territory", config.default_territory),
                        ("access.anonymous_territory", config.access.anonymous_territory)):
        if not (len(code) == 2 and code.isascii() and code.isalpha()):
            problems.append(f"{where}: {code!r} is not an ISO 3166-1 alpha-2 code")
    stream = config.stream
    if stream.icy_charset.strip().lower() not in ICY_CHARSETS:
        problems.append(f"stream.icy_charset: {stream.icy_charset!r} is not utf-8 or latin-1")
    for name in ("station_name", "station_description", "station_genre", "station_url",
                 "station_admin", "station_location"):
        if not getattr(stream, name).isprintable():  # they go into HTTP headers
            problems.append(f"stream.{name}: must not contain control characters")
    if not 0 <= config.workers <= MAX_WORKERS:
        problems.append(f"workers: must be from 0 (one per core) to {MAX_WORKERS}")
    if not 1 <= config.narrate.speech_threads <= 16:
        problems.append("narrate.speech_threads: must be from 1 to 16")
    if config.access.writes_per_minute < 0 or config.access.write_burst < 1:
        problems.append("access: writes_per_minute must be >= 0 and write_burst >= 1")
    if problems:
        raise ConfigError(problems)
    return config
