"""The OpenAPI 3.1 document of every HTTP endpoint, served at ``GET /api/openapi.json``.

Written by hand, in this one place: a route added to the app must be described here too
(tests/test_openapi.py fails for an undocumented one, and runs schemathesis against a live server
with this document). ``HEAD`` is derived from each ``GET``, since aiohttp answers it for every
``GET`` route. The served copy keeps only the operations the app has (the artist API is there only
while the narrator runs) and lists the station's personas.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from dj.auth.roles import ROLES
from dj.auth.tokens import MAX_EXPIRY_DAYS, TOKEN_FORMAT
from dj.catalog.artwork import MEDIA_TYPES
from dj.experiments.definition import NAME as EXPERIMENT_NAME
from dj.narrate.consent import CONSENT_KINDS
from dj.narrate.lines import MAX_NAMES, MAX_TEXT_CHARS, MOMENTS
from dj.server.admin_routes import MAX_LABEL_CHARS, MAX_SUBJECT_CHARS, TOKEN_ID
from dj.server.artist_routes import (
    MAX_AIRINGS,
    MAX_CLIP_BYTES,
    MAX_EVIDENCE_CHARS,
    MAX_FIELD_BYTES,
    MAX_JSON_BYTES,
)
from dj.server.keys import STATION
from dj.stream.icy import NAMES as ICY_NAMES
from dj.stream.station import LISTENER_ID
from dj.stream.watch import WATCHERS_PER_LISTENER

JSON = "application/json"
OPENAPI_PATH = "/api/openapi.json"

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _err(name: str) -> Schema:
    return {"$ref": f"#/components/responses/{name}"}


def _ok(description: str, schema: Schema, media: str = JSON) -> Schema:
    return {"description": description, "content": {media: {"schema": schema}}}


def _obj(properties: dict[str, Schema], *, optional: Iterable[str] = (),
         extra: bool = False) -> Schema:
    """An object whose properties are all required unless named in ``optional``."""
    required = [k for k in properties if k not in set(optional)]
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": extra}


def _nullable(type_: str) -> Schema:
    return {"type": [type_, "null"]}


STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
# "all", or the list of names a scope is limited to
NAMES_OR_ALL: Schema = {"anyOf": [{"const": "all"}, {"type": "array", "items": STRING}]}
# what a request may send for a list of names: "all", one name, a list of names, or null (all)
NAMES_IN: Schema = {"anyOf": [STRING, {"type": "array", "items": STRING, "maxItems": MAX_NAMES},
                              {"type": "null"}]}

LINE: dict[str, Schema] = {
    "id": STRING, "artist": STRING, "text": STRING, "state": {"enum": ["approved", "revoked"]},
    "scope": _ref("Scope"), "clip": {"type": "boolean"}, "clip_sha256": _nullable("string"),
    "source": STRING, "created_at": STRING, "updated_at": STRING,
}

SCHEMAS: dict[str, Schema] = {
    "Error": _obj({"error": {"type": "string", "description": "what went wrong, for a person"}}),
    "Health": _obj({
        "status": {"enum": ["ok", "degraded", "error"], "description":
                   "error (503): nothing can play; degraded: a listener hears a fault now"},
        "problems": {"type": "array", "items": STRING, "description": "what is wrong, in words"},
        "audio": _obj({
            "streaming": INTEGER,
            "flowing": {**INTEGER, "description": "streams not waiting on the renderer"},
            "waiting_for_render": {**INTEGER, "description": "streams that waited longer than"
                                   " their burst for the renderer: their buffer runs dry"},
            "underrun_recent": {"type": "boolean"},
            "dead_air_recent": {"type": "boolean"},
        }),
        "playable": {**INTEGER, "description": "tracks licensed today in the operator's"
                     " territories"},
        "sessions": {**INTEGER, "description": "listeners streaming now"},
        "resumable": {**INTEGER, "description": "sessions waiting for their listener to return"},
        "tracks": INTEGER,
        "narrator": {"type": "boolean"},
        "failures": {"type": "object", "additionalProperties": INTEGER},
        "ledger": _obj({"queued": INTEGER, "written": INTEGER, "write_errors": INTEGER}),
        "path": {**STRING, "description": "how streams are rendered (spliced or full)"},
        "speech": {"type": ["object", "null"], "description": "the DJ's voice: the engine each"
                   " persona speaks with, fallbacks, lines aired by engine, stand-ins aired,"
                   " the speech queue (null without a narrator)"},
        "worker": {**INTEGER, "description": "with several worker processes: the one that"
                   " answered"},
        "workers": {"type": "array", "description": "with several worker processes: each one",
                    "items": _obj({"worker": INTEGER, "streaming": INTEGER, "sessions": INTEGER,
                                   "alive": {"type": "boolean"}, "pid": INTEGER})},
        "shared": _obj({
            "bodies": INTEGER,
            "body_mb": {"type": "number"},
            "transition_mb": {"type": "number"},
            "transition_hits": INTEGER,
            "transition_renders": INTEGER,
        }),
    }, optional=("worker", "workers")),
    "Persona": _obj({"name": STRING, "description": STRING}),
    "Track": _obj({
        "id": STRING, "title": STRING, "artist": STRING, "artist_id": STRING, "album": STRING,
        "year": _nullable("integer"),
    }),
    "NowPlaying": _obj({
        "listener": STRING,
        "session": STRING,
        "persona": STRING,
        "experiment": STRING,
        "arm": STRING,
        "track": {"anyOf": [_ref("Track"), {"type": "null"}]},
        "play_id": _nullable("string"),
        "track_id": _nullable("string"),
        "title": _nullable("string"),
        "artist": _nullable("string"),
        "started_at": _nullable("string"),
        "speaking": {"type": "boolean"},
        "ai_voice": {"type": "boolean", "description": "an AI voice is speaking: players say so"},
        "voice_text": STRING,
        "position_s": {"type": "number"},
        "history": {"type": "array", "items": STRING, "description": "track ids heard"},
    }),
    "Scope": _obj({
        "personas": NAMES_OR_ALL,
        "territories": NAMES_OR_ALL,
        "valid_from": _nullable("string"),
        "valid_until": _nullable("string"),
        "moment": {"enum": list(MOMENTS)},
        "tracks": NAMES_OR_ALL,
    }),
    "ScopeInput": {
        "type": "object",
        "description": "where a line may air; a missing field means no limit",
        "properties": {
            "personas": NAMES_IN,
            "territories": {**NAMES_IN, "description": "ISO 3166-1 alpha-2 codes, or WW"},
            "valid_from": {"type": ["string", "null"], "maxLength": 64,
                           "description": "ISO date or date-time (UTC unless it says)"},
            "valid_until": {"type": ["string", "null"], "maxLength": 64,
                            "description": "ISO date (inclusive) or date-time"},
            "moment": {"enum": list(MOMENTS)},
            "tracks": NAMES_IN,
        },
        "additionalProperties": False,
    },
    "Line": _obj(LINE),
    "LineWithAudit": _obj({**LINE, "audit": {"type": "array", "items": _ref("AuditEntry")}}),
    "AuditEntry": _obj({
        "seq": INTEGER, "at": STRING, "who": STRING, "action": STRING, "subject": STRING,
        "detail": {"type": "object"},
    }),
    "Consent": _obj({
        "artist": STRING, "kind": {"enum": list(CONSENT_KINDS)}, "active": {"type": "boolean"},
        "evidence": STRING, "personas": NAMES_OR_ALL, "territories": NAMES_OR_ALL,
        "granted_at": _nullable("string"), "revoked_at": _nullable("string"), "source": STRING,
        "updated_at": STRING,
    }),
    "Play": _obj({
        "play_id": STRING, "track": {**STRING, "description": "the track id"},
        "title": _nullable("string"), "artist": _nullable("string"), "started_at": STRING,
        "ended_at": _nullable("string"), "played_s": _nullable("number"),
        "outcome": _nullable("string"),
    }),
    "TokenInfo": _obj({
        "id": STRING, "role": {"enum": list(ROLES)}, "subject": _nullable("string"),
        "state": {"enum": ["active", "revoked", "expired"]}, "label": STRING,
        "created_at": STRING, "expires_at": _nullable("string"), "revoked_at": _nullable("string"),
    }),
    "Airing": _obj({
        "line_id": STRING, "persona": STRING, "listener": STRING, "aired_at": STRING,
        "engine": STRING, "text": STRING,
    }),
    "Statement": _obj({
        "artist": STRING,
        "period": {**STRING, "description": "YYYY-MM (or a day, YYYY-MM-DD), in UTC"},
        "from": {**STRING, "description": "the period's start (inclusive), ISO date-time"},
        "until": {**STRING, "description": "its end (exclusive)"},
        "plays": {**INTEGER, "description": "qualifying plays (30 s heard) of the artist's"
                  " tracks that started in the period"},
        "listeners": {**INTEGER, "description": "distinct listeners of those plays"},
        "tracks": {"type": "array", "items": _obj({
            "track_id": STRING, "title": STRING, "plays": INTEGER, "listeners": INTEGER,
            "rightsholders": {"type": "array", "items": _obj({
                "party": STRING,
                "role": {"enum": ["master", "publishing"]},
                "pro_rata": {"type": "number", "description": "fraction of the role's pool"
                             " this party earns from this track under pro-rata (every"
                             " qualifying play weighs the same)"},
                "pro_rata_amount": {**_nullable("integer"), "description": "in minor units"
                                    " of the revenue's currency; null until revenue is"
                                    " recorded"},
                "user_centric": {"type": "number", "description": "the same under"
                                 " user-centric (every listener weighs the same, divided"
                                 " across only what they played)"},
                "user_centric_amount": _nullable("integer"),
            })},
        })},
        "lines": _obj({
            "airings": {**INTEGER, "description": "airings of lines that credit the artist"},
            "listeners": INTEGER,
            "lines": {"type": "array", "items": _obj({
                "line_id": STRING, "text": STRING, "airings": INTEGER, "listeners": INTEGER})},
        }),
        "station": {**_obj({"plays": INTEGER, "listeners": INTEGER}),
                    "description": "every qualifying play and listener in the period"},
        "revenue": {"anyOf": [{"type": "null"}, _obj({
            "amount": {**INTEGER, "description": "minor units (cents)"},
            "currency": {**STRING, "description": "ISO 4217"},
            "exponent": {**INTEGER, "description": "decimals of the currency"},
            "master_pct": {"type": "number", "description": "the master pool's percentage;"
                           " publishing gets the rest"},
            "pools": {"type": "object", "additionalProperties": INTEGER,
                      "description": "role: minor units"},
            "recorded_at": STRING,
        })], "description": "the revenue the operator recorded for the period, or null"},
    }),
}

# the web player's state (each event of /api/listeners/{listener}/events) and persona choice
SCHEMAS.update({
    "Credits": _obj({
        "rightsholders": {"type": "array", "items": _obj({
            "party": STRING, "role": {**STRING, "description": "master or publishing"},
            "share": {"type": "number", "description": "percent of the role"}})},
        "notes": {"type": "array", "items": STRING,
                  "description": "credit lines a licence asks to show (CC BY and the like)"},
    }),
    "PlayerTrack": _obj({
        "id": STRING, "title": STRING, "artist": STRING, "artist_id": STRING, "album": STRING,
        "year": _nullable("integer"), "artwork": {**STRING, "description": "its cover's URL"},
        "credits": {"anyOf": [_ref("Credits"), {"type": "null"}]},
    }),
    "PlayerState": _obj({
        "listener": STRING,
        "session": _nullable("string"),
        "on_air": {"type": "boolean", "description": "a connection streams the session now"},
        "persona": STRING, "experiment": STRING, "arm": STRING,
        "track": {"anyOf": [_ref("PlayerTrack"), {"type": "null"}]},
        "play_id": _nullable("string"), "track_id": _nullable("string"),
        "title": _nullable("string"), "artist": _nullable("string"),
        "started_at": _nullable("string"),
        "speaking": {"type": "boolean"},
        "ai_voice": {"type": "boolean", "description": "an AI voice is heard: players say so"},
        "voice_text": STRING,
        "position_s": {"type": "number", "description": "programme seconds heard"},
        "history": {"type": "array", "items": STRING, "description": "track ids heard"},
        "recent": {"type": "array", "description": "tracks heard before this one, newest first",
                   "items": _obj({"id": STRING, "title": STRING, "artist": STRING,
                                  "album": STRING, "artwork": STRING})},
    }),
    "PersonaChoice": _obj({
        "listener": STRING,
        "persona": {**STRING, "description": "who hosts a new session without a choice"},
        "in_experiment": {"type": "boolean"},
        "experiment": _nullable("string"), "arm": _nullable("string"),
        "choice": {"type": "boolean", "description": "the player offers a choice of persona"
                   " (not to a listener an experiment assigns one)"},
        "personas": {"type": "array", "items": _ref("Persona")},
    }),
})

_TEXT = {"type": "string", "minLength": 1,
         "description": f"at most {MAX_TEXT_CHARS} characters once runs of white space are one"
                        " space; {slots} must be known ones"}


def _response(description: str, headers: dict[str, Schema] | None = None) -> Schema:
    out: Schema = {"description": description,
                   "content": {JSON: {"schema": _ref("Error")}}}
    if headers:
        out["headers"] = headers
    return out


RESPONSES: dict[str, Schema] = {
    "BadRequest": _response("the request is malformed (the message says how)"),
    "Unauthorized": _response(
        "no valid token or key, where one is needed",
        {"WWW-Authenticate": {"required": True, "schema": {"const": 'Bearer realm="dj"'}}}),
    "Forbidden": _response("the token is valid but not for this role or subject"),
    "NotFound": _response("nothing is there"),
    "Conflict": _response("not now: nothing is playing yet"),
    "PayloadTooLarge": _response("the body (or the clip) is over its limit"),
    "UnsupportedMediaType": _response("a charset other than UTF-8"),
    "UnprocessableEntity": _response("the clip cannot air (the message says why)"),
    "TooManyRequests": _response(
        "over the rate of writes allowed per token (or address): nothing was done",
        {"Retry-After": {"required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"},
                         "description": "seconds to wait"}}),
    "InternalError": _response("a fault of the server (logged)"),
}


def _param(name: str, where: str, schema: Schema, description: str,
           required: bool = False) -> Schema:
    return {"name": name, "in": where, "required": required or where == "path",
            "schema": schema, "description": description}


ICY_CHARSET = _param(
    "icy_charset", "query", {"enum": list(ICY_NAMES)},
    "the charset of ICY titles for this client (default: [stream] icy_charset): latin-1 for"
    " old players that show UTF-8 as garbage")
LISTENER = _param(
    "listener", "path", {"type": "string", "pattern": f"^{LISTENER_ID.pattern}$"},
    "the listener id: an account's, or any free name (anonymous)")
ARTIST = _param("artist", "path", {"type": "string", "minLength": 1},
                "the artist id: the subject of the artist token")

# security requirements: a token of the operation's role; for controls a listener token where
# the listener has an account (an anonymous name needs none); for the stream also a stream key,
# as a bearer or ?key=
BEARER_AUTH = [{"bearerAuth": []}]  # artist, admin, and a listener's own history
CONTROL_AUTH: list[dict[str, list[str]]] = [{}, {"bearerAuth": []}]
STREAM_AUTH: list[dict[str, list[str]]] = [{}, {"bearerAuth": []}, {"streamKey": []}]

_LISTENER_ERRORS = {"400": _err("BadRequest"), "401": _err("Unauthorized"),
                    "403": _err("Forbidden")}
_ARTIST_ERRORS = {"401": _err("Unauthorized"), "403": _err("Forbidden")}
_WRITE_ERRORS = {"413": _err("PayloadTooLarge"), "415": _err("UnsupportedMediaType"),
                 "429": _err("TooManyRequests")}


def _control(summary: str, ok: Schema, *, conflict: bool = False) -> Schema:
    responses = {"200": ok, **_LISTENER_ERRORS,
                 "404": _err("NotFound"), "429": _err("TooManyRequests")}
    if conflict:
        responses["409"] = _err("Conflict")
    return {"summary": summary, "tags": ["listener"], "parameters": [LISTENER],
            "security": CONTROL_AUTH, "responses": responses}


def _stream_headers() -> dict[str, Schema]:
    header = {"schema": STRING, "required": True}
    return {
        "icy-name": header, "icy-description": header, "icy-br": header, "icy-sr": header,
        "icy-genre": header, "icy-url": header,
        "icy-pub": header, "X-DJ-Persona": {**header, "description": "the persona hosting"},
        "icy-metaint": {"schema": STRING, "description": "with Icy-MetaData: 1, the bytes of"
                        " audio between two metadata blocks"},
    }


def _paths() -> dict[str, dict[str, Schema]]:
    from dj.server.app import HISTORY_MAX  # app imports this module: not at import time

    return {**PATHS, **_listener_paths(HISTORY_MAX), **PLAYER_PATHS, **OPERATIONS_PATHS}


def _listener_paths(history_max: int) -> dict[str, dict[str, Schema]]:
    return {"/api/listeners/{listener}/history": {"get": {
        "summary": "what an account's listener played, newest first", "tags": ["listener"],
        "description": "needs the listener's own token, even for a name without an account",
        "parameters": [LISTENER, _param(
            "limit", "query", {"type": "integer", "minimum": 1, "maximum": history_max,
                               "default": 50}, "how many plays")],
        "security": BEARER_AUTH,
        "responses": {
            "200": _ok("the plays", _obj({
                "listener": STRING, "plays": {"type": "array", "items": _ref("Play")}})),
            **_LISTENER_ERRORS,
        },
    }}}


_HTML_HEADERS = {name: {"schema": STRING, "required": True} for name in (
    "Content-Security-Policy", "Referrer-Policy", "X-Content-Type-Options", "Cache-Control")}

_EXPERIMENT = _param("name", "path", {"type": "string",
                                      "pattern": f"^{EXPERIMENT_NAME.pattern}$"},
                     "the experiment's name (its file config/experiments/NAME.toml)")
_NUMBER_OR_NULL = {"type": ["number", "null"]}
_SRM_CHECK: Schema = {"type": "object", "required": ["chi2", "p", "mismatch"],
                     "properties": {"population": STRING, "chi2": _NUMBER_OR_NULL,
                                    "p": _NUMBER_OR_NULL, "mismatch": {"type": "boolean"}}}
_EXPERIMENT_REPORT: Schema = {
    "type": "object",
    "required": ["experiment", "arms", "control", "counts", "srm", "srm_assigned", "primary",
                 "metrics", "series", "decision"],
    "properties": {
        "experiment": STRING, "description": STRING, "control": STRING, "primary": STRING,
        "arms": {"type": "array", "items": {
            "type": "object", "required": ["name", "persona", "weight"],
            "properties": {"name": STRING, "persona": STRING, "weight": {"type": "number"},
                           "overrides": {"type": "object"}}}},
        "counts": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["listeners_seen", "assigned", "exposed", "analysed",
                                           "exposed_share"],
            "properties": {
                **{k: {"type": "integer", "minimum": 0} for k in (
                    "listeners_seen", "assigned", "exposed", "deviations", "analysed")},
                "exposed_share": {"type": ["number", "null"], "minimum": 0, "maximum": 1,
                                  "description": "analysed (exposed) of assigned listeners"},
            }}},
        "srm": _SRM_CHECK | {"description": "the split of the exposed (analysed) listeners"},
        "srm_assigned": _SRM_CHECK | {"description": "the split of the assigned listeners"},
        "metrics": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["arms", "comparisons"]}},
        "series": {"type": "array", "items": {"type": "object"}},
        "decision": {"type": "object", "required": ["ship", "verdict", "reasons"],
                     "properties": {"ship": {"type": ["string", "null"]}, "verdict": STRING,
                                    "reasons": {"type": "array", "items": STRING}}},
    },
}

PATHS: dict[str, dict[str, Schema]] = {
    "/artist": {"get": {
        "summary": "the artist portal: a page using the artist API", "tags": ["artist"],
        "responses": {"200": {**_ok("the portal page", STRING, "text/html"),
                              "headers": _HTML_HEADERS}},
    }},
    "/api/artists/me": {"get": {
        "summary": "which artist the token speaks for, and the limits the portal checks",
        "tags": ["artist"], "security": BEARER_AUTH,
        "responses": {
            "200": _ok("the artist token's subject", _obj({
                "role": {"const": "artist"}, "subject": STRING,
                "consent_kinds": {"type": "array", "items": {"enum": list(CONSENT_KINDS)}},
                "limits": _obj({"clip_bytes": INTEGER, "text_chars": INTEGER,
                                "evidence_chars": INTEGER}),
            })),
            **_ARTIST_ERRORS,
        },
    }},
    "/api/tokens": {
        "get": {
            "summary": "every token (never a secret)", "tags": ["admin"],
            "security": BEARER_AUTH,
            "parameters": [_param("role", "query", {"enum": list(ROLES)}, "only this role")],
            "responses": {
                "200": _ok("the tokens", {"type": "array", "items": _ref("TokenInfo")}),
                "400": _err("BadRequest"), **_ARTIST_ERRORS,
            },
        },
        "post": {
            "summary": "make a token: its secret is in this answer only", "tags": ["admin"],
            "security": BEARER_AUTH,
            "requestBody": {"required": True, "content": {JSON: {"schema": {
                "type": "object", "required": ["role"], "additionalProperties": False,
                "properties": {
                    "role": {"enum": list(ROLES)},
                    "subject": {"type": ["string", "null"], "minLength": 1,
                                "maxLength": MAX_SUBJECT_CHARS, "description":
                                "a known artist id, a listener account, a team; none for admin"},
                    "expires_days": {"type": ["number", "null"], "exclusiveMinimum": 0,
                                     "maximum": MAX_EXPIRY_DAYS,
                                     "description": "null: until revoked"},
                    "label": {"type": ["string", "null"], "maxLength": MAX_LABEL_CHARS},
                },
                # an admin token speaks for no one; every other role for its subject
                "if": {"properties": {"role": {"const": "admin"}}},
                "then": {"properties": {"subject": {"type": "null"}}},
                "else": {"required": ["subject"], "properties": {"subject": STRING}},
            }}}},
            "responses": {
                "201": _ok("the token made", _obj({
                    "id": STRING, "token": {"type": "string",
                                            "pattern": f"^{TOKEN_FORMAT.pattern}$"},
                    "role": {"enum": list(ROLES)}, "subject": _nullable("string")})),
                "400": _err("BadRequest"), **_ARTIST_ERRORS, **_WRITE_ERRORS,
            },
        },
    },
    "/api/tokens/{token_id}/revoke": {"post": {
        "summary": "revoke a token: it stops working at once, in every process",
        "tags": ["admin"], "security": BEARER_AUTH,
        "parameters": [_param("token_id", "path", STRING,
                              f"the token's id ({TOKEN_ID.pattern}; any other is not found)")],
        "responses": {
            "200": _ok("revoked (or already)", _obj({"id": STRING,
                                                     "state": {"const": "revoked"}})),
            **_ARTIST_ERRORS, "404": _err("NotFound"), "429": _err("TooManyRequests"),
        },
    }},
    "/": {"get": {
        "summary": "the web player", "tags": ["player"],
        "responses": {"200": {**_ok("the player page", STRING, "text/html"),
                              "headers": _HTML_HEADERS}},
    }},
    "/healthz": {"get": {
        "summary": "whether the station can play and its audio flows; its counters",
        "tags": ["operations"],
        "responses": {"200": _ok("ok, or degraded (see problems)", _ref("Health")),
                      "503": _ok("error: nothing can play (see problems)", _ref("Health"))},
    }},
    OPENAPI_PATH: {"get": {
        "summary": "this document", "tags": ["operations"],
        "responses": {"200": _ok("the OpenAPI 3.1 document", {"type": "object"})},
    }},
    "/api/personas": {"get": {
        "summary": "the personas a listener can choose", "tags": ["player"],
        "responses": {"200": _ok("empty without a narrator",
                                 {"type": "array", "items": _ref("Persona")})},
    }},
    "/stream/{listener}.mp3": {"get": {
        "summary": "the listener's endless stream", "tags": ["listener"],
        "description": "HTTP/1.1 gets a chunked body, HTTP/1.0 one that ends with the connection."
                       " A new connection takes the session over; one within the resume window"
                       " resumes where the listener was. ``territory`` is refused (400): it comes"
                       " from the account or the operator.",
        "security": STREAM_AUTH,
        "parameters": [
            LISTENER,
            _param("persona", "query", STRING, "the persona hosting a new session (empty: the"
                   " listener's or the experiment's)"),
            _param("Icy-MetaData", "header", STRING, "1: interleave ICY metadata (titles)"),
            _param("Player-Delay-S", "header", STRING, "how far behind real time, since its first"
                   " byte, the player plays (the web player's own pace): what it hears, which"
                   " moves titles and credits, is then taken from it, not from its User-Agent"),
            ICY_CHARSET,
        ],
        "responses": {
            "200": {"description": "MP3 audio, without end", "headers": _stream_headers(),
                    "content": {"audio/mpeg": {"schema": {"type": "string",
                                                          "format": "binary"}}}},
            **_LISTENER_ERRORS,
        },
    }},
    "/api/listeners/{listener}/now-playing": {"get": _control(
        "what the listener hears now", _ok("now playing", _ref("NowPlaying"))),
    },
    "/api/listeners/{listener}/skip": {"post": _control(
        "skip the track playing",
        _ok("the track skipped (null: nothing to skip)",
            _obj({"skipped": _nullable("string")}))),
    },
    "/api/listeners/{listener}/like": {"post": _control(
        "like the track playing", _ok("the track liked", _obj({"liked": STRING})),
        conflict=True),
    },
    "/api/listeners/{listener}/dislike": {"post": _control(
        "dislike the track playing", _ok("the track disliked", _obj({"disliked": STRING})),
        conflict=True),
    },
    "/api/artists/{artist}/lines": {
        "post": {
            "summary": "add (approve) a line, spoken by personas or as a recorded clip",
            "tags": ["artist"], "parameters": [ARTIST], "security": BEARER_AUTH,
            "requestBody": {"required": True, "content": {
                JSON: {"schema": {
                    "type": "object", "required": ["text"],
                    "properties": {"text": _TEXT, "scope": _ref("ScopeInput")},
                    "description": f"at most {MAX_JSON_BYTES} bytes; other fields are ignored",
                }},
                "multipart/form-data": {"schema": _obj({
                    "text": _TEXT,
                    "scope": {"type": "string", "description": "ScopeInput as JSON text"},
                    "clip": {"type": "string", "format": "binary", "description":
                             f"the recording (at most {MAX_CLIP_BYTES} bytes by default)"},
                }, optional=["scope"]), "encoding": {"clip": {"contentType": "audio/*"}}},
            }, "description": f"text fields of a multipart body at most {MAX_FIELD_BYTES}"
                              " bytes each"},
            "responses": {
                "201": _ok("the line as stored (an identical line is not added twice)",
                           _obj({"id": STRING, "line": _ref("Line")})),
                "400": _err("BadRequest"), **_ARTIST_ERRORS, **_WRITE_ERRORS,
                "422": _err("UnprocessableEntity"),
            },
        },
        "get": {
            "summary": "the artist's lines with their audit trail, and consents",
            "tags": ["artist"], "parameters": [ARTIST], "security": BEARER_AUTH,
            "responses": {
                "200": _ok("lines and consents", _obj({
                    "artist": STRING,
                    "lines": {"type": "array", "items": _ref("LineWithAudit")},
                    "consents": {"type": "array", "items": _ref("Consent")},
                    "consent_audit": {"type": "array", "items": _ref("AuditEntry")},
                })),
                "400": _err("BadRequest"), **_ARTIST_ERRORS,
            },
        },
    },
    "/api/artists/{artist}/lines/{line}/revoke": {"post": {
        "summary": "revoke a line: it stops airing at once", "tags": ["artist"],
        "parameters": [ARTIST, _param("line", "path", STRING, "the line id")],
        "security": BEARER_AUTH,
        "requestBody": {"required": False, "content": {JSON: {"schema": {
            "type": "object", "properties": {"reason": {"type": "string"}},
            "description": "read only when sent as application/json; other fields are ignored",
        }}}},
        "responses": {
            "200": _ok("revoked (revoking again changes nothing)", _obj({
                "id": STRING, "state": {"const": "revoked"}, "revoked_at": STRING})),
            "400": _err("BadRequest"), **_ARTIST_ERRORS, "404": _err("NotFound"),
            **_WRITE_ERRORS,
        },
    }},
    "/api/artists/{artist}/airings": {"get": {
        "summary": "where the artist's lines aired, newest first", "tags": ["artist"],
        "parameters": [ARTIST, _param(
            "limit", "query",
            # the handler takes up to 12 characters of an integer, then clamps it
            {"type": "integer", "minimum": -(10**11) + 1, "maximum": 10**12 - 1,
             "default": 100},
            f"how many (taken as 1 to {MAX_AIRINGS})")],
        "security": BEARER_AUTH,
        "responses": {
            "200": _ok("the airings", _obj({
                "artist": STRING, "airings": {"type": "array", "items": _ref("Airing")}})),
            "400": _err("BadRequest"), **_ARTIST_ERRORS,
        },
    }},
    "/api/artists/{artist}/statement": {"get": {
        "summary": "the artist's statement for a month: plays, listeners, lines, pool shares",
        "tags": ["artist"],
        "description": "Counts come from the ledger's qualifying plays (30 s heard) of the"
                       " artist's tracks that started in the period, in UTC. Each track's"
                       " rightsholders get their fraction of the master and publishing pools"
                       " under both models (pro-rata and user-centric), and amounts in minor"
                       " units once the operator has recorded the period's revenue (rounded by"
                       " the largest remainder, so that every pool sums to its amount).",
        "parameters": [ARTIST, _param(
            "period", "query", {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}(-[0-9]{2})?$"},
            "YYYY-MM (a month) or YYYY-MM-DD (a day), UTC; default: this month")],
        "security": BEARER_AUTH,
        "responses": {
            "200": {**_ok("the statement (empty counts for a period without plays)",
                          _ref("Statement")),
                    "headers": {"Cache-Control": {"schema": STRING, "required": True}}},
            "400": _err("BadRequest"), **_ARTIST_ERRORS,
        },
    }},
    "/api/artists/{artist}/consent": {"post": {
        "summary": "grant or revoke a kind of consent", "tags": ["artist"],
        "parameters": [ARTIST], "security": BEARER_AUTH,
        "requestBody": {"required": True, "content": {JSON: {"schema": {
            "type": "object", "required": ["kind", "action"],
            "properties": {
                "kind": {"enum": list(CONSENT_KINDS)},
                "action": {"enum": ["grant", "revoke"]},
                "evidence": {"type": ["string", "null"], "maxLength": MAX_EVIDENCE_CHARS},
                "personas": NAMES_IN,
                "territories": NAMES_IN,
            },
            # a grant needs an evidence reference (a revocation none)
            "if": {"properties": {"action": {"const": "grant"}}},
            "then": {"required": ["evidence"],
                     "properties": {"evidence": {"type": "string", "pattern": "\\S"}}},
            "description": "a grant needs evidence (a reference to where the artist agreed);"
                           " other fields are ignored",
        }}}},
        "responses": {
            "200": _ok("the consent as stored", _obj({"consent": _ref("Consent")})),
            "400": _err("BadRequest"), **_ARTIST_ERRORS, **_WRITE_ERRORS,
        },
    }},
}

_ARTWORK_HEADERS = {"Cache-Control": {"schema": STRING, "required": True},
                    "ETag": {"schema": STRING, "required": True}}

PLAYER_PATHS: dict[str, dict[str, Schema]] = {
    "/listen/{listener}": {"get": {
        "summary": "the web player, tuned straight into the listener's station",
        "tags": ["player"], "parameters": [LISTENER],
        "responses": {"200": {**_ok("the player page", STRING, "text/html"),
                              "headers": _HTML_HEADERS}},
    }},
    "/api/listeners/{listener}/events": {"get": {
        "summary": "what the listener hears, pushed as server-sent events", "tags": ["listener"],
        "description": "A `now-playing` event (its data a PlayerState as JSON) at once and"
                       " whenever what the listener hears changes: a track or a DJ line reached"
                       " by their ear, a connection started or stopped, a new session. A"
                       " comment keeps a quiet stream open. Without end; an account needs its"
                       " listener token or stream key, as a bearer or `?key=` (EventSource"
                       f" cannot send headers). At most {WATCHERS_PER_LISTENER} streams per"
                       " listener.",
        "security": STREAM_AUTH, "parameters": [LISTENER],
        "responses": {
            "200": {**_ok("the event stream, without end", STRING, "text/event-stream"),
                    "headers": {"Cache-Control": {"schema": STRING, "required": True}}},
            **_LISTENER_ERRORS, "429": _err("TooManyRequests"),
        },
    }},
    "/api/listeners/{listener}/persona": {"get": {
        "summary": "who hosts a new session, and whether the listener may choose",
        "tags": ["player"], "security": STREAM_AUTH, "parameters": [LISTENER],
        "responses": {"200": _ok("the persona and the choice", _ref("PersonaChoice")),
                      **_LISTENER_ERRORS},
    }},
    "/api/tracks/{track}/artwork": {"get": {
        "summary": "the track's cover: stored, or drawn from its id", "tags": ["player"],
        "parameters": [
            _param("track", "path", {"type": "string", "minLength": 1}, "the track id"),
            _param("If-None-Match", "header", STRING, "an ETag from an earlier answer"),
        ],
        "responses": {
            "200": {"description": "the image", "headers": _ARTWORK_HEADERS,
                    "content": {media: {"schema": {"type": "string", "format": "binary"}}
                                for media in sorted(set(MEDIA_TYPES.values()))}},
            "304": {"description": "unchanged since the ETag sent", "headers": _ARTWORK_HEADERS},
            "404": _err("NotFound"),
        },
    }},
}


def _playlist(ext: str, media: str, what: str) -> Schema:
    return {"get": {
        "summary": f"a {what} playlist of the listener's stream, for players", "tags": ["listener"],
        "description": "One entry: the stream's absolute URL, from the address the request came"
                       " to, with key, persona and icy_charset carried through. It opens no"
                       " session and checks no key (the stream does).",
        "parameters": [
            LISTENER,
            _param("key", "query", STRING, "an account's stream key, put into the stream URL"),
            _param("persona", "query", STRING, "put into the stream URL (a known persona)"),
            ICY_CHARSET,
        ],
        "responses": {"200": {**_ok(f"the .{ext} playlist", STRING, media),
                              "headers": {"Cache-Control": {"schema": STRING,
                                                            "required": True}}},
                      "400": _err("BadRequest")},
    }}


_SOURCE = _obj({
    "audio_info": STRING, "bitrate": INTEGER, "channels": INTEGER, "samplerate": INTEGER,
    "genre": STRING, "listener_peak": INTEGER,
    "listeners": {**INTEGER, "description": "listeners streaming now, all stations together"},
    "listenurl": {**STRING, "description": "a stream to try: a guest's, or the template"},
    "listenurl_template": STRING, "server_description": STRING, "server_name": STRING,
    "server_type": STRING, "server_url": STRING, "stream_start": STRING,
    "stream_start_iso8601": STRING, "title": STRING, "dummy": {"type": "null"},
})

OPERATIONS_PATHS: dict[str, dict[str, Schema]] = {
    "/stream/{listener}.m3u": _playlist("m3u", "audio/x-mpegurl", "M3U"),
    "/stream/{listener}.pls": _playlist("pls", "audio/x-scpls", "PLS"),
    "/status-json.xsl": {"get": {
        "summary": "Icecast's status document: one source for the whole station",
        "tags": ["operations"],
        "description": "For Icecast tools and directories: how many listen, the peak, the"
                       " format. Every listener has their own stream; no listener id is here.",
        "responses": {"200": _ok("the status", _obj({"icestats": _obj({
            "admin": STRING, "host": STRING, "location": STRING, "server_id": STRING,
            "server_start": STRING, "server_start_iso8601": STRING,
            "source": {"type": "array", "items": _SOURCE},
        })}))},
    }},
    "/metrics": {"get": {
        "summary": "Prometheus metrics: listeners, sessions, bytes, render lag, underruns,"
                   " dead air, controls, speech, recommender latency, ledger, failures",
        "tags": ["operations"],
        "responses": {"200": {"description": "Prometheus text format (OpenMetrics when the"
                                             " Accept header asks for it)",
                              "content": {"text/plain": {"schema": STRING},
                                          "application/openmetrics-text": {"schema": STRING}}}},
    }},
    "/api/experiments/{name}": {"get": {
        "summary": "a persona experiment's analysis: split (SRM), exposures, metrics with"
                   " intervals against control, CUPED, always-valid p-values, the decision",
        "tags": ["product"], "security": BEARER_AUTH, "parameters": [_EXPERIMENT],
        "responses": {"200": _ok("the analysis (at most 30 s old)", _EXPERIMENT_REPORT),
                      **_ARTIST_ERRORS, "404": _err("NotFound")},
    }},
    "/experiments/{name}": {"get": {
        "summary": "the same analysis as an HTML report with its plots (embedded images)",
        "tags": ["product"], "security": BEARER_AUTH, "parameters": [_EXPERIMENT],
        "responses": {"200": {**_ok("the report page", STRING, "text/html"),
                              "headers": _HTML_HEADERS},
                      **_ARTIST_ERRORS, "404": _err("NotFound")},
    }},
}


def _with_common(paths: dict[str, dict[str, Schema]]) -> dict[str, dict[str, Schema]]:
    """Every operation may answer 500 (a fault, as JSON); one with a path parameter answers 400
    for control characters or bytes that are not UTF-8 in it (checked before any handler); every
    ``GET`` has its ``HEAD``, with the same headers and no body."""
    out: dict[str, dict[str, Schema]] = {}
    for path, item in paths.items():
        item = copy.deepcopy(item)
        for op in item.values():
            if "{" in path:
                op["responses"].setdefault("400", _err("BadRequest"))
            op["responses"]["500"] = _err("InternalError")
            op["responses"] = dict(sorted(op["responses"].items()))
        if "get" in item:
            head = copy.deepcopy(item["get"])
            head["summary"] = "headers only: " + head["summary"]
            for response in head["responses"].values():
                if "content" in response:
                    response["content"] = {media: {} for media in response["content"]}
            item["head"] = head
        out[path] = item
    return out


def build_document(personas: Iterable[str] | None = None) -> dict[str, Any]:
    """The whole document; ``personas``, when known, become the values ``persona`` may take."""
    paths = _with_common(_paths())
    if personas is not None:
        names = sorted(personas)
        for method in ("get", "head"):
            for param in paths["/stream/{listener}.mp3"][method]["parameters"]:
                if param["name"] == "persona":
                    param["schema"] = {"enum": ["", *names]}
    for path, item in paths.items():
        for method, op in item.items():
            op.setdefault("operationId", f"{method} {path}")
    return {
        "openapi": "3.1.0",
        "info": {"title": "dj", "version": "0.1.0",
                 "description": "A personal AI DJ station for every listener: streams, listener"
                                " controls and the artist API. Every error is JSON"
                                ' {"error": message}.'},
        "paths": paths,
        "components": {
            "schemas": copy.deepcopy(SCHEMAS),
            "responses": copy.deepcopy(RESPONSES),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description":
                               "a token made with `dj token create` (artist, listener or"
                               f" stream-key); its form: {TOKEN_FORMAT.pattern}"},
                "streamKey": {"type": "apiKey", "in": "query", "name": "key", "description":
                              "a stream key or listener token in the stream URL, for players"
                              " that cannot send headers"},
            },
        },
    }


def served_operations(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every route of ``app``, paths as the document writes them."""
    return {(route.method.lower(), route.resource.canonical)
            for route in app.router.routes() if route.resource is not None}


async def openapi_json(request: web.Request) -> web.Response:
    app = request.app
    narrator = app[STATION].narrator
    doc = build_document(narrator.personas if narrator is not None else None)
    served = served_operations(app)
    # only what this app serves: no artist API without a narrator
    doc["paths"] = {path: kept for path, item in doc["paths"].items()
                    if (kept := {m: op for m, op in item.items() if (m, path) in served})}
    return web.json_response(doc)
