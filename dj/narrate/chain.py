"""A persona's voice chain: a list of pedalboard plugins described as data in the persona file.

Only plugins that make sense on a speaking voice are allowed, and every chain is built once at load
time, so a bad parameter is reported against the persona file instead of failing on air.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pedalboard

#: Plugins a persona may use, by the name written in the file.
VOICE_PLUGINS: dict[str, type] = {
    name: getattr(pedalboard, name)
    for name in (
        "HighpassFilter", "LowpassFilter", "LowShelfFilter", "HighShelfFilter", "PeakFilter",
        "Compressor", "NoiseGate", "Limiter", "Gain", "Reverb", "Chorus", "Delay", "Distortion",
        "Phaser",
    )
}

ChainSpec = tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]


class ChainError(ValueError):
    pass


def parse_chain(tables: Sequence[Mapping[str, Any]]) -> ChainSpec:
    """Turn ``[[chain]]`` tables (``plugin = "Compressor"``, then its parameters) into a spec.

    Raises :class:`ChainError` naming the step when a plugin is unknown or a parameter is wrong.
    """
    spec = []
    for i, table in enumerate(tables):
        if not isinstance(table, Mapping):
            raise ChainError(f"chain[{i}]: expected a table")
        params = dict(table)
        name = params.pop("plugin", None)
        if name not in VOICE_PLUGINS:
            allowed = ", ".join(sorted(VOICE_PLUGINS))
            raise ChainError(f"chain[{i}]: unknown plugin {name!r} (allowed: {allowed})")
        try:
            VOICE_PLUGINS[name](**params)
        except (TypeError, ValueError) as exc:
            raise ChainError(f"chain[{i}] {name}: {exc}") from None
        spec.append((name, tuple(sorted(params.items()))))
    return tuple(spec)


def build_chain(spec: ChainSpec) -> pedalboard.Pedalboard:
    """A fresh board: pedalboard plugins keep state, so each render gets its own."""
    return pedalboard.Pedalboard([VOICE_PLUGINS[name](**dict(params)) for name, params in spec])
