"""The artist API through a real aiohttp app: auth, adding and revoking lines, consent, airings."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from aiohttp import FormData, web
from pedalboard.io import AudioFile

from dj.auth import TokenStore
from dj.server.artist_routes import setup_artist_routes

try:  # tests may run as a package or as loose modules
    from .test_narrate import ANA, BO, ctx, default_packs, make_narrator
except ImportError:
    from test_narrate import ANA, BO, ctx, default_packs, make_narrator  # type: ignore[no-redef]


@pytest.fixture
def narrator(tmp_path: Path):
    return make_narrator(tmp_path, default_packs())


@pytest.fixture
def tokens(narrator) -> TokenStore:
    return TokenStore(narrator.store)


@pytest.fixture
async def client(narrator, tokens, aiohttp_client):
    app = web.Application()
    setup_artist_routes(app, narrator=narrator, tokens=tokens, ledger=narrator.ledger)
    return await aiohttp_client(app)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wav_bytes(seconds: float = 1.0) -> bytes:
    t = np.arange(int(seconds * 44_100)) / 44_100
    buf = io.BytesIO()
    with AudioFile(buf, "w", samplerate=44_100, num_channels=1, format="wav") as f:
        f.write((0.3 * np.sin(2 * np.pi * 200 * t))[np.newaxis, :].astype(np.float32))
    return buf.getvalue()


async def test_requires_a_valid_token(client, tokens) -> None:
    for method, path in [("GET", "/api/artists/bo/lines"), ("GET", "/api/artists/bo/airings"),
                         ("POST", "/api/artists/bo/lines"), ("POST", "/api/artists/bo/consent"),
                         ("POST", "/api/artists/bo/lines/abc/revoke")]:
        assert (await client.request(method, path)).status == 401
        resp = await client.request(method, path, headers=auth("dj_forged_token"))
        assert resp.status == 401


async def test_another_artists_token_is_forbidden(client, narrator, tokens) -> None:
    ana = tokens.create("artist", "ana")
    line = narrator.lines.lines("bo")[0]
    resp = await client.post(f"/api/artists/bo/lines/{line.id}/revoke", headers=auth(ana))
    assert resp.status == 403
    assert narrator.lines.get(line.id).approved
    assert (await client.get("/api/artists/bo/lines", headers=auth(ana))).status == 403
    resp = await client.post("/api/artists/bo/lines", json={"text": "Hi"}, headers=auth(ana))
    assert resp.status == 403
    # an artist cannot reach another artist's line through their own path either
    resp = await client.post(f"/api/artists/ana/lines/{line.id}/revoke", headers=auth(ana))
    assert resp.status == 404 and narrator.lines.get(line.id).approved


async def test_add_line_then_list_with_audit(client, tokens) -> None:
    bo = tokens.create("artist", "bo")
    body = {"text": "Bo says: stay warm out there.",
            "scope": {"personas": ["nova"], "territories": ["US", "CA"], "moment": "after",
                      "valid_until": "2030-01-01"}}
    resp = await client.post("/api/artists/bo/lines", json=body, headers=auth(bo))
    assert resp.status == 201
    line_id = (await resp.json())["id"]
    again = await client.post("/api/artists/bo/lines", json=body, headers=auth(bo))
    assert again.status == 201 and (await again.json())["id"] == line_id  # content id is stable
    listing = await (await client.get("/api/artists/bo/lines", headers=auth(bo))).json()
    entry = next(ln for ln in listing["lines"] if ln["id"] == line_id)
    assert entry["state"] == "approved" and entry["scope"]["territories"] == ["CA", "US"]
    assert [a["action"] for a in entry["audit"]] == ["line_added"]
    assert entry["audit"][0]["who"].startswith("artist:bo (token ")
    assert {c["kind"] for c in listing["consents"]} == {"persona_text"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"scope": {}}, "text is required"),
        ({"text": "Hi {nope}"}, "unknown slot"),
        ({"text": "Hi", "scope": {"moment": "never"}}, "moment"),
        ({"text": "Hi", "scope": "everywhere"}, "scope must be an object"),
        ({"text": "Hi", "scope": {"valid_from": "yesterday"}}, "ISO date"),
    ],
)
async def test_malformed_line_is_400(client, tokens, body, message) -> None:
    resp = await client.post("/api/artists/bo/lines", json=body,
                             headers=auth(tokens.create("artist", "bo")))
    assert resp.status == 400
    assert message in (await resp.json())["error"]


async def test_non_json_body_is_400(client, tokens) -> None:
    resp = await client.post("/api/artists/bo/lines", data=b"{not json",
                             headers={**auth(tokens.create("artist", "bo")),
                                      "Content-Type": "application/json"})
    assert resp.status == 400 and "JSON" in (await resp.json())["error"]


async def test_clip_upload_and_corrupt_clip_422(client, narrator, tokens) -> None:
    bo = tokens.create("artist", "bo")
    form = FormData()
    form.add_field("text", "Hey, it's Bo. Enjoy the song!")
    form.add_field("scope", '{"moment": "before"}')
    form.add_field("clip", wav_bytes(), filename="hey.wav", content_type="audio/wav")
    resp = await client.post("/api/artists/bo/lines", data=form, headers=auth(bo))
    assert resp.status == 201, await resp.text()
    line = narrator.lines.get((await resp.json())["id"])
    assert line.clip_path is not None and line.clip_path.exists()
    assert line.consent_kind == "recorded_clips"

    bad = FormData()
    bad.add_field("text", "Broken.")
    bad.add_field("clip", b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk", filename="bad.wav",
                  content_type="audio/wav")
    resp = await client.post("/api/artists/bo/lines", data=bad, headers=auth(bo))
    assert resp.status == 422
    assert "not a readable" in (await resp.json())["error"]

    no_clip = FormData()
    no_clip.add_field("text", "No clip here.")
    resp = await client.post("/api/artists/bo/lines", data=no_clip, headers=auth(bo))
    assert resp.status == 400


async def test_revoke_flow(client, narrator, tokens) -> None:
    bo = tokens.create("artist", "bo")
    utt = narrator.choose(ctx(prev=None, next=BO))
    assert utt is not None and utt.artist_id == "bo"
    assert narrator.render(utt) is not None and narrator.cache.path(utt.key).exists()
    resp = await client.post(f"/api/artists/bo/lines/{utt.line_id}/revoke",
                             json={"reason": "changed my mind"}, headers=auth(bo))
    assert resp.status == 200 and (await resp.json())["state"] == "revoked"
    # acknowledged → already committed and in force
    row = narrator.store.query_one("SELECT state FROM narrate_lines WHERE id = ?", (utt.line_id,))
    assert row["state"] == "revoked"
    assert not narrator.is_airable(utt)
    assert narrator.audio_for(utt.key) is None
    assert not narrator.cache.path(utt.key).exists()
    listing = await (await client.get("/api/artists/bo/lines", headers=auth(bo))).json()
    entry = next(ln for ln in listing["lines"] if ln["id"] == utt.line_id)
    assert [a["action"] for a in entry["audit"]] == ["line_added", "line_revoked"]
    assert entry["audit"][1]["detail"] == {"reason": "changed my mind"}
    unknown = await client.post("/api/artists/bo/lines/nope/revoke", headers=auth(bo))
    assert unknown.status == 404


async def test_consent_grant_and_revoke(client, narrator, tokens) -> None:
    ana = tokens.create("artist", "ana")
    resp = await client.post("/api/artists/ana/consent",
                             json={"kind": "recorded_clips", "action": "grant"}, headers=auth(ana))
    assert resp.status == 400 and "evidence" in (await resp.json())["error"]
    resp = await client.post("/api/artists/ana/consent", json={"kind": "everything",
                             "action": "grant", "evidence": "x"}, headers=auth(ana))
    assert resp.status == 400
    resp = await client.post("/api/artists/ana/consent",
                             json={"kind": "persona_text", "action": "revoke"}, headers=auth(ana))
    assert resp.status == 200 and (await resp.json())["consent"]["active"] is False
    for i in range(30):
        utt = narrator.choose(ctx(prev=None, next=ANA, listener=f"z{i}"))
        assert utt is None or "ana" not in utt.artists
    grant = {"kind": "persona_text", "action": "grant", "evidence": "signed form #12"}
    resp = await client.post("/api/artists/ana/consent", json=grant, headers=auth(ana))
    assert resp.status == 200 and (await resp.json())["consent"]["active"] is True
    listing = await (await client.get("/api/artists/ana/lines", headers=auth(ana))).json()
    assert [a["action"] for a in listing["consent_audit"]] == [
        "consent_granted", "consent_revoked", "consent_granted"]


async def test_airings_newest_first_and_artist_scoped(client, narrator, tokens) -> None:
    from datetime import UTC, datetime, timedelta

    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(3):
        narrator.ledger.line_aired(event_id=f"e{i}", line_id=f"line-{i}", artist_id="bo",
                                   persona="nova", listener_id=f"l{i}", session_id="s",
                                   at=(base + timedelta(minutes=i)).isoformat())
    narrator.ledger.line_aired(event_id="other", line_id="x", artist_id="ana", persona="nova",
                               listener_id="l9", session_id="s", at=base.isoformat())
    resp = await client.get("/api/artists/bo/airings", headers=auth(tokens.create("artist", "bo")))
    airings = (await resp.json())["airings"]
    assert [a["line_id"] for a in airings] == ["line-2", "line-1", "line-0"]
    assert airings[0]["persona"] == "nova" and airings[0]["listener"] == "l2"
