"""A real browser: the distribution's Chromium driven by Playwright, on http://127.0.0.1 only.

Skipped with the reason where Chromium or Playwright is missing (scripts/system-packages lists
chromium; Playwright's own browser download is not used)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import WAIT, Ncat, free_port
from lanchat.relay import Relay
from lanchat.store import open_store

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MS = int(WAIT * 1000)
RECONNECT_MS = 4 * MS  # the page waits 1-2 s (and a random part) before it reconnects

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [pytest.mark.ncat, pytest.mark.timeout(120)]


@pytest.fixture
def chromium() -> Iterator[Any]:
    """The system's Chromium; each launch gets a fresh profile (user-data-dir) of its own."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/install-system-packages installs it)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def join(browser: Any, url: str, name: str, **context: Any) -> Any:
    """A page in a context of its own (its own localStorage) that chose `name`."""
    page = browser.new_context(**context).new_page()
    page.goto(url)
    page.fill("#name", name)
    page.press("#name", "Enter")
    return page


def say(page: Any, text: str) -> None:
    page.fill("#say", text)
    page.press("#say", "Enter")


def log_item(page: Any, text: str) -> Any:
    return page.locator("#log li", has_text=text)


def test_two_pages_and_ncat_chat_then_reconnect_after_a_restart(
    chromium: Any, tmp_path: Path
) -> None:
    expect = sync_api.expect
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    relay = Relay("127.0.0.1", port, store=open_store(tmp_path / "history.db"))
    relay.start()
    ncat = Ncat(port)
    try:
        ncat.send("hi from ncat")
        ann = join(chromium, url, "ann")
        expect(ann.locator("#state")).to_have_text("Connected as ann", timeout=MS)
        expect(ann.locator("#name-form")).to_be_hidden()
        hostile = "<img src=x onerror=window.pwned=1>"
        say(ann, hostile)
        expect(log_item(ann, hostile)).to_have_count(1, timeout=MS)

        # A name that would be markup is refused by the relay, and shown as text.
        bob = join(chromium, url, hostile)
        expect(bob.locator("#name-form")).to_be_visible(timeout=MS)
        # The relay's refusal quotes the name (cut to the field's 24 characters): as text.
        expect(log_item(bob, f"'{hostile[:24]}' is not")).to_have_count(1, timeout=MS)
        expect(bob.locator("#state")).to_have_text("Choose a name to join.")

        bob.fill("#name", "bob")
        bob.press("#name", "Enter")
        expect(bob.locator("#state")).to_have_text("Connected as bob", timeout=MS)

        # History: what was said before bob came, as text (no element made of it).
        expect(log_item(bob, "hi from ncat")).to_have_count(1, timeout=MS)
        expect(log_item(bob, hostile)).to_have_count(1, timeout=MS)
        for page in (ann, bob):
            assert page.locator("#log img").count() == 0
            assert page.evaluate("window.pwned") is None
        expect(bob.locator("#who")).to_contain_text("ann", timeout=MS)

        say(ann, "hello bob")
        say(bob, "/me waves")
        expect(log_item(bob, "hello bob")).to_have_count(1, timeout=MS)
        expect(log_item(ann, "* bob waves")).to_have_count(1, timeout=MS)
        ncat.wait_line("hello bob")
        ncat.wait_line("bob waves")
        ncat.send("bob: hi")
        expect(log_item(bob, "bob: hi")).to_have_class("mention", timeout=MS)
        expect(log_item(bob, "hi from ncat")).not_to_have_class("mention")

        # The relay restarts (its history on disk): both pages come back by themselves,
        # resume, and show nothing twice.
        ncat.close()
        relay.stop()
        expect(ann.locator("#state")).to_contain_text("Reconnecting", timeout=MS)
        relay = Relay("127.0.0.1", port, store=open_store(tmp_path / "history.db"))
        relay.start()
        ncat = Ncat(port)
        for page, name in ((ann, "ann"), (bob, "bob")):
            expect(page.locator("#state")).to_have_text(
                f"Connected as {name}", timeout=RECONNECT_MS
            )
        ncat.send("after the restart")
        for page in (ann, bob):
            expect(log_item(page, "after the restart")).to_have_count(1, timeout=MS)
            expect(log_item(page, "hello bob")).to_have_count(1)
            expect(log_item(page, "Reconnected.")).to_have_count(1)
            expect(page.locator("#log li.gap")).to_have_count(0)
    finally:
        ncat.close()
        relay.stop()


def test_a_restart_that_lost_the_history_shows_a_gap_note(chromium: Any) -> None:
    expect = sync_api.expect
    port = free_port()
    relay = Relay("127.0.0.1", port)  # no store: a restart starts a new history (epoch)
    relay.start()
    try:
        page = join(
            chromium, f"http://127.0.0.1:{port}/", "cam", viewport={"width": 390, "height": 844}
        )
        expect(page.locator("#state")).to_have_text("Connected as cam", timeout=MS)
        say(page, "before")
        expect(log_item(page, "before")).to_have_count(1, timeout=MS)
        relay.stop()
        relay = Relay("127.0.0.1", port)
        relay.start()
        expect(page.locator("#state")).to_have_text("Connected as cam", timeout=RECONNECT_MS)
        expect(page.locator("#log li.gap")).to_have_count(1, timeout=MS)
        say(page, "after")
        expect(log_item(page, "after")).to_have_count(1, timeout=MS)
        say(page, "é" * 4000)  # 4000 characters, 8000 bytes: over the line limit
        expect(log_item(page, "too long to send")).to_have_count(1, timeout=MS)
        expect(page.locator("#say")).to_have_value("é" * 4000)  # kept, to shorten
        expect(page.locator("#say")).to_be_focused()  # keyboard only: typing goes on
    finally:
        relay.stop()


def test_the_page_over_https_chats_and_plain_http_is_sent_there(
    chromium: Any, tmp_path: Path
) -> None:
    """serve --tls: the page comes over HTTPS from the same port, its WebSocket is wss://, and
    a browser that asks for http:// is redirected. Chromium is told to accept the self-signed
    certificate (ignore_https_errors), as a person does after checking its fingerprint."""
    from lanchat.tls.identity import certificate_names, load_identity, server_tls

    expect = sync_api.expect
    identity = load_identity(certificate_names("testhost", []), tmp_path / "tls")
    relay = Relay("127.0.0.1", 0, tls=server_tls(identity))
    relay.start()
    port = relay.address[1]
    ncat = Ncat(port, tls=True)
    try:
        ann = join(chromium, f"http://127.0.0.1:{port}/", "ann", ignore_https_errors=True)
        assert ann.url == f"https://127.0.0.1:{port}/"  # the relay's 308
        expect(ann.locator("#state")).to_have_text("Connected as ann", timeout=MS)
        say(ann, "hello over wss")
        ncat.wait_line("<ann> hello over wss")
        ncat.send("hello from ncat --ssl")
        expect(log_item(ann, "hello from ncat --ssl")).to_have_count(1, timeout=MS)
        status = relay.status()
        web = [c for c in status["connections"] if c["kind"] == "web"]
        assert [c["tls"] for c in web] == [True]
    finally:
        ncat.close()
        relay.stop()


def test_an_operator_moderates_from_the_page(chromium: Any) -> None:
    expect = sync_api.expect
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    relay = Relay("127.0.0.1", port)
    relay.start()
    try:
        teacher = join(chromium, url, "teacher")
        expect(teacher.locator("#state")).to_have_text("Connected as teacher", timeout=MS)
        pupil = join(chromium, url, "pupil")
        expect(pupil.locator("#state")).to_have_text("Connected as pupil", timeout=MS)
        say(pupil, "/kick teacher")  # not an operator: refused, privately
        expect(log_item(pupil, "Only an operator can use /kick.")).to_have_count(1, timeout=MS)
        relay.hub.promote(next(c for c in relay.hub.fanout.clients if c.name == "teacher"))
        expect(log_item(pupil, "teacher is now an operator")).to_have_count(1, timeout=MS)
        say(teacher, "/help")
        expect(log_item(teacher, "Operator commands: /kick")).to_have_count(1, timeout=MS)
        say(teacher, "/topic Fractions, page 12")
        for page in (teacher, pupil):
            expect(page.locator("#topic")).to_have_text("Topic: Fractions, page 12", timeout=MS)
        say(teacher, "/unban nobody")  # the page sends it (a relay's answer, not its own help)
        expect(log_item(teacher, "No ban on 'nobody'")).to_have_count(1, timeout=MS)
        say(teacher, "/mute pupil 2")
        expect(log_item(pupil, "pupil is muted for 2 minutes by teacher")).to_have_count(
            1, timeout=MS
        )
        say(pupil, "can you hear me")
        expect(log_item(pupil, "You are muted by teacher")).to_have_count(1, timeout=MS)
        say(teacher, "/kick pupil that will do")
        expect(log_item(teacher, "pupil was removed by teacher: that will do")).to_have_count(
            1, timeout=MS
        )
        expect(log_item(pupil, "You were removed from the room by teacher")).to_have_count(
            1, timeout=MS
        )
        # Final: the page says so instead of counting down to a reconnect.
        expect(pupil.locator("#state")).to_have_text(
            "An operator removed you from the room.", timeout=MS
        )
        expect(log_item(teacher, "can you hear me")).to_have_count(0)
    finally:
        relay.stop()


def password_relay(port: int, *, allow_plain_login: bool) -> Relay:
    from lanchat.auth.login import Gate
    from lanchat.auth.secrets import Secrets
    from lanchat.protocol.scram import MIN_ITERATIONS

    secrets = Secrets.make(PASSWORD, iterations=MIN_ITERATIONS)
    relay = Relay("127.0.0.1", port, gate=Gate(secrets, allow_plain_login=allow_plain_login))
    relay.start()
    return relay


PASSWORD = "a room's password"


def test_the_page_asks_for_the_password_and_logs_in_again_after_a_restart(
    chromium: Any,
) -> None:
    """Over plain http with --allow-plain-login (an https page needs the tls branch)."""
    expect = sync_api.expect
    port = free_port()
    relay = password_relay(port, allow_plain_login=True)
    try:
        page = join(chromium, f"http://127.0.0.1:{port}/", "dee")
        expect(page.locator("#login-form")).to_be_visible(timeout=MS)
        expect(page.locator("#state")).to_have_text("This room needs a password.")
        expect(page.locator("#password")).to_have_attribute("type", "password")
        page.fill("#password", "a guess")
        page.press("#password", "Enter")
        expect(log_item(page, "Wrong password.")).to_have_count(1, timeout=MS)
        expect(page.locator("#login-form")).to_be_visible()
        page.fill("#password", PASSWORD)
        page.press("#password", "Enter")
        expect(page.locator("#state")).to_have_text("Connected as dee", timeout=MS)
        expect(page.locator("#login-form")).to_be_hidden()
        assert PASSWORD not in page.evaluate("JSON.stringify(localStorage)")
        relay.stop()
        relay = password_relay(port, allow_plain_login=True)
        expect(page.locator("#state")).to_have_text("Connected as dee", timeout=RECONNECT_MS)
        expect(page.locator("#login-form")).to_be_hidden()  # not asked again
        say(page, "/login " + PASSWORD)  # a login (for an operator), never a message
        expect(log_item(page, "That is the room's password")).to_have_count(1, timeout=MS)
        expect(log_item(page, PASSWORD)).to_have_count(0)
    finally:
        relay.stop()


def test_the_page_over_plain_http_sends_no_password(chromium: Any) -> None:
    expect = sync_api.expect
    port = free_port()
    relay = password_relay(port, allow_plain_login=False)
    try:
        page = join(chromium, f"http://127.0.0.1:{port}/", "eve")
        expect(log_item(page, f"lanchat join 127.0.0.1:{port}")).to_have_count(1, timeout=MS)
        expect(page.locator("#state")).to_have_text("This room needs a password.")
        expect(page.locator("#login-form")).to_be_hidden()
    finally:
        relay.stop()


def test_the_page_over_https_logs_in_without_allow_plain_login(
    chromium: Any, tmp_path: Path
) -> None:
    """serve --tls with a room password: the page's password goes over wss:// only."""
    from lanchat.auth.login import Gate
    from lanchat.auth.secrets import Secrets
    from lanchat.protocol.scram import MIN_ITERATIONS
    from lanchat.tls.identity import certificate_names, load_identity, server_tls

    expect = sync_api.expect
    identity = load_identity(certificate_names("testhost", []), tmp_path / "tls")
    gate = Gate(Secrets.make(PASSWORD, iterations=MIN_ITERATIONS), tls_offered=True)
    relay = Relay("127.0.0.1", 0, tls=server_tls(identity, allow_plain=True), gate=gate)
    relay.start()
    port = relay.address[1]
    try:
        page = join(chromium, f"https://127.0.0.1:{port}/", "fay", ignore_https_errors=True)
        expect(page.locator("#login-form")).to_be_visible(timeout=MS)
        page.fill("#password", PASSWORD)
        page.press("#password", "Enter")
        expect(page.locator("#state")).to_have_text("Connected as fay", timeout=MS)
        plain = join(chromium, f"http://127.0.0.1:{port}/", "gil")  # --allow-plain: served
        expect(log_item(plain, f"open https://127.0.0.1:{port}/")).to_have_count(1, timeout=MS)
        expect(plain.locator("#login-form")).to_be_hidden()
    finally:
        relay.stop()
