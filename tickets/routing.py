"""Routing: which team gets a ticket, and a stored, human-readable reason why.

A rule (``RoutingRule``) matches a ticket when each of its criteria is unset or satisfied:
category equal, ticket place equal to or inside the rule's place (a rule on a region covers its
cercles, communes and sites), ticket priority at least the rule's minimum.

Among matching rules the MOST SPECIFIC wins. Specificity is compared lexicographically:
1. depth of the rule's place in the place tree (site > commune > cercle > region > country >
   no place): geography first, because field teams are organised by area and a local team
   should beat a national one even when the national rule names a category;
2. whether the rule names a category (a category rule beats an any-category rule);
3. the rule's minimum priority (a "≥urgent" rule beats a "≥high" one, which beats no minimum);
4. ties: the lowest rule id (the older rule), so the decision never depends on query order.
No rule matching: the default team (``Team.is_default``, lowest id if several).

PSEA reports (``Ticket.kind == psea``) bypass the rules: they go to the PSEA focal-point team
(``Team.handles_psea``, lowest id), never to a sector, protection or default team — the
allegation may concern any of them. With no such team they wait unrouted (administrators see
a count and a warning), unless ``DEME_PSEA_SHARE_WITH_PROTECTION`` lets the rules route them
like other protection tickets.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from core.settings import get_settings
from models.base import utcnow
from models.config_cache import cached
from models.enums import TicketCategory, TicketKind, TicketPriority, TicketStatus
from models.places import Place
from models.routing import RoutingDecision, RoutingRule
from models.teams import Team, TeamMember
from models.tickets import Ticket
from models.users import User
from tickets.i18n import translate
from tickets.timeline import record_event

_PLACES_HELD = "deme_places_held"
_TEAMS_HELD = "deme_teams_held"

OPEN_STATUSES = (
    TicketStatus.NEW,
    TicketStatus.TRIAGED,
    TicketStatus.ASSIGNED,
    TicketStatus.IN_PROGRESS,
    TicketStatus.WAITING,
    TicketStatus.AWAITING_APPROVAL,
)


@dataclass(frozen=True)
class RuleSpec:
    """What matching needs to know about a rule (pure data: property-testable)."""

    id: int
    category: TicketCategory | None
    place_id: int | None
    min_priority: TicketPriority | None
    team_id: int
    name: str = ""


@dataclass(frozen=True)
class TicketFacts:
    category: TicketCategory
    priority: TicketPriority
    # The ticket's place first, then its parent, ... up to the root; empty if no place.
    place_chain: tuple[int, ...]


def rule_matches(rule: RuleSpec, facts: TicketFacts) -> bool:
    if rule.category is not None and rule.category != facts.category:
        return False
    if rule.place_id is not None and rule.place_id not in facts.place_chain:
        return False
    return rule.min_priority is None or facts.priority.rank >= rule.min_priority.rank


def specificity(rule: RuleSpec, facts: TicketFacts) -> tuple[int, int, int]:
    """Higher is more specific. Only meaningful for a rule that matches ``facts``."""
    if rule.place_id is None:
        depth = 0
    else:
        # The rule's place is on the ticket's chain; its depth counts from the root (1).
        depth = len(facts.place_chain) - facts.place_chain.index(rule.place_id)
    has_category = 0 if rule.category is None else 1
    priority_level = 0 if rule.min_priority is None else rule.min_priority.rank + 1
    return depth, has_category, priority_level


def choose_rule(rules: Iterable[RuleSpec], facts: TicketFacts) -> RuleSpec | None:
    matching = [rule for rule in rules if rule_matches(rule, facts)]
    if not matching:
        return None

    def key(rule: RuleSpec) -> tuple[int, int, int, int]:
        depth, has_category, level = specificity(rule, facts)
        return -depth, -has_category, -level, rule.id

    return min(matching, key=key)


def load_place_chain(session: Session, place_id: int | None) -> None:
    """Load ``place_id`` and all its ancestors into the session in ONE query (a recursive CTE),
    unless they are there already. Routing, surge grouping and alert texts then walk the tree
    with ``session.get`` without a round trip per level (a site is five levels deep). The
    rows are kept referenced from ``session.info`` for the session's life: the identity map
    holds objects weakly, and nobody else holds these between the walks.
    ``UNION`` (not ``UNION ALL``) ends the recursion even on a cyclic import."""
    current = place_id
    seen: set[int] = set()
    while current is not None and current not in seen:
        seen.add(current)
        loaded = session.identity_map.get(identity_key(Place, current))
        if loaded is None:
            break
        current = loaded.parent_id
    else:
        return  # the whole chain is loaded already
    chain = select(Place.id, Place.parent_id).where(Place.id == place_id).cte(recursive=True)
    chain = chain.union(
        select(Place.id, Place.parent_id).join(chain, Place.id == chain.c.parent_id)
    )
    held: dict[int, Place] = session.info.setdefault(_PLACES_HELD, {})
    for place in session.scalars(select(Place).where(Place.id.in_(select(chain.c.id)))):
        held[place.id] = place


def place_chain(session: Session, place_id: int | None) -> tuple[int, ...]:
    """``place_id`` and its ancestors (nearest first), following ``Place.parent_id``."""
    load_place_chain(session, place_id)
    chain: list[int] = []
    current = place_id
    while current is not None and current not in chain:  # guards against a cyclic import
        chain.append(current)
        place = session.get(Place, current)
        current = place.parent_id if place is not None else None
    return tuple(chain)


def spec_of(rule: RoutingRule) -> RuleSpec:
    return RuleSpec(
        id=rule.id,
        category=rule.category,
        place_id=rule.place_id,
        min_priority=rule.min_priority,
        team_id=rule.team_id,
        name=rule.name,
    )


def default_team(session: Session) -> Team | None:
    return session.scalar(select(Team).where(Team.is_default.is_(True)).order_by(Team.id).limit(1))


def _staff_language() -> str:
    return get_settings().alert_language


def describe_rule(session: Session, rule: RoutingRule | RuleSpec) -> str:
    """ "rule 'Protection Gao' (protection × Gao region × ≥high)" in the staff language."""
    lang = _staff_language()
    criteria: list[str] = []
    if rule.category is not None:
        criteria.append(translate(f"category.{rule.category.value}", lang))
    if rule.place_id is not None:
        place = session.get(Place, rule.place_id)
        if place is not None:
            kind = translate(f"place_kind.{place.kind.value}", lang)
            criteria.append(translate("routing.criterion.place", lang, place=place.name, kind=kind))
    if rule.min_priority is not None:
        label = translate(f"priority.{rule.min_priority.value}", lang)
        criteria.append(translate("routing.criterion.min_priority", lang, priority=label))
    text = " × ".join(criteria) if criteria else translate("routing.criterion.any", lang)
    return translate("routing.reason.rule", lang, rule=rule.name, criteria=text)


def active_rules(session: Session) -> tuple[RuleSpec, ...]:
    """The active routing rules as plain data, from the per-process configuration cache
    (models.config_cache: reloaded after any process writes a rule)."""

    def load() -> tuple[RuleSpec, ...]:
        rules = session.scalars(select(RoutingRule).where(RoutingRule.active.is_(True)))
        return tuple(spec_of(rule) for rule in rules)

    return cached(session, ("routing-rules",), load)


def _held_team(session: Session, team_id: int | None) -> Team | None:
    """The team by id, kept referenced for the session's life: auto-assignment and the alerts
    read it next, and the identity map holds objects weakly (a second look-up otherwise)."""
    if team_id is None:
        return None
    team = session.get(Team, team_id)
    if team is not None:
        session.info.setdefault(_TEAMS_HELD, {})[team_id] = team
    return team


Route = tuple[RuleSpec | None, Team | None, str]


def find_route(session: Session, ticket: Ticket) -> Route:
    """The rule that matches ``ticket`` (or None), the team it goes to, and why."""
    return route_for(
        session,
        kind=ticket.kind,
        category=ticket.category,
        priority=ticket.priority,
        place_id=ticket.place_id,
    )


def route_for(
    session: Session,
    *,
    kind: TicketKind,
    category: TicketCategory,
    priority: TicketPriority,
    place_id: int | None,
) -> Route:
    """``find_route`` from the facts routing reads, before the ticket row exists: intake
    writes the team in the ticket's INSERT instead of an UPDATE right after it."""
    if kind == TicketKind.PSEA:
        from tickets.psea import psea_teams

        lang = _staff_language()
        teams = psea_teams(session)
        if teams:
            return None, teams[0], translate("routing.reason.psea", lang, team=teams[0].name)
        if not get_settings().psea_share_with_protection:
            return None, None, translate("routing.reason.psea_none", lang)
    facts = TicketFacts(
        category=category,
        priority=priority,
        place_chain=place_chain(session, place_id),
    )
    chosen = choose_rule(active_rules(session), facts)
    if chosen is not None:
        return chosen, _held_team(session, chosen.team_id), describe_rule(session, chosen)
    default_id = cached(
        session, ("default-team",), lambda: getattr(default_team(session), "id", None)
    )
    team = _held_team(session, default_id)
    lang = _staff_language()
    if team is None:
        return None, None, translate("routing.reason.none", lang)
    return None, team, translate("routing.reason.default", lang, team=team.name)


def route_ticket(
    session: Session,
    ticket: Ticket,
    *,
    actor_label: str = "system",
    now: datetime | None = None,
) -> RoutingDecision:
    """Apply the routing rules to ``ticket`` and record the decision (flushes)."""
    return record_route(
        session,
        ticket,
        find_route(session, ticket),
        previous_team_id=ticket.team_id,
        actor_label=actor_label,
        now=now,
    )


def record_route(
    session: Session,
    ticket: Ticket,
    route: Route,
    *,
    previous_team_id: int | None,
    actor_label: str = "system",
    now: datetime | None = None,
) -> RoutingDecision:
    """Give ``ticket`` the route's team and record the decision and its "routed" event
    (flushes). ``previous_team_id`` is the caller's: a ticket inserted with its route's team
    already set had none before."""
    moment = now or utcnow()
    rule, team, reason = route
    ticket.team_id = team.id if team is not None else None
    decision = RoutingDecision(
        ticket_id=ticket.id,
        rule_id=rule.id if rule is not None else None,
        team_id=ticket.team_id,
        reason=reason,
        created_at=moment,
    )
    session.add(decision)
    session.flush()
    record_event(
        session,
        ticket,
        "routed",
        actor_label=actor_label,
        now=moment,
        decision_id=decision.id,
        rule_id=decision.rule_id,
        team_id=ticket.team_id,
        previous_team_id=previous_team_id,
    )
    return decision


def record_reroute(
    session: Session,
    ticket: Ticket,
    team: Team,
    *,
    actor_label: str,
    actor_user_id: int | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> RoutingDecision:
    """An operator sends ``ticket`` to ``team``: recorded like an automatic decision."""
    moment = now or utcnow()
    lang = _staff_language()
    if note:
        reason = translate(
            "routing.reason.operator_note", lang, actor=actor_label, team=team.name, note=note
        )
    else:
        reason = translate("routing.reason.operator", lang, actor=actor_label, team=team.name)
    previous_team_id = ticket.team_id
    ticket.team_id = team.id
    decision = RoutingDecision(
        ticket_id=ticket.id,
        rule_id=None,
        team_id=team.id,
        decided_by_user_id=actor_user_id,
        reason=reason,
        created_at=moment,
    )
    session.add(decision)
    session.flush()
    record_event(
        session,
        ticket,
        "rerouted",
        actor_label=actor_label,
        actor_user_id=actor_user_id,
        now=moment,
        decision_id=decision.id,
        team_id=team.id,
        previous_team_id=previous_team_id,
    )
    return decision


def pick_assignee(session: Session, team: Team) -> int | None:
    """The active member with the fewest open tickets (ties: lowest user id), or None."""
    open_count = (
        select(func.count(Ticket.id))
        .where(Ticket.assignee_id == User.id, Ticket.status.in_(OPEN_STATUSES))
        .correlate(User)
        .scalar_subquery()
    )
    row = session.execute(
        select(User.id, open_count.label("open_count"))
        .join(TeamMember, TeamMember.user_id == User.id)
        .where(TeamMember.team_id == team.id, User.active.is_(True))
        .order_by(open_count, User.id)
        .limit(1)
    ).first()
    return None if row is None else int(row[0])


def rules_in_order(rules: Sequence[RuleSpec], facts: TicketFacts) -> list[RuleSpec]:
    """Matching rules, winner first (for the console's "why" view and for tests)."""
    matching = [rule for rule in rules if rule_matches(rule, facts)]
    return sorted(matching, key=lambda r: (*(-v for v in specificity(r, facts)), r.id))
