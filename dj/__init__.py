"""dj: a personal AI-hosted radio station for every listener."""

__version__ = "0.1.0"
