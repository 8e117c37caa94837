"""The demo's tokens: one per role, kept in the data dir so that a restart prints the same ones.

They live in ``demo-tokens.json`` (readable by its owner only) beside the database, which holds
only their hashes. At each start every kept token is checked: one that was revoked, expired or
lost is replaced, and the file is rewritten.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from dj.auth import TokenStore
from dj.catalog import Catalog, Listener
from dj.config import Config

logger = logging.getLogger(__name__)

FILE_NAME = "demo-tokens.json"
DEMO_LISTENER = "alice"  # a demo account with a history (dj.demo.listeners)
DEMO_TEAM = "demo-team"


@dataclass(frozen=True, slots=True)
class DemoToken:
    role: str
    subject: str | None
    token: str


def _wanted(catalog: Catalog) -> list[tuple[str, str | None]]:
    return [("admin", None), ("product", DEMO_TEAM), ("listener", DEMO_LISTENER),
            ("stream-key", DEMO_LISTENER)] + [("artist", a.id) for a in catalog.artists()]


def _read(path: Path) -> dict[tuple[str, str | None], str]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return {(r["role"], r["subject"]): r["token"] for r in rows}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError, KeyError) as exc:
        logger.warning("%s unreadable (%s): new demo tokens are made", path, exc)
        return {}


def demo_tokens(config: Config, catalog: Catalog) -> list[DemoToken]:
    """The demo's tokens, made once and kept (blocking: reads and writes SQLite)."""
    path = config.data_dir / FILE_NAME
    tokens = TokenStore(catalog.store)
    kept = _read(path)
    if catalog.listener(DEMO_LISTENER) is None:
        catalog.add_listener(Listener(DEMO_LISTENER, config.default_territory,
                                      config.default_tier))
    out: list[DemoToken] = []
    for role, subject in _wanted(catalog):
        token = kept.get((role, subject))
        principal = tokens.authenticate(token)
        if principal is None or (principal.role, principal.subject) != (role, subject):
            token = tokens.create(role, subject, label="dj demo")
        out.append(DemoToken(role, subject, token))
    if {(t.role, t.subject): t.token for t in out} != kept:
        # written whole, then moved into place: a crash never leaves half a file
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump([{"role": t.role, "subject": t.subject, "token": t.token} for t in out],
                      f, indent=1)
        os.replace(tmp, path)
    return out
