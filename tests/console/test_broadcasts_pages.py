"""The broadcast pages through the real app (both deployments): preview shows the counts and
parts in words, an uploaded list's bad lines are named, a protection selection is refused
with a message, the draft's page shows progress, an operator is refused."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from models.enums import Language
from tests.console.conftest import World, login
from tickets.contacts import get_or_create_contact


def _people(db: Session) -> None:
    for n, language in enumerate(("fr", "fr", "en")):
        contact = get_or_create_contact(db, f"+2237600050{n}")
        contact.language = Language(language)
    db.commit()


def _form(csrf: str, action: str, **extra: str) -> dict[str, Any]:
    return {
        "csrf_token": csrf,
        "name": "Distribution",
        "text_fr": "Distribution demain à 9h.",
        "text_en": "Distribution tomorrow at 9am.",
        "languages": ["fr", "en"],
        "action": action,
        **extra,
    }


def test_preview_then_create_then_progress(browser_client: Any, world: World, db: Session) -> None:
    _people(db)
    client = browser_client()
    csrf = login(client, world["supervisor"].username)
    client.post("/language", data={"csrf_token": csrf, "language": "en", "next": "/queue"})
    page = client.get("/broadcasts/new")
    assert page.status_code == 200 and "Who receives it" in page.text
    preview = client.post("/broadcasts/new", data=_form(csrf, "preview"))
    assert preview.status_code == 200
    assert "3 people will receive it, 3 SMS parts in total." in preview.text
    assert "Not sent to: 0 opted out, 0 erased, 0 flood-limited." in preview.text
    created = client.post("/broadcasts/new", data=_form(csrf, "create"), follow_redirects=False)
    assert created.status_code == 303
    detail = client.get(created.headers["location"])
    assert "Broadcast: Distribution" in detail.text
    assert 'id="count-queued">3<' in detail.text
    assert "Send to 3 people" in detail.text


def test_protection_selection_and_bad_list_lines_are_explained(
    browser_client: Any, world: World, db: Session
) -> None:
    _people(db)
    client = browser_client()
    csrf = login(client, world["admin"].username)  # French, the console's default
    refused = client.post(
        "/broadcasts/new", data=_form(csrf, "preview", ticket_category="protection")
    )
    assert refused.status_code == 422
    assert "ne peut pas être construite sur des cas de protection" in refused.text
    listed = client.post(
        "/broadcasts/new",
        data={**_form(csrf, "preview"), "languages": []},
        files={"phones": ("list.csv", b"numero\n76000500\nabc\n", "text/csv")},
    )
    assert listed.status_code == 200, listed.text[:300]
    assert "1 personnes le recevront" in listed.text
    assert "ligne 3" in listed.text and "abc" in listed.text


def test_an_operator_may_not_open_broadcasts(browser_client: Any, world: World) -> None:
    client = browser_client()
    login(client, world["operator"].username)
    assert client.get("/broadcasts").status_code == 403
    assert client.get("/broadcasts/new").status_code == 403
    assert 'href="/broadcasts"' not in client.get("/queue").text
