"""Experiment reports through the running server and the CLI: a listener streamed on the demo
station is exposed when the DJ's first line is heard and appears in the report; the JSON and the
HTML report are for product (and admin) tokens only; bad names and tokens get a clear 4xx, the
CLI a message and a non-zero exit."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from urllib.parse import quote

import aiohttp
import pytest

from dj.auth import create_token
from dj.cli import main as dj_main
from dj.experiments import Arm, Experiment, assign
from dj.server.app import create_app

from .streamcheck import BYTES_PER_S

EXP = Experiment("api-check", (Arm("control", "nova"), Arm("spark", "spark")), salt="api")


@pytest.fixture
async def server(aiohttp_server, demo_config, demo_station, monkeypatch):
    """The demo station unpaced, running one experiment of the test's own (open window)."""
    monkeypatch.setattr(demo_station.experiments, "experiments", [EXP])
    app = create_app(demo_config, demo_station, pacing=False)
    return await aiohttp_server(app, host="127.0.0.1")


def url(server, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_streamed_listener_is_exposed_at_the_first_heard_line(server, demo_station):
    station = demo_station
    listener = next(f"exp-listener-{i}" for i in range(100)
                    if assign(EXP, f"exp-listener-{i}").name == "spark")
    product = create_token(station.catalog.store, "product", "growth")
    loop = asyncio.get_running_loop()

    def aired() -> list:
        station.flush_writes()
        return [e for e in station.ledger.experiment_events(EXP.name)
                if e.listener_id == listener and e.kind == "line_aired"]

    async with aiohttp.ClientSession() as client:
        # asking for another persona does not take an enrolled listener out of their arm
        async with client.get(url(server, f"/stream/{listener}.mp3?persona=atlas")) as resp:
            assert resp.status == 200
            assert await resp.content.read(1)
            session = station.sessions[listener]
            assert (session.persona, session.experiment, session.arm) == ("spark", EXP.name,
                                                                          "spark")
            heard = 0
            while heard < 15 * 60 * BYTES_PER_S:  # at most 15 minutes of programme
                data = await resp.content.read(1 << 16)
                assert data
                heard += len(data)
                if heard % (30 * BYTES_PER_S) < (1 << 16) and await loop.run_in_executor(
                        None, aired):
                    break
            else:
                pytest.fail("no DJ line was heard in 15 minutes of programme")
        station.release(session)
        await loop.run_in_executor(None, station.flush_writes)
        lines = await loop.run_in_executor(None, aired)
        assert all(e.arm == "spark" and e.persona == "spark" for e in lines)
        async with client.get(url(server, f"/api/experiments/{EXP.name}"),
                              headers=bearer(product)) as r:
            assert r.status == 200, await r.text()
            report = await r.json()
    assert report["experiment"] == EXP.name
    assert report["counts"]["spark"]["exposed"] >= 1
    assert report["counts"]["spark"]["deviations"] == 0
    spark = report["metrics"]["listening_s_per_day"]["arms"]["spark"]
    assert spark["n"] >= 1 and spark["value"] > 0  # the seconds this listener heard
    assert "srm" in report and report["decision"]["verdict"]


async def test_the_reports_need_a_product_or_admin_token(server, demo_station):
    store = demo_station.catalog.store
    product = create_token(store, "product", "growth")
    admin = create_token(store, "admin", None)
    listener = create_token(store, "listener", "alice")
    async with aiohttp.ClientSession() as client:
        for path in (f"/api/experiments/{EXP.name}", f"/experiments/{EXP.name}"):
            async with client.get(url(server, path)) as r:
                assert r.status == 401
                assert "error" in await r.json()
            async with client.get(url(server, path), headers=bearer(listener)) as r:
                assert r.status == 403
            async with client.get(url(server, path), headers=bearer("dj_nothing_here")) as r:
                assert r.status == 401
            for token in (product, admin):
                async with client.get(url(server, path), headers=bearer(token)) as r:
                    assert r.status == 200
        async with client.get(url(server, f"/experiments/{EXP.name}"),
                              headers=bearer(product)) as r:
            page = await r.text()
            assert r.content_type == "text/html"
            csp = r.headers["Content-Security-Policy"]
        assert "script-src 'none'" in csp and "img-src 'self' data:" in csp
        assert "style-src 'sha256-" in csp
        assert f"Experiment {EXP.name}" in page and "Decision:" in page
        assert "<script" not in page


@pytest.mark.parametrize("name", ["nope", "API-CHECK", "n\u00f6va", "\U0001f3b5", "a" * 65,
                                  "a.b", "api-check\u202e", "%00"])
async def test_unknown_or_odd_names_are_a_404(server, demo_station, name):
    product = create_token(demo_station.catalog.store, "product", "growth")
    async with aiohttp.ClientSession() as client:
        for path in ("/api/experiments/", "/experiments/"):
            async with client.get(url(server, path + quote(name, safe="")),
                                  headers=bearer(product)) as r:
                assert r.status in (400, 404), (name, r.status)
                body = await r.json()
                assert "error" in body and "Traceback" not in body["error"]


def test_the_cli_report(demo_config, demo_station, tmp_path, capsys, monkeypatch):
    """`dj report experiment` on the demo data dir: a table, JSON and an HTML file; an unknown
    name is a message and exit 2."""
    exp_dir = tmp_path / "experiments"
    exp_dir.mkdir()
    (exp_dir / "api-check.toml").write_text(
        'name = "api-check"\nsalt = "api"\n[[arms]]\nname = "control"\npersona = "nova"\n'
        '[[arms]]\nname = "spark"\npersona = "spark"\n', encoding="utf-8")
    monkeypatch.setenv("DJ_EXPERIMENTS_DIR", str(exp_dir))
    monkeypatch.setenv("DJ_EXPERIMENTS_FILE", str(tmp_path / "none.toml"))
    data = ["--data-dir", str(demo_config.data_dir)]
    assert dj_main(["report", "experiment", "api-check", *data]) == 0
    table = capsys.readouterr().out
    assert "SRM check" in table and "DECISION" in table and "listening_s_per_day" in table
    assert dj_main(["report", *data, "experiment", "api-check", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["experiment"] == "api-check" and "counts" in report
    assert dj_main(["report", "experiment", "api-check", "--format", "html", *data]) == 0
    assert capsys.readouterr().out.startswith("<!doctype html>")
    assert dj_main(["report", "experiment", "n\u00f6pe", *data]) == 2
    err = capsys.readouterr().err
    assert "unknown experiment 'n\u00f6pe'" in err and "known: api-check" in err


async def test_the_player_is_told_its_experiment_in_its_own_territory(server, demo_station,
                                                                      monkeypatch):
    """Enrolment depends on the territory, so the player's "who hosts" answer must use the
    listener's: an anonymous listener is in the operator's anonymous territory (US), an
    account in its own."""
    from dj.catalog import Listener
    from dj.server.player_routes import player_state

    station = demo_station
    jp_only = dataclasses.replace(EXP, territories=("JP",))
    anonymous = next(f"anon-territory-{i}" for i in range(100)
                     if assign(EXP, f"anon-territory-{i}").name == "spark")
    account = next(f"jp-account-{i}" for i in range(100)
                   if assign(EXP, f"jp-account-{i}").name == "spark")
    station.catalog.add_listener(Listener(account, "JP"))
    key = create_token(station.catalog.store, "listener", account)

    async def asked(listener: str, **headers: str) -> dict:
        async with aiohttp.ClientSession() as client, client.get(
                url(server, f"/api/listeners/{listener}/persona"), headers=headers) as r:
            assert r.status == 200, await r.text()
            return await r.json()

    monkeypatch.setattr(station.experiments, "experiments", [jp_only])
    got = await asked(anonymous)  # in the US: outside a JP-only experiment
    assert (got["in_experiment"], got["experiment"], got["arm"]) == (False, None, None)
    assert got["persona"] == station.config.narrate.default_persona and got["choice"]
    assert player_state(station, anonymous, "US")["experiment"] == ""
    got = await asked(account, **bearer(key))  # a JP account: in it
    assert (got["in_experiment"], got["experiment"], got["arm"], got["persona"]) == (
        True, EXP.name, "spark", "spark")
    assert not got["choice"]
    assert player_state(station, account, "JP")["arm"] == "spark"

    monkeypatch.setattr(station.experiments, "experiments",
                        [dataclasses.replace(EXP, territories=("US",))])
    assert (await asked(anonymous))["in_experiment"]
    assert not (await asked(account, **bearer(key)))["in_experiment"]
