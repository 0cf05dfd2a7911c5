"""Webhooks through the real app (TestClient over ASGI), real PostgreSQL: verify, normalise,
record idempotently, and every kind of bad input."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Call, Contact, Message, MessageDirection, MessageStatus
from tests.gateway.conftest import AT_SECRET, HTTP_SECRET
from tests.gateway.gateway_helpers import AUTH_TOKEN, signed, twilio_sms_form

SENDER = "+22376123456"
TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def post_twilio(client: Any, form: dict[str, str], path: str = "/webhooks/twilio/sms") -> Any:
    body, headers = signed(path, form)
    return client.post(path, content=body, headers=headers)


def inbound(db: Session) -> list[Message]:
    db.expire_all()
    return list(
        db.scalars(
            select(Message)
            .where(Message.direction == MessageDirection.INBOUND)
            .order_by(Message.id)
        )
    )


def test_twilio_sms_is_recorded_once_and_answered_with_empty_twiml(
    client: Any, db: Session, twilio_channel: Any
) -> None:
    form = twilio_sms_form(SENDER, "An mago be ji la")
    first = post_twilio(client, form)
    assert first.status_code == 200
    assert first.text == TWIML_EMPTY
    assert first.headers["content-type"].startswith("application/xml")
    assert post_twilio(client, form).status_code == 200  # Twilio's retry
    messages = inbound(db)
    assert len(messages) == 1
    message = messages[0]
    assert message.provider_id == form["MessageSid"]
    assert message.body == "An mago be ji la"
    assert message.channel_id == twilio_channel.id
    assert message.status in (MessageStatus.RECEIVED, MessageStatus.HANDLED, MessageStatus.IGNORED)
    contact = db.get(Contact, message.contact_id)
    assert contact is not None and contact.phone == SENDER


def test_signature_covers_fields_twilio_adds_without_notice(
    client: Any, db: Session, twilio_channel: Any
) -> None:
    form = twilio_sms_form(SENDER, "bonjour", NewFieldFromTwilio="x", MediaUrl0="")
    assert post_twilio(client, form).status_code == 200
    body, headers = signed("/webhooks/twilio/sms", form)
    tampered = body + b"&Extra=unsigned"
    response = client.post("/webhooks/twilio/sms", content=tampered, headers=headers)
    assert response.status_code == 403


def test_local_number_formats_are_normalised(client: Any, db: Session, twilio_channel: Any) -> None:
    assert post_twilio(client, twilio_sms_form("0022376123456", "a")).status_code == 200
    assert post_twilio(client, twilio_sms_form("+223 76 12 34 56", "b")).status_code == 200
    contacts = db.scalars(select(Contact)).all()
    assert [c.phone for c in contacts] == [SENDER]


def test_bad_signature_is_403_logged_and_not_stored(
    client: Any, db: Session, twilio_channel: Any, caplog: pytest.LogCaptureFixture
) -> None:
    form = twilio_sms_form(SENDER, "hello")
    body, headers = signed("/webhooks/twilio/sms", form, token="not-the-token")
    with caplog.at_level(logging.WARNING, logger="deme.security"):
        response = client.post("/webhooks/twilio/sms", content=body, headers=headers)
        missing = client.post(
            "/webhooks/twilio/sms",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code == 403 and missing.status_code == 403
    assert [r.name for r in caplog.records].count("deme.security") == 2
    assert SENDER not in caplog.text and "hello" not in caplog.text
    assert inbound(db) == []
    assert db.scalars(select(Contact)).all() == []


def test_signature_is_checked_against_the_public_url_not_the_request_url(
    client: Any, db: Session, twilio_channel: Any
) -> None:
    form = twilio_sms_form(SENDER, "hello")
    from twilio.request_validator import RequestValidator

    internal = RequestValidator(AUTH_TOKEN).compute_signature(
        "http://testserver/webhooks/twilio/sms", form
    )
    response = client.post(
        "/webhooks/twilio/sms",
        content=urlencode(form).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": internal,
        },
    )
    assert response.status_code == 403


def test_missing_fields_are_400_naming_them(client: Any, db: Session, twilio_channel: Any) -> None:
    form = twilio_sms_form(SENDER, "x")
    del form["MessageSid"], form["From"]
    response = post_twilio(client, form)
    assert response.status_code == 400
    assert "From" in response.text and "MessageSid" in response.text
    no_account = twilio_sms_form(SENDER, "x")
    del no_account["AccountSid"]
    response = post_twilio(client, no_account)
    assert response.status_code == 400 and "AccountSid" in response.text
    assert inbound(db) == []


def test_invalid_sender_number_is_400(client: Any, db: Session, twilio_channel: Any) -> None:
    response = post_twilio(client, twilio_sms_form("ORANGE", "promo"))
    assert response.status_code == 400 and "From" in response.text


def test_body_over_64_kib_is_413(client: Any, db: Session, twilio_channel: Any) -> None:
    form = twilio_sms_form(SENDER, "x" * 70_000)
    response = post_twilio(client, form)
    assert response.status_code == 413

    def chunks() -> Any:  # no Content-Length: the limit is enforced while reading
        for _ in range(80):
            yield b"a" * 1024

    streamed = client.post(
        "/webhooks/twilio/sms",
        content=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert streamed.status_code == 413
    assert inbound(db) == []


def test_unknown_channel_is_404(client: Any, db: Session, twilio_channel: Any) -> None:
    form = twilio_sms_form(SENDER, "x", AccountSid="AC" + "9" * 32)
    assert post_twilio(client, form).status_code == 404
    assert client.post("/webhooks/http/999/receive", content=b"a=b").status_code == 404
    assert client.post("/webhooks/http/abc/receive", content=b"a=b").status_code == 404


@pytest.mark.parametrize(
    "text",
    [
        "Aidez-nous 🙏😀 s'il vous plaît",
        "نحتاج إلى الماء في المخيم",
        "ⴰⵎⴰⵏ ⵓⵔ ⵉⵍⵍⵉ — ⵜⵉⴼⵉⵏⴰⵖ",
        "é" * 1600,
        "x" * 1599 + "😀",
    ],
)
def test_any_script_and_1600_characters_are_stored_exactly(
    client: Any, db: Session, twilio_channel: Any, text: str
) -> None:
    assert post_twilio(client, twilio_sms_form(SENDER, text)).status_code == 200
    [message] = inbound(db)
    assert message.body == text
    assert message.sanitized is False


def test_nul_bytes_are_removed_and_flagged(client: Any, db: Session, twilio_channel: Any) -> None:
    assert post_twilio(client, twilio_sms_form(SENDER, "ab\x00cd\x00")).status_code == 200
    [message] = inbound(db)
    assert message.body == "abcd"
    assert message.sanitized is True


def test_invalid_utf8_is_replaced_and_flagged(client: Any, db: Session, http_channel: Any) -> None:
    body = b"msisdn=%2B22376123456&msg_id=agg-1&message=caf%E9+%FF+ok"
    response = client.post(
        f"/webhooks/http/{http_channel.id}/receive",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Deme-Secret": HTTP_SECRET},
    )
    assert response.status_code == 200
    raw_bytes = b"message=" + b"\xff\xfe oui"
    response = client.post(
        f"/webhooks/http/{http_channel.id}/receive",
        content=b"msisdn=%2B22376123456&msg_id=agg-2&" + raw_bytes,
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Deme-Secret": HTTP_SECRET},
    )
    assert response.status_code == 200
    first, second = inbound(db)
    assert first.body == "caf\ufffd \ufffd ok" and first.sanitized is True
    assert second.body.endswith(" oui") and "\ufffd" in second.body and second.sanitized


def test_africastalking_sms_with_secret(client: Any, db: Session, at_channel: Any) -> None:
    form = {
        "from": SENDER,
        "to": "36665",
        "text": "Dɛmɛ",
        "date": "2026-11-28 10:00:00",
        "id": "ATXid_1",
        "linkId": "L1",
    }
    url = f"/webhooks/africastalking/sms?secret={AT_SECRET}"
    assert client.post(url, data=form).status_code == 200
    assert client.post(url, data=form).status_code == 200
    [message] = inbound(db)
    assert message.body == "Dɛmɛ" and message.provider_id == "ATXid_1"
    assert client.post("/webhooks/africastalking/sms?secret=wrong", data=form).status_code == 403
    assert client.post("/webhooks/africastalking/sms", data=form).status_code == 403
    bad = client.post(url, data={"from": SENDER, "to": "36665"})
    assert bad.status_code == 400 and "id" in bad.text and "text" in bad.text


def test_africastalking_without_channel_is_404(client: Any, db: Session) -> None:
    assert client.post("/webhooks/africastalking/sms?secret=x", data={"a": "b"}).status_code == 404


def test_generic_http_channel_maps_fields_and_accepts_json(
    client: Any, db: Session, http_channel: Any
) -> None:
    url = f"/webhooks/http/{http_channel.id}/receive"
    auth = {"X-Deme-Secret": HTTP_SECRET}
    form = {"msisdn": "76123456", "message": "An bɛ Mopti", "msg_id": "agg-77"}
    assert client.post(url, data=form, headers=auth).status_code == 200
    assert (
        client.post(
            url, json={"msisdn": "+22365123456", "message": "salut", "msg_id": 78}, headers=auth
        ).status_code
        == 200
    )
    assert client.post(url, data=form, headers={"X-Deme-Secret": "no"}).status_code == 403
    missing = client.post(url, data={"message": "x"}, headers=auth)
    assert missing.status_code == 400 and "msisdn" in missing.text and "msg_id" in missing.text
    assert (
        client.post(
            url, content=b"{not json", headers={**auth, "Content-Type": "application/json"}
        ).status_code
        == 400
    )
    first, second = inbound(db)
    assert (first.provider_id, first.body) == ("agg-77", "An bɛ Mopti")
    assert second.provider_id == "78"
    assert db.get(Contact, first.contact_id).phone == "+22376123456"  # type: ignore[union-attr]


def _outbound(db: Session, channel: Any, provider_id: str) -> Message:
    from models import Contact as ContactModel
    from models.base import utcnow

    contact = ContactModel(phone=SENDER, phone_hash="h-" + provider_id)
    db.add(contact)
    db.flush()
    message = Message(
        channel_id=channel.id,
        contact_id=contact.id,
        direction=MessageDirection.OUTBOUND,
        provider_id=provider_id,
        body="x",
        status=MessageStatus.SENT,
        created_at=utcnow(),
    )
    db.add(message)
    db.commit()
    return message


def test_twilio_status_callbacks_only_move_forward(
    client: Any, db: Session, twilio_channel: Any
) -> None:
    message = _outbound(db, twilio_channel, "SMstatus1")

    def callback(status: str, **extra: str) -> int:
        form = {
            "AccountSid": twilio_channel.credentials["account_sid"],
            "MessageSid": "SMstatus1",
            "MessageStatus": status,
            "From": "+22370000001",
            "To": SENDER,
            **extra,
        }
        return int(post_twilio(client, form, "/webhooks/twilio/status").status_code)

    assert callback("delivered") == 204
    assert callback("sent") == 204  # late, out of order
    assert callback("queued") == 204
    db.refresh(message)
    assert message.status == MessageStatus.DELIVERED and message.delivered_at is not None
    assert callback("undelivered", ErrorCode="30005") == 204
    db.refresh(message)
    assert message.status == MessageStatus.UNDELIVERED and message.error_code == "30005"
    assert callback("delivered") == 204  # final states stay
    db.refresh(message)
    assert message.status == MessageStatus.UNDELIVERED
    missing = post_twilio(
        client, {"AccountSid": twilio_channel.credentials["account_sid"]}, "/webhooks/twilio/status"
    )
    assert missing.status_code == 400 and "MessageSid" in missing.text


def test_africastalking_and_http_delivery_reports(
    client: Any, db: Session, at_channel: Any, http_channel: Any
) -> None:
    at_message = _outbound(db, at_channel, "ATXid_9")
    http_message = _outbound(db, http_channel, "agg-9")
    url = f"/webhooks/africastalking/delivery?secret={AT_SECRET}"
    assert (
        client.post(
            url, data={"id": "ATXid_9", "status": "Success", "phoneNumber": SENDER}
        ).status_code
        == 200
    )
    assert client.post(url, data={"id": "ATXid_9", "status": "Sent"}).status_code == 200
    status_url = f"/webhooks/http/{http_channel.id}/status"
    auth = {"X-Deme-Secret": HTTP_SECRET}
    assert (
        client.post(
            status_url, data={"msg_id": "agg-9", "state": "UNDELIV", "err": "E42"}, headers=auth
        ).status_code
        == 200
    )
    db.refresh(at_message)
    db.refresh(http_message)
    assert at_message.status == MessageStatus.DELIVERED
    assert http_message.status == MessageStatus.UNDELIVERED and http_message.error_code == "E42"


def test_missed_call_is_rejected_and_recorded_once(
    client: Any, db: Session, twilio_channel: Any
) -> None:
    form = {
        "CallSid": "CA" + "1" * 32,
        "AccountSid": twilio_channel.credentials["account_sid"],
        "From": SENDER,
        "To": "+22370000001",
        "CallStatus": "ringing",
        "Direction": "inbound",
    }
    first = post_twilio(client, form, "/webhooks/twilio/voice")
    again = post_twilio(client, form, "/webhooks/twilio/voice")
    assert first.status_code == again.status_code == 200
    assert (
        first.text
        == '<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="busy"/></Response>'
    )
    calls = db.scalars(select(Call)).all()
    assert len(calls) == 1
    assert calls[0].status == "callback_requested" and calls[0].contact_id is not None
    withheld = post_twilio(
        client, {**form, "CallSid": "CA" + "2" * 32, "From": "anonymous"}, "/webhooks/twilio/voice"
    )
    assert withheld.status_code == 200
    assert len(db.scalars(select(Call)).all()) == 2


def test_request_callback_opens_a_missed_call_ticket(db: Session, twilio_channel: Any) -> None:
    from gateway.calls import InboundCall, process_callback_request, record_call

    call_id = record_call(InboundCall(twilio_channel.id, "CA" + "3" * 32, SENDER))
    assert call_id is not None
    ticket_id = process_callback_request(call_id)
    db.expire_all()
    call = db.get(Call, call_id)
    assert call is not None
    try:
        import tickets.intake  # noqa: F401
    except ImportError:
        assert ticket_id is None
        return
    from models import Ticket, TicketSource

    assert ticket_id is not None and call.ticket_id == ticket_id
    ticket = db.get(Ticket, ticket_id)
    assert ticket is not None and ticket.source == TicketSource.MISSED_CALL
    assert process_callback_request(call_id) == ticket_id  # idempotent
