"""The HTML pages dj serves (the web player, the artist portal): each is one self-contained file,
sent with a Content-Security-Policy that lets exactly its own inline script and style run (by
hash) and lets it reach this origin only, so no injected script runs and nothing leaves."""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from importlib import resources

_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.S)


@functools.cache
def page(name: str, *, media: bool = False) -> tuple[str, str]:
    """``name``'s HTML (from this package) and its policy; ``media``: it plays this origin's
    audio (``blob:`` too: the player feeds the stream to its element through a MediaSource)."""
    html = resources.files("dj.server").joinpath(name).read_text(encoding="utf-8")
    allowed: dict[str, list[str]] = {"script": [], "style": []}
    for kind, body in _INLINE.findall(html):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        allowed[kind].append(f"'sha256-{digest}'")
    script = " ".join(allowed["script"]) or "'none'"
    style = " ".join(allowed["style"]) or "'none'"
    csp = (f"default-src 'none'; script-src {script}; style-src {style}; connect-src 'self';"
           " img-src 'self' data:;" + (" media-src 'self' blob:;" if media else "")
           + " form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
    return html, csp


def generated_policy(html: str) -> str:
    """The policy of a page made per request (an experiment report): its own inline style by
    hash, no script at all, images from this origin or embedded as data: URIs."""
    styles = [f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
              for kind, body in _INLINE.findall(html) if kind == "style"]
    return (f"default-src 'none'; script-src 'none'; style-src {' '.join(styles) or 'none'};"
            " img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
