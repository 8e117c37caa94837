"""The command line, run in-process as a user would run it."""

from __future__ import annotations

import pytest

from dj.auth import TokenStore
from dj.catalog import Artist, Catalog
from dj.cli import main as dj
from dj.config import ConfigError, load_config
from dj.store import Store


def test_token_create_prints_a_token_that_authenticates(tmp_path, capsys):
    store = Store(tmp_path / "dj.sqlite3")
    Catalog(store).add_artist(Artist("nova-lake", "Nova Lake"))
    assert dj(["token", "create", "--role", "artist", "--artist", "nova-lake",
               "--data-dir", str(tmp_path)]) == 0
    token = capsys.readouterr().out.strip()
    principal = TokenStore(store).authenticate(token)
    assert principal is not None and principal.role == "artist"
    assert principal.subject == "nova-lake"


def test_token_for_an_unknown_artist_is_refused(tmp_path, capsys):
    assert dj(["token", "create", "--role", "artist", "--artist", "nobody",
               "--data-dir", str(tmp_path)]) == 2
    assert "unknown artist" in capsys.readouterr().err


def test_config_problems_are_reported_together(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('prot = 1\n[audio]\ntarget_lufs = "loud"\n[stream]\nmetaint = 8000\n')
    with pytest.raises(ConfigError) as info:
        load_config(bad, env={"DJ_PORT": "not-a-port"})
    problems = "\n".join(info.value.problems)
    assert "did you mean 'port'" in problems
    assert "audio.target_lufs" in problems
    assert "port: expected int" in problems


def test_environment_overrides_the_files():
    config = load_config(env={"DJ_PORT": "9100", "DJ_AUDIO__TARGET_LUFS": "-16"})
    assert config.port == 9100 and config.audio.target_lufs == -16.0


def test_report_on_an_empty_ledger(tmp_path, capsys):
    assert dj(["report", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("party,role")
