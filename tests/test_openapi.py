"""The OpenAPI document (``GET /api/openapi.json``) describes every route, and schemathesis, run
against a real server on loopback with valid tokens, finds no server error and no answer the
document does not describe (status, content type, body, headers)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import ClientSession, ClientTimeout

from dj.auth import TokenStore
from dj.server.app import create_app
from dj.server.openapi import OPENAPI_PATH, build_document, served_operations

schemathesis = pytest.importorskip("schemathesis")

# an artist and a listener of the test's own: fuzzed lines, consents and feedback touch no demo
# artist or account that other tests rely on
PROBE = "openapi-probe"
MAX_EXAMPLES = 8  # per operation and phase: the whole run stays well under a minute on 2 cores
SEED = 20240601  # the same cases every run
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance",
          "negative_data_rejection", "unsupported_method", "missing_required_header",
          "ignored_auth", "use_after_free", "ensure_resource_availability")
ENDLESS = ("get", "/stream/{listener}.mp3")  # never answers in full: its HEAD is tested
EVENTS = ("get", "/api/listeners/{listener}/events")  # an endless event stream: likewise
EXPERIMENT = "nova-vs-spark"  # the demo's experiment (config/experiments/), for its reports


def label(method: str, path: str) -> str:
    """An operation as schemathesis names it."""
    return f"{method.upper()} {path}"


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, item in doc["paths"].items() for method in item}


def test_every_route_is_documented(demo_config, demo_station) -> None:
    app = create_app(demo_config, demo_station)
    routes = served_operations(app)
    assert ENDLESS in routes and ("head", OPENAPI_PATH) in routes
    missing = sorted(routes - documented(build_document()))
    assert not missing, f"routes missing from dj/server/openapi.py: {missing}"


def test_the_document_is_valid_openapi() -> None:
    schema = schemathesis.openapi.from_dict(build_document(["nova"]))
    schema.validate()  # against the OpenAPI 3.1 meta-schema


@pytest.fixture
async def server(aiohttp_server, demo_config, demo_station):
    """The demo station, paced as listeners get it, without the write rate limit: fuzzing
    posts far faster than any caller may (429 is documented, but would hide the handlers)."""
    config = dataclasses.replace(
        demo_config, access=dataclasses.replace(demo_config.access, writes_per_minute=0))
    app = create_app(config, demo_station, pacing=True)
    return await aiohttp_server(app, host="127.0.0.1")


@pytest.fixture
def probe_tokens(demo_station) -> Iterator[dict[str, str]]:
    """Tokens for the run; every token made during it (the fuzzed token API makes some) is
    deleted after, so other tests find the tokens they made and no more."""
    tokens = TokenStore(demo_station.catalog.store)
    before = {t.id for t in tokens.list()}
    made = {role: tokens.create(role, subject, label="openapi test")
            for role, subject in (("artist", PROBE), ("listener", PROBE), ("admin", None),
                                  ("product", PROBE))}
    # the one token the fuzzed revocations may revoke
    made["revocable"] = tokens.create("product", PROBE, label="openapi test").split("_")[1]
    yield made
    with demo_station.catalog.store.transaction() as db:
        for t in tokens.list():
            if t.id not in before:
                db.execute("DELETE FROM auth_tokens WHERE id = ?", (t.id,))


async def _listen(url: str, token: str, stop: asyncio.Event) -> None:
    """Streams the probe listener, so its controls and now-playing have a live session."""
    async with ClientSession(timeout=ClientTimeout(total=None, sock_read=30)) as http, \
            http.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 200
        while not stop.is_set() and await resp.content.read(1 << 14):
            pass


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _run_schemathesis(base_url: str, doc: dict[str, Any], tokens: dict[str, str], track: str,
                      ) -> tuple[list[str], dict[str, set[int]]]:
    """Every operation but the GETs of the endless streams (audio, events), through
    schemathesis' engine (examples, coverage and fuzzing phases): the problems found, as
    readable reports, and the statuses each operation answered."""
    from schemathesis.config import SchemathesisConfig
    from schemathesis.engine import Status, events, from_schema

    config = SchemathesisConfig.from_dict({
        "seed": SEED,
        "base-url": base_url,
        "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        "phases": {"stateful": {"enabled": False}},  # no links between operations to follow
        "operations": [
            {"include-path-regex": "^/api/artists/", "headers": _bearer(tokens["artist"]),
             "parameters": {"path.artist": PROBE}},
            # the stream too: left without a token, schemathesis sends one of the others
            {"include-path-regex": "^/(api/listeners|stream)/",
             "headers": _bearer(tokens["listener"]), "parameters": {"path.listener": PROBE}},
            {"include-path-regex": "^/api/tokens", "headers": _bearer(tokens["admin"]),
             "parameters": {"path.token_id": tokens["revocable"]}},
            {"include-path-regex": "^/api/tracks/", "parameters": {"path.track": track}},
            {"include-path-regex": "^/(api/)?experiments/", "headers": _bearer(tokens["product"]),
             "parameters": {"path.name": EXPERIMENT}},
            {"include-name": label(*ENDLESS), "enabled": False},
            {"include-name": label(*EVENTS), "enabled": False},
        ],
    })
    # the document as served, loaded from the dict: schemathesis leaves out the operation a
    # schema was fetched from, and this one is to be tested too
    schema = schemathesis.openapi.from_dict(doc, config=config)
    problems: list[str] = []
    answered: dict[str, set[int]] = defaultdict(set)
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            answered[event.recorder.label] |= {
                i.response.status_code for i in event.recorder.interactions.values()
                if i.response is not None}
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        info = check.failure_info
                        problems.append(f"{event.recorder.label} [{check.name}]"
                                        f" {info.failure.title}: {info.failure.message}\n"
                                        f"{info.code_sample}")
        elif isinstance(event, events.NonFatalError):
            problems.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            problems.append(f"fatal: {event.exception!r}")
    return sorted(set(problems)), answered


async def test_schemathesis_finds_nothing(server, demo_station, probe_tokens) -> None:
    base_url = str(server.make_url("")).rstrip("/")
    stop = asyncio.Event()
    listening = asyncio.create_task(
        _listen(f"{base_url}/stream/{PROBE}.mp3", probe_tokens["listener"], stop))
    try:
        async with ClientSession() as http:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # until the session plays a track
                async with http.get(f"{base_url}/api/listeners/{PROBE}/now-playing",
                                    headers=_bearer(probe_tokens["listener"])) as r:
                    if r.status == 200 and (await r.json())["track"] is not None:
                        break
                await asyncio.sleep(0.2)
            else:
                pytest.fail("the probe listener's session never played a track")
            async with http.get(base_url + OPENAPI_PATH) as r:
                assert r.status == 200
                doc = await r.json()
        # what this app serves, no more (the demo station has a narrator: the artist API too)
        assert documented(doc) <= served_operations(server.app)
        assert ("post", "/api/artists/{artist}/lines") in documented(doc)
        started = time.monotonic()
        problems, answered = await asyncio.get_running_loop().run_in_executor(
            None, _run_schemathesis, base_url, doc, probe_tokens,
            demo_station.catalog.tracks()[0].id)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
        session = demo_station.sessions.get(PROBE)
        if session is not None:  # not left waiting for a resume other tests would count
            demo_station.release(session)
    assert not problems, "\n\n".join(problems)
    tested = {label(*op) for op in documented(doc) - {ENDLESS, EVENTS}}
    assert tested <= {label for label, statuses in answered.items() if statuses}
    # each reached its handler's success, not only refusals
    assert all(any(s < 300 for s in answered[label]) for label in tested), dict(answered)
    assert elapsed < 60, f"schemathesis took {elapsed:.0f} s"
    print(f"schemathesis: {len(tested)} operations in {elapsed:.1f} s:",
          {k: sorted(v) for k, v in sorted(answered.items())})
