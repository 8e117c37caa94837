"""Top-k ranking metrics over held-out items (binary relevance), and catalog coverage.

Conventions (stated because papers differ): recall divides by all held-out items; nDCG and MAP
normalise by the best achievable with ``min(k, |relevant|)`` hits, so a perfect list scores 1.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass


def precision_at_k(ranked: Sequence[object], relevant: Collection[object], k: int = 10) -> float:
    return sum(1 for x in ranked[:k] if x in relevant) / k


def recall_at_k(ranked: Sequence[object], relevant: Collection[object], k: int = 10) -> float:
    if not relevant:
        return 0.0
    return sum(1 for x in ranked[:k] if x in relevant) / len(relevant)


def ndcg_at_k(ranked: Sequence[object], relevant: Collection[object], k: int = 10) -> float:
    if not relevant:
        return 0.0
    dcg = sum(1.0 / math.log2(pos + 2) for pos, x in enumerate(ranked[:k]) if x in relevant)
    ideal = sum(1.0 / math.log2(pos + 2) for pos in range(min(k, len(relevant))))
    return dcg / ideal


def average_precision_at_k(
    ranked: Sequence[object], relevant: Collection[object], k: int = 10
) -> float:
    if not relevant:
        return 0.0
    hits = 0
    total = 0.0
    for pos, x in enumerate(ranked[:k]):
        if x in relevant:
            hits += 1
            total += hits / (pos + 1)
    return total / min(k, len(relevant))


def coverage_at_k(ranked_lists: Iterable[Sequence[object]], n_items: int, k: int = 10) -> float:
    """Distinct items recommended in anyone's top k, as a share of the whole catalog."""
    seen: set[object] = set()
    for ranked in ranked_lists:
        seen.update(ranked[:k])
    return len(seen) / n_items if n_items else 0.0


@dataclass(frozen=True, slots=True)
class Metrics:
    precision: float
    recall: float
    ndcg: float
    map: float
    coverage: float
    users: int


def evaluate_rankings(
    ranked: Mapping[object, Sequence[object]],
    held_out: Mapping[object, Collection[object]],
    n_items: int,
    k: int = 10,
) -> Metrics:
    """Mean metrics over the users in ``held_out`` (a user with no ranking scores zero)."""
    users = [u for u in held_out if held_out[u]]
    if not users:
        return Metrics(0.0, 0.0, 0.0, 0.0, 0.0, 0)
    lists = [list(ranked.get(u, ()))[:k] for u in users]
    pairs = [(r, held_out[u]) for u, r in zip(users, lists, strict=True)]
    n = len(users)
    return Metrics(
        precision=sum(precision_at_k(r, rel, k) for r, rel in pairs) / n,
        recall=sum(recall_at_k(r, rel, k) for r, rel in pairs) / n,
        ndcg=sum(ndcg_at_k(r, rel, k) for r, rel in pairs) / n,
        map=sum(average_precision_at_k(r, rel, k) for r, rel in pairs) / n,
        coverage=coverage_at_k(lists, n_items, k),
        users=n,
    )
