"""The USSD webhooks as an aggregator sees them: fields, authentication, odd input, retries."""

from __future__ import annotations

from typing import Any

import pytest
from ussd.helpers import Phone, check_response, new_phone_number

from core.db import session_scope
from models.channels import Channel
from models.enums import ChannelType

AT_URL = "/webhooks/africastalking/ussd"


def at_form(**overrides: str) -> dict[str, str]:
    form = {
        "sessionId": "ATUid_1",
        "serviceCode": "*384*123#",
        "phoneNumber": new_phone_number(),
        "networkCode": "61001",
        "text": "",
    }
    form.update(overrides)
    return form


def make_channel(**fields: Any) -> int:
    with session_scope() as session:
        channel = Channel(**fields)
        session.add(channel)
        session.flush()
        return channel.id


def test_first_hop_of_a_new_caller_asks_for_the_language(client: Any, at_channel: int) -> None:
    screen = check_response(client.post(AT_URL, data=at_form()))
    assert screen == "CON Langue / Kan / Language\n1 Francais\n2 Bamanankan\n3 English"


@pytest.mark.parametrize(
    "missing", [["sessionId"], ["phoneNumber", "text"], ["serviceCode"], ["text"]]
)
def test_missing_fields_are_a_400_naming_them(
    client: Any, at_channel: int, missing: list[str]
) -> None:
    form = {k: v for k, v in at_form().items() if k not in missing}
    response = client.post(AT_URL, data=form)
    assert response.status_code == 400
    for name in missing:
        assert name in response.text


def test_empty_session_id_is_missing_but_network_code_is_optional(
    client: Any, at_channel: int
) -> None:
    response = client.post(AT_URL, data=at_form(sessionId="  "))
    assert response.status_code == 400 and "sessionId" in response.text
    form = at_form()
    del form["networkCode"]
    check_response(client.post(AT_URL, data=form))


def test_a_number_that_is_not_a_phone_number_gets_an_end_screen(
    client: Any, at_channel: int
) -> None:
    screen = check_response(client.post(AT_URL, data=at_form(phoneNumber="not-a-number")))
    assert screen.startswith("END ")
    # Without the "+" (some aggregators drop it) the number is still recognised.
    screen = check_response(client.post(AT_URL, data=at_form(phoneNumber="22376123456")))
    assert screen.startswith("CON ")


@pytest.mark.parametrize(
    "text",
    [
        "garbage",
        "1*2*3*4*5*6*7*8*9*0*00*1*2*3*4*5*6*7*8*9",
        "x" * 500,
        "*" * 50,
        "1**2",
        "\u0000\ufffd\u202e",
        "3*1*1",
        "00*00*0*0",
        "é😀ɛɔɲ",
    ],
)
def test_unknown_session_with_odd_text_always_gets_a_screen(
    client: Any, at_channel: int, text: str
) -> None:
    check_response(client.post(AT_URL, data=at_form(sessionId="never-seen", text=text)))


def test_dial_string_shortcut_runs_the_inputs_on_the_first_hop(
    client: Any, at_channel: int
) -> None:
    # *384*123*3*2# → text "3*2": language English, then "2" = help.
    screen = check_response(client.post(AT_URL, data=at_form(text="3*2")))
    assert screen.startswith("CON What help?")


def test_long_input_and_star_inside_typed_text(client: Any, at_channel: int) -> None:
    phone = Phone(client)
    phone.dial()
    phone.walk("1", "2", "1", "2")  # French, help, health, type a name
    assert phone.send("x" * 500).startswith("CON Lieu introuvable")
    # A "*" typed inside a name arrives as part of the path: it stays one input.
    screen = phone.send("Gourma*Rharous")
    assert screen.startswith("CON Gourma-Rharous (Tombouctou), c'est bien cela?")
    assert phone.send("1").startswith("CON Combien de personnes")
    assert phone.send("5*6").startswith("CON Nombre invalide")
    assert phone.send("5").startswith("CON Santé à Gourma-Rharous, 5 pers.")


def test_an_aggregator_retry_gets_the_same_screen(client: Any, at_channel: int) -> None:
    phone = Phone(client)
    phone.dial()
    first = phone.send("1")
    assert phone.retry() == first
    assert phone.send("2").startswith("CON Quelle aide?")


def test_secret_is_checked_when_the_channel_has_one(client: Any) -> None:
    make_channel(
        name="at-secret",
        type=ChannelType.AFRICASTALKING,
        credentials={"ussd_secret": "s3cret-token"},
        config={},
    )
    assert client.post(AT_URL, data=at_form()).status_code == 403
    assert client.post(AT_URL + "?token=wrong", data=at_form()).status_code == 403
    check_response(client.post(AT_URL + "?token=s3cret-token", data=at_form()))
    check_response(client.post(AT_URL, data=at_form(), headers={"X-Deme-Token": "s3cret-token"}))


def test_channel_is_chosen_by_service_code(client: Any) -> None:
    make_channel(
        name="other",
        type=ChannelType.AFRICASTALKING,
        credentials={"ussd_secret": "other-token"},
        config={"ussd_service_code": "*1#"},
    )
    make_channel(
        name="locked",
        type=ChannelType.AFRICASTALKING,
        credentials={"ussd_secret": "abc"},
        config={"ussd_service_code": "*384*123#"},
    )
    other = {"X-Deme-Token": "other-token"}
    assert client.post(AT_URL, data=at_form(), headers=other).status_code == 403
    check_response(client.post(AT_URL, data=at_form(serviceCode="*1#"), headers=other))


def test_a_hop_for_no_configured_channel_provisions_nothing(client: Any) -> None:
    screen = check_response(client.post(AT_URL, data=at_form()))
    assert screen.startswith("END ")
    with session_scope() as session:
        assert session.query(Channel).count() == 0


def generic_channel(**config: Any) -> int:
    return make_channel(
        name="orange-aggregator",
        type=ChannelType.HTTP,
        credentials={"ussd_secret": "agg-token"},
        config={
            "ussd_fields": {
                "session_id": "sid",
                "phone": "msisdn",
                "service_code": "code",
                "text": "input",
            },
            **config,
        },
    )


def test_generic_aggregator_with_mapped_fields(client: Any) -> None:
    channel_id = generic_channel()
    url = f"/webhooks/http/{channel_id}/ussd?token=agg-token"
    number = new_phone_number().lstrip("+")
    form = {"sid": "g1", "msisdn": number, "code": "*99#", "input": ""}
    assert check_response(client.post(url, data=form)).startswith("CON Langue")
    form["input"] = "3"
    assert check_response(client.post(url, data=form)).startswith("CON Deme - IOM")
    # JSON bodies work too.
    response = client.post(url, json={"sid": "g1", "msisdn": number, "input": "3*2"})
    assert check_response(response).startswith("CON What help?")
    bad = client.post(url, data={"sid": "g1", "input": "3"})
    assert bad.status_code == 400 and "msisdn" in bad.text
    assert client.post(url.replace("agg-token", "nope"), data=form).status_code == 403


def test_generic_aggregator_sending_only_the_last_input(client: Any) -> None:
    channel_id = generic_channel(ussd_text_mode="last")
    url = f"/webhooks/http/{channel_id}/ussd"
    headers = {"X-Deme-Token": "agg-token"}
    number = new_phone_number()

    def hop(text: str) -> str:
        form = {"sid": "g2", "msisdn": number, "input": text}
        return check_response(client.post(url, data=form, headers=headers))

    hop("")
    hop("1")
    hop("2")
    assert hop("2").startswith("CON Où vous trouvez-vous?")
    assert hop("2").startswith("CON Ecrivez le nom")
    assert hop("Mop*ti").startswith("CON Mopti, c'est bien cela?")


def test_unknown_generic_channel_is_a_404(client: Any) -> None:
    assert client.post("/webhooks/http/999/ussd", data={}).status_code == 404
    assert client.post(f"/webhooks/http/{2**40}/ussd", data={}).status_code == 404


def test_oversized_body_is_refused(client: Any, at_channel: int) -> None:
    response = client.post(AT_URL, data=at_form(text="1" * 20_000))
    assert response.status_code == 413


def test_redis_down_gives_an_end_screen(
    client: Any, at_channel: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.ussd.service import default_service
    from gateway.ussd.store import RedisStore

    monkeypatch.setattr(default_service(), "store", RedisStore("redis://127.0.0.1:1/0"))
    screen = check_response(client.post(AT_URL, data=at_form()))
    assert screen.startswith("END ")


def test_channel_seeded_with_ussd_code_is_found(client: Any) -> None:
    # ``deme seed`` stores DEME_AFRICASTALKING_USSD_CODE as config["ussd_code"].
    make_channel(
        name="plain", type=ChannelType.AFRICASTALKING, credentials={"ussd_secret": "plain-token"}
    )
    make_channel(
        name="africastalking",
        type=ChannelType.AFRICASTALKING,
        credentials={"ussd_secret": "seeded"},
        config={"ussd_code": "*2#"},
    )
    plain = {"X-Deme-Token": "plain-token"}
    assert client.post(AT_URL, data=at_form(serviceCode="*2#"), headers=plain).status_code == 403
    check_response(client.post(AT_URL, data=at_form(serviceCode="*9#"), headers=plain))


def test_service_handle_returns_the_screen_text(client: Any, at_channel: int) -> None:
    """The console's phone simulator calls the service directly and gets the screen."""
    import asyncio

    from gateway.ussd.service import Hop, default_service

    hop = Hop(
        channel_id=at_channel,
        session_id="sim-1",
        phone=new_phone_number(),
        service_code=None,
        text="3",
    )
    assert asyncio.run(default_service().handle(hop)).startswith("CON Deme - IOM")
