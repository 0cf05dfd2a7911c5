"""The household registry: which household a phone belongs to, further phones, moves the
household reports itself ("we moved to …"), and merging duplicates.

A household is reached through its registering contact (``Household.contact_id``) or any of
its further phones (``household_contacts``, links to contacts: numbers stay encrypted in
``contacts``). A merged duplicate keeps its row (the audit trail names it) but points to the
household kept (``merged_into_id``) and is left out of every list and count. Services flush;
the request or task commits.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from models.audit import record_audit
from models.base import utcnow
from models.contacts import Contact, Household, HouseholdContact
from models.enums import HouseholdStatus, MovementSource, MovementStatus
from models.movements import Movement

# A merge chain longer than this is a data error: stop rather than loop.
_MAX_MERGE_HOPS = 20


class RegistryError(ValueError):
    """A registry change that cannot be made; ``field`` names the input at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.detail = message


def active_households_clause() -> ColumnElement[bool]:
    """Households not merged into another: the ones lists and counts show."""
    return Household.merged_into_id.is_(None)


def households_of_contacts_clause(contact_ids: list[int]) -> ColumnElement[bool]:
    """Households reached by any of ``contact_ids``: registered by it, or one of its phones."""
    linked = select(HouseholdContact.household_id).where(
        HouseholdContact.contact_id.in_(contact_ids)
    )
    return or_(Household.contact_id.in_(contact_ids), Household.id.in_(linked))


def kept_household(session: Session, household: Household) -> Household:
    """``household`` itself, or the household it was (transitively) merged into."""
    current = household
    for _hop in range(_MAX_MERGE_HOPS):
        if current.merged_into_id is None:
            return current
        following = session.get(Household, current.merged_into_id)
        if following is None:
            return current
        current = following
    return current


def household_of_contact(session: Session, contact_id: int) -> Household | None:
    """The contact's household (the most recently updated if several), merges followed."""
    found = session.scalar(
        select(Household)
        .where(households_of_contacts_clause([contact_id]))
        .order_by(Household.merged_into_id.is_not(None), Household.updated_at.desc())
        .order_by(Household.id.desc())
        .limit(1)
    )
    return None if found is None else kept_household(session, found)


def add_phone(session: Session, household: Household, contact: Contact) -> bool:
    """Link a further phone (its contact) to ``household``; False if it already reaches it."""
    if household.contact_id == contact.id:
        return False
    exists = session.scalar(
        select(HouseholdContact.contact_id).where(
            HouseholdContact.household_id == household.id,
            HouseholdContact.contact_id == contact.id,
        )
    )
    if exists is not None:
        return False
    session.add(HouseholdContact(household_id=household.id, contact_id=contact.id))
    household.updated_at = utcnow()
    session.flush()
    return True


def phone_contact_ids(session: Session, household: Household) -> list[int]:
    """Every contact reaching ``household``: the registering one first, then further phones."""
    further = list(
        session.scalars(
            select(HouseholdContact.contact_id)
            .where(HouseholdContact.household_id == household.id)
            .order_by(HouseholdContact.created_at, HouseholdContact.contact_id)
        )
    )
    first = [household.contact_id] if household.contact_id is not None else []
    return first + [c for c in further if c != household.contact_id]


def movement_status_for(status: HouseholdStatus | None) -> MovementStatus:
    """A household's own move counts as a return when it says it is going home, else as a
    displacement (repatriates and others are still away from where they lived)."""
    return (
        MovementStatus.RETURNING if status == HouseholdStatus.RETURNEE else MovementStatus.DISPLACED
    )


def record_household_move(
    session: Session,
    household: Household,
    *,
    destination_id: int,
    moved_on: date,
    status: HouseholdStatus | None = None,
    size: int | None = None,
    is_test: bool = False,
    recorded_by_user_id: int | None = None,
) -> Movement:
    """The household says it moved: its current place becomes ``destination_id`` and the move
    is recorded as a movement from where it was (so it is counted in the flows and arrivals)."""
    if status is not None:
        household.status = status
    if size is not None:
        household.size = size
    origin_id = household.current_place_id
    household.current_place_id = destination_id
    household.updated_at = utcnow()
    movement = Movement(
        source=MovementSource.HOUSEHOLD,
        observed_on=moved_on,
        origin_place_id=origin_id,
        destination_place_id=destination_id,
        people=household.size or 1,
        status=movement_status_for(household.status),
        household_id=household.id,
        recorded_by_user_id=recorded_by_user_id,
        is_test=is_test,
    )
    session.add(movement)
    session.flush()
    return movement


def merge_households(
    session: Session,
    *,
    duplicate: Household,
    kept: Household,
    actor_label: str,
    actor_user_id: int | None,
) -> Household:
    """Merge ``duplicate`` into ``kept``: its phones and movements go to ``kept``, what ``kept``
    lacks (origin, date of displacement, status, size, place) is taken from it, and it stays
    as a row pointing to ``kept``. One audit line (``household.merged``)."""
    if duplicate.id == kept.id:
        raise RegistryError("into", "a household cannot be merged into itself")
    if duplicate.merged_into_id is not None:
        raise RegistryError("household", f"household {duplicate.id} is already merged")
    if kept.merged_into_id is not None:
        raise RegistryError("into", f"household {kept.id} is itself merged into another")
    for contact_id in phone_contact_ids(session, duplicate):
        contact = session.get(Contact, contact_id)
        if contact is not None:
            add_phone(session, kept, contact)
    # The duplicate's own links stay (the trail); lookups follow merged_into_id to ``kept``.
    moved = session.execute(
        update(Movement)
        .where(Movement.household_id == duplicate.id)
        .values(household_id=kept.id)
        .execution_options(synchronize_session=False)
    )
    filled = []
    for attribute in ("origin_place_id", "displaced_since", "status", "size", "current_place_id"):
        if getattr(kept, attribute) is None and getattr(duplicate, attribute) is not None:
            setattr(kept, attribute, getattr(duplicate, attribute))
            filled.append(attribute)
    duplicate.merged_into_id = kept.id
    kept.updated_at = utcnow()
    record_audit(
        session,
        action="household.merged",
        actor_label=actor_label,
        actor_user_id=actor_user_id,
        object_type="household",
        object_id=duplicate.id,
        into=kept.id,
        movements_moved=int(getattr(moved, "rowcount", 0) or 0),
        fields_filled=filled,
    )
    session.flush()
    return kept
