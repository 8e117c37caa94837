"""The artist portal (``GET /artist``) in headless Chromium against the demo station's server.

An artist signs in with their token, sees their lines, airings and consents, adds a line (text
and clips), revokes one and sets a consent; refused tokens and clips are explained on the page.
Each test works for an artist of its own, so nothing here touches the demo artists' lines.

The browser tests need Debian's chromium and the ``playwright`` package (test extra), and are
skipped without them; Playwright's own browser download is never used: the system binary is
launched directly. The page's endpoints are also checked over plain HTTP.
"""

from __future__ import annotations

import io
import shutil
import uuid
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
import numpy as np
import pytest

from dj.auth import TokenStore
from dj.narrate import LineScope
from dj.narrate.consent import CONSENT_KINDS
from dj.narrate.lines import MAX_TEXT_CHARS
from dj.server.artist_routes import MAX_CLIP_BYTES
from dj.server.keys import STATION

try:  # the browser tests skip without it (in the fixture); the HTTP checks do not need it
    from playwright.async_api import Browser, Page, async_playwright, expect
except ImportError:
    async_playwright = None

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
PROBLEMS: weakref.WeakKeyDictionary[Page, list[str]] = weakref.WeakKeyDictionary()
WAIT_MS = 15_000  # for each page condition: loopback answers in well under a second
SEEDED_TEXT = "Thanks for tuning in, this is the Portal Test band."
# markup, right-to-left script, combining marks, quotes and an emoji: all must show as written
# (a bidirectional override is refused by the API: test_bad_input)
ODD_TEXT = ('<img src=x onerror="window.__pwned=1"> Zoë’s “song” \u05e9\u05dc\u05d5\u05dd'
            " Z\u0351\u0351algo & <b>bold</b> \U0001F3A7")


@dataclass
class Portal:
    url: str
    artist: str
    token: str
    line_id: str  # the seeded line, aired three times
    station: object

    @property
    def registry(self):
        return self.station.narrator.lines

    @property
    def tokens(self) -> TokenStore:
        return TokenStore(self.station.catalog.store)


@pytest.fixture
def portal(fast) -> Portal:
    """A fresh artist (never in the demo catalog, so nothing of theirs airs for real) with an
    artist token, one approved text line and three recorded airings of it."""
    station = fast.dj_app[STATION]
    assert station.narrator is not None, "the demo station runs without its narrator"
    artist = f"portal-{uuid.uuid4().hex[:10]}"
    token = TokenStore(station.catalog.store).create("artist", artist, label="portal test")
    line = station.narrator.lines.add(artist, SEEDED_TEXT, LineScope(), who="test")
    for i, persona in enumerate(["nova", "nova", "ember"]):
        station.ledger.line_aired(event_id=f"{artist}-{i}", line_id=line.id, artist_id=artist,
                                  persona=persona, listener_id=f"{artist}-listener-{i % 2}",
                                  session_id=f"{artist}-session", engine="espeak",
                                  text=line.text)
    return Portal(f"http://127.0.0.1:{fast.port}", artist, token, line.id, station)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if async_playwright is None:
        pytest.skip("playwright is not installed")
    if CHROMIUM is None:
        pytest.skip("chromium is not installed")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                           args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def open_portal(browser: Browser, portal: Portal) -> Page:
    page = await browser.new_page()
    page.set_default_timeout(WAIT_MS)
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on("console", lambda msg: problems.append(msg.text)
            if "Content Security Policy" in msg.text else None)
    PROBLEMS[page] = problems
    response = await page.goto(f"{portal.url}/artist")
    assert response is not None and response.status == 200
    return page


async def sign_in(browser: Browser, portal: Portal) -> Page:
    page = await open_portal(browser, portal)
    await page.get_by_label("Artist token").fill(portal.token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#who-name")).to_have_text(portal.artist)
    await expect(line_item(page, portal.line_id)).to_be_visible()
    return page


def line_item(page: Page, line_id: str):
    return page.locator(f'li.line[data-line-id="{line_id}"]')


def no_page_errors(page: Page) -> None:
    problems = PROBLEMS[page]
    assert not problems, f"script errors or CSP violations: {problems}"


def wav(seconds: float, amplitude: float) -> bytes:
    """A mono 16-bit WAV of a 220 Hz tone (amplitude 0: silence)."""
    from pedalboard.io import AudioFile

    t = np.arange(int(seconds * 44_100)) / 44_100
    buf = io.BytesIO()
    with AudioFile(buf, "w", samplerate=44_100, num_channels=1, format="wav") as f:
        f.write((amplitude * np.sin(2 * np.pi * 220 * t))[np.newaxis, :].astype(np.float32))
    return buf.getvalue()


async def test_sign_in_shows_lines_states_and_airings(browser, portal) -> None:
    page = await open_portal(browser, portal)
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    csp = (await page.request.get(f"{portal.url}/artist")).headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp

    # keyboard only: the token field has focus, Enter submits
    await expect(page.get_by_label("Artist token")).to_be_focused()
    await page.keyboard.type(portal.token)
    await page.keyboard.press("Enter")
    await expect(page.locator("#who-name")).to_have_text(portal.artist)

    item = line_item(page, portal.line_id)
    await expect(item.locator(".text")).to_have_text(SEEDED_TEXT)
    await expect(item.locator(".state")).to_have_text("Approved")
    await expect(item.locator(".aired")).to_contain_text("Aired 3 times")
    await expect(item.locator(".aired")).to_contain_text("for 2 listeners")
    await expect(item.locator(".aired")).to_contain_text("nova \u00d72, ember \u00d71")
    # a fresh artist has granted nothing, so the page says the line cannot air yet
    await expect(item.locator(".note")).to_contain_text("will not air until you grant")
    await expect(page.locator("#airings li")).to_have_count(3)
    await expect(page.locator("#airings-summary")).to_contain_text("3 airings, by 2 DJs")
    await expect(page.locator("#consents [data-kind]")).to_have_count(len(CONSENT_KINDS))

    # the token lives in this tab's sessionStorage only, never in the address or a request URL
    assert await page.evaluate("sessionStorage.getItem('dj-artist-token')") == portal.token
    assert await page.evaluate("localStorage.length") == 0
    assert portal.token not in page.url
    assert requests and all(portal.token not in url for url in requests)
    assert {urlsplit(url).netloc for url in requests} == {urlsplit(portal.url).netloc}
    assert await page.get_by_label("Artist token").input_value() == ""

    await page.reload()  # the same tab: still signed in
    await expect(line_item(page, portal.line_id).locator(".state")).to_have_text("Approved")

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("Artist token")).to_be_visible()
    await expect(page.locator("li.line")).to_have_count(0)
    assert await page.evaluate("sessionStorage.getItem('dj-artist-token')") is None
    no_page_errors(page)


async def test_wrong_tokens_are_explained(browser, portal) -> None:
    page = await open_portal(browser, portal)
    token_field, error = page.get_by_label("Artist token"), page.locator("#signin-error")
    sign_in_button = page.get_by_role("button", name="Sign in")

    await token_field.fill("dj_0123abcd_" + "x" * 43)
    await sign_in_button.click()
    await expect(error).to_contain_text("That token was not accepted")

    await token_field.fill("not a token at all")
    await sign_in_button.click()
    await expect(error).to_contain_text("does not look like a token")

    listener = portal.tokens.create("listener", f"{portal.artist}-fan", label="portal test")
    await token_field.fill(listener)
    await sign_in_button.click()
    await expect(error).to_contain_text("not an artist token")

    revoked = portal.tokens.create("artist", portal.artist, label="portal test")
    assert portal.tokens.revoke(revoked.split("_")[1])
    await token_field.fill(revoked)
    await sign_in_button.click()
    await expect(error).to_contain_text("That token was not accepted")

    await expect(page.locator("#portal")).to_be_hidden()
    assert await page.evaluate("sessionStorage.getItem('dj-artist-token')") is None

    # a token revoked while signed in: the next request signs the artist out, saying why
    await token_field.fill(portal.token)
    await sign_in_button.click()
    await expect(line_item(page, portal.line_id)).to_be_visible()
    assert portal.tokens.revoke(portal.token.split("_")[1])
    await page.get_by_role("button", name="Refresh").click()
    await expect(error).to_contain_text("Your token stopped working")
    await expect(page.locator("#portal")).to_be_hidden()
    assert await page.evaluate("sessionStorage.getItem('dj-artist-token')") is None
    no_page_errors(page)


async def test_add_a_text_line_shown_as_written_then_revoke_it(browser, portal) -> None:
    page = await sign_in(browser, portal)
    djs = page.locator("#add-djs-list input[type=checkbox]")
    await expect(djs.first).to_be_visible()  # the station's DJs, from /api/personas
    dj = await djs.first.get_attribute("value")
    assert dj in portal.station.narrator.personas

    form = page.locator("#add-form")
    await form.get_by_label("The line").fill(ODD_TEXT)
    await djs.first.check()
    await form.get_by_label("Territories").fill("us, gb")
    await form.get_by_label("When", exact=True).select_option("after")
    await form.get_by_role("button", name="Add line").click()
    await expect(page.locator("#add-status")).to_have_text("Line added.")

    stored = [ln for ln in portal.registry.lines(portal.artist) if ln.text == ODD_TEXT]
    assert len(stored) == 1, [ln.text for ln in portal.registry.lines(portal.artist)]
    line = stored[0]
    assert line.scope.personas == (dj,) and line.scope.territories == ("GB", "US")
    assert line.scope.moment == "after"
    item = line_item(page, line.id)
    await expect(item.locator(".text")).to_have_text(ODD_TEXT)  # as text, not as markup
    await expect(item.locator(".state")).to_have_text("Approved")
    await expect(item.locator("dd").nth(1)).to_have_text("GB, US")
    assert await page.locator("#lines img, #lines b").count() == 0
    assert await page.evaluate("window.__pwned") is None
    await expect(form.get_by_label("The line")).to_have_value("")  # the form is ready again

    await item.get_by_role("button", name="Revoke\u2026").click()
    await item.get_by_label("Reason").fill("changed my mind")
    await item.get_by_role("button", name="Revoke this line").click()
    await expect(item.locator(".state")).to_have_text("Revoked")
    await expect(item).to_have_attribute("data-state", "revoked")
    await expect(item.get_by_role("button", name="Revoke\u2026")).to_have_count(0)
    await expect(page.locator("#lines-status")).to_contain_text("Line revoked")
    assert portal.registry.get(line.id).state == "revoked"
    audit = portal.registry.audit(portal.artist, subject=line.id)
    assert [a.action for a in audit] == ["line_added", "line_revoked"]
    assert audit[-1].detail == {"reason": "changed my mind"}
    assert audit[-1].who.startswith(f"artist:{portal.artist} (token ")
    # the other line is untouched
    await expect(line_item(page, portal.line_id).locator(".state")).to_have_text("Approved")
    assert portal.registry.get(portal.line_id).approved
    no_page_errors(page)


async def test_set_a_consent(browser, portal) -> None:
    page = await sign_in(browser, portal)
    kind = page.locator('#consents [data-kind="persona_text"]')
    note = line_item(page, portal.line_id).locator(".note")
    await expect(kind.locator(".state")).to_have_text("Not granted")
    await expect(note).to_be_visible()

    await kind.get_by_role("button", name="Grant", exact=True).click()  # no evidence yet
    await expect(kind.locator(".error")).to_contain_text("Add an evidence reference")
    assert portal.registry.consent(portal.artist, "persona_text") is None

    evidence = "signed form #12 <script>alert(1)</script>"
    await kind.get_by_label("Evidence reference").fill(evidence)
    await kind.get_by_role("button", name="Grant", exact=True).click()
    await expect(kind.locator(".state")).to_have_text("Granted")
    await expect(kind.locator(".cstate")).to_contain_text(evidence)
    await expect(kind.locator("[role=status]")).to_have_text("Consent granted.")
    consent = portal.registry.consent(portal.artist, "persona_text")
    assert consent is not None and consent.active and consent.evidence == evidence
    await expect(note).to_have_count(0)  # the text line can air now

    await kind.get_by_role("button", name="Revoke", exact=True).click()
    await expect(kind.locator(".state")).to_have_text("Revoked")
    assert not portal.registry.consent(portal.artist, "persona_text").active
    await expect(note).to_contain_text("will not air until you grant")
    # the other kinds were left alone
    assert portal.registry.consent(portal.artist, "recorded_clips") is None
    no_page_errors(page)


async def test_refused_clips_show_the_reason(browser, portal) -> None:
    page = await sign_in(browser, portal)
    form, error = page.locator("#add-form"), page.locator("#add-error")
    clip, text = form.get_by_label("Your recording"), form.get_by_label("The line")
    add = form.get_by_role("button", name="Add line")
    before = {ln.id for ln in portal.registry.lines(portal.artist)}

    refused = [
        ("quiet.wav", wav(1.0, 0.0), "The station refused this recording: the clip is silent."),
        ("notes.wav", b"this is not audio, just words",
         "refused this recording: not a readable WAV/FLAC/MP3 file. Choose another"),
        ("notes.txt", wav(1.0, 0.3), "unsupported clip type '.txt'"),
    ]
    for name, data, reason in refused:
        await text.fill("Hi, it's me on tape.")
        await clip.set_input_files(files=[{"name": name, "mimeType": "audio/wav",
                                           "buffer": data}])
        await add.click()
        await expect(error).to_contain_text(reason)
        await expect(error).not_to_contain_text("object at 0x")  # no decoder internals
        await expect(add).to_be_enabled()
    assert {ln.id for ln in portal.registry.lines(portal.artist)} == before
    await expect(text).to_have_value("Hi, it's me on tape.")  # kept, to try another file

    # past the limit: the page says so without sending it; sent anyway (the page's limit
    # raised), the station refuses it while reading and the page shows why
    limit = await page.evaluate("me.limits.clip_bytes")
    # made in the page: sending 20 MB through Playwright's protocol takes many seconds
    await page.evaluate("""(size) => {
        const files = new DataTransfer();
        files.items.add(new File([new Uint8Array(size)], "long.wav", {type: "audio/wav"}));
        document.getElementById("add-clip").files = files.files;
    }""", limit + 1)
    await add.click()
    await expect(error).to_contain_text("; a recording may be at most")
    await page.evaluate("me.limits.clip_bytes *= 2")
    await add.click()
    await expect(error).to_contain_text(f"Too large: the clip is larger than {limit} bytes")
    assert {ln.id for ln in portal.registry.lines(portal.artist)} == before

    # and a real recording is taken
    await clip.set_input_files(files=[{"name": "hello.wav", "mimeType": "audio/wav",
                                       "buffer": wav(1.0, 0.3)}])
    await add.click()
    await expect(page.locator("#add-status")).to_have_text("Line added.")
    await expect(error).to_be_empty()
    (new_id,) = {ln.id for ln in portal.registry.lines(portal.artist)} - before
    assert portal.registry.get(new_id).clip_sha256 is not None
    item = line_item(page, new_id)
    await expect(item.locator(".badge").nth(1)).to_have_text("Your recording")
    await expect(item.locator(".note")).to_contain_text("Your recordings may air")
    no_page_errors(page)


async def test_me_endpoint_and_page_over_http(portal) -> None:
    """``GET /api/artists/me``: the token's artist and limits, 401/403 like the artist routes,
    never a 5xx whatever the header holds; ``GET /artist`` is the page with its policy."""
    me = f"{portal.url}/api/artists/me"
    listener = portal.tokens.create("listener", f"{portal.artist}-fan", label="portal test")
    async with aiohttp.ClientSession() as http:
        async with http.get(me, headers={"Authorization": f"Bearer {portal.token}"}) as resp:
            assert resp.status == 200
            assert resp.headers["Cache-Control"] == "no-store"
            body = await resp.json()
        assert body == {"role": "artist", "subject": portal.artist,
                        "consent_kinds": list(CONSENT_KINDS),
                        "limits": {"clip_bytes": MAX_CLIP_BYTES, "text_chars": MAX_TEXT_CHARS,
                                   "evidence_chars": 500}}
        async with http.get(me, headers={"Authorization": f"Bearer {listener}"}) as resp:
            assert resp.status == 403 and "artist" in (await resp.json())["error"]
        odd = [None, "", "Bearer", "Bearer ", "Basic abc", "Bearer dj_0123abcd_" + "x" * 43,
               "Bearer " + "x" * 5000, "Bearer dj_\u00e9\u00e9", "Bearer " + portal.token + "x"]
        for header in odd:
            headers = {} if header is None else {"Authorization": header}
            async with http.get(me, headers=headers) as resp:
                assert resp.status == 401, (header, resp.status)
                assert "error" in await resp.json()
        bad_bytes = {"Authorization": b"Bearer \xff\xfe".decode("latin-1")}  # not UTF-8
        async with http.get(me, headers=bad_bytes) as resp:
            assert resp.status == 401
        async with http.post(me, headers={"Authorization": f"Bearer {portal.token}"}) as resp:
            assert resp.status == 405
        async with http.get(f"{portal.url}/artist") as resp:
            assert resp.status == 200 and resp.content_type == "text/html"
            html = await resp.text()
            csp = resp.headers["Content-Security-Policy"]
            assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert "<title>dj: artist portal</title>" in html
    assert "innerHTML" not in html and "http://" not in html and "https://" not in html
    assert csp.count("'sha256-") == 2 and "frame-ancestors 'none'" in csp
