"""The licence rule: a track airs for a listener only when a deal covers their territory, tier,
today, for radio use."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from dj.catalog.models import RADIO_USE, WORLDWIDE, Deal


class LicenceError(Exception):
    def __init__(self, track_id: str, territory: str, reason: str = "no deal covers it") -> None:
        super().__init__(f"track {track_id!r} is not licensed in {territory}: {reason}")
        self.track_id = track_id
        self.territory = territory


def deal_covers(deal: Deal, territory: str, tier: str, day: date, use: str = RADIO_USE) -> bool:
    territory = territory.upper()
    if territory in deal.excluded:
        return False
    if WORLDWIDE not in deal.territories and territory not in deal.territories:
        return False
    if deal.start is not None and day < deal.start:
        return False
    if deal.end is not None and day > deal.end:
        return False
    return tier in deal.tiers and use in deal.uses


def is_licensed(
    deals: Iterable[Deal], territory: str, tier: str, day: date, use: str = RADIO_USE
) -> bool:
    return any(deal_covers(d, territory, tier, day, use) for d in deals)
