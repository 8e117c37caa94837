"""Tracks, artists, rightsholders and deals, and the rule that says what may air where."""

from dj.catalog.licence import LicenceError, deal_covers, is_licensed
from dj.catalog.models import RADIO_USE, WORLDWIDE, Analysis, Artist, Deal, Listener, Share, Track
from dj.catalog.repository import MIGRATIONS, Catalog

__all__ = [
    "MIGRATIONS", "RADIO_USE", "WORLDWIDE", "Analysis", "Artist", "Catalog", "Deal", "LicenceError",
    "Listener", "Share", "Track", "deal_covers", "is_licensed",
]
