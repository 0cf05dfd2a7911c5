"""The console in Debian's chromium (Playwright), against a real uvicorn process and the real
database: login, queue filters, ticket work, the live segment counter, protection visibility,
an SMS XSS payload rendered inert, and the phone simulator from SMS to ticket.

Screenshots go to test-artifacts/ (kept by CI as artefacts). The file name sorts last on
purpose: the simulator test starts the session's real Celery worker, which then keeps working
on outbox tasks that later tests of this directory would be truncating under it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.console.conftest import PASSWORD, World, make_world, new_ticket

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _console_server(**env_overrides: str) -> Iterator[str]:
    port = _free_port()
    env = os.environ.copy()
    # Cookies are "Secure" when the public URL is https; the test server speaks plain http.
    env["DEME_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    env.update(env_overrides)
    log_path = ARTIFACTS / f"uvicorn-console-{port}.log"
    ARTIFACTS.mkdir(exist_ok=True)
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "deme.asgi:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(log_path.read_text()[-2000:]) from None
            time.sleep(0.2)
    try:
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def server(database: str) -> Iterator[str]:
    with _console_server() as base:
        yield base


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def bworld(db: Any) -> World:
    from ops_console.auth import address_throttle

    address_throttle.reset()
    return make_world(db)


def _login(chromium: Any, server: str, username: str) -> Any:
    # bypass_csp: the XSS test must prove escaping alone makes a payload inert (the CSP is
    # a second line of defence), and Playwright evaluates its waits as strings.
    context = chromium.new_context(locale="fr-FR", bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{server}/queue")
    assert "/login" in page.url
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/queue*")
    return page


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"console-{name}.png"), full_page=True)


def test_login_filter_open_reply_assign(chromium: Any, server: str, bworld: World, db: Any) -> None:
    from sqlalchemy import select

    from models.messages import Message

    for index in range(4):
        new_ticket(db, category="wash", phone=f"+2237640000{index}", description=f"forage {index}")
    target = new_ticket(db, category="health", phone="+22376500000", description="Fièvre au site")
    page = _login(chromium, server, "operator-user")
    assert page.locator("table.queue tbody tr").count() == 5
    _shot(page, "queue")
    # The phone filter is posted: the address bar carries an opaque token, never the number.
    page.fill("input[name=phone]", "76 40 00 01")
    page.press("input[name=phone]", "Enter")
    page.wait_for_function("document.querySelectorAll('table.queue tbody tr').length === 1")
    page.wait_for_url("**/queue?*phone_token=*")
    assert "400001" not in page.url and "phone=" not in page.url
    assert "forage 1" in page.locator("table.queue tbody").inner_text()
    page.fill("input[name=phone]", "")
    page.press("input[name=phone]", "Enter")
    page.wait_for_function("document.querySelectorAll('table.queue tbody tr').length === 5")
    page.select_option("select[name=category]", "health")  # htmx swaps #results
    page.wait_for_function("document.querySelectorAll('table.queue tbody tr').length === 1")
    assert "category=health" in page.url
    page.click(f"text={target.reference}")
    page.wait_for_url(f"**/tickets/{target.reference}")
    assert page.locator("h1").inner_text().startswith(target.reference)

    counter = page.locator("#reply-counter")
    page.fill("#reply-body", "a" * 160)
    page.wait_for_function("document.getElementById('reply-counter').dataset.segments === '1'")
    page.fill("#reply-body", "a" * 161)
    page.wait_for_function("document.getElementById('reply-counter').dataset.segments === '2'")
    assert counter.get_attribute("data-encoding") == "gsm7"
    page.fill("#reply-body", "Bonjour ɛ")  # a Bambara letter forces UCS-2
    page.wait_for_function("document.getElementById('reply-counter').dataset.encoding === 'ucs2'")
    # The page's counter agrees with the gateway's own measure on awkward input.
    from gateway.gsm7 import measure

    for sample in ["€" * 80, "x" * 152 + "€", "😀" * 40, "é" * 200]:
        js = page.evaluate("(t) => window.demeMeasure(t)", sample)
        info = measure(sample)
        assert (js["encoding"], js["segments"]) == (info.encoding.value, info.segments), sample
    page.select_option("#canned", index=1)
    assert target.reference in page.input_value("#reply-body")
    page.fill("#reply-body", "Une équipe arrive demain.")
    _shot(page, "reply")
    page.click("form.reply button[type=submit]")
    page.wait_for_selector("text=Réponse mise en file d'envoi.")
    page.select_option("#assignee", str(bworld["operator"].user_id))
    page.click("aside form button[type=submit] >> nth=0")
    page.wait_for_selector("text=Enregistré.")
    assert (
        "Assigné" in page.locator("h1").inner_text()
        or "En cours" in page.locator("h1").inner_text()
    )
    _shot(page, "ticket")
    db.expire_all()
    sent = db.scalar(
        select(Message).where(Message.ticket_id == target.id, Message.direction == "out")
    )
    assert sent is not None and sent.body == "Une équipe arrive demain."
    page.context.close()


def test_protection_visibility_per_role(chromium: Any, server: str, bworld: World, db: Any) -> None:
    secret = new_ticket(
        db, category="protection", phone="+22376600000", description="Menaces", sensitive=True
    )
    new_ticket(db, category="health", phone="+22376600001")
    for role, sees in (
        ("operator-user", False),
        ("admin-user", False),
        ("protection-officer-user", True),
    ):
        page = _login(chromium, server, role)
        assert (secret.reference in page.content()) is sees, role
        response = page.goto(f"{server}/tickets/{secret.reference}")
        assert response is not None and response.status == (200 if sees else 404), role
        _shot(page, f"protection-{role}")
        page.context.close()


def test_sms_xss_payload_is_inert(chromium: Any, server: str, bworld: World, db: Any) -> None:
    from models.enums import MessageDirection, MessageStatus
    from models.messages import Message

    payload = (
        "<img src=x onerror=\"document.title='pwned'\"><script>document.title='pwned'</script>"
    )
    ticket = new_ticket(db, category="health", phone="+22376700000", description=payload)
    db.add(
        Message(
            channel_id=bworld.simulator_channel_id,
            contact_id=ticket.contact_id,
            ticket_id=ticket.id,
            direction=MessageDirection.INBOUND,
            provider_id="xss",
            body=payload,
            status=MessageStatus.HANDLED,
        )
    )
    db.commit()
    page = _login(chromium, server, "operator-user")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{server}/tickets/{ticket.reference}")
    page.wait_for_timeout(500)
    assert page.title() != "pwned" and not dialogs
    assert page.locator("img[src=x]").count() == 0
    assert payload in page.locator(".conversation .body").first.inner_text()
    _shot(page, "xss")
    page.context.close()


def test_simulator_sms_becomes_a_ticket(
    chromium: Any, server: str, bworld: World, db: Any, celery_worker: Any
) -> None:
    from sqlalchemy import select

    from models.tickets import Ticket
    from support import wait_until

    page = _login(chromium, server, "operator-user")
    page.goto(f"{server}/simulator")
    page.fill("#sim-phone", "+22300123456")
    page.fill(
        "#sim-text", "Il n'y a plus d'eau potable au site de Sévaré, les enfants sont malades"
    )
    page.click("#sms form button[type=submit]")
    page.wait_for_selector("#thread .msg.in")

    def ticket_exists() -> bool:
        db.expire_all()
        return db.scalar(select(Ticket.id).limit(1)) is not None

    wait_until(ticket_exists, timeout=60)
    page.wait_for_selector("#thread .msg.out", timeout=30_000)  # the bot's answer, polled
    _shot(page, "simulator")
    page.goto(f"{server}/queue")
    assert page.locator("table.queue tbody tr a").count() >= 1
    page.context.close()


@pytest.mark.slow
@pytest.mark.timeout(900)  # Rasa's model load: about a minute, several on a busy machine
def test_banner_while_the_bot_loads_goes_away_when_rasa_is_ready(
    chromium: Any, bworld: World
) -> None:
    """First start: the console says the bot is loading (replies meanwhile come from the
    keyword fallback) and the banner leaves the open page by itself once the real Rasa has
    loaded its model (issue 12)."""
    from support.bot import BotProcess

    bot = BotProcess({"DEME_BOT_SHARED_SECRET": "banner-test-secret"})
    try:
        with _console_server(DEME_BOT="rasa", DEME_RASA_URL=bot.url) as base:
            page = _login(chromium, base, "operator-user")
            banner = page.locator("#bot-status")
            assert banner.is_visible(), "Rasa takes about a minute to load: banner expected"
            assert "Le bot est encore en cours de chargement" in banner.inner_text()
            _shot(page, "bot-loading")
            loaded_after = bot.wait_ready()
            # Polled every 5 s, the bot's state cached 2 s: gone without reloading the page.
            page.wait_for_selector("#bot-status", state="detached", timeout=30_000)
            page.reload()
            assert page.locator("#bot-status").count() == 0
            assert page.locator("table.queue").count() == 1
            _shot(page, "bot-ready")
            assert loaded_after > 0
            page.context.close()
    finally:
        bot.stop()
