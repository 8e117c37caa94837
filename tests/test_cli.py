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


def test_tokens_are_listed_without_secrets_and_revoked_by_id(tmp_path, capsys):
    data = ["--data-dir", str(tmp_path)]
    assert dj(["token", "create", "--role", "listener", "--listener", "carol",
               "--territory", "de", "--expires", "30", "--label", "phone", *data]) == 0
    token = capsys.readouterr().out.strip()
    store = Store(tmp_path / "dj.sqlite3")
    assert Catalog(store).listener("carol").territory == "DE"  # the account was made
    token_id = TokenStore(store).authenticate(token).token_id
    assert dj(["token", "list", *data]) == 0
    listing = capsys.readouterr().out
    assert token_id in listing and "carol" in listing and "active" in listing
    assert token not in listing and token.split("_", 2)[2] not in listing
    assert dj(["token", "revoke", token_id, *data]) == 0
    assert TokenStore(store).authenticate(token) is None
    assert dj(["token", "revoke", token_id, *data]) == 1
    assert dj(["token", "list", *data]) == 0
    assert "revoked" in capsys.readouterr().out


@pytest.mark.parametrize("args", [
    ["--role", "listener", "--listener", "bad\nname"],
    ["--role", "listener", "--listener", "dave", "--territory", "XYZ"],
    ["--role", "listener", "--listener", "dave", "--expires", "0"],
    ["--role", "admin", "--subject", "someone"],
])
def test_bad_token_requests_are_refused_with_a_message(tmp_path, capsys, args):
    assert dj(["token", "create", *args, "--data-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip()


def test_the_demo_keeps_its_tokens_across_restarts(tmp_path):
    from dj.demo.tokens import FILE_NAME, demo_tokens

    config = load_config(env={}, data_dir=tmp_path)
    store = Store(config.db_path)
    catalog = Catalog(store)
    catalog.add_artist(Artist("nova-lake", "Nova Lake"))
    first = demo_tokens(config, catalog)
    assert {t.role for t in first} == {"admin", "product", "listener", "stream-key", "artist"}
    assert (tmp_path / FILE_NAME).stat().st_mode & 0o077 == 0  # the owner's only
    assert demo_tokens(config, catalog) == first  # a restart prints the same ones
    tokens = TokenStore(store)
    admin = next(t for t in first if t.role == "admin")
    tokens.revoke(tokens.authenticate(admin.token).token_id)
    again = demo_tokens(config, catalog)
    assert next(t for t in again if t.role == "admin").token != admin.token  # replaced
    assert [t for t in again if t.role != "admin"] == [t for t in first if t.role != "admin"]
    assert all(tokens.authenticate(t.token) for t in again)


def test_ingest_fails_loudly(tmp_path, capsys):
    """A missing folder or manifest, a broken manifest, files that fail: a message and a
    non-zero exit, so scripts and CI notice."""
    data = ["--data-dir", str(tmp_path / "data")]
    assert dj(["ingest", str(tmp_path / "no-such-folder"), *data]) == 2
    assert "does not exist" in capsys.readouterr().err
    source = tmp_path / "source"
    source.mkdir()
    (source / "broken.mp3").write_bytes(b"not audio at all")
    assert dj(["ingest", str(source), "--manifest", str(source / "none.toml"), *data]) == 2
    assert "manifest" in capsys.readouterr().err
    (source / "bad.toml").write_text("[[track]]\n", encoding="utf-8")
    assert dj(["ingest", str(source), "--manifest", str(source / "bad.toml"), *data]) == 2
    assert "missing" in capsys.readouterr().err
    assert dj(["ingest", str(source), "--quiet", *data]) == 1
    out, err = capsys.readouterr()
    assert "broken.mp3  failed" in out and "1 of 1 files failed" in err


def test_the_first_demo_start_says_how_long_it_takes(tmp_path, capsys):
    from datetime import UTC, datetime

    from dj.cli import _demo_bar
    from dj.demo.catalog import demo_tracks

    config = load_config(env={}, data_dir=tmp_path)
    catalog = Catalog(Store(config.db_path))
    bar = _demo_bar(config, catalog)
    assert bar is not None
    try:
        n = len(demo_tracks(datetime.now(UTC).date()))
        assert bar.total == 3 * n  # one bar: synthesize, ingest and master each track
    finally:
        bar.close()
    said = capsys.readouterr().out
    assert said.startswith(f"First start: making the demo station ({n} tracks")
    assert "minute" in said and "Later starts take seconds" in said
