"""Which session each listener has, and which connection streams it (event loop only).

A listener has at most one session. A new connection for them takes it over (the old connection
ends, the programme goes on where it is heard); when the last connection ends the session waits
``resume_window_s`` for a reconnection, unless nothing of it was heard, and is then released.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from dj.stream.session import Owner, Session

NOTHING_HEARD_S = 0.5  # a session heard less than this has nothing to resume


class SessionRegistry:
    def __init__(self, resume_window_s: float,
                 on_change: Callable[[str], None] | None = None) -> None:
        self.resume_window_s = resume_window_s
        self._sessions: dict[str, Session] = {}
        # told the listener id when a connection starts or stops streaming their session
        self._on_change = on_change or (lambda listener_id: None)

    def get(self, listener_id: str) -> Session | None:
        return self._sessions.get(listener_id)

    def live(self, listener_id: str) -> Session | None:
        """The session a connection is streaming now."""
        s = self._sessions.get(listener_id)
        return s if s is not None and s.owner is not None else None

    def attach(self, session: Session, owner: Owner) -> Session | None:
        """``owner`` streams ``session`` from now on; returns a different session this one
        replaced (to release), if any."""
        old = self._sessions.get(session.listener.id)
        self._sessions[session.listener.id] = session
        session.owner, session.left_at = owner, None
        self._on_change(session.listener.id)
        return old if old is not None and old is not session else None

    def detach(self, session: Session, owner: Owner, now: float) -> bool:
        """The connection ``owner`` ended. True when the session is to be released now."""
        if session.owner is not owner:
            return False  # taken over by another connection, or already detached
        session.owner, session.left_at = None, now
        self._on_change(session.listener.id)
        if session.heard_s < NOTHING_HEARD_S or self.resume_window_s <= 0:
            self.remove(session)
            return True
        return False

    def remove(self, session: Session) -> None:
        if self._sessions.get(session.listener.id) is session:
            del self._sessions[session.listener.id]

    def expired(self, now: float) -> list[Session]:
        """Detached sessions whose resume window has passed; removed from the registry."""
        gone = [
            s
            for s in self._sessions.values()
            if s.owner is None and s.left_at is not None
            and now - s.left_at >= self.resume_window_s
        ]
        for s in gone:
            self.remove(s)
        return gone

    def drain(self) -> list[Session]:
        """Every session, removed (the server stops)."""
        out = list(self._sessions.values())
        self._sessions.clear()
        return out

    def __getitem__(self, listener_id: str) -> Session:
        return self._sessions[listener_id]

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))

    @property
    def streaming(self) -> int:
        return sum(1 for s in self._sessions.values() if s.owner is not None)

    @property
    def resumable(self) -> int:
        return sum(1 for s in self._sessions.values() if s.owner is None)

    def __len__(self) -> int:
        return len(self._sessions)
