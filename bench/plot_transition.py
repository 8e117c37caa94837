"""Dev tool: render a real transition (two files from ../shared/data/audio, with a voice line over
it) and plot the waveform and the momentary loudness (400 ms, BS.1770) around it to a PNG.

    python bench/plot_transition.py [--out transition.png] [--path spliced|full]

``spliced`` (the default) plots what a listener's decoder gets from the spliced stream (shared
bodies, the transition window rendered for them); ``full`` the full renderer's output.

Needs matplotlib (``pip install -e '.[plot]'``); not used by the tests.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dj.audio.analysis import integrated_loudness  # noqa: E402
from dj.audio.bodies import BodyStore  # noqa: E402
from dj.audio.plan import Item, VoiceCue  # noqa: E402
from dj.audio.render import Renderer  # noqa: E402
from dj.audio.splice import SplicedPlayer  # noqa: E402
from dj.catalog import Catalog  # noqa: E402
from dj.catalog.ingest import ingest  # noqa: E402
from dj.config import HOUSE_SAMPLE_RATE as SR  # noqa: E402
from dj.config import AudioConfig  # noqa: E402
from dj.program.programme import track_cue  # noqa: E402
from dj.store import Store  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "audio"
FILES = ("Kevin_MacLeod_-_Vibe_Ace.ogg", "emegeme_country.mp3")
ENCODER_DELAY = 1105  # samples from an encoder's input to the decoder's output


def decoded(mp3: bytes) -> np.ndarray:
    """The stream as a listener's decoder gives it, shifted back by the encoder's delay."""
    import subprocess

    import imageio_ffmpeg

    pcm = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "mp3", "-i", "pipe:0",
         "-f", "f32le", "-ac", "2", "pipe:1"], input=mp3, capture_output=True, check=True,
    ).stdout
    return np.frombuffer(pcm, "<f4").reshape(-1, 2).T[:, ENCODER_DELAY:]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("transition.png"))
    ap.add_argument("--path", choices=("spliced", "full"), default="spliced")
    args = ap.parse_args()
    from render import synthetic_voice  # bench/render.py, beside this file

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        for name in FILES:
            (src / name).symlink_to(DATA / name)
        catalog = Catalog(Store(Path(tmp) / "db.sqlite3"), Path(tmp) / "media")
        ingest(catalog, Path(tmp) / "media", src)
        by_name = {t.title: t for t in catalog.tracks()}
        cues = []
        for t in sorted(by_name.values(), key=lambda t: "Vibe" not in t.title):
            cues.append(track_cue(t))
        items = [Item(cues[0], 4.0), Item(cues[1], 4.0, VoiceCue("intro", 12.0))]
        voice = synthetic_voice(5.0, 1)
        until = (cues[0].cue_out_s - cues[0].cue_in_s + 12) * SR
        out, markers = [], []
        if args.path == "full":
            r = Renderer(AudioConfig(), lambda: items.pop(0) if items else None, lambda k: voice)
            while r.frames_rendered < until:
                block, ms = r.render(SR // 2)
                out.append(block)
                markers += ms
            audio = np.concatenate(out, axis=1)
        else:
            bodies = BodyStore(Path(tmp) / "bodies", AudioConfig(), 256 << 20)
            p = SplicedPlayer(AudioConfig(), lambda: items.pop(0) if items else None,
                              lambda k: voice, bodies, block_frames=19)
            while p.frames_rendered < until:
                data, _, ms = p.render()
                out.append(data)
                markers += ms
            audio = decoded(b"".join(out))
    start = next(m.frame for m in markers if m.kind == "track_start" and m.key == cues[1].key)
    lo, hi = max(0, start - 12 * SR), min(audio.shape[1], start + 12 * SR)
    seg = audio[:, lo:hi]
    t = (np.arange(seg.shape[1]) + lo - start) / SR
    step, win = int(0.1 * SR), int(0.4 * SR)
    mt = [(i + win / 2 + lo - start) / SR for i in range(0, seg.shape[1] - win, step)]
    mom = [integrated_loudness(seg[:, i : i + win], SR) for i in range(0, seg.shape[1] - win, step)]

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 7), sharex=True)
    ax1.plot(t[::8], seg[0, ::8], lw=0.3, color="tab:blue")
    ax1.set_ylabel("sample (L)")
    ax1.set_ylim(-1, 1)
    ax2.plot(mt, mom, color="tab:orange")
    ax2.axhline(-14, color="grey", ls="--", lw=0.8, label="target −14 LUFS")
    ax2.set_ylabel("momentary loudness (LUFS)")
    ax2.set_xlabel("seconds from the crossfade start")
    ax2.set_ylim(-40, -5)
    for m in markers:
        x = (m.frame - start) / SR
        if t[0] <= x <= t[-1]:
            for ax in (ax1, ax2):
                ax.axvline(x, color="red" if "voice" in m.kind else "green", lw=0.8, alpha=0.6)
            ax1.text(x, 0.9, m.kind, fontsize=7, rotation=90, va="top")
    ax2.legend(loc="lower left")
    fig.suptitle(f"{cues[0].key} → {cues[1].key}, crossfade with a ducked voice line "
                 f"({args.path} path)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    for m in markers:
        value = "" if m.value is None else m.value
        print(f"{m.frame / SR:8.3f} s  {m.kind:<14} {m.key} {value}")


if __name__ == "__main__":
    main()
