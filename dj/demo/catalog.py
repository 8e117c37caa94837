"""The demo catalog: eight fictional artists, three tracks each, with rightsholders and deals.

Each artist has one consistent sound (a base :class:`SongSpec`), varied per track in tempo, key,
mode and ending. Deal dates are computed from the build day, so the licence cases stay what they
claim to be: most tracks air everywhere, and a few deliberately do not air for some listeners
(another territory only, expired, not yet started, on-demand only, subscription tier only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from dj.catalog.models import Artist, Deal, Share
from dj.demo.spec import SongSpec

ARTISTS: tuple[Artist, ...] = (
    Artist("nova-lake", "Nova Lake"),
    Artist("copper-kites", "The Copper Kites"),
    Artist("mira-sol", "Mira Sol"),
    Artist("dust-parade", "Dust Parade"),
    Artist("lowlight", "Lowlight Ensemble"),
    Artist("kai-ferro", "Kai Ferro"),
    Artist("saffron-youth", "Saffron Youth"),
    Artist("night-orchard", "The Night Orchard"),
)
ARTIST_NAMES = {a.id: a.name for a in ARTISTS}


@dataclass(frozen=True, slots=True)
class ArtistStyle:
    """An artist's sound and business: base spec, genre tags, album, label and publisher."""

    base: SongSpec
    tags: tuple[str, ...]
    album: str
    year: int
    label: str
    publisher: str
    co_publisher: str = ""  # when set, publishing is split 60/40 with the artist's publisher
    master_split: bool = False  # when set, the artist owns half the master


STYLES: dict[str, ArtistStyle] = {
    "nova-lake": ArtistStyle(
        SongSpec(seed=0, mood="dreamy", pad="glass_pad", lead="sine_lead", arp="bell",
                 bass="sub_bass", groove="pop", kit="soft", bass_line="roots"),
        ("dreamy", "synth-pop", "mellow"), "First Light", 2024, "Harbour Records",
        "Harbour Songs"),
    "copper-kites": ArtistStyle(
        SongSpec(seed=0, mood="upbeat", pad="strings", lead="square_lead", arp="pluck",
                 bass="pick_bass", groove="pop", bass_line="pop"),
        ("upbeat", "indie", "guitar"), "Paper Skies", 2023, "Kiteworks", "Copper Kites Music",
        co_publisher="Northgate Publishing", master_split=True),
    "mira-sol": ArtistStyle(
        SongSpec(seed=0, mood="warm", pad="nylon", chord_rhythm="strum", lead="ep", arp="",
                 bass="upright", bass_line="tumbao", groove="bossa", kit="soft", swing=0.15),
        ("warm", "latin", "acoustic"), "Casa de Luz", 2025, "Solar Discos", "Mira Sol Canciones"),
    "dust-parade": ArtistStyle(
        SongSpec(seed=0, mood="driving", pad="pulse_guitar", chord_rhythm="pulse",
                 lead="saw_lead", arp="", bass="pick_bass", bass_line="eighths", groove="rock"),
        ("driving", "rock", "energetic"), "Long Road Home", 2022, "Gravel Records",
        "Dust Parade Songs", co_publisher="Highway Music Publishing"),
    "lowlight": ArtistStyle(
        SongSpec(seed=0, mood="jazzy", pad="ep", chord_rhythm="comp", lead="vibes", arp="",
                 bass="upright", bass_line="walking", groove="jazz", kit="soft", swing=0.6),
        ("mellow", "jazz", "late-night"), "After Hours", 2021, "Blue Lamp Records",
        "Lowlight Music", master_split=True),
    "kai-ferro": ArtistStyle(
        SongSpec(seed=0, mood="dark", pad="saw_pad", lead="saw_lead", arp="pluck",
                 bass="synth_bass", bass_line="octaves", groove="halftime", kit="electronic"),
        ("dark", "electronic", "night"), "Iron Bloom", 2025, "Ferro Audio",
        "Ferro Audio Publishing"),
    "saffron-youth": ArtistStyle(
        SongSpec(seed=0, mood="bright", pad="saw_pad", lead="square_lead", arp="bell",
                 bass="synth_bass", bass_line="pop", groove="four", kit="electronic"),
        ("bright", "pop", "upbeat"), "Golden Hour", 2024, "Saffron Sound", "Saffron Youth Songs",
        co_publisher="Northgate Publishing"),
    "night-orchard": ArtistStyle(
        SongSpec(seed=0, mood="ambient", pad="glass_pad", lead="bell", arp="pluck",
                 bass="sub_bass", bass_line="sustain", groove="ambient", kit="soft"),
        ("ambient", "slow", "dreamy"), "Moths and Lanterns", 2023, "Orchard Tapes",
        "Night Orchard Music"),
}

# (track number, title, per-track changes, licence case)
_TRACKS: dict[str, tuple[tuple[str, dict, str], ...]] = {
    "nova-lake": (
        ("Harbour Lights", dict(tempo_bpm=96, key="C", duration_s=104), "ww"),
        ("Glass Coast", dict(tempo_bpm=104, key="A", mode="minor", duration_s=96,
                             ending="clean"), "ww"),
        ("Slow Satellites", dict(tempo_bpm=84, key="F", duration_s=118, loudness_lufs=-20,
                                 silence_start_s=1.5, silence_end_s=2.0), "ww"),
    ),
    "copper-kites": (
        ("Paper Skies", dict(tempo_bpm=128, key="G", duration_s=104), "ww-ex"),
        ("Tin Can Telephone", dict(tempo_bpm=136, key="D", duration_s=74, ending="clean"),
         "on-demand"),
        ("Running Late Again", dict(tempo_bpm=120, key="A", duration_s=112,
                                    loudness_lufs=-11), "ww"),
    ),
    "mira-sol": (
        ("Casa de Luz", dict(tempo_bpm=100, key="D", mode="minor", duration_s=110), "renewed"),
        ("Marea Baja", dict(tempo_bpm=92, key="G", duration_s=98, ending="clean"), "ww"),
        ("Naranja", dict(tempo_bpm=108, key="E", mode="minor", duration_s=72,
                         loudness_lufs=-17), "territories"),
    ),
    "dust-parade": (
        ("Long Road Home", dict(tempo_bpm=140, key="E", mode="minor", duration_s=102,
                                loudness_lufs=-8, ending="clean"), "ww"),
        ("Gravel and Chrome", dict(tempo_bpm=148, key="A", duration_s=92, loudness_lufs=-9),
         "ww-ex"),
        ("Diesel Hymn", dict(tempo_bpm=132, key="D", mode="minor", duration_s=96), "ww"),
    ),
    "lowlight": (
        ("After Hours", dict(tempo_bpm=88, key="F", duration_s=108, loudness_lufs=-22), "ww"),
        ("Blue Lamp", dict(tempo_bpm=76, key="Bb", duration_s=84, ending="clean"), "expired"),
        ("Smoke Rings", dict(tempo_bpm=96, key="Eb", mode="minor", duration_s=100,
                             loudness_lufs=-24), "ww"),
    ),
    "kai-ferro": (
        ("Iron Bloom", dict(tempo_bpm=124, key="A", mode="minor", duration_s=98,
                            loudness_lufs=-8), "ww"),
        ("Undertow", dict(tempo_bpm=110, key="F#", mode="minor", duration_s=104,
                          groove="four", ending="clean"), "ww"),
        ("Neon Ghosts", dict(tempo_bpm=140, key="C", mode="minor", duration_s=96), "jp-only"),
    ),
    "saffron-youth": (
        ("Golden Hour", dict(tempo_bpm=118, key="E", duration_s=108, loudness_lufs=-10), "ww"),
        ("Sunday Parade", dict(tempo_bpm=126, key="Bb", duration_s=94, ending="clean"), "ww"),
        ("Marigold", dict(tempo_bpm=112, key="G", duration_s=100), "future"),
    ),
    "night-orchard": (
        ("Moths and Lanterns", dict(tempo_bpm=72, key="D", duration_s=128, loudness_lufs=-24,
                                    silence_start_s=2.0, silence_end_s=3.0), "ww"),
        ("Orchard at Dusk", dict(tempo_bpm=70, key="A", mode="minor", duration_s=112),
         "subscription"),
        ("Quiet Engines", dict(tempo_bpm=80, key="C", duration_s=100, ending="clean",
                               loudness_lufs=-19), "ww"),
    ),
}

# Why a licence case keeps a track off some listeners' radio ("" = airs for everyone).
UNPLAYABLE_REASONS = {
    "jp-only": "licensed in JP only",
    "expired": "deal expired",
    "future": "deal not yet started",
    "on-demand": "on-demand use only, not radio",
    "subscription": "subscription tier only",
    "territories": "licensed in US, GB, DE, FR, JP, ES, MX only",
}


@dataclass(frozen=True, slots=True)
class DemoTrack:
    """One demo track: what to synthesize and what to write into the manifest."""

    id: str
    title: str
    artist_id: str
    album: str
    year: int
    isrc: str
    tags: tuple[str, ...]
    spec: SongSpec
    shares: tuple[Share, ...]
    deals: tuple[Deal, ...]
    unplayable: str = ""

    @property
    def artist_name(self) -> str:
        return ARTIST_NAMES[self.artist_id]


def _deals(case: str, track_id: str, today: date) -> tuple[Deal, ...]:
    d = timedelta
    start, end = today - d(days=400), today + d(days=5 * 365)
    ww = frozenset({"WW"})
    if case == "ww":
        return (Deal(track_id, ww, start=start, end=end),)
    if case == "ww-ex":
        return (Deal(track_id, ww, excluded=frozenset({"CN", "RU"}), start=start, end=end),)
    if case == "renewed":  # an old deal that ran out and its renewal: airs
        return (Deal(track_id, ww, start=today - d(days=3 * 365), end=today - d(days=60)),
                Deal(track_id, ww, start=today - d(days=59), end=end))
    if case == "territories":
        terr = frozenset({"US", "GB", "DE", "FR", "JP", "ES", "MX"})
        return (Deal(track_id, terr, start=start, end=end),)
    if case == "jp-only":
        return (Deal(track_id, frozenset({"JP"}), start=start, end=end),)
    if case == "expired":
        return (Deal(track_id, ww, start=today - d(days=3 * 365), end=today - d(days=30)),)
    if case == "future":
        return (Deal(track_id, ww, start=today + d(days=45), end=end),)
    if case == "on-demand":
        return (Deal(track_id, ww, start=start, end=end, uses=frozenset({"on-demand"})),)
    if case == "subscription":
        return (Deal(track_id, ww, start=start, end=end, tiers=frozenset({"subscription"})),)
    raise ValueError(f"unknown licence case {case!r}")


def _shares(track_id: str, artist_id: str, style: ArtistStyle) -> tuple[Share, ...]:
    name = ARTIST_NAMES[artist_id]
    if style.master_split:
        master = [Share(track_id, name, "master", 50.0),
                  Share(track_id, style.label, "master", 50.0)]
    else:
        master = [Share(track_id, style.label, "master", 100.0)]
    if style.co_publisher:
        publishing = [Share(track_id, style.publisher, "publishing", 60.0),
                      Share(track_id, style.co_publisher, "publishing", 40.0)]
    else:
        publishing = [Share(track_id, style.publisher, "publishing", 100.0)]
    return tuple(master + publishing)


def short_duration(index: int) -> float:
    """20–30 s, spread over the tracks, for fast tests."""
    return 20.0 + (index * 7) % 11


def demo_tracks(today: date, *, short: bool = False) -> list[DemoTrack]:
    """The demo catalog as of ``today`` (UTC): 24 tracks, deals dated relative to ``today``."""
    out: list[DemoTrack] = []
    index = 0
    for a_i, artist in enumerate(ARTISTS):
        style = STYLES[artist.id]
        for n, (title, changes, case) in enumerate(_TRACKS[artist.id], start=1):
            track_id = f"{artist.id}-{n:02d}"
            spec = style.base.replace(seed=1000 + 17 * a_i + n, **changes)
            if short:
                spec = spec.replace(duration_s=short_duration(index), fade_s=4.0)
            index += 1
            out.append(DemoTrack(
                id=track_id, title=title, artist_id=artist.id, album=style.album,
                year=style.year + (n - 1) // 2,
                isrc=f"XXDJ0{(style.year + (n - 1) // 2) % 100:02d}{a_i * 100 + n:05d}",
                tags=style.tags + (spec.mood,) if spec.mood not in style.tags else style.tags,
                spec=spec, shares=_shares(track_id, artist.id, style),
                deals=_deals(case, track_id, today), unplayable=UNPLAYABLE_REASONS.get(case, ""),
            ))
    return out
