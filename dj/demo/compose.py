"""Composition for the demo synthesizer: song form, diatonic harmony, bass lines, grooves, melodies.

Everything here is plain data (a list of :class:`Event`), deterministic from the spec's seed, so
the arrangement can be tested and reasoned about without audio. A melody is built from a two-bar
motif repeated with variation (A A B A'), its strong-beat notes snapped to the bar's chord, which
is what makes a synthetic tune sound like a tune rather than a random walk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dj.demo.spec import MOODS, SongSpec

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
KEYS = {
    "C": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "F": 5, "F#": 6, "Gb": 6,
    "G": 7, "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11,
}

# Scale-degree progressions (0 = I/i), one chord per harmonic step; picked per mode by seed.
PROGRESSIONS = {
    "major": (
        (0, 4, 5, 3),  # I–V–vi–IV
        (5, 3, 0, 4),  # vi–IV–I–V
        (0, 5, 3, 4),  # I–vi–IV–V
        (3, 0, 4, 5),  # IV–I–V–vi
        (0, 3, 5, 4),  # I–IV–vi–V
        (1, 4, 0, 5),  # ii–V–I–vi
    ),
    "minor": (
        (0, 5, 2, 6),  # i–VI–III–VII
        (0, 6, 5, 6),  # i–VII–VI–VII
        (0, 3, 6, 2),  # i–iv–VII–III
        (5, 6, 0, 0),  # VI–VII–i–i
        (0, 3, 4, 0),  # i–iv–v–i
        (0, 5, 3, 4),  # i–VI–iv–v
    ),
}

SECTION_LAYERS = {
    "intro": {"pad", "arp", "hat", "shaker", "ride"},
    "verse": {"pad", "bass", "lead", "kick", "snare", "clap", "hat", "rim", "shaker", "ride",
              "brush"},
    "chorus": {"pad", "bass", "lead", "arp", "kick", "snare", "clap", "hat", "open_hat", "rim",
               "shaker", "ride", "brush", "crash"},
    "break": {"pad", "arp", "lead", "shaker", "hat"},
    "outro": {"pad", "bass", "arp", "kick", "hat", "shaker", "ride", "rim", "brush"},
    "final": {"pad", "bass", "kick", "crash"},
}
SECTION_ENERGY = {"intro": 0.7, "verse": 0.85, "chorus": 1.0, "break": 0.7, "outro": 0.85,
                  "final": 0.9}

# Grooves: drum -> list of (16th step in a bar, velocity).
_EIGHTHS = [(s, 0.9 if s % 4 == 0 else 0.6) for s in range(0, 16, 2)]
GROOVES: dict[str, dict[str, list[tuple[int, float]]]] = {
    "pop": {
        "kick": [(0, 1.0), (8, 0.95), (10, 0.55)], "snare": [(4, 0.9), (12, 0.95)],
        "hat": _EIGHTHS, "open_hat": [(14, 0.5)],
    },
    "four": {
        "kick": [(0, 1.0), (4, 0.95), (8, 1.0), (12, 0.95)], "clap": [(4, 0.85), (12, 0.9)],
        "hat": [(s, 0.35) for s in range(1, 16, 2)], "open_hat": [(2, 0.6), (6, 0.5), (10, 0.6),
                                                                  (14, 0.5)],
    },
    "rock": {
        "kick": [(0, 1.0), (6, 0.7), (8, 1.0), (10, 0.65)], "snare": [(4, 1.0), (12, 1.0)],
        "hat": [(s, 0.85 if s % 4 == 0 else 0.65) for s in range(0, 16, 2)],
    },
    "halftime": {
        "kick": [(0, 1.0), (7, 0.6), (10, 0.85)], "clap": [(8, 0.9)], "snare": [(8, 0.6)],
        "hat": [(s, (0.55, 0.25, 0.4, 0.25)[s % 4]) for s in range(16)],
    },
    "bossa": {
        "kick": [(0, 0.8), (6, 0.5), (8, 0.8), (14, 0.5)],
        "rim": [(0, 0.7), (6, 0.7), (12, 0.7)],
        "shaker": [(s, 0.55 if s % 2 == 0 else 0.3) for s in range(16)],
    },
    "jazz": {
        "ride": [(0, 0.7), (4, 0.8), (6, 0.5), (8, 0.7), (12, 0.8), (14, 0.5)],
        "hat": [(4, 0.35), (12, 0.35)], "kick": [(0, 0.3), (8, 0.25)],
        "brush": [(4, 0.5), (12, 0.55), (10, 0.2)],
    },
    "ambient": {
        "kick": [(0, 0.45)], "shaker": [(4, 0.25), (12, 0.3)],
    },
    "none": {},
}


@dataclass(frozen=True, slots=True)
class Event:
    """One note or hit: ``part`` is the mix bus (pad, bass, lead, arp, drums), ``voice`` the
    sound."""

    part: str
    voice: str
    start_s: float
    dur_s: float = 0.0
    midi: int = 0
    velocity: float = 1.0
    pan: float = 0.0  # -1 left … +1 right


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    start_bar: int
    bars: int


@dataclass(frozen=True, slots=True)
class Arrangement:
    """What to play: the events, the form, and timing facts the renderer needs."""

    events: list[Event]
    sections: list[Section]
    bar_s: float
    music_s: float  # when the last bar ends (releases and reverb ring on after this)
    extra: dict[str, float] = field(default_factory=dict)


def plan_sections(total_bars: int, ending: str) -> list[Section]:
    """Intro, verse/chorus alternation with a breakdown, outro (a final chord for clean ends)."""
    final = 1 if ending == "clean" else 0
    small = total_bars < 24
    intro = 2 if small else 4
    outro = 2 if small else 4
    body = max(2, total_bars - intro - outro - final)
    unit = 4 if small else 8
    cycle = [("verse", unit), ("chorus", unit), ("verse", unit), ("chorus", unit),
             ("break", unit // 2), ("chorus", unit), ("chorus", unit)]
    parts: list[tuple[str, int]] = []
    left, i = body, 0
    while left > 0:
        name, bars = cycle[i % len(cycle)]
        bars = min(bars, left)
        if left - bars < 2 and left - bars > 0:
            bars = left
        parts.append((name, bars))
        left -= bars
        i += 1
    sections, bar = [], 0
    for name, bars in [("intro", intro), *parts, ("outro", outro)] + ([("final", 1)] * final):
        sections.append(Section(name, bar, bars))
        bar += bars
    return sections


def chord_pcs(degree: int, scale: tuple[int, ...], sevenths: bool, harmonic_v: bool) -> list[int]:
    """Pitch classes (semitones above the tonic) of the diatonic chord on ``degree``."""
    steps = (0, 2, 4, 6) if sevenths else (0, 2, 4)
    pcs = [scale[(degree + s) % 7] + 12 * ((degree + s) // 7) for s in steps]
    if harmonic_v and degree == 4 and scale == MINOR:
        pcs[1] += 1  # raised leading tone: a major V pulls home in minor keys
    return pcs


def voice_chord(pcs: list[int], tonic_midi: int, center: int) -> list[int]:
    """Close voicing: every chord tone in the octave nearest ``center``."""
    notes = []
    for pc in pcs:
        m = tonic_midi + pc
        m += 12 * round((center - m) / 12)
        notes.append(m)
    return sorted(set(notes))


@dataclass(frozen=True, slots=True)
class Motif:
    rhythm: tuple[tuple[int, int], ...]  # (start, length) in eighths within two bars
    contour: tuple[int, ...]  # scale-degree offsets from the phrase's anchor


def make_motif(rng: np.random.Generator, density: float) -> Motif:
    rhythm: list[tuple[int, int]] = []
    pos = 0
    lengths = np.array([1, 2, 3, 4, 6])
    weights = np.array([density, 1.0, 0.5, 0.6 - 0.3 * density, 0.3 - 0.2 * density])
    weights = np.clip(weights, 0.02, None)
    weights /= weights.sum()
    while pos < 15:
        if rhythm and rng.random() < 0.18 * (1.2 - density):
            pos += int(rng.choice([1, 2]))
            continue
        length = int(rng.choice(lengths, p=weights))
        length = min(length, 16 - pos)
        rhythm.append((pos, length))
        pos += length
    contour, d = [], 0
    for _ in rhythm:
        contour.append(d)
        d += int(rng.choice([-2, -1, -1, 1, 1, 2, 3, -3], p=[.12, .2, .08, .2, .08, .15, .1, .07]))
        d = int(np.clip(d, -3, 5))
    return Motif(tuple(rhythm), tuple(contour))


def _deg_midi(degree: int, scale: tuple[int, ...], tonic_midi: int) -> int:
    return tonic_midi + 12 * (degree // 7) + scale[degree % 7]


def _snap_to_chord(degree: int, chord_degree: int, sevenths: bool) -> int:
    tones = {(chord_degree + s) % 7 for s in ((0, 2, 4, 6) if sevenths else (0, 2, 4))}
    for delta in (0, -1, 1, -2, 2):
        if (degree + delta) % 7 in tones:
            return degree + delta
    return degree


def compose(spec: SongSpec) -> Arrangement:
    """Turn a spec into timed events: form, chords, bass, drums, arpeggio and melody."""
    problems = spec.problems()
    if problems:
        raise ValueError("invalid song spec: " + "; ".join(problems))
    rng = np.random.default_rng([spec.seed, 1])
    mood = MOODS[spec.mood]
    scale = MAJOR if spec.mode == "major" else MINOR
    pc = KEYS[spec.key]
    beat_s = 60.0 / spec.tempo_bpm
    bar_s = 4.0 * beat_s
    step_s = beat_s / 4.0
    tail_s = 2.5 if spec.ending == "clean" else 0.0
    total_bars = max(6, round((spec.duration_s - tail_s) / bar_s))
    sections = plan_sections(total_bars, spec.ending)
    progs = PROGRESSIONS[spec.mode]
    pick = rng.permutation(len(progs))
    verse_prog = spec.progression or progs[pick[0]]
    chorus_prog = spec.chorus_progression or progs[pick[1]]
    chord_bars = 2 if spec.tempo_bpm >= 128 else 1
    full = SECTION_LAYERS["chorus"] - {"crash"}
    layers = dict(SECTION_LAYERS, outro=full if spec.ending == "fade" else SECTION_LAYERS["outro"])

    def when(bar: int, step: float) -> float:
        frac = step % 4
        swing = spec.swing * (2 / 3 if frac == 2 else 1 / 3 if frac in (1, 3) else 0.0)
        return (bar * 16 + step + swing) * step_s

    def chord_of(section: Section, bar_in: int) -> int:
        if section.name == "final":
            return 0
        prog = chorus_prog if section.name in ("chorus", "outro") else verse_prog
        return prog[(bar_in // chord_bars) % len(prog)]

    def pcs_of(degree: int) -> list[int]:
        return chord_pcs(degree, scale, mood.sevenths, mood.harmonic_v)

    events: list[Event] = []
    motifs = {
        "verse": (make_motif(rng, mood.lead_density), make_motif(rng, mood.lead_density)),
        "chorus": (make_motif(rng, min(1.0, mood.lead_density + 0.15)),
                   make_motif(rng, min(1.0, mood.lead_density + 0.15))),
    }
    motifs["break"] = motifs["verse"]
    lead_tonic = 60 + pc if pc < 7 else 48 + pc
    bass_root_base = 36 + pc if pc <= 8 else 24 + pc
    groove = GROOVES[spec.groove]
    hum = rng.standard_normal(100_000)
    hi = 0

    def jitter(scale_s: float) -> float:
        nonlocal hi
        hi = (hi + 1) % hum.size
        return float(hum[hi]) * scale_s

    for s_i, sec in enumerate(sections):
        on = layers[sec.name]
        energy = SECTION_ENERGY[sec.name]
        nxt = sections[s_i + 1].name if s_i + 1 < len(sections) else ""
        for b in range(sec.bars):
            bar = sec.start_bar + b
            degree = chord_of(sec, b)
            pcs = pcs_of(degree)
            change = sec.name == "final" or b % chord_bars == 0
            next_degree = chord_of(sec, b + 1) if b + 1 < sec.bars else 0
            bar_len = bar_s if sec.name != "final" else bar_s * 1.5
            # -- chords
            if "pad" in on:
                events += _chord_events(spec, sec.name, bar, b, pcs, pc, when, step_s,
                                        bar_len * (chord_bars if sec.name != "final" else 1),
                                        change, energy, jitter)
            # -- bass
            if "bass" in on:
                root = bass_root_base + pcs[0] % 12
                if root > 45:
                    root -= 12
                nroot = bass_root_base + pcs_of(next_degree)[0] % 12
                if nroot > 45:
                    nroot -= 12
                line = "sustain" if sec.name == "final" else spec.bass_line
                for step, length, midi, vel in _bass_steps(line, root, pcs, nroot, b, chord_bars):
                    events.append(Event("bass", spec.bass, when(bar, step), length * step_s,
                                        midi, vel * energy))
            # -- arpeggio
            if spec.arp and mood.arp_step and "arp" in on and sec.name != "final":
                tones = voice_chord(pcs, 60 + pc, 72)
                seq = tones + [tones[0] + 12]
                if (bar // 2) % 2:
                    seq = seq + seq[-2:0:-1]
                for k, step in enumerate(range(0, 16, mood.arp_step)):
                    vel = (0.75 if step % 4 == 0 else 0.55) * (0.7 if sec.name == "intro" else 1)
                    events.append(Event("arp", spec.arp, when(bar, step) + jitter(0.002),
                                        mood.arp_step * step_s * 1.4, seq[k % len(seq)],
                                        vel * energy, pan=0.45 if k % 2 else -0.45))
            # -- drums
            for drum, hits in groove.items():
                if drum not in on:
                    continue
                for step, vel in hits:
                    if drum in ("snare", "clap") and nxt == "chorus" and b == sec.bars - 1 \
                            and step >= 12:
                        continue
                    if sec.name == "final" and step > 0:
                        continue
                    t = when(bar, step) + (0.0 if drum == "kick" else jitter(0.003))
                    v = vel * energy * (1.0 + jitter(0.06))
                    events.append(Event("drums", drum, max(0.0, t), 0.0, 0, v, _DRUM_PAN[drum]))
            if nxt == "chorus" and b == sec.bars - 1 and ({"snare", "clap"} & set(groove)) \
                    and spec.groove not in ("ambient", "jazz"):
                for k, step in enumerate(range(12, 16)):
                    events.append(Event("drums", "snare", when(bar, step), 0.0, 0,
                                        (0.45 + 0.15 * k) * energy, 0.05))
        if sec.name in ("chorus", "final") and "crash" in on and groove and spec.groove not in (
            "ambient", "none"
        ):
            events.append(Event("drums", "crash", when(sec.start_bar, 0), 0.0, 0, 0.8, -0.25))
        # -- melody
        if "lead" in on and sec.name in motifs:
            events += _melody(spec, sec, motifs[sec.name], scale, lead_tonic, mood, when, step_s,
                              lambda b, s=sec: chord_of(s, b), energy, jitter)
    music_s = sections[-1].start_bar * bar_s + sections[-1].bars * bar_s + tail_s
    return Arrangement(events, sections, bar_s, music_s)


_DRUM_PAN = {"kick": 0.0, "snare": 0.05, "clap": -0.05, "hat": 0.3, "open_hat": 0.3,
             "ride": -0.3, "crash": -0.25, "rim": -0.2, "shaker": 0.4, "brush": 0.1}


def _chord_events(spec, section, bar, b, pcs, pc, when, step_s, chord_len, change, energy, jitter):
    out: list[Event] = []
    rhythm = spec.chord_rhythm if section != "final" else "sustain"
    if rhythm == "sustain":
        if change:
            for m in voice_chord(pcs, 48 + pc, 62):
                out.append(Event("pad", spec.pad, when(bar, 0), chord_len * 0.98, m, 0.8 * energy))
        return out
    if rhythm == "pulse":  # power chords in eighths, double-tracked left and right
        root = 40 + (pc + pcs[0]) % 12
        notes = [root, root + 7, root + 12]
        for step in range(0, 16, 2):
            vel = (0.9 if step % 4 == 0 else 0.7) * energy
            for pan, lag in ((-0.7, 0.0), (0.7, 0.011)):
                for m in notes:
                    out.append(Event("pad", spec.pad, when(bar, step) + lag, step_s * 1.7, m,
                                     vel, pan))
        return out
    notes = voice_chord(pcs, 48 + pc, 60 if rhythm == "comp" else 57)
    if rhythm == "comp":
        hits = ((0, 3, 0.8), (6, 2, 0.6), (10, 4, 0.7)) if b % 2 == 0 else \
            ((2, 2, 0.6), (8, 3, 0.75), (14, 2, 0.5))
        for step, length, vel in hits:
            for m in notes:
                out.append(Event("pad", spec.pad, when(bar, step), length * step_s, m,
                                 vel * energy))
        return out
    for step, length, down in ((0, 3, True), (3, 3, False), (6, 2, True), (8, 3, True),
                               (11, 3, False), (14, 2, True)):
        order = notes if down else notes[::-1]
        vel = (0.8 if down else 0.55) * energy
        for k, m in enumerate(order):
            out.append(Event("pad", spec.pad, when(bar, step) + 0.012 * k + jitter(0.002),
                             length * step_s, m, vel, -0.25 + 0.5 * k / max(1, len(order) - 1)))
    return out


def _bass_steps(line: str, root: int, pcs: list[int], next_root: int, b: int, chord_bars: int):
    """(16th step, length in 16ths, midi, velocity) of one bar of bass."""
    third = root + (pcs[1] - pcs[0])
    fifth = root + (pcs[2] - pcs[0])
    last = b % chord_bars == chord_bars - 1
    if line == "sustain":
        return [(0, 15, root, 0.9)] if b % chord_bars == 0 else []
    if line == "roots":
        return [(0, 6, root, 0.95), (8, 6, root, 0.8)]
    if line == "eighths":
        out = [(s, 1.7, root, 0.95 if s % 4 == 0 else 0.75) for s in range(0, 16, 2)]
        if last:
            out[-1] = (14, 1.7, fifth, 0.8)
        return out
    if line == "octaves":
        return [(s, 1.5, root + (12 if s % 4 == 2 else 0), 0.9 if s % 4 == 0 else 0.7)
                for s in range(0, 16, 2)]
    if line == "pop":
        out = [(0, 3, root, 1.0), (3, 3, root, 0.7), (8, 4, root, 0.9), (12, 2, fifth, 0.75),
               (14, 2, root + 12, 0.7)]
        return out
    if line == "walking":
        approach = next_root - 1 if next_root > root else next_root + 1
        fourth = approach if last else fifth + 2
        return [(0, 3.6, root, 0.95), (4, 3.6, third, 0.75), (8, 3.6, fifth, 0.85),
                (12, 3.6, fourth, 0.75)]
    # tumbao: the bass anticipates, on the "and" of two and on four
    return [(0, 5, root, 0.9), (6, 4, fifth, 0.8), (12, 4, next_root if last else root, 0.85)]


def _melody(spec, sec, pair, scale, lead_tonic, mood, when, step_s, chord_of, energy, jitter):
    out: list[Event] = []
    anchor = 4 if sec.name == "chorus" else 2
    sparse = sec.name == "break"
    for k in range(0, sec.bars, 2):
        phrase_pos = (k // 2) % 4
        motif = pair[1] if phrase_pos == 2 else pair[0]
        last_pair = phrase_pos == 3 or k + 2 >= sec.bars
        for i, ((start8, len8), offset) in enumerate(zip(motif.rhythm, motif.contour, strict=True)):
            if sparse and i % 2:
                continue
            bar_in = k + start8 // 8
            if bar_in >= sec.bars:
                break
            degree = anchor + offset
            chord_deg = chord_of(bar_in)
            strong = start8 % 4 == 0
            final = last_pair and i == len(motif.rhythm) - 1
            if final:
                degree = _snap_to_chord(degree, chord_deg, False)
                len8 = max(len8, 16 - start8)
            elif strong:
                degree = _snap_to_chord(degree, chord_deg, mood.sevenths)
            midi = _deg_midi(degree, scale, lead_tonic)
            vel = (0.85 if strong else 0.7) * energy * (0.75 if sparse else 1.0)
            t = when(sec.start_bar + k, start8 * 2) + jitter(0.004)
            out.append(Event("lead", spec.lead, max(0.0, t), len8 * 2 * step_s * 0.92, midi, vel,
                             0.1))
    return out
