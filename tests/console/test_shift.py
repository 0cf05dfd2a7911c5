"""The operator's shift (issue 13) through the real app on PostgreSQL: the whole exchange on
the ticket page (filtered like the ticket), server errors shown, a stale form refused with
what changed, who else has the ticket open."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.console.conftest import World, login, new_ticket


def _inbound(db: Any, world: World, ticket: Any, body: str, *, linked: bool = True) -> Any:
    from models.enums import MessageDirection, MessageStatus
    from models.messages import Message

    message = Message(
        channel_id=world.simulator_channel_id,
        contact_id=ticket.contact_id,
        ticket_id=ticket.id if linked else None,
        direction=MessageDirection.INBOUND,
        provider_id=f"in-{body[:20]}",
        body=body,
        status=MessageStatus.HANDLED,
    )
    db.add(message)
    db.flush()
    return message


def _bot_reply(db: Any, ticket: Any, body: str, *, linked: bool = True) -> Any:
    from gateway.outbound import queue_sms
    from models.contacts import Contact

    contact = db.get(Contact, ticket.contact_id)
    return queue_sms(db, contact=contact, body=body, ticket_id=ticket.id if linked else None)


def test_ticket_page_shows_the_whole_exchange_in_order(
    browser_client: Any, world: World, db: Any
) -> None:
    from models.alerts import Alert, AlertChannel
    from models.enums import AlertKind, MessageStatus
    from models.messages import Call
    from tickets import workflow
    from tickets.notifications import notify_sender

    ticket = new_ticket(db, category="wash", phone="+22376111000", description="Plus d'eau")
    _inbound(db, world, ticket, "Plus d'eau au forage")
    question = _bot_reply(db, ticket, "Merci. Combien de personnes ?")
    question.status = MessageStatus.DELIVERED
    _inbound(db, world, ticket, "Nous sommes 7")
    channel = AlertChannel(team_id=ticket.team_id, kind=AlertKind.EMAIL, name="wash", target={})
    db.add(channel)
    db.flush()
    db.add(
        Alert(
            alert_channel_id=channel.id,
            team_id=ticket.team_id,
            ticket_id=ticket.id,
            reason="new_ticket",
            dedupe_key=f"t:{ticket.id}",
            subject="s",
            body="b",
        )
    )
    db.add(
        Call(
            ticket_id=ticket.id,
            contact_id=ticket.contact_id,
            direction="in",
            status="completed",
            notes="Rappelé, ok",
        )
    )
    event = workflow.change_status(db, ticket, "in_progress", actor_label="operator-user")
    db.commit()
    assert event is not None
    assert notify_sender(ticket.id, "in_progress", event.id)  # the automatic status SMS

    client = browser_client()
    token = login(client, "operator-user")
    response = client.post(
        f"/tickets/{ticket.reference}/reply",
        data={"body": "Une équipe passe demain.", "csrf_token": token},
    )
    assert response.status_code == 200
    page = client.get(f"/tickets/{ticket.reference}").text
    conversation = page[
        page.index('id="conversation"') : page.index("</ol>", page.index('id="conversation"'))
    ]
    order = [
        "Plus d&#39;eau au forage",
        "Combien de personnes",
        "Nous sommes 7",
        "Rappelé, ok",
        "Une équipe passe demain.",
    ]
    positions = [conversation.index(text) for text in order]
    assert positions == sorted(positions), positions
    assert "remis" in conversation  # the bot's question, delivered: a word, not a code
    assert "SMS de statut automatique" in conversation
    assert "Réponse de" in conversation
    assert "Alerte à" in conversation and "courriel" in conversation
    assert "Pas encore de message" not in page


def test_protection_exchange_stays_with_protection_officers(
    browser_client: Any, world: World, db: Any
) -> None:
    ordinary = new_ticket(db, category="health", phone="+22376111001", description="Fièvre")
    protection = new_ticket(
        db, category="protection", phone="+22376111001", description="Menaces", sensitive=True
    )
    _inbound(db, world, ordinary, "Mon enfant a de la fièvre")
    _inbound(db, world, protection, "Il est revenu hier soir")
    db.commit()
    operator = browser_client()
    login(operator, "operator-user")
    page = operator.get(f"/tickets/{ordinary.reference}").text
    assert "Mon enfant a de la fièvre" in page and "Il est revenu" not in page
    assert operator.get(f"/tickets/{protection.reference}").status_code == 404
    officer = browser_client()
    login(officer, "protection-officer-user")
    page = officer.get(f"/tickets/{protection.reference}").text
    assert "Il est revenu hier soir" in page and "Mon enfant" not in page


def test_follow_up_answer_is_linked_to_the_question_s_ticket(world: World, db: Any) -> None:
    from tickets.conversation import followup_ticket_id

    ticket = new_ticket(db, category="wash", phone="+22376111002")
    _bot_reply(db, ticket, "Combien de personnes ?")
    answer = _inbound(db, world, ticket, "beaucoup", linked=False)
    assert followup_ticket_id(db, ticket.contact_id, answer) == ticket.id
    # Too long after the question: a new exchange, not an answer.
    late = _inbound(db, world, ticket, "bonjour", linked=False)
    late.created_at = answer.created_at + timedelta(hours=3)
    assert followup_ticket_id(db, ticket.contact_id, late) is None
    # Once the person also has a protection case, an answer is never moved onto an ordinary
    # ticket (unlinked, it stays with protection officers).
    new_ticket(db, category="protection", phone="+22376111002", sensitive=True)
    again = _inbound(db, world, ticket, "ils sont revenus", linked=False)
    assert followup_ticket_id(db, ticket.contact_id, again) is None


def test_follow_up_to_a_protection_question_goes_to_the_protection_case(
    world: World, db: Any
) -> None:
    from tickets.conversation import followup_ticket_id

    protection = new_ticket(db, category="protection", phone="+22376111003", sensitive=True)
    _bot_reply(db, protection, "Pouvons-nous vous rappeler sans danger ?")
    answer = _inbound(db, world, protection, "oui le soir", linked=False)
    assert followup_ticket_id(db, protection.contact_id, answer) == protection.id


def test_invalid_phone_filter_shows_an_error_not_every_ticket(
    browser_client: Any, world: World, db: Any
) -> None:
    tickets = [new_ticket(db, phone=f"+2237611120{index}") for index in range(3)]
    client = browser_client()
    token = login(client, "operator-user")
    posted = client.post("/queue", data={"csrf_token": token, "phone": "abc"})
    assert posted.status_code == 200
    assert "Pas un numéro de téléphone" in posted.text
    assert not any(ticket.reference in posted.text for ticket in tickets)
    # The htmx swap of #results carries the message too (the form's own field is outside).
    results = client.get(
        str(posted.url),
        headers={"HX-Request": "true", "HX-Target": "results"},
    )
    assert results.text.lstrip().startswith('<div id="results">')
    assert "ne peuvent pas être appliqués" in results.text and "Téléphone" in results.text


def test_expired_session_login_leads_back_to_the_page_not_the_form_action(
    browser_client: Any, world: World, db: Any
) -> None:
    ticket = new_ticket(db)
    client = browser_client()
    login(client, "operator-user")
    client.cookies.clear()  # the session is gone (expired, revoked)
    page_url = f"https://deme.test/tickets/{ticket.reference}"
    htmx = client.post(
        f"/tickets/{ticket.reference}/reply",
        data={"body": "texte"},
        headers={"HX-Request": "true", "HX-Current-URL": page_url},
        follow_redirects=False,
    )
    assert htmx.status_code == 204
    assert htmx.headers["HX-Redirect"] == f"/login?next=/tickets/{ticket.reference}"
    plain = client.post(
        f"/tickets/{ticket.reference}/note",
        data={"note": "texte"},
        headers={"Referer": page_url},
        follow_redirects=False,
    )
    assert plain.status_code == 303
    assert plain.headers["location"] == f"/login?next=/tickets/{ticket.reference}"
    # A foreign Referer is never a destination.
    foreign = client.post(
        f"/tickets/{ticket.reference}/note",
        data={"note": "x"},
        headers={"Referer": "https://evil.example/phish"},
        follow_redirects=False,
    )
    assert foreign.headers["location"] == "/login?next=/queue"


def test_refused_reply_and_merge_say_why_and_keep_the_text(
    browser_client: Any, world: World, db: Any
) -> None:
    ticket = new_ticket(db)
    client = browser_client()
    token = login(client, "operator-user")
    long_text = "mot " * 450
    reply = client.post(
        f"/tickets/{ticket.reference}/reply",
        data={"body": long_text, "csrf_token": token},
        headers={"HX-Request": "true"},
    )
    assert reply.status_code == 422
    assert "limitées à 1600 caractères" in reply.text
    assert long_text.strip()[:1000] in reply.text  # typed text back in its box
    merge = client.post(
        f"/tickets/{ticket.reference}/merge",
        data={"target": "T-ZZZZZ", "csrf_token": token},
        headers={"HX-Request": "true"},
    )
    assert merge.status_code == 422 and "Aucun ticket avec cette référence" in merge.text


def _work_form(page_html: str) -> dict[str, str]:
    import re

    def hidden(name: str) -> str:
        match = re.search(rf'name="{name}" value="(\d+)"', page_html)
        assert match, name
        return match.group(1)

    return {"version": hidden("version"), "seen_event": hidden("seen_event")}


def test_a_stale_form_is_refused_with_what_changed(
    browser_client: Any, world: World, db: Any
) -> None:
    from models.tickets import Ticket

    ticket = new_ticket(db, category="health", description="Fièvre forte")
    first, second = browser_client(), browser_client()
    token_a = login(first, "operator-user")
    token_b = login(second, "supervisor-user")
    page_a = first.get(f"/tickets/{ticket.reference}").text
    page_b = second.get(f"/tickets/{ticket.reference}").text
    # B makes it urgent and takes it.
    saved = second.post(
        f"/tickets/{ticket.reference}/work",
        data={
            "csrf_token": token_b,
            "status": "triaged",
            "priority": "urgent",
            "category": "health",
            "assignee": str(world["supervisor"].user_id),
            **_work_form(page_b),
        },
    )
    assert saved.status_code == 200 and "Enregistré." in saved.text
    # A's form still says "normal, unassigned": saving it must not undo B's work.
    stale = first.post(
        f"/tickets/{ticket.reference}/work",
        data={
            "csrf_token": token_a,
            "status": "triaged",
            "priority": "normal",
            "category": "health",
            "assignee": "",
            **_work_form(page_a),
        },
        headers={"HX-Request": "true"},
    )
    assert stale.status_code == 409
    assert "Quelqu'un d'autre a modifié ce ticket" in stale.text
    changes = stale.text[stale.text.index('id="changes"') :]
    changes = changes[: changes.index("</ul>")]
    assert "Urgente" in changes or "urgente" in changes
    db.expire_all()
    current = db.get(Ticket, ticket.id)
    assert current.priority.value == "urgent"
    assert current.assignee_id == world["supervisor"].user_id
    # From the fresh form (now on A's page) the save goes through.
    retry = first.post(
        f"/tickets/{ticket.reference}/work",
        data={
            "csrf_token": token_a,
            "status": current.status.value,
            "priority": "high",
            "category": "health",
            "assignee": str(world["supervisor"].user_id),
            **_work_form(stale.text),
        },
    )
    assert retry.status_code == 200
    db.expire_all()
    assert db.get(Ticket, ticket.id).priority.value == "high"


def test_presence_shows_who_else_has_the_ticket_open(
    browser_client: Any, world: World, db: Any
) -> None:
    ticket = new_ticket(db)
    first, second = browser_client(), browser_client()
    token_a = login(first, "operator-user")
    token_b = login(second, "supervisor-user")
    alone = first.post(f"/tickets/{ticket.reference}/presence", headers={"X-CSRF-Token": token_a})
    assert alone.status_code == 200 and "Aussi ouvert par" not in alone.text
    second.post(f"/tickets/{ticket.reference}/presence", headers={"X-CSRF-Token": token_b})
    both = first.post(f"/tickets/{ticket.reference}/presence", headers={"X-CSRF-Token": token_a})
    assert "Aussi ouvert par" in both.text and "supervisor-user" in both.text.lower()
    again = first.post(f"/tickets/{ticket.reference}/presence", headers={"X-CSRF-Token": token_a})
    assert again.text.count("supervisor") == 1


def _notify_rows(db: Any, ticket: Any) -> list[Any]:
    from sqlalchemy import select

    from models.outbox import OutboxTask
    from tickets.notifications import NOTIFY_TASK

    db.expire_all()
    return [
        row.args
        for row in db.scalars(select(OutboxTask).where(OutboxTask.task_name == NOTIFY_TASK))
        if row.args and row.args[0] == ticket.id
    ]


def test_the_operator_sees_and_chooses_the_status_sms(
    browser_client: Any, world: World, db: Any
) -> None:
    ticket = new_ticket(db, category="health", phone="+22376111300")
    client = browser_client()
    token = login(client, "operator-user")
    page = client.get(f"/tickets/{ticket.reference}").text
    assert "Ceci envoie un SMS à la personne" in page and "Prévenir la personne par SMS" in page
    quiet = client.post(
        f"/tickets/{ticket.reference}/work",
        data={
            "csrf_token": token,
            "status": "in_progress",
            "priority": ticket.priority.value,
            "category": "health",
            "notify_choice": "1",  # the box unticked: no notify_sender
            **_work_form(page),
        },
    )
    assert quiet.status_code == 200
    assert not [args for args in _notify_rows(db, ticket) if args[1] == "in_progress"]
    told = client.post(
        f"/tickets/{ticket.reference}/work",
        data={
            "csrf_token": token,
            "status": "resolved",
            "priority": ticket.priority.value,
            "category": "health",
            "notify_choice": "1",
            "notify_sender": "1",
            **_work_form(quiet.text),
        },
    )
    assert told.status_code == 200
    assert [args for args in _notify_rows(db, ticket) if args[1] == "resolved"]


def test_protection_sms_waits_until_contact_is_safe(
    browser_client: Any, world: World, db: Any
) -> None:
    from tickets import workflow
    from tickets.intake import update_ticket
    from tickets.notifications import notify_sender

    ticket = new_ticket(db, category="protection", phone="+22376111301", sensitive=True)
    officer = browser_client()
    login(officer, "protection-officer-user")
    assert "aucun SMS automatique n'est envoyé" in officer.get(f"/tickets/{ticket.reference}").text
    event = workflow.change_status(db, ticket, "in_progress", actor_label="officer")
    db.commit()
    assert not _notify_rows(db, ticket)  # held, not scheduled
    assert not notify_sender(ticket.id, "in_progress", event.id)  # and never sent if queued
    update_ticket(db, ticket, callback_ok=True, actor_label="bot")
    db.commit()
    assert [args for args in _notify_rows(db, ticket) if args[1] == "in_progress"]
    assert notify_sender(ticket.id, "in_progress", event.id)


def test_sms_preview_shows_the_text_as_sent(browser_client: Any, world: World, db: Any) -> None:
    ticket = new_ticket(db, category="health", phone="+22376111302")
    client = browser_client()
    token = login(client, "operator-user")
    preview = client.post(
        f"/tickets/{ticket.reference}/sms-preview",
        data={"body": "Ɲɔgɔn ka kɛnɛ"},
        headers={"X-CSRF-Token": token},
    )
    assert preview.status_code == 200
    assert "Nyogon ka kene" in preview.text  # transliterated by the gateway's own rule
    assert 'data-encoding="gsm7"' in preview.text and 'data-segments="1"' in preview.text


def test_call_form_takes_a_place_typed_as_a_name(
    browser_client: Any, world: World, db: Any
) -> None:
    from sqlalchemy import select

    from models.places import Place
    from models.tickets import Ticket

    client = browser_client()
    token = login(client, "operator-user")
    logged = client.post(
        "/calls",
        data={
            "csrf_token": token,
            "phone": "+22376111400",
            "language": "fr",
            "category": "wash",
            "place": "Gao",
            "notes": "Le forage est en panne",
        },
        follow_redirects=False,
    )
    assert logged.status_code in (200, 303), logged.text[:500]
    db.expire_all()
    ticket = db.scalar(select(Ticket).order_by(Ticket.id.desc()).limit(1))
    assert ticket is not None and ticket.place_id is not None
    assert db.get(Place, ticket.place_id).name == "Gao"
    unknown = client.post(
        "/calls",
        data={
            "csrf_token": token,
            "category": "wash",
            "place": "Xyzzyville",
            "notes": "x",
        },
    )
    assert unknown.status_code == 422 and "Aucun lieu de ce nom" in unknown.text


def test_place_and_household_size_corrected_on_a_ticket_are_audited(
    browser_client: Any, world: World, db: Any
) -> None:
    from sqlalchemy import select

    from models.audit import AuditLog
    from models.contacts import Household
    from models.places import Place
    from models.tickets import Ticket

    ticket = new_ticket(db, category="wash", phone="+22376111401", place_code=None)
    client = browser_client()
    token = login(client, "operator-user")
    saved = client.post(
        f"/tickets/{ticket.reference}/details",
        data={"csrf_token": token, "place": "sevare", "household_size": "7"},
    )
    assert saved.status_code == 200 and "Enregistré." in saved.text
    db.expire_all()
    current = db.get(Ticket, ticket.id)
    assert db.get(Place, current.place_id).name.lower().startswith("s")
    assert db.get(Household, current.household_id).size == 7
    line = db.scalar(select(AuditLog).where(AuditLog.action == "ticket.details_corrected"))
    assert line is not None and line.ticket_id == ticket.id
    assert sorted(line.details["fields"]) == ["household_size", "place"]
    refused = client.post(
        f"/tickets/{ticket.reference}/details",
        data={"csrf_token": token, "place": "Xyzzyville", "household_size": "trois"},
    )
    assert refused.status_code == 422
    assert "Aucun lieu de ce nom" in refused.text and "entre 1 et 200" in refused.text


def test_erasure_and_its_confirmation_show_on_the_ticket(
    browser_client: Any, world: World, db: Any
) -> None:
    from gateway.outbound import KIND_ERASURE_CONFIRMATION, queue_sms
    from models.contacts import Contact
    from tickets.intake import erase_contact

    ticket = new_ticket(db, category="health", phone="+22376111500", description="Toux")
    contact = db.get(Contact, ticket.contact_id)
    erase_contact(db, contact, actor_label="sender", confirm=True)
    queue_sms(
        db, contact=contact, body="Vos données sont effacées.", kind=KIND_ERASURE_CONFIRMATION
    )
    db.commit()
    client = browser_client()
    login(client, "operator-user")
    page = client.get(f"/tickets/{ticket.reference}").text
    assert "effacées à sa demande" in page
    assert "SMS de confirmation" in page and "Toux" not in page


def test_resolving_with_what_was_done_tells_the_person_and_shows_on_the_timeline(
    browser_client: Any, world: World, db: Any
) -> None:
    """Closing the loop from the ticket page: the operator writes what was done; the
    timeline shows it and the person's "resolved" SMS carries it; too long is refused with
    a message and nothing is changed."""
    from models.tickets import TicketEvent
    from tickets import notifications

    ticket = new_ticket(db, category="wash", phone="+22376111310")
    client = browser_client()
    token = login(client, "operator-user")
    page = client.get(f"/tickets/{ticket.reference}").text
    assert "Ce qui a été fait (en résolvant)" in page
    form = {
        "csrf_token": token,
        "status": "resolved",
        "priority": ticket.priority.value,
        "category": "wash",
        "notify_choice": "1",
        "notify_sender": "1",
    }
    refused = client.post(
        f"/tickets/{ticket.reference}/work",
        data={**form, "outcome": "x" * 301, **_work_form(page)},
    )
    assert refused.status_code == 422
    assert "Le résultat est trop long" in refused.text
    db.expire_all()
    assert db.get(type(ticket), ticket.id).status.value != "resolved"

    done = client.post(
        f"/tickets/{ticket.reference}/work",
        data={**form, "outcome": "Réservoir réparé mardi", **_work_form(page)},
    )
    assert done.status_code == 200, done.text
    assert "Ce qui a été fait :" in done.text and "Réservoir réparé mardi" in done.text
    (args,) = [a for a in _notify_rows(db, ticket) if a[1] == "resolved"]
    event = db.get(TicketEvent, args[2])
    assert event is not None and event.data["outcome"] == "Réservoir réparé mardi"
    # Sent here, or already by a worker of this test session: once either way.
    notifications.notify_sender(*args)
    from sqlalchemy import select

    from models.enums import MessageDirection
    from models.messages import Message

    db.expire_all()
    bodies = db.scalars(
        select(Message.body).where(
            Message.ticket_id == ticket.id, Message.direction == MessageDirection.OUTBOUND
        )
    ).all()
    assert any(b and ticket.reference in b and "Réservoir réparé mardi" in b for b in bodies), (
        bodies
    )


def test_api_outcome_is_checked_and_sent(client: Any, world: World, db: Any) -> None:
    ticket = new_ticket(db, category="wash", phone="+22376111311")
    headers = world["operator"].headers
    url = f"/api/v1/tickets/{ticket.reference}"
    alone = client.patch(url, headers=headers, json={"outcome": "Fait"})
    assert alone.status_code == 422 and "outcome" in alone.json()["detail"]
    long = client.patch(url, headers=headers, json={"status": "resolved", "outcome": "x" * 301})
    assert long.status_code == 422 and "outcome" in str(long.json()["detail"])
    done = client.patch(url, headers=headers, json={"status": "resolved", "outcome": "Fait"})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "resolved"
