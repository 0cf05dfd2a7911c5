"""The keyword fallback classifies from several threads of one process at once (the action
server, the web app) from the very first message: each must see the place it names."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from bot import fallback
from tickets.gazetteer import Gazetteer


def test_concurrent_first_messages_all_find_their_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fallback, "_GAZETTEER", None)
    monkeypatch.setattr(fallback, "_GAZETTEER_LOADED", False)
    real = Gazetteer.default()

    def slow_default() -> Gazetteer:
        time.sleep(0.3)  # the first import of the gazetteer on a busy machine
        return real

    monkeypatch.setattr(Gazetteer, "default", staticmethod(slow_default))
    places: list[Any] = []
    lock = threading.Lock()

    def classify() -> None:
        result = fallback.classify("Nous avons besoin d'eau potable a Mopti")
        with lock:
            places.append(result.place_name)

    threads = [threading.Thread(target=classify) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert places == ["Mopti"] * 6
