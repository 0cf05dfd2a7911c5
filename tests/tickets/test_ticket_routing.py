"""Routing: descendants are covered, the most specific rule wins (property-tested), the default
team catches the rest, every decision is stored with its reason, auto-assignment balances."""

from __future__ import annotations

import itertools
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from ticket_helpers import World, add_member, add_rule, add_user

from models.enums import TicketCategory, TicketPriority, TicketSource, TicketStatus
from models.routing import RoutingDecision, RoutingRule
from models.tickets import Ticket, TicketEvent
from tickets.intake import create_ticket
from tickets.routing import (
    RuleSpec,
    TicketFacts,
    choose_rule,
    rule_matches,
    rules_in_order,
    specificity,
)
from tickets.workflow import reroute

C = TicketCategory
P = TicketPriority

# --- pure properties ----------------------------------------------------------------------

# A fixed tree: 1 country > 2,3 regions > 4,5 cercles (of 2), 6 (of 3) > 7 site (of 4).
PARENT = {1: None, 2: 1, 3: 1, 4: 2, 5: 2, 6: 3, 7: 4}


def chain(place_id: int | None) -> tuple[int, ...]:
    out: list[int] = []
    while place_id is not None:
        out.append(place_id)
        place_id = PARENT[place_id]
    return tuple(out)


categories = st.one_of(st.none(), st.sampled_from(list(C)))
priorities = st.one_of(st.none(), st.sampled_from(list(P)))
place_ids = st.one_of(st.none(), st.sampled_from(sorted(PARENT)))


@st.composite
def rule_sets(draw: st.DrawFn) -> list[RuleSpec]:
    count = draw(st.integers(min_value=0, max_value=12))
    ids = draw(st.lists(st.integers(1, 10_000), min_size=count, max_size=count, unique=True))
    return [
        RuleSpec(
            id=rule_id,
            category=draw(categories),
            place_id=draw(place_ids),
            min_priority=draw(priorities),
            team_id=draw(st.integers(1, 5)),
        )
        for rule_id in ids
    ]


@st.composite
def facts(draw: st.DrawFn) -> TicketFacts:
    return TicketFacts(
        category=draw(st.sampled_from(list(C))),
        priority=draw(st.sampled_from(list(P))),
        place_chain=chain(draw(place_ids)),
    )


@settings(max_examples=400, deadline=None)
@given(rules=rule_sets(), ticket=facts())
def test_the_winner_matches_and_no_matching_rule_is_more_specific(
    rules: list[RuleSpec], ticket: TicketFacts
) -> None:
    winner = choose_rule(rules, ticket)
    matching = [r for r in rules if rule_matches(r, ticket)]
    if not matching:
        assert winner is None
        return
    assert winner is not None and rule_matches(winner, ticket)
    for other in matching:
        if other is winner:
            continue
        assert specificity(winner, ticket) >= specificity(other, ticket)
        if specificity(winner, ticket) == specificity(other, ticket):
            assert winner.id < other.id


@settings(max_examples=300, deadline=None)
@given(rules=rule_sets(), ticket=facts(), seed=st.integers(0, 2**32 - 1))
def test_the_decision_does_not_depend_on_rule_order(
    rules: list[RuleSpec], ticket: TicketFacts, seed: int
) -> None:
    shuffled = list(rules)
    random.Random(seed).shuffle(shuffled)
    assert choose_rule(shuffled, ticket) == choose_rule(rules, ticket)
    assert choose_rule(list(reversed(rules)), ticket) == choose_rule(rules, ticket)


@settings(max_examples=300, deadline=None)
@given(rules=rule_sets(), ticket=facts())
def test_adding_a_strictly_more_specific_matching_rule_takes_over(
    rules: list[RuleSpec], ticket: TicketFacts
) -> None:
    winner = choose_rule(rules, ticket)
    if winner is None or not ticket.place_chain:
        return
    # The most specific rule possible for this ticket: its own place, category, priority.
    best = RuleSpec(
        id=10_001,
        category=ticket.category,
        place_id=ticket.place_chain[0],
        min_priority=ticket.priority,
        team_id=99,
    )
    if specificity(best, ticket) > specificity(winner, ticket):
        assert choose_rule([*rules, best], ticket) == best


def test_specificity_order_place_then_category_then_priority() -> None:
    site = TicketFacts(category=C.PROTECTION, priority=P.URGENT, place_chain=chain(7))
    national_protection_urgent = RuleSpec(1, C.PROTECTION, None, P.URGENT, 1)
    region_any = RuleSpec(2, None, 2, None, 2)
    region_protection = RuleSpec(3, C.PROTECTION, 2, None, 3)
    region_protection_high = RuleSpec(4, C.PROTECTION, 2, P.HIGH, 4)
    cercle_any = RuleSpec(5, None, 4, None, 5)
    ordered = rules_in_order(
        [
            national_protection_urgent,
            region_any,
            region_protection,
            region_protection_high,
            cercle_any,
        ],
        site,
    )
    assert [r.id for r in ordered] == [5, 4, 3, 2, 1]


# --- with the database --------------------------------------------------------------------


def _ticket(db: Any, world: World, **kwargs: Any) -> Ticket:
    kwargs.setdefault("source", TicketSource.SMS)
    return create_ticket(db, **kwargs)


def test_a_rule_on_a_region_covers_its_cercles_communes_and_sites(db: Any, world: World) -> None:
    for code in ("ML07", "ML0702", "ML070201", "SITE-ANS-1"):
        ticket = _ticket(db, world, category=C.PROTECTION, place_code=code, description="aide")
        assert ticket.team_id == world.teams["protection"].id, code
    elsewhere = _ticket(db, world, category=C.PROTECTION, place_code="ML0501")
    assert elsewhere.team_id == world.teams["general"].id


def test_decisions_are_stored_with_the_rule_and_a_human_reason(db: Any, world: World) -> None:
    ticket = _ticket(db, world, category=C.PROTECTION, place_code="ML0702")
    decision = db.scalar(select(RoutingDecision).where(RoutingDecision.ticket_id == ticket.id))
    assert decision.rule_id == world.rules["protection"].id
    assert decision.team_id == world.teams["protection"].id
    assert decision.reason == "règle 'Protection Gao' (protection × Gao (région) × ≥haute)"
    event = db.scalar(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "routed")
    )
    assert event.data["decision_id"] == decision.id and event.data["rule_id"] == decision.rule_id


def test_unmatched_tickets_go_to_the_default_team_with_that_reason(db: Any, world: World) -> None:
    ticket = _ticket(db, world, category=C.WASH, place_code="ML0501")
    assert ticket.team_id == world.teams["general"].id
    decision = db.scalar(select(RoutingDecision).where(RoutingDecision.ticket_id == ticket.id))
    assert decision.rule_id is None
    assert "Hotline" in decision.reason and "aucune règle" in decision.reason


def test_the_most_specific_rule_wins_in_the_database(db: Any, world: World) -> None:
    ansongo_team = world.teams["health"]
    add_rule(
        db,
        "Protection Ansongo urgent",
        ansongo_team,
        category=C.PROTECTION,
        place=world.place("ML0702"),
        min_priority=P.URGENT,
    )
    urgent = _ticket(db, world, category=C.PROTECTION, place_code="SITE-ANS-1", description="viol")
    high = _ticket(db, world, category=C.PROTECTION, place_code="SITE-ANS-1", description="aide")
    assert urgent.team_id == ansongo_team.id
    assert high.team_id == world.teams["protection"].id


def test_insertion_order_of_rules_does_not_change_the_decision(db: Any, world: World) -> None:
    gao, ansongo = world.place("ML07"), world.place("ML0702")
    team = world.teams["health"]
    specs: list[tuple[str, dict[str, Any]]] = [
        ("any", {}),
        ("region", {"place": gao}),
        ("region-health", {"place": gao, "category": C.HEALTH}),
        ("cercle", {"place": ansongo}),
        ("cercle-health-high", {"place": ansongo, "category": C.HEALTH, "min_priority": P.HIGH}),
    ]

    def winner(description: str) -> str:
        ticket = _ticket(
            db, world, category=C.HEALTH, place_code="SITE-ANS-1", description=description
        )
        decision = db.scalar(select(RoutingDecision).where(RoutingDecision.ticket_id == ticket.id))
        return str(db.get(RoutingRule, decision.rule_id).name)

    seen: set[tuple[str, str]] = set()
    for order in itertools.islice(itertools.permutations(specs), 0, None, 7):
        db.execute(RoutingRule.__table__.delete())
        for name, kwargs in order:
            add_rule(db, name, team, **kwargs)
        # urgent (bleeding) reaches the ≥high cercle rule; a normal report the plain cercle one
        seen.add((winner("il saigne"), winner("besoin de soins")))
    assert seen == {("cercle-health-high", "cercle")}


def test_operator_reroute_is_recorded_as_a_decision(db: Any, world: World) -> None:
    ticket = _ticket(db, world, category=C.WASH, place_code="ML0501")
    supervisor = world.users["supervisor"]
    reroute(
        db,
        ticket,
        world.teams["health"],
        actor_label="sup",
        actor_user_id=supervisor.id,
        note="cas de choléra",
    )
    decisions = db.scalars(
        select(RoutingDecision)
        .where(RoutingDecision.ticket_id == ticket.id)
        .order_by(RoutingDecision.id)
    ).all()
    assert len(decisions) == 2
    assert decisions[1].decided_by_user_id == supervisor.id
    assert decisions[1].rule_id is None
    assert decisions[1].reason == "réorienté par sup vers 'Health Gao': cas de choléra"
    assert ticket.team_id == world.teams["health"].id


def test_auto_assignment_picks_the_member_with_fewest_open_tickets(db: Any, world: World) -> None:
    team = world.teams["protection"]
    team.auto_assign = True
    third = add_user(db, "third", world.users["officer"].role)
    add_member(db, team, third)
    lead, officer = world.users["lead"], world.users["officer"]
    assignees = []
    for _ in range(6):
        ticket = _ticket(db, world, category=C.PROTECTION, place_code="ML07")
        assert ticket.status == TicketStatus.ASSIGNED
        assignees.append(ticket.assignee_id)
    # Round-robin by load: ties go to the lowest user id.
    expected_order = sorted([lead.id, officer.id, third.id])
    assert assignees == expected_order * 2
    # A resolved ticket no longer counts as load.
    first = db.scalar(select(Ticket).where(Ticket.assignee_id == expected_order[2]))
    first.status = TicketStatus.RESOLVED
    db.flush()
    nxt = _ticket(db, world, category=C.PROTECTION, place_code="ML07")
    assert nxt.assignee_id == expected_order[2]
