"""Every USSD hop must prove it comes from the channel's aggregator.

The menu lists a caller's open requests and can erase their contact: an unauthenticated
webhook let anyone who knew a phone number read someone's protection reference or erase
them. These tests play the attacker against a real victim's walk.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ussd.helpers import USSD_TEST_TOKEN, Phone, check_response

from core.db import session_scope
from models.channels import Channel
from models.contacts import Contact
from models.enums import ChannelType

AT_URL = "/webhooks/africastalking/ussd"


def _channel(**fields: Any) -> int:
    with session_scope() as session:
        channel = Channel(**fields)
        session.add(channel)
        session.flush()
        return channel.id


def _victim_with_a_protection_request(client: Any) -> tuple[str, str]:
    """A real caller reports a protection concern through the authenticated menu; returns
    their number and the reference they were given."""
    victim = Phone(client)
    victim.dial()
    victim.send("3")  # English
    end = victim.walk("3", "1", "2")  # a protection concern (about them), no call back
    found = re.search(r"T-[0-9A-Z]{5}", end)
    victim.dial()
    status = victim.send("4")
    reference = re.search(r"T-[0-9A-Z]{5}", status)
    assert reference, (end, status)
    assert found is None or found.group(0) == reference.group(0)
    return victim.number, reference.group(0)


def _attacker_walk(client: Any, number: str, headers: dict[str, str], *path: str) -> list[Any]:
    answers = []
    text = ""
    for step in ("", *path):
        text = step if not text else f"{text}*{step}"
        answers.append(
            client.post(
                AT_URL,
                data={
                    "sessionId": "attacker-1",
                    "serviceCode": "*384*123#",
                    "phoneNumber": number,
                    "networkCode": "61001",
                    "text": text if step else "",
                },
                headers=headers,
            )
        )
    return answers


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Deme-Token": "guess"}, {"X-Deme-Token": USSD_TEST_TOKEN[:-1]}],
    ids=["no-token", "wrong-token", "almost-token"],
)
def test_a_stranger_cannot_read_or_erase_someones_case(
    client: Any, at_channel: int, places_seeded: None, headers: dict[str, str]
) -> None:
    number, reference = _victim_with_a_protection_request(client)
    client.headers.pop("X-Deme-Token")
    for answer in _attacker_walk(client, number, headers, "3", "4"):  # English, my requests
        assert answer.status_code == 403
        assert reference not in answer.text and "CON" not in answer.text
    for answer in _attacker_walk(client, number, headers, "3", "5", "3", "1"):  # erase, yes
        assert answer.status_code == 403
    with session_scope() as session:
        assert session.query(Contact).filter(Contact.erased_at.isnot(None)).count() == 0


def test_a_channel_without_secret_or_allow_list_is_refused_never_open(
    client: Any, places_seeded: None
) -> None:
    _channel(
        name="at-open",
        type=ChannelType.AFRICASTALKING,
        config={"ussd_service_code": "*384*123#"},
    )
    answer = client.post(
        AT_URL,
        data={
            "sessionId": "s",
            "serviceCode": "*384*123#",
            "phoneNumber": "+22376000001",
            "text": "",
        },
    )
    assert answer.status_code == 403
    assert "no caller authentication configured" in answer.text


def test_an_allow_listed_aggregator_is_let_in_and_others_are_not(
    database: str, places_seeded: None
) -> None:
    from deme.app import create_app

    _channel(
        name="at-allow",
        type=ChannelType.AFRICASTALKING,
        config={"ussd_service_code": "*384*123#", "ussd_allow_ips": ["196.201.214.0/24"]},
    )
    form = {"sessionId": "s", "serviceCode": "*384*123#", "phoneNumber": "+22376000002", "text": ""}
    app = create_app()
    with TestClient(app, base_url="https://deme.test", client=("196.201.214.7", 4000)) as inside:
        assert check_response(inside.post(AT_URL, data=form)).startswith("CON Langue")
    with TestClient(app, base_url="https://deme.test", client=("203.0.113.9", 4000)) as outside:
        refused = outside.post(AT_URL, data=form)
        assert refused.status_code == 403 and "not allowed" in refused.text


def test_an_allow_list_and_a_secret_must_both_pass(database: str, places_seeded: None) -> None:
    from deme.app import create_app

    _channel(
        name="at-both",
        type=ChannelType.AFRICASTALKING,
        credentials={"ussd_secret": "both-token"},
        config={"ussd_service_code": "*384*123#", "ussd_allow_ips": "196.201.214.0/24"},
    )
    form = {"sessionId": "s", "serviceCode": "*384*123#", "phoneNumber": "+22376000003", "text": ""}
    with TestClient(create_app(), base_url="https://deme.test", client=("196.201.214.7", 1)) as c:
        assert c.post(AT_URL, data=form).status_code == 403  # right address, no token
        ok = c.post(AT_URL, data=form, headers={"X-Deme-Token": "both-token"})
        assert check_response(ok).startswith("CON Langue")


@pytest.mark.parametrize("channel_type", [ChannelType.TWILIO, ChannelType.AFRICASTALKING])
def test_the_generic_endpoint_answers_only_for_generic_ussd_channels(
    client: Any, channel_type: ChannelType
) -> None:
    channel_id = _channel(
        name=f"not-generic-{channel_type.value}",
        type=channel_type,
        credentials={"ussd_secret": "tok"},
        config={"ussd_service_code": "*1#"},
    )
    form = {"session_id": "s", "msisdn": "22376000004", "ussd_string": ""}
    answer = client.post(
        f"/webhooks/http/{channel_id}/ussd", data=form, headers={"X-Deme-Token": "tok"}
    )
    assert answer.status_code == 404


def test_an_sms_only_aggregator_channel_is_no_ussd_endpoint(client: Any) -> None:
    channel_id = _channel(
        name="sms-aggregator", type=ChannelType.HTTP, credentials={"secret": "sms"}, config={}
    )
    form = {"session_id": "s", "msisdn": "22376000005", "ussd_string": ""}
    answer = client.post(
        f"/webhooks/http/{channel_id}/ussd", data=form, headers={"X-Deme-Token": "sms"}
    )
    assert answer.status_code == 404


def test_unauthenticated_ussd_channels_are_named(db: Any) -> None:
    from gateway.channels.auth import unauthenticated_ussd_channels

    db.add_all(
        [
            Channel(name="at-open", type=ChannelType.AFRICASTALKING, config={"ussd_code": "*1#"}),
            Channel(
                name="agg-bad-list",
                type=ChannelType.HTTP,
                config={"ussd_fields": {}, "ussd_allow_ips": ["not-an-ip"]},
            ),
            Channel(
                name="at-ok",
                type=ChannelType.AFRICASTALKING,
                credentials={"ussd_secret": "x"},
                config={"ussd_code": "*2#"},
            ),
            Channel(name="at-sms-only", type=ChannelType.AFRICASTALKING, config={}),
            Channel(name="twilio", type=ChannelType.TWILIO, config={}),
        ]
    )
    db.commit()
    assert unauthenticated_ussd_channels(db) == ["at-open", "agg-bad-list"]
