"""Bearer tokens: random secrets shown once, stored only as SHA-256 hashes, revocable.

A token is ``dj_<id>_<secret>``: the id (public, for listing and revoking) and a 256-bit secret.
Only the hash of the whole token is kept, so a copy of the database gives no working token.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dj.auth.roles import check_role
from dj.store import Migration, Store, where_equal

logger = logging.getLogger(__name__)

PREFIX = "dj_"
#: What a token can look like: anything else (other bytes, control or non-ASCII characters, a
#: header that was not UTF-8) is simply not a token, and is never hashed or looked up.
TOKEN_FORMAT = re.compile(r"dj_[0-9a-f]{8}_[A-Za-z0-9_\-]{16,128}", re.ASCII)

MIGRATIONS = [
    Migration(
        "auth-0001-tokens",
        """
        CREATE TABLE auth_tokens (
            id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, role TEXT NOT NULL,
            subject TEXT, label TEXT NOT NULL DEFAULT '', created_at TEXT NOT NULL, revoked_at TEXT
        );
        """,
    ),
    Migration(
        "auth-0002-expiry",
        "ALTER TABLE auth_tokens ADD COLUMN expires_at TEXT;",
    ),
]

#: The longest a token may be made to last (``--expires``): a typo should not mint a token
#: for ever, and dates stay far from the calendar's edge.
MAX_EXPIRY_DAYS = 3660


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request speaks for."""

    token_id: str
    role: str
    subject: str | None

    def describe(self) -> str:
        """For audit trails: role, subject and the token used (never the secret)."""
        who = f"{self.role}:{self.subject}" if self.subject else self.role
        return f"{who} (token {self.token_id})"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: str
    role: str
    subject: str | None
    label: str
    created_at: str
    revoked_at: str | None
    expires_at: str | None

    def state(self, now: datetime | None = None) -> str:
        """``active``, ``revoked`` or ``expired``."""
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= _stamp(now):
            return "expired"
        return "active"


def _stamp(when: datetime | None = None) -> str:
    """UTC, to the second, in one fixed format so that stamps compare as strings."""
    return (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        store.migrate(MIGRATIONS)

    def create(self, role: str, subject: str | None, label: str = "", *,
               expires_days: float | None = None) -> str:
        """A new token for ``role``/``subject``; the only time its secret exists in clear.

        ``expires_days``: it stops working that many days from now (None: until revoked).
        """
        check_role(role, subject)
        expires_at = None
        if expires_days is not None:
            if not 0 < expires_days <= MAX_EXPIRY_DAYS:
                raise ValueError(f"a token expires after 0 to {MAX_EXPIRY_DAYS} days")
            expires_at = _stamp(datetime.now(UTC) + timedelta(days=expires_days))
        token_id = secrets.token_hex(4)
        token = f"{PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO auth_tokens (id, hash, role, subject, label, created_at, expires_at)"
                " VALUES (?,?,?,?,?,?,?)",
                (token_id, _hash(token), role, subject, label, _stamp(), expires_at),
            )
        logger.info("token %s created for %s:%s", token_id, role, subject or "")
        return token

    def authenticate(self, token: str | None) -> Principal | None:
        if not isinstance(token, str) or not TOKEN_FORMAT.fullmatch(token):
            return None
        # read at every request, never cached: a revocation or an expiry holds at once,
        # whichever process made it
        row = self.store.query_one(
            "SELECT id, role, subject FROM auth_tokens WHERE hash = ? AND revoked_at IS NULL"
            " AND (expires_at IS NULL OR expires_at > ?)",
            (_hash(token), _stamp()),
        )
        if row is None:
            return None
        return Principal(row["id"], row["role"], row["subject"])

    def revoke(self, token_id: str) -> bool:
        """True if a live token was revoked; it stops working at once."""
        with self.store.transaction() as db:
            cur = db.execute(
                "UPDATE auth_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (_stamp(), token_id),
            )
        return cur.rowcount > 0

    def list(self, role: str | None = None, subject: str | None = None) -> list[TokenInfo]:
        where, params = where_equal(role=role, subject=subject)
        rows = self.store.query(
            "SELECT id, role, subject, label, created_at, revoked_at, expires_at"
            f" FROM auth_tokens{where}"
            " ORDER BY created_at, id", params,
        )
        return [TokenInfo(**dict(r)) for r in rows]


def create_token(store: Store, role: str, subject: str | None, label: str = "", *,
                 expires_days: float | None = None) -> str:
    """``dj token create --role artist --artist ID`` calls this; print the result once."""
    return TokenStore(store).create(role, subject, label, expires_days=expires_days)
