"""Append-only log of plays and aired lines, with the rightsholders each one credits."""

from dj.ledger.log import MIGRATIONS, Airing, Ledger, Play

__all__ = ["MIGRATIONS", "Airing", "Ledger", "Play"]
