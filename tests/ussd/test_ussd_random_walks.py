"""Random callers: whatever they press, type or paste — and however often the operator cuts
them off — every answer is HTTP 200 with a valid CON/END screen of ≤160 GSM-7 characters."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ussd.helpers import Phone

# What people actually send, weighted towards menu keys so walks get deep into the tree.
menu_keys = st.sampled_from(["1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "00", "1", "2"])
typed = st.sampled_from(["Mopti", "sevare", "tbk", "commune 6", "Gao", "kati", "5", "12", "99"])
garbage = st.text(max_size=30)
long_input = st.text(min_size=100, max_size=500)
with_star = st.builds(lambda a, b: f"{a}*{b}", st.text(max_size=8), st.text(max_size=8))
hop = st.one_of(menu_keys, menu_keys, menu_keys, typed, garbage, long_input, with_star, st.just(""))
# ("dial", shortcut) starts a new session (a drop, then dialling again), ("send", text) types.
event = st.one_of(
    st.tuples(st.just("send"), hop),
    st.tuples(st.just("send"), hop),
    st.tuples(st.just("send"), hop),
    st.tuples(st.just("dial"), st.sampled_from(["", "", "", "2", "1*2", "x*y"])),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(events=st.lists(event, min_size=1, max_size=18))
def test_random_walks_always_get_a_valid_screen(
    client: Any, at_channel: int, places_seeded: None, events: list[tuple[str, str]]
) -> None:
    phone = Phone(client)  # a new caller per example; Phone checks every answer
    phone.dial()
    for kind, text in events:
        if kind == "dial" or phone.screen.startswith("END "):
            phone.dial(text if kind == "dial" else "")
        else:
            phone.send(text)
    assert len(phone.screens) == len(events) + 1
