"""Top-n selection under a licence mask and an exclusion list, without sorting the catalog."""

from __future__ import annotations

import numpy as np


def top_n(
    scores: np.ndarray, allowed: np.ndarray, n: int, exclude: np.ndarray | None = None
) -> np.ndarray:
    """Indices of the ``n`` best-scoring allowed, non-excluded items, best first.

    ``argpartition`` keeps this O(items) for a 100k catalog; only the ``n`` winners are sorted,
    ties broken by index so the result is deterministic. Fewer than ``n`` come back when fewer
    items are eligible; a disallowed or excluded item never does.
    """
    if allowed.shape != scores.shape or allowed.dtype != np.bool_:
        raise ValueError("allowed must be a bool mask over the model's items")
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    work = np.where(allowed, scores, -np.inf)
    eligible = int(np.count_nonzero(allowed))
    if exclude is not None and exclude.size:
        exclude = np.unique(exclude)
        eligible -= int(np.count_nonzero(allowed[exclude]))
        work[exclude] = -np.inf
    k = min(n, eligible)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    picked = np.argpartition(-work, k - 1)[:k] if k < work.size else np.arange(work.size)
    order = np.lexsort((picked, -work[picked]))
    return picked[order].astype(np.int64)
