"""Issue 11: provider input that made 500s on main. Webhooks repair what cannot be stored
(nothing accepted is lost) and bound every number; unknown channels are 404."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tests.gateway.conftest import AT_SECRET, HTTP_SECRET
from tests.gateway.gateway_helpers import signed, twilio_sms_form
from tests.gateway.test_gateway_webhooks import SENDER, inbound, post_twilio

JSON_HEADERS = {"Content-Type": "application/json", "X-Deme-Secret": HTTP_SECRET}


def test_twilio_nul_in_sid_and_huge_num_segments_are_stored_repaired(
    client: Any, db: Session, twilio_channel: Any
) -> None:
    form = twilio_sms_form(SENDER, "ji\x00 tɛ", sid="SM\x00abc", NumSegments=str(2**31))
    response = post_twilio(client, form)
    assert response.status_code == 200, response.text
    [message] = inbound(db)
    assert message.provider_id == "SMabc"
    assert message.body == "ji tɛ" and message.sanitized is True
    assert message.segments is None


def test_twilio_unicode_digit_num_segments_is_ignored(
    client: Any, db: Session, twilio_channel: Any
) -> None:
    assert post_twilio(client, twilio_sms_form(SENDER, "a", NumSegments="²")).status_code == 200
    [message] = inbound(db)
    assert message.segments is None


def test_twilio_status_with_nul_is_accepted(client: Any, db: Session, twilio_channel: Any) -> None:
    path = "/webhooks/twilio/status"
    form = {
        "AccountSid": twilio_sms_form(SENDER, "")["AccountSid"],
        "MessageSid": "SM\x00x",
        "MessageStatus": "delivered\x00",
        "ErrorCode": "\x00",
    }
    body, headers = signed(path, form)
    assert client.post(path, content=body, headers=headers).status_code == 204


def test_lone_surrogate_in_json_status_and_sms_is_repaired(
    client: Any, db: Session, http_channel: Any
) -> None:
    status = client.post(
        f"/webhooks/http/{http_channel.id}/status",
        content=b'{"msg_id": "a\\ud800", "state": "DELIVRD", "err": "\\udfff"}',
        headers=JSON_HEADERS,
    )
    assert status.status_code == 200, status.text
    sms = client.post(
        f"/webhooks/http/{http_channel.id}/receive",
        content=b'{"msisdn": "+22376123456", "msg_id": "m\\ud800", "message": "ok \\ud83d"}',
        headers=JSON_HEADERS,
    )
    assert sms.status_code == 200, sms.text
    [message] = inbound(db)
    assert message.body == "ok \ufffd" and message.sanitized is True
    assert message.provider_id == "m\ufffd"


def test_africastalking_nul_in_id(client: Any, db: Session, at_channel: Any) -> None:
    form = {"from": SENDER, "to": "36665", "text": "a", "id": "AT\x00x", "date": "x"}
    url = f"/webhooks/africastalking/sms?secret={AT_SECRET}"
    assert client.post(url, data=form).status_code == 200
    [message] = inbound(db)
    assert message.provider_id == "ATx"


def test_channel_ids_must_be_ascii_digits_within_range(
    client: Any, db: Session, http_channel: Any
) -> None:
    for channel_id in ("¹", "٣", "１", str(2**31), "9" * 30):
        for kind in ("receive", "status", "ussd"):
            response = client.post(
                f"/webhooks/http/{channel_id}/{kind}", content=b"a=b", headers=JSON_HEADERS
            )
            assert response.status_code in (404, 422), (channel_id, kind, response.status_code)
