"""A listener's programme: which track comes next and what the DJ says before it, as plain data."""

from dj.program.programme import Programme, ProgrammeHistory
from dj.program.rules import RadioRules, pick_track

__all__ = ["Programme", "ProgrammeHistory", "RadioRules", "pick_track"]
