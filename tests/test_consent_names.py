"""Consent that fails closed: every artist a line names, the listener's territory before airing,
and scope names that are checked before anything is stored (issue 11)."""

from __future__ import annotations

import json
import logging
import textwrap
from pathlib import Path

import pytest
from aiohttp import web

from dj.auth import TokenStore
from dj.narrate import LineScope
from dj.server.artist_routes import setup_artist_routes

try:  # tests may run as a package or as loose modules
    from .test_narrate import ANA, BO, NOC, PACK, ctx, make_narrator
except ImportError:
    from test_narrate import ANA, BO, NOC, PACK, ctx, make_narrator  # type: ignore[no-redef]

NAMING = "Right after {prev_artist} and {prev_title}, here is Ana."
ANA_NAMES_PREV = textwrap.dedent(f"""\
    artist = "ana"
    [[consent]]
    kind = "persona_text"
    evidence = "test/consent/ana.pdf"
    [[line]]
    text = "{NAMING}"
    moment = "before"
    """)
BO_PACK = textwrap.dedent("""\
    artist = "bo"
    [[consent]]
    kind = "persona_text"
    evidence = "test/consent/bo.pdf"
    [[line]]
    text = "Bo wrote {title}."
    moment = "before"
    """)


def naming_packs() -> dict[str, str]:
    return {"ana": ANA_NAMES_PREV, "bo": BO_PACK}


def the_naming_line(narrator):
    (line,) = narrator.lines.lines("ana")
    assert line.text == NAMING
    return line


# -- 1. every artist a line names ---------------------------------------------------------------
def test_line_naming_another_artist_records_both(tmp_path: Path) -> None:
    narrator = make_narrator(tmp_path, naming_packs())
    utt = narrator.choose(ctx(prev=BO, next=ANA))
    assert utt is not None and utt.line_id == the_naming_line(narrator).id
    assert utt.text == "Right after Bo and Red Kite, here is Ana."
    assert utt.artists == ("ana", "bo")
    assert narrator.is_airable(utt, "US")


def test_revoking_the_named_artist_fails_closed_at_once(tmp_path: Path) -> None:
    narrator = make_narrator(tmp_path, naming_packs())
    utt = narrator.choose(ctx(prev=BO, next=ANA))
    assert utt is not None and "Bo" in utt.text
    assert narrator.render(utt) is not None
    assert narrator.audio_for(utt.key, "US") is not None
    heard: list[str] = []
    narrator.on_revoke(heard.append)

    narrator.lines.set_consent("bo", "persona_text", False, who="artist:bo (token t)")

    assert utt.line_id in heard  # live sessions are told, like for Bo's own lines
    assert not narrator.is_airable(utt, "US")
    assert narrator.audio_for(utt.key, "US") is None  # the pre-air check
    assert not narrator.cache.path(utt.key).exists()
    for i in range(40):
        again = narrator.choose(ctx(prev=BO, next=ANA, listener=f"n{i}"))
        assert again is None or ("bo" not in again.artists and "Bo" not in again.text
                                 and "Red Kite" not in again.text), again


def test_pre_air_check_covers_the_named_artist_after_a_restart(tmp_path: Path) -> None:
    """The utterance is found from the voice cache's index (a new process): who it names is
    stored with it, so the named artist's consent is checked again before it airs."""
    first = make_narrator(tmp_path, naming_packs())
    utt = first.choose(ctx(prev=BO, next=ANA))
    assert utt is not None and first.render(utt) is not None
    second = make_narrator(tmp_path, voices=tmp_path / "voices", store=first.store)
    assert second.audio_for(utt.key, "US") is not None
    # narrowing (no revoke, no hook): only the pre-air check can stop it
    second.lines.set_consent("bo", "persona_text", True, who="artist:bo", evidence="form",
                             territories=["DE"])
    assert second.audio_for(utt.key, "US") is None
    assert second.audio_for(utt.key, "DE") is not None


def test_line_never_names_an_artist_without_consent(tmp_path: Path) -> None:
    narrator = make_narrator(tmp_path, {"ana": ANA_NAMES_PREV.replace(
        "{prev_artist} and {prev_title}", "{prev_title}")})
    for i in range(40):  # NOC has no consent record at all
        utt = narrator.choose(ctx(prev=NOC, next=ANA, listener=f"m{i}"))
        assert utt is None or "Quiet Song" not in utt.text and "noc" not in utt.artists, utt
    utt = narrator.choose(ctx(prev=ANA, next=ANA, listener="own"))  # naming herself is fine
    assert utt is not None and utt.artists == ("ana",)


def test_narrowed_named_consent_stops_choice(tmp_path: Path) -> None:
    narrator = make_narrator(tmp_path, naming_packs())
    narrator.lines.set_consent("bo", "persona_text", True, who="artist:bo", evidence="form",
                               personas=["atlas"])
    for i in range(40):
        utt = narrator.choose(ctx(prev=BO, next=ANA, listener=f"p{i}"))
        assert utt is None or ("bo" not in utt.artists and "Bo" not in utt.text), utt


# -- 2. the listener's territory before airing ------------------------------------------------
def test_territory_scoped_line_needs_the_listeners_territory(tmp_path: Path) -> None:
    pack = PACK.format(artist="ana", name="Ana").replace(
        'moment = "before"', 'moment = "before"\nterritories = ["US"]', 1)
    narrator = make_narrator(tmp_path, {"ana": pack})
    utt = next(u for i in range(40)
               if (u := narrator.choose(ctx(prev=None, next=ANA, listener=f"t{i}"))) is not None
               and not u.is_template and "wrote" in u.text)
    assert narrator.render(utt) is not None  # rendering ahead airs nothing
    assert narrator.audio_for(utt.key, "US") is not None
    assert narrator.audio_for(utt.key, "us") is not None
    assert narrator.audio_for(utt.key) is None  # no territory: not covered
    assert narrator.audio_for(utt.key, "") is None
    assert narrator.audio_for(utt.key, "DE") is None
    assert narrator.audio_for(utt.key, "US\n") is None
    assert not narrator.is_airable(utt)


def test_territory_scoped_consent_narrowed_reaches_queued_lines(tmp_path: Path) -> None:
    narrator = make_narrator(tmp_path, {"ana": PACK.format(artist="ana", name="Ana")})
    narrator.lines.set_consent("ana", "persona_text", True, who="artist:ana", evidence="form",
                               territories=["US", "CA"])
    utt = narrator.choose(ctx(prev=None, next=ANA))
    assert utt is not None and narrator.render(utt) is not None
    assert narrator.audio_for(utt.key, "CA") is not None
    assert narrator.audio_for(utt.key) is None
    narrator.lines.set_consent("ana", "persona_text", True, who="artist:ana", evidence="form",
                               territories=["CA"])
    assert narrator.audio_for(utt.key, "US") is None
    assert narrator.audio_for(utt.key, "CA") is not None


def test_unscoped_line_airs_without_a_territory(tmp_path: Path) -> None:
    narrator = make_narrator(tmp_path, {"ana": PACK.format(artist="ana", name="Ana")})
    utt = narrator.choose(ctx(prev=None, next=ANA))
    assert utt is not None and narrator.render(utt) is not None
    assert narrator.audio_for(utt.key) is not None


# -- 3. scope names ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ({"territories": ["  "]}, "blank"),
        ({"territories": [""]}, "blank"),
        ({"territories": ["US", "\t"]}, "blank"),
        ({"personas": [""]}, "blank"),
        ({"personas": ["   "]}, "blank"),
        ({"tracks": [" "]}, "blank"),
        ({"territories": "  "}, "blank"),
        ({"territories": ["USA"]}, "ISO 3166-1"),
        ({"territories": ["U1"]}, "ISO 3166-1"),
        ({"territories": ["ÜS"]}, "ISO 3166-1"),
        ({"territories": [5]}, "list of names"),
        ({"personas": ["no\x00va"]}, "control"),
        ({"personas": ["x" * 101]}, "longer"),
    ],
)
def test_bad_scope_names_rejected(scope: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LineScope.parse(scope)


def test_scope_names_are_stripped() -> None:
    scope = LineScope.parse({"territories": [" us ", "CA"], "personas": [" nova "]})
    assert scope.territories == ("CA", "US") and scope.personas == ("nova",)
    assert LineScope.parse({"territories": [" ww "]}).territories == ()


@pytest.fixture
def narrator(tmp_path: Path):
    return make_narrator(tmp_path, naming_packs())


@pytest.fixture
async def client(narrator, aiohttp_client):
    from dj.server.app import json_errors

    app = web.Application(middlewares=[json_errors])
    setup_artist_routes(app, narrator=narrator, tokens=TokenStore(narrator.store),
                        ledger=narrator.ledger)
    return await aiohttp_client(app)


def stored(narrator) -> tuple:
    q = narrator.store.query
    return (tuple(tuple(r) for r in q("SELECT * FROM narrate_lines ORDER BY id")),
            tuple(tuple(r) for r in q("SELECT * FROM narrate_consents ORDER BY artist_id, kind")),
            q("SELECT COUNT(*) AS n FROM narrate_audit")[0]["n"])


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("lines", {"text": "Hi from Bo.", "scope": {"territories": ["  "]}}),
        ("lines", {"text": "Hi from Bo.", "scope": {"personas": [""]}}),
        ("lines", {"text": "Hi from Bo.", "scope": {"territories": ["Mars"]}}),
        ("consent", {"kind": "persona_text", "action": "grant", "evidence": "f",
                     "territories": ["  "]}),
        ("consent", {"kind": "persona_text", "action": "grant", "evidence": "f",
                     "personas": [""]}),
    ],
)
async def test_blank_scope_names_are_400_and_nothing_stored(client, narrator, path,
                                                             body) -> None:
    token = TokenStore(narrator.store).create("artist", "bo")
    before = stored(narrator)
    resp = await client.post(f"/api/artists/bo/{path}", json=body,
                             headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert "blank" in error or "ISO 3166-1" in error
    assert stored(narrator) == before


def test_a_bad_stored_row_is_skipped_not_fatal(tmp_path: Path, caplog) -> None:
    first = make_narrator(tmp_path, naming_packs())
    good = first.lines.add("bo", "Bo again.", LineScope(), who="artist:bo")
    with first.store.transaction() as db:  # what the old API let through, and worse
        for i, scope in enumerate(({"territories": [""]}, {"personas": ["  "]}, "not json")):
            db.execute(
                "INSERT INTO narrate_lines (id, artist_id, text, scope, state, source,"
                " created_at, updated_at) VALUES (?, 'bo', 'Bad.', ?, 'approved', 'api', 'x', 'x')",
                (f"bad{i}", scope if isinstance(scope, str) else json.dumps(scope)),
            )
        db.execute("INSERT INTO narrate_consents (artist_id, kind, active, territories, source,"
                   " updated_at) VALUES ('ana', 'recorded_clips', 1, '[\"  \"]', 'api', 'x')")
    caplog.set_level(logging.ERROR, logger="dj.narrate.registry")

    second = make_narrator(tmp_path, voices=tmp_path / "voices", store=first.store)

    assert second.lines.rows_skipped == 4
    assert sum("skipped" in p for p in second.problems) == 4
    assert {"bad0", "bad1", "bad2"} <= {p.split("'")[1] for p in second.lines.load_problems}
    assert len([r for r in caplog.records if "unreadable" in r.getMessage()]) == 4
    assert second.lines.get(good.id) is not None  # everything else loads
    assert second.lines.get("bad0") is None
    assert second.lines.consent("ana", "recorded_clips") is None  # fail closed
    assert second.lines.consent("bo", "persona_text").active
    rows = second.store.query("SELECT id FROM narrate_lines WHERE id LIKE 'bad%'")
    assert len(rows) == 3  # nothing stored is lost
    assert second.choose(ctx(prev=None, next=BO)) is not None
