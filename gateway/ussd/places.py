"""The place picker's view of the gazetteer: short GSM-7 labels, cached per process.

The gazetteer is already in memory; what is cached here is the per-hop work on top of it
(sorting, transliterating names, fuzzy resolution of what people type), so a navigation hop
costs a few dictionary look-ups.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, NamedTuple

from gateway.ussd.text import clip, screen_safe
from models.enums import PlaceKind

if TYPE_CHECKING:
    from tickets.gazetteer import Gazetteer, PlaceRecord

# Labels longer than this would crowd the list out of the 160-character screen.
LABEL_WIDTH = 22
_RESOLVE_CACHE_SIZE = 4096
_RESOLVE_KINDS = frozenset({PlaceKind.REGION, PlaceKind.CERCLE, PlaceKind.COMMUNE, PlaceKind.SITE})


class PlaceItem(NamedTuple):
    code: str
    label: str


class PlaceDirectory:
    def __init__(self, gazetteer: Gazetteer | None = None) -> None:
        self._gazetteer = gazetteer
        self._lock = threading.Lock()
        self._regions: tuple[PlaceItem, ...] | None = None
        self._children: dict[str, tuple[PlaceItem, ...]] = {}
        self._labels: dict[str, str] = {}
        self._resolved: OrderedDict[str, str | None] = OrderedDict()

    @property
    def gazetteer(self) -> Gazetteer:
        if self._gazetteer is None:
            # Imported lazily: the tickets domain is optional for the menu's pure parts.
            from tickets.gazetteer import Gazetteer

            self._gazetteer = Gazetteer.default()
        return self._gazetteer

    @staticmethod
    def _item(record: PlaceRecord) -> PlaceItem:
        return PlaceItem(record.code, clip(screen_safe(record.name), LABEL_WIDTH))

    def regions(self) -> tuple[PlaceItem, ...]:
        if self._regions is None:
            self._regions = tuple(self._item(r) for r in self.gazetteer.regions())
        return self._regions

    def children(self, code: str) -> tuple[PlaceItem, ...]:
        found = self._children.get(code)
        if found is None:
            found = tuple(self._item(r) for r in self.gazetteer.children(code))
            self._children[code] = found
        return found

    def exists(self, code: str) -> bool:
        return self.gazetteer.get(code) is not None

    def label(self, code: str) -> str:
        found = self._labels.get(code)
        if found is None:
            record = self.gazetteer.get(code)
            found = self._item(record).label if record is not None else code
            self._labels[code] = found
        return found

    def region_label(self, code: str) -> str | None:
        """The region holding ``code`` (for "Sevare (Mopti)?"), None for a region itself."""
        record = self.gazetteer.get(code)
        if record is None or record.kind is PlaceKind.REGION:
            return None
        region = self.gazetteer.region_of(code)
        return self.label(region.code) if region is not None else None

    def resolve(self, text: str) -> str | None:
        """The code of the place ``text`` names, or None. Results are memoised: the same few
        hundred names are typed over and over, and fuzzy matching is the costliest hop."""
        key = " ".join(text.lower().split())[:60]
        if not key:
            return None
        with self._lock:
            if key in self._resolved:
                self._resolved.move_to_end(key)
                return self._resolved[key]
        match = self.gazetteer.resolve(key, kinds=_RESOLVE_KINDS)
        code = match.place.code if match is not None else None
        with self._lock:
            self._resolved[key] = code
            if len(self._resolved) > _RESOLVE_CACHE_SIZE:
                self._resolved.popitem(last=False)
        return code


_default: PlaceDirectory | None = None


def default_directory() -> PlaceDirectory:
    global _default
    if _default is None:
        _default = PlaceDirectory()
    return _default
