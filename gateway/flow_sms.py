"""Flow monitoring by SMS: an enumerator at an entry or transit point texts a count.

``FLOW <point> <origin> <destination> <n> <reason> <type> [date]`` (also ``FLUX`` or ``DTM``;
see ``tickets.flows.parse_flow_sms`` for what it forgives). Only a phone registered as an
enumerator's (``enumerator_phones``) is heard; any other gets a refusal and nothing is
recorded. The answer is in the enumerator's language: what was recorded, or every problem at
once and the format. Nothing of the message goes to the bot, a ticket or a log line.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from gateway.gsm7 import to_gsm7
from gateway.i18n import translate
from gateway.outbound import BodyTooLong, queue_sms
from models.channels import Channel
from models.contacts import Contact
from models.enums import MessageStatus, MovementChannel
from models.messages import Message
from tickets.flows import (
    FLOW_KEYWORDS,
    FlowError,
    enumerator_for,
    parse_flow_sms,
    record_flow,
)

# The domain's field names, as the catalogs name the problems.
_PROBLEM_KEYS = {
    "people": "flow.problem.people",
    "reason": "flow.problem.reason",
    "status": "flow.problem.status",
    "date": "flow.problem.date",
    "places": "flow.problem.places",
    "point": "flow.problem.point",
    "point_place": "flow.problem.point",
    "point_name": "flow.problem.point",
    "origin": "flow.problem.origin",
    "destination": "flow.problem.destination",
    "same_place": "flow.problem.same_place",
}
_ORDER = list(dict.fromkeys(_PROBLEM_KEYS.values()))


def _problems_text(problems: dict[str, str], language: str, *, echo: bool = True) -> str:
    """Every problem in words, each with what was typed (GSM-7, 30 characters at most)."""
    said: dict[str, str] = {}
    for field, given in problems.items():
        key = _PROBLEM_KEYS.get(field, "flow.problem.places")
        text = translate(key, language)
        given = to_gsm7(given).strip()[:30] if echo else ""
        said.setdefault(key, f"{text} ({given})" if given else text)
    ordered = sorted(said, key=lambda k: _ORDER.index(k) if k in _ORDER else len(_ORDER))
    return "; ".join(said[k] for k in ordered)


def handle_flow_sms(session: Session, message: Message, contact: Contact, keyword: str) -> str:
    """Record (or refuse) one FLOW SMS and queue the answer; flushes, the caller commits.
    Returns what happened, for logs and tests."""
    message.status = MessageStatus.HANDLED
    enumerator = enumerator_for(session, contact)
    language = (
        (enumerator.language.value if enumerator is not None else None)
        or (contact.language.value if contact.language else None)
        or FLOW_KEYWORDS.get(keyword, "fr")
    )
    channel = session.get(Channel, message.channel_id)

    def answer(body: str, shorter: str | None = None) -> None:
        try:
            queue_sms(session, contact=contact, body=body, channel=channel, kind="flow_reply")
        except BodyTooLong:
            if shorter is None:
                raise
            queue_sms(session, contact=contact, body=shorter, channel=channel, kind="flow_reply")

    if enumerator is None:
        answer(translate("flow.not_enumerator", language))
        return "flow-refused"
    parsed = parse_flow_sms(session, message.body or "")
    problems = parsed.problems
    movement = None
    if parsed.flow is not None:
        try:
            movement = record_flow(
                session,
                parsed.flow,
                recorded_by_user_id=enumerator.id,
                channel=MovementChannel.SMS,
                enumerator_contact_id=contact.id,
            )
        except FlowError as exc:
            problems = {
                "same_place" if text.startswith("is the same") else field: ""
                for field, text in exc.problems.items()
            }
    if movement is None:
        answer(
            translate("flow.invalid", language, problems=_problems_text(problems, language)),
            # Over the channel's segment limit: the problems without the echoed words.
            shorter=translate(
                "flow.invalid", language, problems=_problems_text(problems, language, echo=False)
            ),
        )
        return "flow-invalid"
    answer(
        translate(
            "flow.recorded",
            language,
            id=movement.id,
            people=movement.people,
            origin=parsed.origin_label,
            destination=parsed.destination_label,
            point=parsed.point_label,
            date=movement.observed_on.strftime("%d/%m/%Y"),
        )
    )
    return "flow-recorded"
