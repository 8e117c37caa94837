"""Real VLC as an independent test client: play an HTTP MP3 stream headless and report back.

Our own decoder (``streamcheck``) shares our assumptions; VLC is what listeners use, so it is
the check that the stream, its headers and its ICY framing work for somebody else's player.

How Debian's VLC 3.0 talks to an ICY station (seen on the wire with vlc 3.0.24):

1. ``GET <path> HTTP/1.1`` with ``Host, Accept: */*, Accept-Language, User-Agent,
   Range: bytes=0-`` and *no* ``Icy-MetaData`` (the new ``access/http`` module).
2. If that response is a 2xx carrying ``Icy-Name`` or ``Icy-Genre``, VLC drops the connection
   and reconnects via ``icyx://`` (the old module): ``GET <path> HTTP/1.0`` with ``Host,
   User-Agent, Icy-MetaData: 1``. Only this second connection reads ICY titles. Without
   ``Icy-Name``/``Icy-Genre`` it keeps the first connection and never sees a title.

Titles come from the old module's debug line ``New Icy-Title=<title>`` (``-vv`` only), logged
when the title changes; the title is cut at the first ``';`` and forced to valid UTF-8. They
are logged as the bytes are *read*, which runs ahead of playback, not when the audio plays.
``Icy-Name`` also turns VLC's silent auto-reconnect on, hence ``VlcResult.reconnects``. VLC
exits 0 even when it could not open the stream: judge by ``decoded`` and ``errors``.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SILENCE_DBFS = -50.0
# Slack for the hard timeout: a healthy run ends at about --run-time, but --run-time only
# starts once the stream is open, so a server that never answers would hang VLC without it.
STARTUP_GRACE_S = 20.0

_LOG_LINE = re.compile(
    r"^\[[0-9a-f]+\] (?P<src>.+?) (?P<level>debug|info|warning|error): (?P<msg>.*)$"
)
# Headless noise (no D-Bus session, the always-loaded globalhotkeys interface), not the stream's.
_BENIGN_ERRORS = ("D-Bus", "dbus", "interface")


@dataclass(frozen=True)
class VlcRequest:
    """One HTTP request exactly as VLC logged it before sending."""

    module: str  # "http" (new, HTTP/1.1) or "icyx" (old, HTTP/1.0, asks for ICY metadata)
    method: str
    target: str
    version: str  # "HTTP/1.1" or "HTTP/1.0"
    headers: dict[str, str]

    def header(self, name: str) -> str | None:
        """A header's value, matched case-insensitively (None when absent)."""
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


@dataclass
class VlcResult:
    """What VLC did with the stream: its requests, the titles it read, the audio it decoded."""

    returncode: int | None  # None when we had to kill it
    timed_out: bool
    elapsed_s: float
    requests: list[VlcRequest]
    response_codes: list[int]  # status codes of the responses it accepted, in order
    metaint: int | None  # the icy-metaint VLC honoured, if any
    titles: list[str]  # "New Icy-Title=" values, in order (VLC logs changes only)
    reconnects: int  # "got disconnected, trying to reconnect" (on by default with Icy-Name)
    pcm: np.ndarray = field(repr=False)  # mono float32 in [-1, 1]
    rate: int
    channels: int
    stderr: str = field(repr=False)

    @property
    def audio_s(self) -> float:
        """Seconds of audio VLC decoded and handed to its (file) audio output."""
        return len(self.pcm) / self.rate if self.rate else 0.0

    @property
    def rms_dbfs(self) -> float:
        """Overall loudness of the decoded audio (-inf-ish for silence or nothing)."""
        if not len(self.pcm):
            return -120.0
        return float(20 * np.log10(np.sqrt(np.mean(self.pcm.astype(np.float64) ** 2)) + 1e-6))

    @property
    def decoded(self) -> bool:
        """VLC produced at least a second of audio that is not silence."""
        return self.audio_s >= 1.0 and self.rms_dbfs > SILENCE_DBFS

    @property
    def errors(self) -> list[str]:
        """VLC's error-level log lines, minus the noise every headless run produces."""
        out = []
        for line in self.stderr.splitlines():
            m = _LOG_LINE.match(line)
            if m and m["level"] == "error" and not any(b in line for b in _BENIGN_ERRORS):
                out.append(line)
        return out


def _vlc_command() -> list[str] | None:
    if cvlc := shutil.which("cvlc"):
        return [cvlc]
    if vlc := shutil.which("vlc"):
        return [vlc, "-I", "dummy"]
    return None


def _drop_privileges() -> list[str] | None:
    """A prefix that runs a command as nobody when we are root (VLC refuses root), else []."""
    if os.geteuid() != 0:
        return []
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        return None
    # setpriv execs in place (no PAM, no extra process) so a timeout kill reaches VLC itself.
    if setpriv := shutil.which("setpriv"):
        return [
            setpriv,
            f"--reuid={nobody.pw_uid}",
            f"--regid={nobody.pw_gid}",
            "--clear-groups",
            "--",
        ]
    if runuser := shutil.which("runuser"):
        return [runuser, "-u", "nobody", "--"]
    return None


def vlc_available() -> bool:
    """True when VLC is installed and can be run here (as nobody if we are root)."""
    return _vlc_command() is not None and _drop_privileges() is not None


def _read_wav(path: Path) -> tuple[np.ndarray, int, int]:
    """Mono float32, rate, channels of VLC's s16 WAV, trusting the file length over the header
    (a VLC killed mid-run leaves the RIFF sizes unwritten)."""
    if not path.exists():
        return np.zeros(0, np.float32), 0, 0
    raw = path.read_bytes()
    fmt = raw.find(b"fmt ")
    data = raw.find(b"data")
    if raw[:4] != b"RIFF" or fmt < 0 or data < 0:
        return np.zeros(0, np.float32), 0, 0
    channels = int.from_bytes(raw[fmt + 10 : fmt + 12], "little")
    rate = int.from_bytes(raw[fmt + 12 : fmt + 16], "little")
    body = raw[data + 8 :]
    frames = len(body) // (2 * max(channels, 1))
    pcm = np.frombuffer(body[: frames * 2 * channels], dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        pcm = pcm.reshape(frames, channels).mean(axis=1)
    return pcm, rate, channels


def _parse_log(stderr: str) -> dict[str, Any]:
    requests: list[VlcRequest] = []
    codes: list[int] = []
    titles: list[str] = []
    metaint = None
    reconnects = 0
    lines = stderr.splitlines()
    for i, line in enumerate(lines):
        m = _LOG_LINE.match(line)
        if not m:
            continue
        msg = m["msg"]
        if msg in ("outgoing request:", "sending request:"):
            block = []
            for follow in lines[i + 1 :]:
                if not follow.strip() or _LOG_LINE.match(follow):
                    break
                block.append(follow.strip())
            if block and len(parts := block[0].split(" ", 2)) == 3:
                headers = dict(h.split(": ", 1) for h in block[1:] if ": " in h)
                module = "http" if msg == "outgoing request:" else "icyx"
                requests.append(VlcRequest(module, parts[0], parts[1], parts[2], headers))
        elif msg == "incoming response:" and i + 1 < len(lines):
            status = lines[i + 1].split(" ")
            if len(status) > 1 and status[1].isdigit():
                codes.append(int(status[1]))
        elif am := re.match(r"(?:HTTP|ICY) answer code (\d+)", msg):
            codes.append(int(am[1]))
        elif tm := re.match(r"New Icy-Title=(.*)", msg):
            titles.append(tm[1])
        elif mm := re.match(r"ICY metaint=(\d+)", msg):
            metaint = int(mm[1])
        elif msg.startswith("got disconnected, trying to reconnect"):
            reconnects += 1
    return {
        "requests": requests,
        "response_codes": codes,
        "titles": titles,
        "metaint": metaint,
        "reconnects": reconnects,
    }


def play_with_vlc(
    url: str, seconds: float, *, timeout: float | None = None, extra_args: tuple[str, ...] = ()
) -> VlcResult:
    """Play ``url`` in headless VLC for ``seconds`` (VLC's --run-time), decoding to a WAV file.

    Raises ``pytest.skip.Exception`` when VLC is not installed, so tests just call it. The run
    is bounded by --run-time, --play-and-exit and a hard ``timeout`` (default seconds + 20 s),
    after which VLC is killed. Everything it writes lives in a temp dir removed afterwards.
    """
    import pytest

    vlc = _vlc_command()
    prefix = _drop_privileges()
    if vlc is None or prefix is None:
        pytest.skip("VLC is not installed (apt-get install vlc-bin vlc-plugin-base)")
    # As nobody, VLC needs a HOME it can write and a path it can reach: not pytest's 0700 dirs.
    work = Path(tempfile.mkdtemp(prefix="vlcclient-", dir="/tmp" if prefix else None))
    try:
        os.chmod(work, 0o777)
        wav = work / "out.wav"
        cmd = [
            *prefix,
            *vlc,
            "-vv",
            "--no-video",
            "--no-dbus",
            "--no-media-library",
            "--no-metadata-network-access",
            "--aout=afile",
            f"--audiofile-file={wav}",
            "--audiofile-format=s16",
            "--audiofile-wav",
            f"--run-time={seconds:g}",
            "--play-and-exit",
            *extra_args,
            url,
        ]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "LANG": "C.UTF-8"}
        limit = timeout if timeout is not None else seconds + STARTUP_GRACE_S
        start = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=work,
            start_new_session=True,
        )
        timed_out = False
        try:
            out, err = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        elapsed = time.monotonic() - start
        stderr = (out + err).decode("utf-8", errors="replace")
        pcm, rate, channels = _read_wav(wav)
        return VlcResult(
            returncode=None if timed_out else proc.returncode,
            timed_out=timed_out,
            elapsed_s=elapsed,
            pcm=pcm,
            rate=rate,
            channels=channels,
            stderr=stderr,
            **_parse_log(stderr),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
