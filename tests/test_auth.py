"""Bearer tokens: hashed at rest, shown once, revocable, roles as data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from aiohttp import web

from dj.auth import ROLES, RoleError, TokenStore, create_token, require
from dj.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "db.sqlite3")


def test_token_round_trip(store: Store) -> None:
    token = create_token(store, "artist", "mira-sol")
    principal = TokenStore(store).authenticate(token)
    assert principal is not None
    assert (principal.role, principal.subject) == ("artist", "mira-sol")
    assert "mira-sol" in principal.describe() and token not in principal.describe()


def test_only_the_hash_is_stored(store: Store) -> None:
    token = create_token(store, "artist", "mira-sol")
    rows = [tuple(r) for r in store.query("SELECT * FROM auth_tokens")]
    assert not any(token in str(v) for row in rows for v in row)
    assert rows[0][1] == hashlib.sha256(token.encode()).hexdigest()


def test_bad_tokens_rejected(store: Store) -> None:
    tokens = TokenStore(store)
    token = tokens.create("artist", "mira-sol")
    for bad in (None, "", "dj_", token[:-1], token + "x", "Bearer " + token, "x" * 500):
        assert tokens.authenticate(bad) is None


def test_revoked_token_stops_working(store: Store) -> None:
    tokens = TokenStore(store)
    token = tokens.create("artist", "kai-ferro", label="laptop")
    (info,) = tokens.list(role="artist", subject="kai-ferro")
    assert info.label == "laptop" and info.revoked_at is None
    assert tokens.revoke(info.id)
    assert tokens.authenticate(token) is None
    assert not tokens.revoke(info.id)


def test_roles_are_data(store: Store) -> None:
    assert {"artist", "listener", "product", "admin"} <= set(ROLES)
    tokens = TokenStore(store)
    assert tokens.authenticate(tokens.create("admin", None)).role == "admin"
    with pytest.raises(RoleError, match="needs a subject"):
        tokens.create("artist", None)
    with pytest.raises(RoleError, match="unknown role"):
        tokens.create("superuser", "x")


async def test_require_helper(store: Store, aiohttp_client) -> None:
    tokens = TokenStore(store)

    async def handler(request: web.Request) -> web.Response:
        principal = require(request, tokens, "artist", subject=request.match_info["artist"])
        return web.json_response({"subject": principal.subject})

    app = web.Application()
    app.router.add_get("/a/{artist}", handler)
    client = await aiohttp_client(app)
    mira, admin = tokens.create("artist", "mira-sol"), tokens.create("admin", None)
    assert (await client.get("/a/mira-sol")).status == 401
    resp = await client.get("/a/mira-sol", headers={"Authorization": "Bearer nope"})
    assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    other = await client.get("/a/kai-ferro", headers={"Authorization": f"Bearer {mira}"})
    assert other.status == 403
    wrong_role = await client.get("/a/mira-sol", headers={"Authorization": f"Bearer {admin}"})
    assert wrong_role.status == 403
    ok = await client.get("/a/mira-sol", headers={"Authorization": f"bearer {mira}"})
    assert ok.status == 200 and (await ok.json()) == {"subject": "mira-sol"}


def test_tokens_that_cannot_be_tokens_are_rejected_not_raised(store: Store) -> None:
    """A header that was not UTF-8 arrives with surrogate escapes; control characters, spaces
    and non-ASCII are never hashed or looked up."""
    tokens = TokenStore(store)
    token = tokens.create("artist", "mira-sol")
    for bad in (token + "\udcff", "dj_\udcff\udcfe", token[:-1] + "\u00e9", token + "\n",
                token.replace("_", " ", 1), "dj_0123abcd_" + "\x00" * 43):
        assert tokens.authenticate(bad) is None
    assert tokens.authenticate(token) is not None


def test_a_token_stops_working_when_it_expires(store: Store) -> None:
    tokens = TokenStore(store)
    token = tokens.create("listener", "bob", expires_days=1)
    (info,) = tokens.list(role="listener")
    assert info.state() == "active" and info.expires_at is not None
    assert tokens.authenticate(token) is not None
    with store.transaction() as db:  # a day later
        db.execute("UPDATE auth_tokens SET expires_at = '2001-01-01T00:00:00+00:00'")
    assert tokens.authenticate(token) is None
    assert tokens.list()[0].state() == "expired"
    for bad in (0, -1, 10**6, float("nan")):
        with pytest.raises(ValueError, match="expires"):
            tokens.create("listener", "bob", expires_days=bad)
