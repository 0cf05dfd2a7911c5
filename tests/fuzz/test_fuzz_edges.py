"""Issue 11: property-based fuzz of every edge; any 5xx fails. Bounded and deterministic
(``derandomize=True``, fixed ``max_examples``, ``deadline=None``): about a minute in all.

- the OpenAPI routes (schemathesis, from the app's own /api/openapi.json), as an admin
  token and with no token;
- the webhooks: Twilio (a valid signature computed here), Africa's Talking, the generic
  aggregator, with NUL, lone surrogates, huge and Unicode digits, control characters;
- the console's form posts, logged in with a valid CSRF token.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.console.conftest import World, login, new_ticket
from tests.fuzz.tally import record
from tests.gateway.conftest import AT_SECRET, HTTP_SECRET
from tests.gateway.gateway_helpers import signed, twilio_sms_form

FUZZ = settings(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)

# What broke main: NUL, lone surrogates, 2**31 and beyond, Unicode digits, control characters.
NASTY = st.sampled_from(
    [
        "\x00",
        "a\x00b",
        "\ud800",
        "x\udfff",
        str(2**31),
        str(2**63),
        "9" * 40,
        "¹",
        "٣",
        "１",
        "\x01\x1b",
        "\t=1+1",
        "-1",
        "0",
        "",
        " ",
        "+22376123456",
        "=HYPERLINK(1)",
        "\r\n",
    ]
)
TEXT = st.one_of(NASTY, st.text(max_size=30), st.text(alphabet=st.characters(), max_size=8))


def _app() -> Any:
    from deme.app import create_app

    return create_app()


# The app's own OpenAPI document; the database is the test session's (migrated by the
# ``world`` fixture's ``database`` before any request is made).
schema = schemathesis.openapi.from_asgi("/api/openapi.json", _app())


@schema.parametrize()
@settings(FUZZ, max_examples=3)
def test_openapi_routes_never_answer_5xx(case: Any, world: World) -> None:
    for headers in (world["admin"].headers, {}):
        response = case.call(headers=headers)
        record(response.status_code)
        assert response.status_code < 500, case.as_curl_command()


def _post(client: Any, path: str, body: bytes, headers: dict[str, str]) -> int:
    status = int(client.post(path, content=body, headers=headers).status_code)
    record(status)
    return status


FORM = st.dictionaries(
    st.sampled_from(
        [
            "Body",
            "MessageSid",
            "NumSegments",
            "From",
            "To",
            "MessageStatus",
            "ErrorCode",
            "CallSid",
            "x",
        ]
    ),
    TEXT,
    max_size=6,
)


def test_webhooks_never_answer_5xx(
    client: Any, db: Any, twilio_channel: Any, at_channel: Any, http_channel: Any
) -> None:
    base = twilio_sms_form("+22376123456", "")
    http_id = str(http_channel.id)

    @given(
        path=st.sampled_from(
            ["/webhooks/twilio/sms", "/webhooks/twilio/status", "/webhooks/twilio/voice"]
        ),
        extra=FORM,
    )
    @settings(FUZZ, max_examples=40)
    def twilio(path: str, extra: dict[str, str]) -> None:
        form = {**base, **extra}
        # urlencode cannot carry a lone surrogate: the provider would not send one in a form.
        form = {k: v.encode("utf-8", "replace").decode() for k, v in form.items()}
        body, headers = signed(path, form)
        assert _post(client, path, body, headers) < 500

    @given(
        kind=st.sampled_from(["receive", "status", "ussd"]),
        channel=st.one_of(st.just(http_id), NASTY),
        doc=st.dictionaries(
            st.sampled_from(
                ["msisdn", "msg_id", "message", "state", "err", "sessionId", "phoneNumber", "text"]
            ),
            st.one_of(TEXT, st.integers(), st.none()),
            max_size=6,
        ),
        as_json=st.booleans(),
    )
    @settings(FUZZ, max_examples=40)
    def generic(kind: str, channel: str, doc: dict[str, Any], as_json: bool) -> None:
        segment = quote(channel.encode("utf-8", "surrogatepass"), safe="")
        path = f"/webhooks/http/{segment}/{kind}"
        headers = {"X-Deme-Secret": HTTP_SECRET}
        if as_json:
            body = json.dumps(doc).encode()
            headers["Content-Type"] = "application/json"
        else:
            body = urlencode({k: str(v).encode("utf-8", "replace") for k, v in doc.items()})
            body = body.encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        assert _post(client, path, body, headers) < 500

    @given(
        path=st.sampled_from(
            [
                "/webhooks/africastalking/sms",
                "/webhooks/africastalking/delivery",
                "/webhooks/africastalking/ussd",
            ]
        ),
        doc=st.dictionaries(
            st.sampled_from(
                [
                    "from",
                    "to",
                    "text",
                    "id",
                    "date",
                    "status",
                    "sessionId",
                    "serviceCode",
                    "phoneNumber",
                ]
            ),
            TEXT,
            max_size=6,
        ),
    )
    @settings(FUZZ, max_examples=40)
    def africastalking(path: str, doc: dict[str, str]) -> None:
        body = json.dumps(doc).encode()
        headers = {"Content-Type": "application/json", "X-Deme-Secret": AT_SECRET}
        assert _post(client, f"{path}?secret={AT_SECRET}", body, headers) < 500

    twilio()
    generic()
    africastalking()


CONSOLE_POSTS = [
    "/tickets/{ref}/work",
    "/tickets/{ref}/note",
    "/tickets/{ref}/reply",
    "/tickets/{ref}/merge",
    "/tickets/{ref}/incident",
    "/admin/users/{n}",
    "/admin/teams/{n}/members",
    "/admin/routing/{n}/toggle",
    "/admin/channels/{n}/toggle",
    "/calls/{n}/done",
    "/language",
]
CONSOLE_GETS = ["/queue", "/queue/live", "/exports/queue.csv", "/exports/queue.xlsx"]
FIELDS = [
    "note",
    "body",
    "status",
    "team",
    "assignee",
    "priority",
    "target",
    "incident",
    "role",
    "add",
    "remove",
    "language",
    "display_name",
    "first",
    "resolution",
    "q",
    "place",
    "phone",
    "sla",
    "from",
    "to",
    "cursor",
    "since",
    "category",
]


def test_console_forms_never_answer_5xx(browser_client: Any, world: World, db: Any) -> None:
    reference = new_ticket(db, description="=1+1 \x01").reference
    client = browser_client()
    csrf = login(client, "admin-user")

    @given(
        path=st.sampled_from(CONSOLE_POSTS),
        ident=st.one_of(st.just("1"), NASTY),
        form=st.dictionaries(st.sampled_from(FIELDS), TEXT, max_size=5),
    )
    @settings(FUZZ, max_examples=50)
    def posts(path: str, ident: str, form: dict[str, str]) -> None:
        segment = quote(ident.encode("utf-8", "surrogatepass"), safe="") or "1"
        url = path.format(ref=reference if ident == "1" else segment, n=segment)
        data = {k: v.encode("utf-8", "replace") for k, v in {**form, "csrf_token": csrf}.items()}
        body = urlencode(data).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        status = int(
            client.post(url, content=body, headers=headers, follow_redirects=False).status_code
        )
        record(status)
        assert status < 500, (url, form)

    @given(
        path=st.sampled_from(CONSOLE_GETS),
        params=st.dictionaries(st.sampled_from(FIELDS), TEXT, max_size=4),
    )
    @settings(FUZZ, max_examples=40)
    def gets(path: str, params: dict[str, str]) -> None:
        query = urlencode({k: v.encode("utf-8", "replace") for k, v in params.items()})
        status = int(client.get(f"{path}?{query}").status_code)
        record(status)
        assert status < 500, (path, params)

    posts()
    gets()
