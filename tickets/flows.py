"""Flow monitoring: groups of people counted by enumerators at entry and transit points.

One function records a flow from whatever form it came in (console form, API), after checking
every field, so each surface refuses the same inputs with the same words. Services flush; the
request commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.sanitize import is_bad_text
from models.base import utcnow
from models.enums import MovementReason, MovementSource, MovementStatus
from models.movements import Movement
from models.places import Place

# A group counted at a point in one record; a bus convoy is hundreds, not hundreds of thousands.
MAX_PEOPLE = 100_000
# Enumerators enter paper sheets late, but not years late; and never for tomorrow (one day of
# slack for a device whose clock is ahead, or a point east of UTC after midnight).
MAX_AGE_DAYS = 730
POINT_NAME_MAX = 120


@dataclass(frozen=True)
class FlowInput:
    """A flow as given: place codes already resolved by the caller (None: not given)."""

    observed_on: date | None
    point_code: str | None
    point_name: str | None
    origin_code: str | None
    destination_code: str | None
    people: int | None
    reason: MovementReason | None
    status: MovementStatus | None


class FlowError(ValueError):
    """The flow's problems, field → message (every one of them, for one clear answer)."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {text}" for field, text in problems.items()))
        self.problems = problems


def _place_id(session: Session, code: str) -> int | None:
    return session.scalar(select(Place.id).where(Place.code == code))


def record_flow(session: Session, flow: FlowInput, *, recorded_by_user_id: int | None) -> Movement:
    """Check every field of ``flow`` and record it; FlowError lists what is wrong."""
    problems: dict[str, str] = {}
    today = utcnow().date()
    if flow.observed_on is None:
        problems["date"] = "required"
    elif flow.observed_on > today + timedelta(days=1):
        problems["date"] = "is in the future"
    elif flow.observed_on < today - timedelta(days=MAX_AGE_DAYS):
        problems["date"] = f"is more than {MAX_AGE_DAYS} days ago"
    ids: dict[str, int | None] = {}
    for field, code, required in (
        ("point_place", flow.point_code, True),
        ("origin", flow.origin_code, False),
        ("destination", flow.destination_code, True),
    ):
        if not code:
            if required:
                problems[field] = "required"
            ids[field] = None
            continue
        ids[field] = _place_id(session, code)
        if ids[field] is None:
            problems[field] = f"unknown place code {code!r}"
    name = (flow.point_name or "").strip()
    if not name:
        problems["point_name"] = "required (the name of the entry or transit point)"
    elif len(name) > POINT_NAME_MAX or is_bad_text(name):
        problems["point_name"] = f"at most {POINT_NAME_MAX} ordinary characters"
    if flow.people is None:
        problems["people"] = "required"
    elif not 1 <= flow.people <= MAX_PEOPLE:
        problems["people"] = f"must be between 1 and {MAX_PEOPLE:,}".replace(",", " ")
    if flow.status is None:
        problems["status"] = "required: " + ", ".join(s.value for s in MovementStatus)
    if flow.reason is None:
        problems["reason"] = "required: " + ", ".join(r.value for r in MovementReason)
    if ids.get("origin") is not None and ids.get("origin") == ids.get("destination"):
        problems["destination"] = "is the same place as the origin"
    if problems:
        raise FlowError(problems)
    assert flow.observed_on and flow.people and flow.status and ids["destination"]
    movement = Movement(
        source=MovementSource.FLOW_MONITORING,
        observed_on=flow.observed_on,
        point_place_id=ids["point_place"],
        point_name=name,
        origin_place_id=ids["origin"],
        destination_place_id=ids["destination"],
        people=flow.people,
        reason=flow.reason,
        status=flow.status,
        recorded_by_user_id=recorded_by_user_id,
    )
    session.add(movement)
    session.flush()
    return movement
