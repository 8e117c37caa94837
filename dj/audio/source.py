"""What a session streams from: a source of encoded blocks with their markers. Two kinds: the
spliced player (dj.audio.splice, shared bodies and per-listener transitions) and the full render
(:class:`FullSource`, everything rendered and encoded per listener), chosen by ``[stream] path``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from dj.audio.encode import Mp3Encoder
from dj.audio.plan import Item, Marker
from dj.audio.render import Renderer
from dj.config import AudioConfig


class Source(Protocol):
    """Not thread-safe: one executor thread at a time renders; ``skip`` and ``cancel_voice``
    only set flags and may be called from the loop."""

    @property
    def frames_rendered(self) -> int: ...  # samples handed out

    @property
    def current_play(self) -> str | None: ...  # the play audible at the render head

    @property
    def cheap(self) -> bool: ...  # the next render is a copy of shared frames (no DSP)

    def render(self) -> tuple[bytes, int, list[Marker]]: ...  # (MP3, samples, markers)

    # skip ``play_id`` if it is still at the render head (None: whatever is); decided on the
    # render thread, where the head's play is settled, not on the loop that asks
    def skip(self, play_id: str | None = None) -> None: ...

    def cancel_voice(self, key: str) -> None: ...

    def abandon(self) -> list[Marker]: ...  # after a fault: ``track_cut`` for what was on air

    def close(self) -> bytes: ...  # the last bytes of a stream that is ending


class FullSource:
    """The whole stream rendered and encoded for one listener (the fallback path). After a
    fault a new renderer takes over and the encoder carries on, so there is no gap."""

    def __init__(
        self,
        config: AudioConfig,
        next_item: Callable[[], Item | None],
        voice_source: Callable[[str], np.ndarray | None],
        *,
        block_frames: int,
        encoder: Mp3Encoder | None = None,
    ) -> None:
        self.renderer = Renderer(config, next_item, voice_source)
        self.encoder = encoder or Mp3Encoder(config.bitrate_kbps)
        self.block_frames = block_frames

    @property
    def frames_rendered(self) -> int:
        return self.renderer.frames_rendered

    @property
    def current_play(self) -> str | None:
        return self.renderer.current_play

    cheap = False  # every block is mixed and encoded

    def render(self) -> tuple[bytes, int, list[Marker]]:
        audio, markers = self.renderer.render(self.block_frames)
        return self.encoder.encode(audio), audio.shape[1], markers

    def skip(self, play_id: str | None = None) -> None:
        self.renderer.skip(play_id)

    def cancel_voice(self, key: str) -> None:
        self.renderer.cancel_voice(key)

    def abandon(self) -> list[Marker]:
        return self.renderer.abandon()

    def close(self) -> bytes:
        self.renderer.close()
        return self.encoder.close()
