"""Offline gazetteer of Malian places and the spellings people type for them.

Pure Python, no database: the shipped table ``tickets/data/places.csv`` is loaded once
(:meth:`Gazetteer.default`) and searched in memory. The database tables in ``models.places``
are seeded from the same records (use :attr:`PlaceRecord.search_forms` for the normalised
aliases).

Matching, in short:

* Text is normalised with :func:`normalize_place_text` (case, accents, Bambara letters,
  punctuation, "commune VI"/"c6"/"6eme commune" → "commune 6").
* An exact normalised name or alias scores 1.0. Otherwise rapidfuzz's ``ratio`` is computed on
  the normalised form and on a rough phonetic skeleton ("ou"→"u", "dj"→"j", "c"→"k", doubled
  letters collapsed, ...; worth at most 0.97). Inputs of 3 letters or fewer only match exactly;
  inputs of 4–5 letters may be at most one edit away and lose a little confidence; a number in
  the text must be the number in the name ("commune 5" never matches Commune VI).
* When several places match equally well, the most general kind wins: "Gao" is Gao *region*
  (not the cercle or the town), "Mopti" the region, "Kati" the cercle. A kind word in the text
  ("cercle de Gao", "commune de Kati") makes that kind win instead; ``kinds=`` restricts the
  search outright.
* :meth:`Gazetteer.find_in_text` scans a free-text SMS for a place, far more conservatively:
  common French/Bambara/English words never match, fuzzy matching needs 6+ letters and the same
  first letter, and names that are also ordinary words ("san", "koro", "bla", "dire", ...)
  need a locative cue before them ("in San", "cercle de Koro", "bora Kita").
"""

from __future__ import annotations

import csv
import functools
import math
import re
import unicodedata
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rapidfuzz import fuzz, process
from rapidfuzz.distance import Levenshtein

from core.textfold import BAMBARA_LETTERS
from models.enums import PlaceKind

__all__ = [
    "CSV_COLUMNS",
    "DEFAULT_PLACES_FILE",
    "Gazetteer",
    "PlaceKind",
    "PlaceMatch",
    "PlaceRecord",
    "load_place_records",
    "normalize_place_text",
]

DEFAULT_PLACES_FILE: Path = Path(__file__).resolve().parent / "data" / "places.csv"
CSV_COLUMNS: tuple[str, ...] = (
    "code",
    "name",
    "kind",
    "parent_code",
    "former_parent_code",
    "iso_code",
    "aliases",
    "latitude",
    "longitude",
)

# Most general first: on equal confidence the lower rank wins.
KIND_RANK: dict[PlaceKind, int] = {
    PlaceKind.COUNTRY: 0,
    PlaceKind.REGION: 1,
    PlaceKind.CERCLE: 2,
    PlaceKind.COMMUNE: 3,
    PlaceKind.SITE: 4,
}


@dataclass(frozen=True, slots=True)
class PlaceRecord:
    """One row of the gazetteer. ``parent_code`` follows the 2023 reform; ``former_parent_code``
    is the parent in older datasets, set only where it differs."""

    code: str
    name: str
    kind: PlaceKind
    parent_code: str | None
    former_parent_code: str | None
    iso_code: str | None
    aliases: tuple[str, ...]
    latitude: float | None
    longitude: float | None

    @property
    def search_forms(self) -> tuple[str, ...]:
        """The distinct normalised forms of the name and aliases, name first."""
        forms: dict[str, None] = {}
        for text in (self.name, *self.aliases):
            norm = normalize_place_text(text)
            if norm:
                forms.setdefault(norm, None)
        return tuple(forms)


@dataclass(frozen=True, slots=True)
class PlaceMatch:
    place: PlaceRecord
    confidence: float  # 0..1; 1.0 only for an exact (normalised) name or alias
    matched: str  # the name or alias, as written in the gazetteer, that matched
    exact: bool


# --------------------------------------------------------------------------------------------
# Normalisation

_LETTER_MAP = str.maketrans(
    {
        **BAMBARA_LETTERS,
        "ß": "ss",
        "æ": "ae",
        "Æ": "ae",
        "œ": "oe",
        "Œ": "oe",
        "ø": "o",
        "Ø": "o",
        "đ": "d",
        "Đ": "d",
        "ł": "l",
        "Ł": "l",
        "ı": "i",
    }
)

_COMMUNE_WORDS = frozenset({"commune", "communes", "comm", "com", "cne", "cmne"})
_COMMUNE_ORDINALS: dict[str, str] = {
    "1er": "1",
    "1ere": "1",
    "1re": "1",
    "premier": "1",
    "premiere": "1",
    "2e": "2",
    "2eme": "2",
    "2nd": "2",
    "2nde": "2",
    "deuxieme": "2",
    "3e": "3",
    "3eme": "3",
    "troisieme": "3",
    "4e": "4",
    "4eme": "4",
    "quatrieme": "4",
    "5e": "5",
    "5eme": "5",
    "cinquieme": "5",
    "6e": "6",
    "6eme": "6",
    "sixieme": "6",
}
_COMMUNE_NUMBERS: dict[str, str] = {
    "1": "1",
    "2": "2",
    "3": "3",
    "4": "4",
    "5": "5",
    "6": "6",
    "i": "1",
    "ii": "2",
    "iii": "3",
    "iv": "4",
    "v": "5",
    "vi": "6",
    "un": "1",
    "une": "1",
    "deux": "2",
    "trois": "3",
    "quatre": "4",
    "cinq": "5",
    "six": "6",
    **_COMMUNE_ORDINALS,
}
# "un"/"une" after "commune" are also French articles ("la commune une fois de plus"); free
# text is normalised without them.
_ARTICLE_NUMBERS = frozenset({"un", "une"})
_GLUED_COMMUNE = re.compile(r"(?:commune|comm|com|cne|cmne|c)([1-6])")


def _fold(text: str) -> str:
    """Case, accents, special letters and punctuation only."""
    folded = unicodedata.normalize("NFKD", text.translate(_LETTER_MAP))
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    folded = unicodedata.normalize("NFKD", folded.casefold().translate(_LETTER_MAP))
    folded = "".join(ch if ch.isalnum() else " " for ch in folded if not unicodedata.combining(ch))
    return " ".join(folded.split())


def _rewrite_communes(folded: str, *, articles: bool) -> str:
    tokens = folded.split()
    out: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        if (
            token in _COMMUNE_WORDS
            and following in _COMMUNE_NUMBERS
            and (articles or following not in _ARTICLE_NUMBERS)
        ):
            out += ["commune", _COMMUNE_NUMBERS[following]]
            i += 2
            continue
        if token in _COMMUNE_ORDINALS and following in _COMMUNE_WORDS:
            out += ["commune", _COMMUNE_ORDINALS[token]]
            i += 2
            continue
        glued = _GLUED_COMMUNE.fullmatch(token)
        if glued:
            out += ["commune", glued.group(1)]
        else:
            out.append(token)
        i += 1
    return " ".join(out)


def _normalize(text: str, *, articles: bool) -> str:
    current = text
    for _ in range(8):  # reaches its fixed point in two or three passes
        following = _rewrite_communes(_fold(current), articles=articles)
        if following == current:
            break
        current = following
    return current


def normalize_place_text(text: str) -> str:
    """Normalise a place name as typed: lower case, no accents, Bambara letters in their ASCII
    spelling (ɛ→e, ɔ→o, ɲ→ny, ŋ→ng), apostrophes, hyphens and other punctuation as spaces,
    single spaces, and Bamako commune numbers written one way ("Commune VI", "commune six",
    "c6", "6ème commune" → "commune 6"). Idempotent."""
    if not isinstance(text, str):
        raise TypeError(f"expected str, got {type(text).__name__}")
    return _normalize(text, articles=True)


_SKELETON_RULES: tuple[tuple[str, str], ...] = (
    ("ch", "s"),
    ("dj", "j"),
    ("ou", "u"),
    ("qu", "k"),
    ("ck", "k"),
    ("c", "k"),
    ("q", "k"),
    ("ph", "f"),
    ("y", "i"),
    ("w", "u"),
    ("gn", "ni"),
)
_SILENT_H = re.compile(r"(?<=[bdfgjklmnprstvxz])h")
_DOUBLED = re.compile(r"(.)\1+")
_DIGITS = re.compile(r"\d+")


def _skeleton(norm: str) -> str:
    """A rough phonetic key for French/English/Bambara spellings of the same sounds."""
    key = norm
    for old, new in _SKELETON_RULES:
        key = key.replace(old, new)
    key = _SILENT_H.sub("", key)
    return _DOUBLED.sub(r"\1", key)


def _digits(norm: str) -> tuple[str, ...]:
    return tuple(_DIGITS.findall(norm))


def _letters(norm: str) -> int:
    return len(norm) - norm.count(" ")


def _short_penalty(query: str, choice: str) -> float | None:
    """Confidence to subtract for a short pair of strings, or None if they are too far apart
    to be the same short name (more than one edit when either has 5 letters or fewer)."""
    shortest = min(_letters(query), _letters(choice))
    if shortest <= _SHORT_LENGTH and Levenshtein.distance(query, choice) > 1:
        return None
    return 0.02 * max(0, 6 - shortest)


# --------------------------------------------------------------------------------------------
# Loading


def _optional(value: str) -> str | None:
    value = value.strip()
    return value or None


def _coordinate(value: str, limit: float, what: str, where: str) -> float | None:
    value = value.strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{where}: {what} {value!r} is not a number") from None
    if not math.isfinite(number) or abs(number) > limit:
        raise ValueError(f"{where}: {what} {value!r} is out of range")
    return number


def load_place_records(path: Path = DEFAULT_PLACES_FILE) -> list[PlaceRecord]:
    """Read and validate a gazetteer CSV (columns :data:`CSV_COLUMNS`, UTF-8, aliases joined
    with "|"). Raises ``ValueError`` naming the file and line of the first problem: wrong
    header or column count, empty code/name, duplicate code or ISO code, unknown kind, missing
    parent (every place but the country has one), unknown parent or former parent, a parent
    that is not a more general kind, bad coordinates, an alias that normalises to nothing."""
    records: list[PlaceRecord] = []
    lines: dict[str, int] = {}
    iso_lines: dict[str, int] = {}
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file")
        if tuple(column.strip() for column in header) != CSV_COLUMNS:
            raise ValueError(f"{path}:1: header must be {','.join(CSV_COLUMNS)}")
        for row in reader:
            line = reader.line_num
            where = f"{path}:{line}"
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(CSV_COLUMNS):
                raise ValueError(f"{where}: expected {len(CSV_COLUMNS)} columns, got {len(row)}")
            code, name, kind_text, parent, former, iso, aliases_text, lat, lon = row
            code, name = code.strip(), name.strip()
            if not code or any(ch.isspace() for ch in code):
                raise ValueError(f"{where}: missing or malformed code {code!r}")
            if code in lines:
                raise ValueError(f"{where}: duplicate code {code!r} (first on line {lines[code]})")
            if not name or not normalize_place_text(name):
                raise ValueError(f"{where}: place {code} has no usable name")
            try:
                kind = PlaceKind(kind_text.strip())
            except ValueError:
                raise ValueError(f"{where}: unknown kind {kind_text!r} for {code}") from None
            parent_code, former_code = _optional(parent), _optional(former)
            if kind is PlaceKind.COUNTRY and parent_code is not None:
                raise ValueError(f"{where}: the country row {code} cannot have a parent")
            if kind is not PlaceKind.COUNTRY and parent_code is None:
                raise ValueError(f"{where}: {code} has no parent_code")
            if code in (parent_code, former_code):
                raise ValueError(f"{where}: {code} is its own parent")
            if former_code is not None and former_code == parent_code:
                raise ValueError(f"{where}: {code} former_parent_code equals parent_code")
            iso_code = _optional(iso)
            if iso_code is not None:
                if iso_code in iso_lines:
                    raise ValueError(
                        f"{where}: duplicate iso_code {iso_code!r} (first on line "
                        f"{iso_lines[iso_code]})"
                    )
                iso_lines[iso_code] = line
            aliases: dict[str, None] = {}
            for alias in aliases_text.split("|"):
                alias = alias.strip()
                if not alias:
                    continue
                if not normalize_place_text(alias):
                    raise ValueError(f"{where}: alias {alias!r} of {code} normalises to nothing")
                aliases.setdefault(alias, None)
            latitude = _coordinate(lat, 90.0, "latitude", where)
            longitude = _coordinate(lon, 180.0, "longitude", where)
            if (latitude is None) != (longitude is None):
                raise ValueError(f"{where}: give both latitude and longitude or neither")
            lines[code] = line
            records.append(
                PlaceRecord(
                    code=code,
                    name=name,
                    kind=kind,
                    parent_code=parent_code,
                    former_parent_code=former_code,
                    iso_code=iso_code,
                    aliases=tuple(aliases),
                    latitude=latitude,
                    longitude=longitude,
                )
            )
    by_code = {record.code: record for record in records}
    for record in records:
        where = f"{path}:{lines[record.code]}"
        for label, other in (
            ("parent_code", record.parent_code),
            ("former_parent_code", record.former_parent_code),
        ):
            if other is None:
                continue
            target = by_code.get(other)
            if target is None:
                raise ValueError(f"{where}: {label} {other!r} of {record.code} does not exist")
            if KIND_RANK[target.kind] >= KIND_RANK[record.kind]:
                raise ValueError(
                    f"{where}: {label} {other} ({target.kind}) of {record.code} "
                    f"({record.kind}) must be a more general kind"
                )
    return records


# --------------------------------------------------------------------------------------------
# Searching


@dataclass(frozen=True, slots=True)
class _Entry:
    norm: str
    skel: str
    text: str  # as written in the gazetteer
    record: PlaceRecord
    is_name: bool


@dataclass(frozen=True, slots=True)
class _Scored:
    entry: _Entry
    confidence: float
    exact: bool


_MIN_FUZZY_LENGTH = 4  # letters; shorter inputs only match exactly
_SHORT_LENGTH = 5  # either side this short: at most one edit apart, and a small penalty
_ABBREVIATION_LENGTH = 4  # aliases this short are only matched exactly
_SKELETON_WEIGHT = 0.97
_MAX_FUZZY_CONFIDENCE = 0.99

# Words that may precede a place name and only say what kind of place it is.
_GENERIC_WORDS: dict[str, PlaceKind | None] = {
    "region": PlaceKind.REGION,
    "cercle": PlaceKind.CERCLE,
    "commune": PlaceKind.COMMUNE,
    "communes": PlaceKind.COMMUNE,
    "rurale": None,
    "urbaine": None,
    "quartier": PlaceKind.SITE,
    "village": None,
    "ville": None,
    "city": None,
    "town": None,
    "district": None,
    "site": PlaceKind.SITE,
    "camp": PlaceKind.SITE,
    "localite": None,
    "de": None,
    "du": None,
    "des": None,
    "d": None,
    "la": None,
    "le": None,
    "l": None,
    "of": None,
    "the": None,
}
_TRAILING_GENERIC_WORDS: dict[str, PlaceKind] = {
    "region": PlaceKind.REGION,
    "cercle": PlaceKind.CERCLE,
    "ville": PlaceKind.COMMUNE,
    "city": PlaceKind.COMMUNE,
    "town": PlaceKind.COMMUNE,
}

# Free text: words that never match a place on their own, and make an n-gram ineligible for
# fuzzy matching. French and English SMS words, Bambara function words and common vocabulary.
_TEXT_STOP_WORDS_LIST = """
    a au aux avec ce ces cet cette ci cv cii ciii civ cvi dans de des du d en et il ils elle
    elles est sont je j tu nous vous on ne n pas pa plus pour pr par sur sous chez qui que quoi
    ke ki le la les l un une mon ma mes notre nos votre vos son sa ses leur leurs y ya ici bas
    depuis aujourd hui demain hier lundi mardi mercredi jeudi vendredi samedi dimanche matin
    soir nuit jour jours semaine mois an ans annee bonjour bonsoir salut slt merci svp stp sil
    plait aide aidez aider secours secourir besoin besoins urgent urgence eau potable manger
    nourriture faim soif malade malades maladie enfant enfants femme femmes homme hommes famille
    familles personnes personne gens village ville quartier site camp maison maisons abri
    sommes suis etes avons avez ont ai as fait faire tres bcp beaucoup tout tous toutes rien ns
    vs mais ou donc car si non oui ok deplace deplaces deplacee deplacees refugie refugies
    arrive arrives arrivee venu venus venue partir parti partis aller allons veut voulons peut
    pouvons probleme problemes sante hopital centre medicament medicaments ecole argent vivres
    couverture couvertures bache baches savon moustiquaire moustiquaires violence attaque
    attaques arme armes peur securite police gendarme militaire militaires numero tel appel
    appeler message sms plainte question info information maintenant encore toujours aussi
    comme quand comment pourquoi combien frere soeur pere mere chef maire mairie prefet
    an ni ye be te ka ko k ma na fe kan kono bolo bora nana taa sisan kunun mogo mogow den denw
    muso ce so ji dugu sugu fura bana kongo minnogo dumuni deme aw i u o dow tinye tinyena kele
    siran siranna sanji nene sunogo kene owo ayi kosebe jigi baara wari mago yen yan dogotoro
    dogotoroso kolon saniyalen furu fanga gosi tooro mine tunun marifatigiw binkani binkanni
    farigan sumaya konoboli denmisenw denmuso denke nyininkali cogo cogoya don tile su
    we are is am was were in at on the of to from for and or you he she they it people person
    now here there help please pls plz water food need needs our my your no not yes town city
    with have has had sick children child r im thanks thank hello hi
    menace menaces menacer sang gosse gosses vol viol tuer tue blesse blesses feu incendie
    sans avant apres entre
"""
_TEXT_STOP_WORDS = frozenset(_TEXT_STOP_WORDS_LIST.split())

# Place names that are also ordinary words: in free text they need a cue word before them.
# "strong": only a kind word ("cercle de Diré"; "dire" is a French verb). "weak": also a
# preposition ("in San", "de Koro", "bora Bla"), but not Bambara "a"/"be" ("a san", "a be san"
# mean "buy it", "he buys"; "a bla" "leave it"; "a kɔrɔ" "under it"; "a gosi" "beat him").
# "loose": Bambara "an be Kati" ("we are in Kati") is enough.
_AMBIGUOUS_NAMES: dict[str, str] = {
    "dire": "strong",
    "san": "weak",
    "bla": "weak",
    "koro": "weak",
    "gossi": "weak",
    "lere": "weak",
    "kati": "loose",
    "kita": "loose",
    "nara": "loose",
    "ber": "loose",
    "boni": "loose",
}
_STRONG_CUES = frozenset(
    {"region", "cercle", "commune", "ville", "village", "quartier", "district", "localite"}
    | {"city", "town"}
)
_WEAK_CUES = frozenset({"au", "en", "vers", "de", "du", "in", "at", "from", "near", "to"})
_WEAK_CUES |= {"bora", "taa", "depuis"}
_LOOSE_CUES = _WEAK_CUES | {"a", "be", "bi"}
_ORIGIN_CUES = frozenset({"from", "bora", "venu", "venus", "venue", "venues", "venant"})
_ORIGIN_CUES |= {"quitte", "fui", "fuyant", "origine", "originaire"}
_ORIGIN_CUES |= {"venons", "viens", "vient", "fled", "left"}
_MAX_TEXT_TOKENS = 200


def _kind_rank(kind: PlaceKind) -> int:
    return KIND_RANK.get(kind, len(KIND_RANK))


class Gazetteer:
    """An in-memory, read-only index of :class:`PlaceRecord` rows."""

    def __init__(self, records: Iterable[PlaceRecord]) -> None:
        self._by_code: dict[str, PlaceRecord] = {}
        for record in records:
            if record.code in self._by_code:
                raise ValueError(f"duplicate place code {record.code!r}")
            self._by_code[record.code] = record
        children: dict[str, list[PlaceRecord]] = {}
        for record in self._by_code.values():
            if record.parent_code is not None:
                children.setdefault(record.parent_code, []).append(record)
        self._children = {code: sorted(kids, key=self._sort_key) for code, kids in children.items()}
        self._exact: dict[str, list[_Entry]] = {}
        self._fuzzy_norm: dict[str, list[_Entry]] = {}
        self._fuzzy_skeleton: dict[str, list[_Entry]] = {}
        for record in self._by_code.values():
            seen: set[str] = set()
            for position, text in enumerate((record.name, *record.aliases)):
                norm = normalize_place_text(text)
                if not norm or norm in seen:
                    continue
                seen.add(norm)
                entry = _Entry(norm, _skeleton(norm), text, record, is_name=position == 0)
                self._exact.setdefault(norm, []).append(entry)
                # Fuzzy targets: names, and aliases long enough not to be abbreviations
                # ("TBK", "CIII"); never the country.
                if record.kind is not PlaceKind.COUNTRY and (
                    entry.is_name or _letters(norm) > _ABBREVIATION_LENGTH
                ):
                    self._fuzzy_norm.setdefault(norm, []).append(entry)
                    self._fuzzy_skeleton.setdefault(entry.skel, []).append(entry)
        self._norm_choices: list[str] = list(self._fuzzy_norm)
        self._skeleton_choices: list[str] = list(self._fuzzy_skeleton)

    @classmethod
    def default(cls) -> Gazetteer:
        """The shipped gazetteer, loaded once per process."""
        return _default_gazetteer()

    # -- structure -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._by_code)

    def __iter__(self) -> Iterator[PlaceRecord]:
        return iter(self._by_code.values())

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def get(self, code: str) -> PlaceRecord | None:
        return self._by_code.get(code)

    def children(self, code: str) -> list[PlaceRecord]:
        """Current children (by ``parent_code``), sorted by name; [] for an unknown code."""
        return list(self._children.get(code, ()))

    def descendants(self, code: str) -> list[PlaceRecord]:
        """All current descendants, depth first, each level sorted by name."""
        found: list[PlaceRecord] = []
        stack = list(reversed(self._children.get(code, ())))
        while stack:
            record = stack.pop()
            found.append(record)
            stack.extend(reversed(self._children.get(record.code, ())))
        return found

    def regions(self) -> list[PlaceRecord]:
        """The 19 regions and Bamako district, sorted by name (Bamako first)."""
        return sorted(
            (r for r in self._by_code.values() if r.kind is PlaceKind.REGION),
            key=self._sort_key,
        )

    def ancestors(self, code: str) -> list[PlaceRecord]:
        """Current parent chain, nearest first, up to but excluding the country."""
        chain: list[PlaceRecord] = []
        record = self._by_code.get(code)
        seen = {code}
        while record is not None and record.parent_code is not None:
            parent = self._by_code.get(record.parent_code)
            if parent is None or parent.code in seen or parent.kind is PlaceKind.COUNTRY:
                break
            chain.append(parent)
            seen.add(parent.code)
            record = parent
        return chain

    def region_of(self, code: str) -> PlaceRecord | None:
        """The current region (or Bamako district) containing ``code``, itself if a region."""
        record = self._by_code.get(code)
        if record is not None and record.kind is PlaceKind.REGION:
            return record
        for ancestor in self.ancestors(code):
            if ancestor.kind is PlaceKind.REGION:
                return ancestor
        return None

    def is_within(self, code: str, ancestor_code: str, *, include_former: bool = False) -> bool:
        """True if ``code`` is ``ancestor_code`` or lies below it through current parents.
        With ``include_former``, former parents count too (Douentza cercle is then within
        Mopti region as well as Douentza region). Unknown codes are never within anything."""
        if code not in self._by_code or ancestor_code not in self._by_code:
            return False
        pending = [code]
        seen: set[str] = set()
        while pending:
            current = pending.pop()
            if current == ancestor_code:
                return True
            if current in seen:
                continue
            seen.add(current)
            record = self._by_code.get(current)
            if record is None:
                continue
            if record.parent_code is not None:
                pending.append(record.parent_code)
            if include_former and record.former_parent_code is not None:
                pending.append(record.former_parent_code)
        return False

    # -- matching --------------------------------------------------------------------------

    def resolve(
        self,
        text: str,
        *,
        kinds: Collection[PlaceKind] | None = None,
        within: str | None = None,
        min_confidence: float = 0.75,
    ) -> PlaceMatch | None:
        """The place a short answer names ("Tombouctou", "tbk", "sevare", "commune 6"), or None.

        ``kinds`` restricts the kinds considered; ``within`` restricts to a place and its
        current descendants (``ValueError`` for an unknown code). On equal confidence the more
        general kind wins ("Gao" → Gao region), unless the text names a kind ("cercle de Gao").
        """
        found = self.candidates(
            text, limit=1, kinds=kinds, within=within, min_confidence=min_confidence
        )
        return found[0] if found else None

    def candidates(
        self,
        text: str,
        *,
        limit: int = 5,
        kinds: Collection[PlaceKind] | None = None,
        within: str | None = None,
        min_confidence: float = 0.5,
    ) -> list[PlaceMatch]:
        """Up to ``limit`` distinct places, best first (for "did you mean ...?" menus)."""
        if within is not None and within not in self._by_code:
            raise ValueError(f"unknown place code {within!r}")
        if limit <= 0:
            return []
        query = normalize_place_text(text)
        if not query:
            return []
        floor = max(0.0, min(1.0, min_confidence))
        # A lone common word ("merci", "menace") may name a place exactly, never fuzzily.
        scored = self._score(query, floor, fuzzy=query not in _TEXT_STOP_WORDS)
        implied: set[PlaceKind] = set()
        if not any(s.exact for s in scored.values()):
            stripped, implied = self._strip_generic(query)
            if stripped and stripped != query:
                fuzzy = stripped not in _TEXT_STOP_WORDS
                for code, item in self._score(stripped, floor, fuzzy=fuzzy).items():
                    current = scored.get(code)
                    if current is None or item.confidence > current.confidence:
                        scored[code] = item
        ranked = [
            item
            for item in scored.values()
            if item.confidence >= floor
            and (kinds is None or item.entry.record.kind in kinds)
            and (within is None or self.is_within(item.entry.record.code, within))
        ]
        ranked.sort(key=lambda item: self._rank_key(item, implied))
        return [self._to_match(item) for item in ranked[:limit]]

    def find_in_text(self, text: str, *, min_confidence: float = 0.85) -> PlaceMatch | None:
        """The place a free-text message mentions ("ji te an fe Sevare", "we r in gao now"),
        or None. Exact mentions beat fuzzy ones, then places not introduced as an origin
        ("from", "bora", "venus de") beat those that are, then longer mentions, then earlier
        ones; finally a mentioned place lying inside the chosen one wins ("Faladié, commune 6"
        → Faladié; "commune 6 Bamako" → Commune VI). The country itself is never returned."""
        ranked: list[tuple[tuple[int, int, float, int, int], _Scored]] = []
        for start, stop, tokens, item in self._scan(text, min_confidence):
            origin = any(t in _ORIGIN_CUES for t in tokens[max(0, start - 3) : start])
            length = sum(len(t) for t in tokens[start:stop])
            key = (0 if item.exact else 1, 1 if origin else 0, -item.confidence, -length, start)
            ranked.append((key, item))
        if not ranked:
            return None
        ranked.sort(key=lambda pair: pair[0])
        best_key, best = ranked[0]
        for key, item in ranked[1:]:
            code = item.entry.record.code
            if (
                key[:2] == best_key[:2]
                and code != best.entry.record.code
                and self.is_within(code, best.entry.record.code)
            ):
                best_key, best = key, item
        return self._to_match(best)

    def find_origin_in_text(self, text: str, *, min_confidence: float = 0.85) -> PlaceMatch | None:
        """The place a message introduces as where its sender came from ("we came from
        Douentza, now in Sévaré" → Douentza; "an bora Ménaka" → Ménaka), or None: the mention
        right after an origin cue, exact mentions first, then the longest, then the first."""
        ranked: list[tuple[tuple[int, float, int, int], _Scored]] = []
        for start, stop, tokens, item in self._scan(text, min_confidence):
            if not any(t in _ORIGIN_CUES for t in tokens[max(0, start - 3) : start]):
                continue
            length = sum(len(t) for t in tokens[start:stop])
            ranked.append(((0 if item.exact else 1, -item.confidence, -length, start), item))
        if not ranked:
            return None
        ranked.sort(key=lambda pair: pair[0])
        return self._to_match(ranked[0][1])

    def find_all_in_text(self, text: str, *, min_confidence: float = 0.85) -> list[PlaceMatch]:
        """Every non-overlapping place mention in a free-text message, in reading order
        (same rules as :meth:`find_in_text`)."""
        spans = [
            (start, stop, item) for start, stop, _tokens, item in self._scan(text, min_confidence)
        ]
        spans.sort(key=lambda s: (0 if s[2].exact else 1, -s[2].confidence, s[0] - s[1], s[0]))
        taken: list[tuple[int, int, _Scored]] = []
        for start, stop, item in spans:
            if all(stop <= other[0] or start >= other[1] for other in taken):
                taken.append((start, stop, item))
        taken.sort(key=lambda s: s[0])
        return [self._to_match(item) for _start, _stop, item in taken]

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _sort_key(record: PlaceRecord) -> tuple[str, str]:
        return (normalize_place_text(record.name), record.code)

    @staticmethod
    def _to_match(item: _Scored) -> PlaceMatch:
        return PlaceMatch(
            place=item.entry.record,
            confidence=round(item.confidence, 4),
            matched=item.entry.text,
            exact=item.exact,
        )

    @staticmethod
    def _rank_key(
        item: _Scored, implied: Collection[PlaceKind]
    ) -> tuple[float, int, int, int, str]:
        record = item.entry.record
        return (
            -item.confidence,
            0 if record.kind in implied else 1,
            _kind_rank(record.kind),
            0 if item.entry.is_name else 1,
            record.code,
        )

    @staticmethod
    def _strip_generic(query: str) -> tuple[str, set[PlaceKind]]:
        """Drop leading kind words ("region de", "cercle du", "ville de") except before a
        commune number, and report the kinds they imply."""
        tokens = query.split()
        implied: set[PlaceKind] = set()
        while len(tokens) > 1 and tokens[0] in _GENERIC_WORDS:
            if tokens[0] == "commune" and tokens[1].isdigit():
                break
            kind = _GENERIC_WORDS[tokens[0]]
            if kind is not None:
                implied.add(kind)
            tokens = tokens[1:]
        while len(tokens) > 1 and tokens[-1] in _TRAILING_GENERIC_WORDS:
            implied.add(_TRAILING_GENERIC_WORDS[tokens[-1]])
            tokens = tokens[:-1]
        return " ".join(tokens), implied

    def _score(self, query: str, floor: float, *, fuzzy: bool = True) -> dict[str, _Scored]:
        """Best score per place code for one normalised query."""
        best: dict[str, _Scored] = {}

        def offer(entry: _Entry, confidence: float, exact: bool) -> None:
            code = entry.record.code
            current = best.get(code)
            if (
                current is None
                or confidence > current.confidence
                or (
                    confidence == current.confidence and entry.is_name and not current.entry.is_name
                )
            ):
                best[code] = _Scored(entry, confidence, exact)

        for entry in self._exact.get(query, ()):
            offer(entry, 1.0, True)
        letters = _letters(query)
        if not fuzzy or letters < _MIN_FUZZY_LENGTH:
            return best
        numbers = _digits(query)
        cutoff = 100.0 * floor
        for choice, score, _index in process.extract(
            query,
            self._norm_choices,
            scorer=fuzz.ratio,
            processor=None,
            limit=None,
            score_cutoff=cutoff,
        ):
            if choice == query:
                continue
            penalty = _short_penalty(query, choice)
            if penalty is None:
                continue
            confidence = min(_MAX_FUZZY_CONFIDENCE, float(score) / 100.0 - penalty)
            for entry in self._fuzzy_norm[choice]:
                if _digits(entry.norm) == numbers:
                    offer(entry, max(0.0, confidence), False)
        skeleton = _skeleton(query)
        for choice, score, _index in process.extract(
            skeleton,
            self._skeleton_choices,
            scorer=fuzz.ratio,
            processor=None,
            limit=None,
            score_cutoff=cutoff / _SKELETON_WEIGHT,
        ):
            penalty = _short_penalty(skeleton, choice)
            if penalty is None:
                continue
            confidence = min(
                _MAX_FUZZY_CONFIDENCE, float(score) / 100.0 * _SKELETON_WEIGHT - penalty
            )
            for entry in self._fuzzy_skeleton[choice]:
                if entry.norm != query and _digits(entry.norm) == numbers:
                    offer(entry, max(0.0, confidence), False)
        return best

    def _scan(
        self, text: str, min_confidence: float
    ) -> Iterator[tuple[int, int, Sequence[str], _Scored]]:
        """Candidate mentions in free text: (start, stop, tokens, best match) per n-gram."""
        if not isinstance(text, str):
            raise TypeError(f"expected str, got {type(text).__name__}")
        tokens = _normalize(text, articles=False).split()[:_MAX_TEXT_TOKENS]
        floor = max(0.0, min(1.0, min_confidence))
        cache: dict[str, _Scored | None] = {}
        for start in range(len(tokens)):
            for size in (3, 2, 1):
                stop = start + size
                if stop > len(tokens):
                    continue
                item = self._match_mention(tokens, start, stop, floor, cache)
                if item is not None:
                    yield start, stop, tokens, item

    def _match_mention(
        self,
        tokens: Sequence[str],
        start: int,
        stop: int,
        floor: float,
        cache: dict[str, _Scored | None],
    ) -> _Scored | None:
        words = tokens[start:stop]
        phrase = " ".join(words)
        if len(words) == 1 and phrase in _TEXT_STOP_WORDS:
            return None
        exact = [e for e in self._exact.get(phrase, ()) if e.record.kind is not PlaceKind.COUNTRY]
        if exact:
            level = _AMBIGUOUS_NAMES.get(phrase) if len(words) == 1 else None
            if level is not None and len(tokens) > 1 and not self._has_cue(tokens, start, level):
                return None
            entry = min(exact, key=lambda e: (_kind_rank(e.record.kind), not e.is_name))
            return _Scored(entry, 1.0, True)
        if any(w in _TEXT_STOP_WORDS or any(ch.isdigit() for ch in w) for w in words):
            return None
        if len(phrase.replace(" ", "")) < 6:
            return None
        if phrase not in cache:
            cache[phrase] = self._fuzzy_mention(phrase, floor)
        return cache[phrase]

    def _fuzzy_mention(self, phrase: str, floor: float) -> _Scored | None:
        scored = [
            item
            for item in self._score(phrase, floor).values()
            if not item.exact
            and item.confidence >= floor
            and item.entry.record.kind is not PlaceKind.COUNTRY
            and item.entry.norm[0] == phrase[0]
            and item.entry.norm not in _AMBIGUOUS_NAMES
        ]
        if not scored:
            return None
        return min(scored, key=lambda item: self._rank_key(item, ()))

    @staticmethod
    def _has_cue(tokens: Sequence[str], start: int, level: str) -> bool:
        if start == 0:
            return False
        previous = tokens[start - 1]
        if previous in _STRONG_CUES:
            return True
        if previous in {"de", "du", "d"} and start >= 2 and tokens[start - 2] in _STRONG_CUES:
            return True
        if level == "weak":
            return previous in _WEAK_CUES
        return level == "loose" and previous in _LOOSE_CUES


@functools.cache
def _default_gazetteer() -> Gazetteer:
    return Gazetteer(load_place_records(DEFAULT_PLACES_FILE))
