"""The demo station's content, made by the project itself: synthesized music (license-clean),
a catalog of fictional artists with rightsholders and deals, and synthetic listening histories."""

from dj.demo.build import DemoSummary, build_demo, synthesize
from dj.demo.catalog import ARTISTS, DemoTrack, demo_tracks
from dj.demo.listeners import ListenerHistories, make_listeners
from dj.demo.spec import MOODS, SongSpec
from dj.demo.synth import render

__all__ = [
    "ARTISTS", "MOODS", "DemoSummary", "DemoTrack", "ListenerHistories", "SongSpec", "build_demo",
    "demo_tracks", "make_listeners", "render", "synthesize",
]
