"""Issue 11: login hardening (proxy headers, backoff, password rules, passwords as typed) and
the phone simulator that only speaks as simulator contacts."""

from __future__ import annotations

import csv
import io
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from support import PROJECT_ROOT
from tests.console.conftest import PASSWORD, World, csrf_of, login, new_ticket


def deme(*args: str) -> subprocess.CompletedProcess[str]:
    command = [str(PROJECT_ROOT / ".venv" / "bin" / "deme"), *args]
    return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)


BACKOFF_FR = "Trop d'essais manqués pour ce compte depuis cette adresse"
THROTTLED_FR = "Trop d'essais manqués depuis cette adresse"


def _client(app: Any, address: str) -> Any:
    from fastapi.testclient import TestClient

    client = TestClient(app, base_url="https://deme.test", client=(address, 40000))
    client.__enter__()
    return client


@pytest.fixture()
def make_app(database: str) -> Iterator[Any]:
    """Build the app with extra DEME_* settings (read once per process, so re-read here)."""
    from core.settings import get_settings
    from deme.app import create_app

    saved = dict(os.environ)

    def build(**env: str) -> Any:
        os.environ.update(env)
        get_settings.cache_clear()
        return create_app()

    yield build
    os.environ.clear()
    os.environ.update(saved)
    get_settings.cache_clear()


def _post_login(client: Any, username: str, password: str, **headers: str) -> Any:
    token = csrf_of(client.get("/login").text)
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        headers=headers,
        follow_redirects=False,
    )


# --- proxy headers -----------------------------------------------------------------------


def test_forwarded_for_from_an_untrusted_peer_does_not_escape_the_address_limit(
    make_app: Any, world: World
) -> None:
    from ops_console.auth import IP_MAX_FAILURES

    client = _client(make_app(), "198.51.100.7")
    for index in range(IP_MAX_FAILURES):
        response = _post_login(
            client, f"nobody-{index}", "wrong-password", **{"X-Forwarded-For": f"10.9.0.{index}"}
        )
        assert response.status_code == 401
    # A fresh spoofed address changes nothing: the peer is the address.
    response = _post_login(client, "admin-user", PASSWORD, **{"X-Forwarded-For": "10.9.9.9"})
    assert response.status_code == 429 and THROTTLED_FR in response.text


def test_forwarded_for_is_believed_from_a_trusted_proxy_only(make_app: Any, world: World) -> None:
    from ops_console.auth import IP_MAX_FAILURES

    app = make_app(DEME_TRUSTED_PROXIES="10.0.0.0/8")
    proxy = _client(app, "10.0.0.2")
    for index in range(IP_MAX_FAILURES):
        response = _post_login(
            proxy, f"nobody-{index}", "wrong", **{"X-Forwarded-For": f"203.0.113.{index}"}
        )
        assert response.status_code == 401
    # Each forwarded client counts on its own: a new one behind the proxy logs in.
    response = _post_login(proxy, "admin-user", PASSWORD, **{"X-Forwarded-For": "203.0.113.200"})
    assert response.status_code == 303
    # On the same app, a peer that is not a configured proxy gets its header ignored.
    stranger = _client(app, "198.51.100.8")
    for index in range(IP_MAX_FAILURES):
        _post_login(stranger, f"x-{index}", "wrong", **{"X-Forwarded-For": f"192.0.2.{index}"})
    refused = _post_login(stranger, "admin-user", PASSWORD, **{"X-Forwarded-For": "192.0.2.99"})
    assert refused.status_code == 429 and THROTTLED_FR in refused.text


def test_the_proxy_setting_names_a_bad_value() -> None:
    from core.settings import SettingsError, load_settings

    os.environ["DEME_TRUSTED_PROXIES"] = "10.0.0.0/8, not-an-address"
    try:
        with pytest.raises(SettingsError, match=r"DEME_TRUSTED_PROXIES.*not-an-address"):
            load_settings()
    finally:
        del os.environ["DEME_TRUSTED_PROXIES"]


# --- backoff per (account, address) ------------------------------------------------------


def test_an_attacker_at_address_a_does_not_lock_the_admin_out_at_address_b(
    make_app: Any, world: World, db: Any
) -> None:
    app = make_app()
    attacker = _client(app, "198.51.100.66")
    statuses = [_post_login(attacker, "admin-user", "guess").status_code for _ in range(10)]
    assert statuses[:3] == [401, 401, 401] and set(statuses[3:]) == {429}
    # Even the right password is refused to the attacker's address while it waits ...
    response = _post_login(attacker, "admin-user", PASSWORD)
    assert response.status_code == 429 and BACKOFF_FR in response.text
    # ... and the real admin, elsewhere, logs in at once.
    admin = _client(app, "192.0.2.10")
    assert _post_login(admin, "admin-user", PASSWORD).status_code == 303
    from models.users import LoginBackoff

    row = db.scalar(select(LoginBackoff))
    assert row is not None and row.failures == 3  # refused attempts do not run argon2 again
    assert "admin" not in row.key and "198.51" not in row.key  # neither is stored in clear


def test_backoff_doubles_and_is_capped() -> None:
    from datetime import timedelta

    from ops_console.auth import BACKOFF_MAX, backoff_delay

    assert backoff_delay(2) == timedelta(0)
    assert backoff_delay(4) == 2 * backoff_delay(3) > timedelta(0)
    assert backoff_delay(50) == BACKOFF_MAX == timedelta(minutes=15)


# --- password rules ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("1234567890", "Au moins 12 caractères."),
        ("123456789012", "trop facile à deviner"),
        ("1q2w3e4r5t6y", "mots de passe courants"),
        ("QWERTY123456", "mots de passe courants"),
        ("kadi-secret-2026", "ne doit pas contenir le nom d'utilisateur"),
        ("x" * 1025, "Au plus 1024 caractères."),
    ],
)
def test_the_console_refuses_weak_passwords(
    browser_client: Any, world: World, db: Any, password: str, message: str
) -> None:
    client = browser_client()
    csrf = login(client, "admin-user")
    response = client.post(
        "/admin/users",
        data={"csrf_token": csrf, "username": "kadi", "role": "operator", "password": password},
    )
    assert response.status_code == 422
    assert message in response.text
    from models.users import User

    assert db.scalar(select(User).where(User.username == "kadi")) is None


def test_a_password_change_in_the_console_follows_the_same_rules(
    browser_client: Any, world: World
) -> None:
    client = browser_client()
    csrf = login(client, "admin-user")
    operator_id = world.actors["operator"].user_id
    response = client.post(
        f"/admin/users/{operator_id}", data={"csrf_token": csrf, "password": "1234567890"}
    )
    assert response.status_code == 422 and "Au moins 12 caractères." in response.text
    assert _post_login(browser_client(), "operator-user", PASSWORD).status_code == 303


def test_the_cli_refuses_weak_passwords(db: Any) -> None:
    short = deme("create-user", "moussa", "--role", "operator", "--password", "1234567890")
    assert short.returncode == 2 and "At least 12 characters." in short.stderr
    common = deme("create-user", "moussa", "--role", "operator", "--password", "qwerty123456")
    assert common.returncode == 2 and "common passwords" in common.stderr
    digits = deme("create-user", "moussa", "--role", "operator", "--password", "0" * 8 + "1234")
    assert digits.returncode == 2 and "only of digits" in digits.stderr
    good = deme("create-user", "moussa", "--role", "operator", "--password", "Kati-Sévaré 2026")
    assert good.returncode == 0, good.stderr


def test_a_password_with_spaces_works_exactly_as_typed(browser_client: Any, world: World) -> None:
    typed = "  dunan ka na sogoma  "
    client = browser_client()
    csrf = login(client, "admin-user")
    response = client.post(
        "/admin/users",
        data={"csrf_token": csrf, "username": "sira", "role": "operator", "password": typed},
    )
    assert response.status_code == 200, response.text[:300]
    assert _post_login(browser_client(), "sira", typed.strip()).status_code == 401
    assert _post_login(browser_client(), "sira", typed).status_code == 303
    # A long passphrase is kept whole (the old form cut it at 200 characters).
    long_phrase = " ".join(["dugukolo"] * 40) + " !"
    operator_id = world.actors["operator"].user_id
    changed = client.post(
        f"/admin/users/{operator_id}", data={"csrf_token": csrf, "password": long_phrase}
    )
    assert changed.status_code == 200
    assert _post_login(browser_client(), "operator-user", long_phrase[:200]).status_code == 401
    assert _post_login(browser_client(), "operator-user", long_phrase).status_code == 303


# --- the phone simulator -----------------------------------------------------------------

SIMULATOR_ONLY_FR = "Le simulateur n'écrit que depuis des numéros de test"


def test_the_simulator_refuses_a_real_number(browser_client: Any, world: World, db: Any) -> None:
    from models.contacts import Contact
    from models.enums import MessageDirection, MessageStatus
    from models.messages import Message

    real = "+22376123456"
    ticket = new_ticket(db, phone=real)  # a real sender with a ticket
    # ... who once wrote on the simulator channel (as any demo done with a real number did).
    db.add(
        Message(
            channel_id=world.simulator_channel_id,
            contact_id=ticket.contact_id,
            direction=MessageDirection.INBOUND,
            body="ma soeur est en danger",
            status=MessageStatus.RECEIVED,
        )
    )
    db.commit()
    client = browser_client()
    csrf = login(client, "operator-user")
    for text in ("statut", "STOP", "EFFACER"):
        response = client.post(
            "/simulator/sms", data={"csrf_token": csrf, "phone": real, "text": text}
        )
        assert response.status_code == 422 and SIMULATOR_ONLY_FR in response.text
    ussd = client.post("/simulator/ussd", data={"csrf_token": csrf, "phone": "76 12 34 56"})
    assert ussd.status_code == 422 and SIMULATOR_ONLY_FR in ussd.text
    assert 'class="ussd-screen"' not in ussd.text
    db.expire_all()
    assert db.scalar(select(func.count()).select_from(Message)) == 1  # nothing new
    contact = db.scalar(select(Contact))
    assert contact is not None and not contact.is_test and contact.opted_out_at is None
    # Nor can the thread of a real sender be read through the simulator.
    page = client.get("/simulator", params={"phone": real})
    assert page.status_code == 200 and "ma soeur est en danger" not in page.text


def test_the_simulator_speaks_as_a_test_contact(browser_client: Any, world: World, db: Any) -> None:
    from models.contacts import Contact
    from models.messages import Message

    client = browser_client()
    csrf = login(client, "operator-user")
    assert "+22300000001" in client.get("/simulator").text  # the suggested number
    response = client.post(
        "/simulator/sms",
        data={"csrf_token": csrf, "phone": "+223 00 12 34 56", "text": "pas d'eau a Gao"},
    )
    assert response.status_code == 200
    db.expire_all()
    contact = db.scalar(select(Contact))
    assert contact is not None and contact.is_test and contact.phone == "+22300123456"
    assert db.scalar(select(func.count()).select_from(Message)) == 1
    ussd = client.post("/simulator/ussd", data={"csrf_token": csrf, "phone": "+22300654321"})
    assert ussd.status_code == 200 and 'class="ussd-screen"' in ussd.text


def test_a_provider_webhook_from_the_simulator_range_is_not_test_data(db: Any) -> None:
    from core.phones import is_simulator_number, normalize_phone
    from tickets.contacts import get_or_create_contact

    assert is_simulator_number(normalize_phone("00 00 00 01"))
    assert not is_simulator_number(normalize_phone("76 12 34 56"))
    contact = get_or_create_contact(db, "+22300000099")  # what the gateway does
    assert contact.is_test is False


def test_simulator_tickets_are_left_out_of_dashboard_and_exports(
    browser_client: Any, world: World, db: Any
) -> None:
    from tickets.contacts import get_or_create_contact

    simulated = get_or_create_contact(db, "+22300000042")
    simulated.is_test = True
    db.commit()
    for _ in range(3):
        new_ticket(db, category="wash", phone="+22300000042", description="test de demo")
    new_ticket(db, category="wash", phone="+22376200001")
    new_ticket(db, category="health", phone="+22376200002")
    client = browser_client()
    login(client, "supervisor-user")
    dashboard = client.get("/dashboard")
    assert dashboard.status_code == 200
    assert "2 tickets ouverts" in dashboard.text
    rows = list(csv.reader(io.StringIO(client.get("/exports/queue.csv").text)))
    assert len(rows) == 3  # header + the two real tickets
    assert all("test de demo" not in row[-1] for row in rows)
    hxl = list(csv.reader(io.StringIO(client.get("/exports/aggregate.hxl.csv").text)))
    wash = [row for row in hxl[2:] if row[2] == "wash"]
    assert [row[3] for row in wash] == ["<5"] and sum(1 for _ in wash) == 1
    # The queue still shows them to operators working the demo.
    assert client.get("/queue").text.count('<a href="/tickets/T-') == 5


def test_replies_to_a_simulator_contact_never_reach_a_provider(world: World, db: Any) -> None:
    from gateway.outbound import queue_sms
    from gateway.tasks import send_outbound
    from models.channels import Channel
    from models.enums import ChannelType, MessageStatus
    from models.messages import Message
    from tickets.contacts import get_or_create_contact

    contact = get_or_create_contact(db, "+22300000077")
    contact.is_test = True
    http = db.scalar(select(Channel).where(Channel.type == ChannelType.HTTP))
    message = queue_sms(db, contact=contact, body="Votre ticket est ouvert", channel=http)
    assert message is not None
    db.commit()
    assert send_outbound.run(message.id) == "simulated"
    db.expire_all()
    sent = db.get(Message, message.id)
    assert sent.status == MessageStatus.SENT and sent.provider_id.startswith("sim-")
