"""Rendered speech, cached by utterance key in memory and on disk, with an index in SQLite so a
revocation can find and delete every file that says the revoked words, even after a restart."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from dj.narrate.utterance import Utterance
from dj.store import Migration, Store

logger = logging.getLogger(__name__)

MIGRATIONS = [
    Migration(
        "narrate-0002-voice-cache",
        """
        CREATE TABLE narrate_voice_cache (
            key TEXT PRIMARY KEY, line_id TEXT NOT NULL, artist_id TEXT,
            artists TEXT NOT NULL DEFAULT '[]', persona TEXT NOT NULL, text TEXT NOT NULL,
            engine TEXT NOT NULL, created_at TEXT NOT NULL
        );
        CREATE INDEX narrate_voice_cache_line ON narrate_voice_cache(line_id);
        """,
    )
]


class VoiceCache:
    """Rendered speech by utterance key.

    Memory: at most ``memory_items`` renders (default 64, least recently used dropped first;
    a 5 s stereo float32 render is about 1.8 MB, so about 110 MB at most by default).
    Disk: not bounded here. One ``.npy`` file and one index row per distinct utterance ever
    rendered, kept until a revocation deletes it; distinct utterances grow with catalog, templates
    and personas, and with listener names (greetings name the listener).
    """

    def __init__(self, store: Store, directory: Path, memory_items: int = 64) -> None:
        self.store = store
        self.directory = directory
        self.memory_items = memory_items
        store.migrate(MIGRATIONS)
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            audio = self._memory.get(key)
            if audio is not None:
                self._memory.move_to_end(key)
                return audio
        path = self.path(key)
        try:
            audio = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("unreadable cached voice %s dropped: %s", path, exc)
            path.unlink(missing_ok=True)
            return None
        self._remember(key, audio)
        return audio

    def has(self, key: str) -> bool:
        """Whether a render of ``key`` is cached (nothing is read)."""
        with self._lock:
            if key in self._memory:
                return True
        return self.path(key).is_file()

    def _remember(self, key: str, audio: np.ndarray) -> None:
        with self._lock:
            self._memory[key] = audio
            self._memory.move_to_end(key)
            while len(self._memory) > self.memory_items:
                self._memory.popitem(last=False)

    def put(self, utt: Utterance, audio: np.ndarray) -> None:
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        audio.setflags(write=False)
        path = self.path(utt.key)
        # serving processes (and speech threads) may write the same render at once
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp.npy")
        with tmp.open("wb") as f:
            np.save(f, audio, allow_pickle=False)
        os.replace(tmp, path)
        self._index(utt)
        self._remember(utt.key, audio)

    def ensure_indexed(self, utt: Utterance) -> None:
        """Keep the index's record of who ``utt`` names current for a render found cached (a
        revocation of any artist it names must find it)."""
        row = self.store.query_one("SELECT artists FROM narrate_voice_cache WHERE key = ?",
                                   (utt.key,))
        if row is not None and tuple(json.loads(row["artists"])) == tuple(utt.artists):
            return
        self._index(utt)

    def _index(self, utt: Utterance) -> None:
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO narrate_voice_cache (key, line_id, artist_id, artists,"
                " persona, text, engine, created_at) VALUES (?,?,?,?,?,?,?,?)",
                (utt.key, utt.line_id, utt.artist_id, json.dumps(list(utt.artists)), utt.persona,
                 utt.text, utt.engine, datetime.now(UTC).isoformat(timespec="seconds")),
            )

    def utterance(self, key: str) -> Utterance | None:
        row = self.store.query_one("SELECT * FROM narrate_voice_cache WHERE key = ?", (key,))
        if row is None:
            return None
        return Utterance(row["key"], row["line_id"], row["artist_id"], row["persona"], row["text"],
                         row["engine"], tuple(json.loads(row["artists"])))

    def discard(self, keys: list[str]) -> int:
        """Forget these keys: memory, file and index."""
        with self._lock:
            for key in keys:
                self._memory.pop(key, None)
        for key in keys:
            self.path(key).unlink(missing_ok=True)
        if keys:
            with self.store.transaction() as db:
                db.executemany("DELETE FROM narrate_voice_cache WHERE key = ?",
                               [(k,) for k in keys])
        return len(keys)

    def delete_line(self, line_id: str) -> int:
        rows = self.store.query("SELECT key FROM narrate_voice_cache WHERE line_id = ?", (line_id,))
        return self.discard([r["key"] for r in rows])

    def delete_artist(self, artist_id: str) -> int:
        """Every cached utterance by or naming the artist (lines and templates alike)."""
        rows = self.store.query("SELECT key, artist_id, artists FROM narrate_voice_cache")
        keys = [r["key"] for r in rows
                if r["artist_id"] == artist_id or artist_id in json.loads(r["artists"])]
        return self.discard(keys)
