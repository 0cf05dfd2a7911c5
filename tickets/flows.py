"""Flow monitoring: groups of people counted by enumerators at entry and transit points.

One function records a flow from whatever form it came in (console form, API), after checking
every field, so each surface refuses the same inputs with the same words. Services flush; the
request commits.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.sanitize import is_bad_text
from core.textfold import fold
from models.base import utcnow
from models.contacts import Contact
from models.enums import MovementChannel, MovementReason, MovementSource, MovementStatus
from models.movements import EnumeratorPhone, Movement
from models.places import Place
from models.users import User

# A group counted at a point in one record; a bus convoy is hundreds, not hundreds of thousands.
MAX_PEOPLE = 100_000
# Enumerators enter paper sheets late, but not years late; and never for tomorrow (one day of
# slack for a device whose clock is ahead, or a point east of UTC after midnight).
MAX_AGE_DAYS = 730
POINT_NAME_MAX = 120
MAX_PLACE_WORDS = 12


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


def record_flow(
    session: Session,
    flow: FlowInput,
    *,
    recorded_by_user_id: int | None,
    channel: MovementChannel | None = None,
    enumerator_contact_id: int | None = None,
) -> Movement:
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
        channel=channel,
        enumerator_contact_id=enumerator_contact_id,
    )
    session.add(movement)
    session.flush()
    return movement


# --- flow-monitoring points -------------------------------------------------------------------

FLOW_POINTS_FILE = Path(__file__).resolve().parent / "data" / "flow_points.json"


@dataclass(frozen=True)
class FlowPoint:
    """A configured entry or transit point: its short code, name and the place it is in."""

    code: str
    name: str
    place_code: str
    aliases: tuple[str, ...] = ()


@lru_cache(maxsize=1)
def flow_points() -> tuple[FlowPoint, ...]:
    raw = json.loads(FLOW_POINTS_FILE.read_text(encoding="utf-8"))
    return tuple(
        FlowPoint(p["code"], p["name"], p["place"], tuple(p.get("aliases", ())))
        for p in raw["points"]
    )


def _key(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", fold(text)))


@lru_cache(maxsize=1)
def _points_by_key() -> dict[str, FlowPoint]:
    table: dict[str, FlowPoint] = {}
    for point in flow_points():
        for text in (point.code, point.name, *point.aliases):
            table.setdefault(_key(text), point)
            table.setdefault(_key(text).replace(" ", ""), point)
    return table


def find_flow_point(text: str) -> FlowPoint | None:
    key = _key(text)
    return _points_by_key().get(key) or _points_by_key().get(key.replace(" ", ""))


# --- enumerators' phones ----------------------------------------------------------------------


def enumerator_for(session: Session, contact: Contact | None) -> User | None:
    """The active console user whose registered enumerator phone ``contact`` is, or None."""
    if contact is None or contact.erased_at is not None:
        return None
    return session.scalar(
        select(User)
        .join(EnumeratorPhone, EnumeratorPhone.user_id == User.id)
        .where(EnumeratorPhone.contact_id == contact.id, User.active.is_(True))
    )


def register_enumerator_phone(session: Session, user: User, contact: Contact) -> bool:
    """Let ``contact``'s phone send FLOW SMS as ``user``; False when it already could. The
    caller checks that ``user`` may record flows, and audits."""
    link = session.get(EnumeratorPhone, contact.id)
    if link is not None and link.user_id == user.id:
        return False
    if link is None:
        session.add(EnumeratorPhone(contact_id=contact.id, user_id=user.id))
    else:
        link.user_id = user.id
    session.flush()
    return True


def remove_enumerator_phone(session: Session, contact: Contact) -> bool:
    link = session.get(EnumeratorPhone, contact.id)
    if link is None:
        return False
    session.delete(link)
    session.flush()
    return True


# --- the FLOW SMS -----------------------------------------------------------------------------

# The first word of a flow-monitoring SMS, and the language it suggests for the answer.
FLOW_KEYWORDS = {"flow": "en", "flux": "fr", "dtm": "fr"}

_REASON_WORDS: dict[str, MovementReason] = {}
for _reason, _words in {
    MovementReason.CONFLICT: "conflict conflit conflits guerre insecurite insecurity violence "
    "attaque attack kele",
    MovementReason.DISASTER: "disaster catastrophe inondation inondations flood floods "
    "secheresse drought",
    MovementReason.ECONOMIC: "economic economique eco travail work job commerce trade baara",
    MovementReason.FAMILY: "family famille familial familiale denbaya",
    MovementReason.SERVICES: "services service sante health ecole school aide aid",
    MovementReason.SEASONAL: "seasonal saisonnier saisonniere saison season transhumance",
    MovementReason.OTHER: "other autre autres were",
}.items():
    for _word in _words.split():
        _REASON_WORDS[_word] = _reason
    _REASON_WORDS[_reason.value] = _reason

_STATUS_WORDS: dict[str, MovementStatus] = {}
for _status, _words in {
    MovementStatus.DISPLACED: "displaced deplace deplaces deplacee deplacees dep d idp idps bolila",
    MovementStatus.RETURNING: "returning return returnee returnees retour retournes retourne "
    "rapatrie rapatries r segin seginna",
    MovementStatus.IN_TRANSIT: "transit in_transit intransit passage passant passants t tracement",
}.items():
    for _word in _words.split():
        _STATUS_WORDS[_word] = _status
    _STATUS_WORDS[_status.value.replace("_", "")] = _status

# Words that say "origin unknown" in a field of its own.
_UNKNOWN_WORDS = frozenset({"-", "?", "x", "inconnu", "inconnue", "unknown", "nd", "na"})
_SEPARATORS = re.compile(r"[/;,*#|\n]+")
_DATE_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_DATE_DAY = re.compile(r"^(\d{1,2})[.\-](\d{1,2})(?:[.\-](\d{2,4}))?$")
_DATE_WORDS = {"hier": 1, "yesterday": 1, "kunu": 1, "aujourdhui": 0, "today": 0, "bi": 0}


@dataclass
class FlowSms:
    """What a FLOW SMS said: the flow to record, or its problems (field → the text it was
    given, "" when missing), and the names as understood, for the confirmation."""

    flow: FlowInput | None
    problems: dict[str, str] = dataclass_field(default_factory=dict)
    point_label: str = ""
    origin_label: str = ""
    destination_label: str = ""


def flow_keyword(text: str | None) -> str | None:
    """The FLOW keyword a message starts with ("FLOW", "Flux:", "dtm") or None."""
    if not text:
        return None
    words = fold(text[:20]).replace(":", " ").split()
    return words[0] if words and words[0] in FLOW_KEYWORDS else None


def _date_of(word: str, today: date) -> date | None:
    if word in _DATE_WORDS:
        return today - timedelta(days=_DATE_WORDS[word])
    try:
        if m := _DATE_ISO.match(word):
            return date(int(m[1]), int(m[2]), int(m[3]))
        if m := _DATE_DAY.match(word):
            year = int(m[3]) if m[3] else today.year
            year = year + 2000 if year < 100 else year
            found = date(year, int(m[2]), int(m[1]))
            # "28.12" sent on 2 January is last year's
            return (
                found
                if m[3] or found <= today + timedelta(days=1)
                else found.replace(year=year - 1)
            )
    except ValueError:
        return None
    return None


class _Places:
    """Place look-ups for one SMS: the gazetteer, then the database's codes."""

    def __init__(self, session: Session) -> None:
        from tickets.gazetteer import Gazetteer

        self.session = session
        self.gazetteer = Gazetteer.default()

    def place(self, text: str) -> tuple[str, str, float] | None:
        """(code, name, confidence) of a place named in ``text``, if in the database."""
        if not text.strip():
            return None
        match = self.gazetteer.resolve(text)
        if match is None or _place_id(self.session, match.place.code) is None:
            return None
        return match.place.code, match.place.name, float(match.confidence)

    def point(self, text: str) -> tuple[str, str, float] | None:
        """(place code, point name, confidence): a configured point, else a place."""
        configured = find_flow_point(text)
        if configured is not None and _place_id(self.session, configured.place_code):
            return configured.place_code, configured.name, 1.0
        return self.place(text)


def _split_places(
    places: _Places, groups: list[str]
) -> tuple[dict[str, tuple[str, str, float] | None], dict[str, str]]:
    """Resolve point, origin, destination from their texts (origin may say "unknown")."""
    found: dict[str, tuple[str, str, float] | None] = {}
    problems: dict[str, str] = {}
    for name, text in zip(("point", "origin", "destination"), groups, strict=True):
        if name == "origin" and fold(text) in _UNKNOWN_WORDS:
            found[name] = None
            continue
        found[name] = places.point(text) if name == "point" else places.place(text)
        if found[name] is None:
            problems[name] = text
    return found, problems


def _best_split(places: _Places, words: list[str]) -> tuple[list[str], bool]:
    """Three consecutive groups of ``words`` naming point, origin and destination: the split
    where every group is understood, most confident first; else the one-word-each split."""
    best: tuple[float, list[str]] | None = None
    n = len(words)
    for i in range(1, n - 1):
        for j in range(i + 1, n):
            groups = [" ".join(words[:i]), " ".join(words[i:j]), " ".join(words[j:])]
            found, problems = _split_places(places, groups)
            if problems:
                continue
            score = sum(item[2] for item in found.values() if item is not None)
            if best is None or score > best[0]:
                best = (score, groups)
    if best is not None:
        return best[1], True
    if n >= 3:
        return [words[0], " ".join(words[1:-1]), words[-1]], False
    return words, False


def parse_flow_sms(session: Session, text: str) -> FlowSms:
    """Read "FLOW <point> <origin> <destination> <n> <reason> <type> [date]".

    Forgiving: any case and accents; fields separated by spaces or by ``/ ; , * #``;
    reason, type and date anywhere after the number, in French, English or Bambara
    ("conflit", "conflict", "kele"; "deplaces", "D", "retour", "transit"); multi-word place
    names ("Commune 6", "gare Sevare") found by trying every split against the gazetteer and
    the configured points; origin "-" or "inconnu" when not known; date "hier", "28.11" or
    "2026-11-28", today when left out."""
    today = utcnow().date()
    body = text.strip()
    keyword = flow_keyword(body)
    if keyword is not None:
        body = re.sub(r"^\s*\S+?(:|\s|$)", "", body, count=1)
    separated = bool(_SEPARATORS.search(body))
    fields = [f.strip() for f in (_SEPARATORS.split(body) if separated else body.split())]
    fields = [f for f in fields if f]
    # The count: the last field that is a whole number (place names may hold digits:
    # "Commune 6"); what follows it are reason, type and date, in any order.
    count_at = max((i for i, f in enumerate(fields) if f.replace(" ", "").isdigit()), default=-1)
    problems: dict[str, str] = {}
    if count_at < 0:
        problems["people"] = ""
        # Nothing anchors the places: read them up to the first reason or type word.
        count_at = next(
            (
                i
                for i, f in enumerate(fields)
                if fold(f) in _REASON_WORDS or fold(f) in _STATUS_WORDS
            ),
            len(fields),
        )
        people = None
        rest = fields[count_at:]
    else:
        digits = fields[count_at].replace(" ", "")
        people = int(digits) if len(digits) < 8 else None
        if people is None or not 1 <= people <= MAX_PEOPLE:
            problems["people"] = fields[count_at]
        rest = fields[count_at + 1 :]
    reason: MovementReason | None = None
    status: MovementStatus | None = None
    observed_on: date | None = None
    unread: list[str] = []
    for item in rest:
        word = fold(item).replace("'", "").replace(" ", "")
        if reason is None and word in _REASON_WORDS:
            reason = _REASON_WORDS[word]
        elif status is None and word in _STATUS_WORDS:
            status = _STATUS_WORDS[word]
        elif observed_on is None and (day := _date_of(word, today)) is not None:
            observed_on = day
        else:
            unread.append(item)
    if reason is None:
        problems["reason"] = " ".join(unread)
    if status is None:
        problems["status"] = " ".join(unread) if reason is not None else ""
    if observed_on is None:
        observed_on = today
    elif observed_on > today + timedelta(days=1) or observed_on < today - timedelta(
        days=MAX_AGE_DAYS
    ):
        problems["date"] = observed_on.isoformat()
    places = _Places(session)
    place_fields = fields[:count_at]
    if separated:
        groups = place_fields
        if len(groups) == 2:  # "point / destination": origin not given
            groups = [groups[0], "-", groups[1]]
    else:
        words = " ".join(place_fields).split()
        # Three place names are a dozen words at most: past that it is no count (and the
        # splits to try grow with the square of the words).
        if 3 <= len(words) <= MAX_PLACE_WORDS:
            groups, _ = _best_split(places, words)
        else:
            groups = words
    if len(groups) != 3:
        problems["places"] = " ".join(place_fields)
        return FlowSms(None, problems)
    found, place_problems = _split_places(places, groups)
    problems.update(place_problems)
    point, origin, destination = found["point"], found["origin"], found["destination"]
    if origin is not None and destination is not None and origin[0] == destination[0]:
        problems["same_place"] = groups[2]
    if problems:
        return FlowSms(None, problems)
    assert point is not None and destination is not None
    return FlowSms(
        FlowInput(
            observed_on=observed_on,
            point_code=point[0],
            point_name=point[1],
            origin_code=origin[0] if origin else None,
            destination_code=destination[0],
            people=people,
            reason=reason,
            status=status,
        ),
        point_label=point[1],
        origin_label=origin[1] if origin else "?",
        destination_label=destination[1],
    )


def is_flow_count(session: Session, text: str | None) -> bool:
    """Whether ``text`` is a well-formed FLOW SMS (whoever sent it)."""
    return (
        bool(text)
        and flow_keyword(text) is not None
        and (parse_flow_sms(session, text or "").flow is not None)
    )
