"""Play counts → a sparse listener × track matrix, and the confidence given to a count.

Only ``dj.recommend`` knows how ids map to matrix rows and columns; everything outside speaks in
listener and track ids. Counts for a repeated ``(user, item)`` pair add up, as plays do.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger(__name__)

WEIGHTINGS = ("raw", "log", "bm25")


class InteractionsError(ValueError):
    """A bad row in an interactions file, with the file and 1-based line number it came from."""

    def __init__(self, path: Path | str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = str(path)
        self.line = line
        self.reason = reason


@dataclass(frozen=True, slots=True)
class InteractionMatrix:
    """A CSR ``users × items`` matrix of summed counts with its id ↔ index maps."""

    counts: sp.csr_matrix
    user_ids: tuple[str, ...]
    item_ids: tuple[str, ...]

    @property
    def user_index(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.user_ids)}

    @property
    def item_index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.item_ids)}


def build_matrix(
    rows: Iterable[tuple[str, str, float]],
    *,
    item_ids: Sequence[str] | None = None,
    user_ids: Sequence[str] | None = None,
) -> InteractionMatrix:
    """Build the count matrix; ``item_ids``/``user_ids`` fix the order (and include silent ids).

    Rows naming an item or user outside a given id list are dropped with one warning, because a
    play of a track that has since left the catalog must not break training.
    """
    users: dict[str, int] = {u: i for i, u in enumerate(dict.fromkeys(user_ids or ()))}
    items: dict[str, int] = {t: i for i, t in enumerate(dict.fromkeys(item_ids or ()))}
    fixed_users, fixed_items = user_ids is not None, item_ids is not None
    r: list[int] = []
    c: list[int] = []
    v: list[float] = []
    dropped = 0
    for user, item, count in rows:
        if fixed_items and item not in items or fixed_users and user not in users:
            dropped += 1
            continue
        r.append(users.setdefault(user, len(users)))
        c.append(items.setdefault(item, len(items)))
        v.append(float(count))
    if dropped:
        logger.warning("dropped %d interactions naming unknown users or items", dropped)
    shape = (len(users), len(items))
    counts = sp.csr_matrix(
        (np.asarray(v, dtype=np.float32),
         (np.asarray(r, dtype=np.int64), np.asarray(c, dtype=np.int64))),
        shape=shape,
    )
    counts.sum_duplicates()
    counts.eliminate_zeros()
    return InteractionMatrix(counts, tuple(users), tuple(items))


def raw_confidence(counts: sp.csr_matrix, alpha: float = 1.0) -> sp.csr_matrix:
    """Hu–Koren–Volinsky linear confidence ``1 + alpha·count`` (heavy users dominate)."""
    out = counts.astype(np.float32, copy=True)
    out.data = 1.0 + alpha * out.data
    return out


def log_confidence(counts: sp.csr_matrix, alpha: float = 2.0) -> sp.csr_matrix:
    """``1 + alpha·log1p(count)``: a fan's 10,000th play says little more than the 100th."""
    out = counts.astype(np.float32, copy=True)
    out.data = (1.0 + alpha * np.log1p(np.abs(out.data))).astype(np.float32)
    return out


BM25_FLOOR = 0.05  # confidence floor: a track everyone plays must not turn into negative evidence


def bm25_confidence(counts: sp.csr_matrix, k1: float = 1.2, b: float = 0.8) -> sp.csr_matrix:
    """BM25 weighting (implicit's ``bm25_weight``): damps both heavy users and popular items.

    Clamped at :data:`BM25_FLOOR`: implicit reads a non-positive confidence as a dislike, and a
    track played by (nearly) every listener has a non-positive idf on a small station.
    """
    from implicit.nearest_neighbours import bm25_weight

    out = bm25_weight(counts.astype(np.float32), K1=k1, B=b).tocsr().astype(np.float32)
    out.data = np.maximum(out.data, BM25_FLOOR)
    return out


@dataclass(frozen=True, slots=True)
class Bm25Stats:
    """What :func:`bm25_confidence` needs to weight one new row exactly as it weighted training."""

    idf: np.ndarray  # per item
    average_length: float
    k1: float
    b: float

    @classmethod
    def of(cls, counts: sp.csr_matrix, k1: float, b: float) -> Bm25Stats:
        n_users = max(counts.shape[0], 1)
        df = np.bincount(counts.indices, minlength=counts.shape[1])
        idf = (np.log(float(n_users)) - np.log1p(df)).astype(np.float32)
        lengths = np.asarray(counts.sum(axis=1)).ravel()
        average = float(lengths.mean()) if lengths.size else 0.0
        return cls(idf, average if average > 0 else 1.0, float(k1), float(b))

    def row(self, items: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """BM25 confidence of one listener's row (``counts`` ≥ 0), floored like training."""
        length = float(counts.sum())
        norm = (1.0 - self.b) + self.b * length / self.average_length
        weight = counts * (self.k1 + 1.0) / (self.k1 * norm + counts) * self.idf[items]
        return np.maximum(weight, BM25_FLOOR)


def confidence(counts: sp.csr_matrix, weighting: str, param: float) -> sp.csr_matrix:
    """Dispatch on a weighting name; ``param`` is alpha (raw, log) or K1 (bm25)."""
    if weighting == "raw":
        return raw_confidence(counts, param)
    if weighting == "log":
        return log_confidence(counts, param)
    if weighting == "bm25":
        return bm25_confidence(counts, k1=param)
    raise ValueError(f"unknown weighting {weighting!r}; expected one of {WEIGHTINGS}")


def log_weight(alpha: float) -> Callable[[float], float]:
    """The scalar form of :func:`log_confidence`, for single live events."""
    return lambda count: 1.0 + alpha * math.log1p(abs(count))


def read_interactions(path: Path) -> list[tuple[str, str, float]]:
    """Read ``user<TAB>item<TAB>count`` lines; a header on the first line is skipped.

    The first non-blank line is a header when its count field is not a number; blank lines are
    ignored.
    Every other malformed row raises :class:`InteractionsError` naming the line, because a
    silently skipped row would bias an evaluation without anyone noticing.
    """
    path = Path(path)
    rows: list[tuple[str, str, float]] = []
    first = True
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            is_first, first = first, False
            fields = text.split("\t")
            if len(fields) != 3:
                raise InteractionsError(
                    path, lineno,
                    f"expected 3 tab-separated fields (user, item, count), got {len(fields)}",
                )
            user, item, raw = (f.strip() for f in fields)
            try:
                count = float(raw)
            except ValueError:
                if is_first:
                    continue  # header row
                raise InteractionsError(path, lineno, f"count {raw!r} is not a number") from None
            if not user or not item:
                raise InteractionsError(path, lineno, "empty user or item id")
            if not math.isfinite(count) or count < 0:
                raise InteractionsError(path, lineno, f"count {raw!r} must be a finite number ≥ 0")
            rows.append((user, item, count))
    return rows
