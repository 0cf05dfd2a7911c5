"""The offline gazetteer: shipped data integrity, normalisation, lookup and free-text search."""

from __future__ import annotations

import csv
import re
import time
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickets.gazetteer import (
    CSV_COLUMNS,
    DEFAULT_PLACES_FILE,
    Gazetteer,
    PlaceKind,
    PlaceMatch,
    PlaceRecord,
    load_place_records,
    normalize_place_text,
)


@pytest.fixture(scope="module")
def gaz() -> Gazetteer:
    return Gazetteer.default()


def by_name(gaz: Gazetteer, name: str, kind: PlaceKind) -> PlaceRecord:
    found = [r for r in gaz if r.name == name and r.kind is kind]
    assert len(found) == 1, (name, kind, found)
    return found[0]


def resolved(gaz: Gazetteer, text: str, **kwargs: object) -> PlaceRecord:
    match = gaz.resolve(text, **kwargs)  # type: ignore[arg-type]
    assert match is not None, text
    return match.place


REGIONS = {
    "Bamako": "ML-BKO",
    "Kayes": "ML-1",
    "Koulikoro": "ML-2",
    "Sikasso": "ML-3",
    "Ségou": "ML-4",
    "Mopti": "ML-5",
    "Tombouctou": "ML-6",
    "Gao": "ML-7",
    "Kidal": "ML-8",
    "Ménaka": "ML-9",
    "Taoudénit": "ML-10",
    "Nioro": None,
    "Kita": None,
    "Dioïla": None,
    "Nara": None,
    "Bougouni": None,
    "Koutiala": None,
    "San": None,
    "Douentza": None,
    "Bandiagara": None,
}

# Every cercle of these regions (pre-2023 cercles, re-attached to the 2023 regions).
ALL_CERCLES = {
    "Gao": {"Gao", "Ansongo", "Bourem"},
    "Tombouctou": {"Tombouctou", "Diré", "Goundam", "Gourma-Rharous", "Niafunké"},
    "Kidal": {"Kidal", "Abeïbara", "Tessalit", "Tin-Essako"},
    "Ménaka": {"Ménaka", "Andéramboukane", "Inékar", "Tidermène"},
    "Taoudénit": {"Taoudénit", "Achouratt", "Al-Ourche", "Araouane", "Boujbeha", "Foum-Elba"},
    "Mopti": {"Mopti", "Djenné", "Ténenkou", "Youwarou"},
    "Douentza": {"Douentza"},
    "Bandiagara": {"Bandiagara", "Bankass", "Koro"},
    "Ségou": {"Ségou", "Barouéli", "Bla", "Macina", "Niono"},
}
# At least these cercles elsewhere.
SOME_CERCLES = {
    "Koulikoro": {"Koulikoro", "Kati", "Kangaba", "Kolokani", "Banamba"},
    "Kayes": {"Kayes", "Bafoulabé", "Kéniéba", "Yélimané"},
    "Sikasso": {"Sikasso", "Kadiolo"},
    "San": {"San", "Tominian"},
    "Nioro": {"Nioro du Sahel", "Diéma"},
    "Kita": {"Kita"},
    "Dioïla": {"Dioïla"},
    "Nara": {"Nara"},
    "Bougouni": {"Bougouni", "Kolondiéba", "Yanfolila"},
    "Koutiala": {"Koutiala", "Yorosso"},
}
# cercle -> (region before the reform / before Ménaka and Taoudénit were split off)
MOVED_CERCLES = {
    "Douentza": "Mopti",
    "Bandiagara": "Mopti",
    "Bankass": "Mopti",
    "Koro": "Mopti",
    "San": "Ségou",
    "Tominian": "Ségou",
    "Ménaka": "Gao",
    "Andéramboukane": "Gao",
    "Inékar": "Gao",
    "Tidermène": "Gao",
    "Taoudénit": "Tombouctou",
    "Achouratt": "Tombouctou",
    "Al-Ourche": "Tombouctou",
    "Araouane": "Tombouctou",
    "Boujbeha": "Tombouctou",
    "Foum-Elba": "Tombouctou",
    "Nioro du Sahel": "Kayes",
    "Diéma": "Kayes",
    "Kita": "Kayes",
    "Dioïla": "Koulikoro",
    "Nara": "Koulikoro",
    "Bougouni": "Sikasso",
    "Kolondiéba": "Sikasso",
    "Yanfolila": "Sikasso",
    "Koutiala": "Sikasso",
    "Yorosso": "Sikasso",
}

# Misspellings deliberately NOT in places.csv: fuzzy matching must generalise beyond aliases.
HELD_OUT = {
    "Tombouctouu": "Tombouctou",
    "segoou": "Ségou",
    "Mopty": "Mopti",
    "Kidall": "Kidal",
    "Gaoo": "Gao",
    "bankas": "Bankass",
    "Djene": "Djenné",
    "Tinbouktou": "Tombouctou",
    "Niafunkee": "Niafunké",
    "Ansongoo": "Ansongo",
}


# ---------------------------------------------------------------------------------------------
# The shipped data


def test_csv_header_and_encoding() -> None:
    with DEFAULT_PLACES_FILE.open(encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
    assert tuple(header) == CSV_COLUMNS


def test_single_country_row(gaz: Gazetteer) -> None:
    countries = [r for r in gaz if r.kind is PlaceKind.COUNTRY]
    assert [(r.code, r.name, r.parent_code) for r in countries] == [("ML", "Mali", None)]


def test_all_regions_and_bamako(gaz: Gazetteer) -> None:
    regions = gaz.regions()
    assert {r.name: r.iso_code for r in regions} == REGIONS
    assert regions[0].name == "Bamako"
    assert all(r.parent_code == "ML" and r.former_parent_code is None for r in regions)
    bamako = by_name(gaz, "Bamako", PlaceKind.REGION)
    assert bamako.code == "ML00"
    assert {"District de Bamako", "BKO", "Bamakɔ"} <= set(bamako.aliases)


@pytest.mark.parametrize("region", sorted(ALL_CERCLES))
def test_every_cercle_of_listed_regions(gaz: Gazetteer, region: str) -> None:
    parent = by_name(gaz, region, PlaceKind.REGION)
    cercles = {r.name for r in gaz.children(parent.code) if r.kind is PlaceKind.CERCLE}
    assert cercles == ALL_CERCLES[region]


@pytest.mark.parametrize("region", sorted(SOME_CERCLES))
def test_cercles_of_other_regions(gaz: Gazetteer, region: str) -> None:
    parent = by_name(gaz, region, PlaceKind.REGION)
    cercles = {r.name for r in gaz.children(parent.code) if r.kind is PlaceKind.CERCLE}
    assert SOME_CERCLES[region] <= cercles


@pytest.mark.parametrize(("cercle", "former_region"), sorted(MOVED_CERCLES.items()))
def test_former_parents_of_moved_cercles(gaz: Gazetteer, cercle: str, former_region: str) -> None:
    record = by_name(gaz, cercle, PlaceKind.CERCLE)
    former = by_name(gaz, former_region, PlaceKind.REGION)
    assert record.former_parent_code == former.code
    assert record.parent_code != former.code


def test_unmoved_cercles_have_no_former_parent(gaz: Gazetteer) -> None:
    for record in gaz:
        if record.kind is PlaceKind.CERCLE and record.name not in MOVED_CERCLES:
            assert record.former_parent_code is None, record


def test_bamako_communes_and_quarters(gaz: Gazetteer) -> None:
    communes = gaz.children("ML00")
    assert [c.name for c in communes] == [
        f"Commune {n}" for n in ("I", "II", "III", "IV", "V", "VI")
    ]
    assert [c.code for c in communes] == [f"ML000{n}" for n in range(1, 7)]
    assert all(c.kind is PlaceKind.COMMUNE for c in communes)
    expected = {
        "Banconi": "Commune I",
        "Faladié": "Commune VI",
        "Sénou": "Commune VI",
        "Sogoniko": "Commune VI",
        "Magnambougou": "Commune VI",
        "Hamdallaye": "Commune IV",
        "Lafiabougou": "Commune IV",
        "Djicoroni Para": "Commune IV",
        "Kalaban Coura": "Commune V",
    }
    for site, commune in expected.items():
        record = by_name(gaz, site, PlaceKind.SITE)
        parent = gaz.get(record.parent_code or "")
        assert parent is not None and parent.name == commune, site


def test_places_outside_bamako(gaz: Gazetteer) -> None:
    kati = by_name(gaz, "Kati", PlaceKind.CERCLE)
    for name in ("Niamana", "Kalaban Coro"):
        record = resolved(gaz, name)
        assert record.name == name
        assert gaz.is_within(record.code, kati.code)
        assert gaz.is_within(record.code, "ML02")
        assert not gaz.is_within(record.code, "ML00")
    sevare = by_name(gaz, "Sévaré", PlaceKind.SITE)
    assert gaz.is_within(sevare.code, by_name(gaz, "Mopti", PlaceKind.CERCLE).code)
    assert [a.code for a in gaz.ancestors(sevare.code)] == ["ML0501001", "ML0501", "ML05"]


@pytest.mark.parametrize(
    "message,place,region",
    [
        # Bamako neighbourhoods: the district, not a region of the same name elsewhere
        ("pas d eau a sikoroni", "Sikoroni", "Bamako"),
        ("on est a lassa depuis hier", "Lassa", "Bamako"),
        ("quartier garantiguibougou commune 5", "Garantiguibougou", "Bamako"),
        ("nous sommes a att bougou", "ATTbougou", "Bamako"),
        ("je suis a sogonafing", "Sogonafing", "Bamako"),
        # communes just outside Bamako: Koulikoro region
        ("site de baguineda", "Baguinéda-Camp", "Koulikoro"),
        ("on vit a moribabougou", "Moribabougou", "Koulikoro"),
        # Mopti town's quarters and the communes around Sévaré
        ("les enfants sont malades a komoguel", "Komoguel", "Mopti"),
        ("quartier poudriere a sevare", "Poudrière", "Mopti"),
        ("site de deplaces de fatoma", "Fatoma", "Mopti"),
        ("on est a somadougou pres de sevare", "Somadougou", "Mopti"),
    ],
)
def test_neighbourhoods_sites_and_communes_resolve_to_their_region(
    gaz: Gazetteer, message: str, place: str, region: str
) -> None:
    match = gaz.find_in_text(message)
    assert match is not None, message
    assert match.place.name == place
    found = gaz.region_of(match.place.code)
    assert found is not None and found.name == region


CODE_PATTERNS = {
    PlaceKind.COUNTRY: r"ML",
    PlaceKind.REGION: r"ML\d{2}",
    PlaceKind.CERCLE: r"ML\d{4}",
    PlaceKind.COMMUNE: r"ML(\d{4}|\d{7})",  # Bamako's communes sit directly under the district
    PlaceKind.SITE: r"ML\d{7}",
}


def test_code_format_is_stable(gaz: Gazetteer) -> None:
    codes = [r.code for r in gaz]
    assert len(codes) == len(set(codes))
    for record in gaz:
        assert re.fullmatch(CODE_PATTERNS[record.kind], record.code), record
        if len(record.code) == 6:  # cercles, and Bamako's communes: region code + 2 digits
            assert record.code[:4] == record.parent_code
        if len(record.code) == 9:  # communes and sites: their cercle's code + 3 digits
            chain = [record.code, *(a.code for a in gaz.ancestors(record.code))]
            assert record.code[:6] in chain[1:], record
    regions = sorted(r.code for r in gaz.regions())
    assert regions == [f"ML{n:02d}" for n in range(20)]


def test_iso_codes_unique_and_only_on_country_and_old_regions(gaz: Gazetteer) -> None:
    iso = [r.iso_code for r in gaz if r.iso_code is not None]
    assert len(iso) == len(set(iso)) == 12


def test_every_place_reaches_the_country(gaz: Gazetteer) -> None:
    for record in gaz:
        if record.kind is PlaceKind.COUNTRY:
            continue
        chain = gaz.ancestors(record.code)
        top = chain[-1] if chain else record
        assert top.kind is PlaceKind.REGION and top.parent_code == "ML", record


def test_aliases_normalise_and_fit_the_database(gaz: Gazetteer) -> None:
    for record in gaz:
        assert record.name == record.name.strip() and len(record.name) <= 120
        assert len(record.code) <= 32
        assert len(set(record.aliases)) == len(record.aliases)
        for alias in record.aliases:
            assert normalize_place_text(alias), (record.code, alias)
            assert len(alias) <= 120
        assert record.search_forms[0] == normalize_place_text(record.name)
        assert len(set(record.search_forms)) == len(record.search_forms)


def test_shared_spellings_only_between_nested_places(gaz: Gazetteer) -> None:
    """Two places may share a spelling only if one contains the other (Gao region, cercle and
    town); anything else is a data mistake that would make a name ambiguous."""
    owners: dict[str, set[str]] = defaultdict(set)
    for record in gaz:
        for form in record.search_forms:
            owners[form].add(record.code)
    for form, codes in owners.items():
        ordered = sorted(codes, key=len)
        for inner in ordered[1:]:
            assert gaz.is_within(inner, ordered[0]), (form, codes)


def test_coordinates_are_in_mali(gaz: Gazetteer) -> None:
    with_coordinates = [r for r in gaz if r.latitude is not None]
    assert len(with_coordinates) > 80
    for record in with_coordinates:
        assert record.longitude is not None
        assert 10.0 <= record.latitude <= 25.1, record  # type: ignore[operator]
        assert -12.3 <= record.longitude <= 4.3, record
    for region in gaz.regions():
        assert region.latitude is not None, region


def test_held_out_spellings_are_not_in_the_data() -> None:
    text = normalize_place_text(DEFAULT_PLACES_FILE.read_text(encoding="utf-8"))
    for spelling in HELD_OUT:
        assert f" {normalize_place_text(spelling)} " not in f" {text} ", spelling


# ---------------------------------------------------------------------------------------------
# Loading and validation


def write_csv(path: Path, rows: list[str], header: str = ",".join(CSV_COLUMNS)) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


GOOD_ROWS = [
    "ML,Mali,country,,,ML,,17.5,-4.0",
    "ML05,Mopti,region,ML,,ML-5,Mopiti,14.48,-4.18",
    "ML18,Douentza,region,ML,,,,15.0,-2.9",
    "ML1801,Douentza,cercle,ML18,ML05,,Douanza|Douanza,,",
]


def test_load_small_file(tmp_path: Path) -> None:
    records = load_place_records(write_csv(tmp_path / "p.csv", GOOD_ROWS))
    assert [r.code for r in records] == ["ML", "ML05", "ML18", "ML1801"]
    douentza = records[3]
    assert douentza.aliases == ("Douanza",)  # duplicates dropped
    assert (douentza.parent_code, douentza.former_parent_code) == ("ML18", "ML05")
    assert (douentza.latitude, douentza.longitude) == (None, None)
    small = Gazetteer(records)
    assert small.is_within("ML1801", "ML18")
    assert not small.is_within("ML1801", "ML05")
    assert small.is_within("ML1801", "ML05", include_former=True)


@pytest.mark.parametrize(
    ("bad_row", "message"),
    [
        ("ML05,Other,region,ML,,,,,", "duplicate code 'ML05'"),
        ("ML1802,Boni,site,ML99,,,,,", "'ML99' of ML1802 does not exist"),
        ("ML1802,Boni,site,ML18,ML98,,,,", "'ML98' of ML1802 does not exist"),
        ("ML1802,Boni,village,ML18,,,,,", "unknown kind 'village'"),
        ("ML1802,Boni,site,,,,,,", "has no parent_code"),
        ("ML1802,Boni,region,ML1801,,,,,", "must be a more general kind"),
        ("ML1802,Boni,site,ML18,,,,north,-2", "latitude 'north' is not a number"),
        ("ML1802,Boni,site,ML18,,,,15.0,", "both latitude and longitude"),
        ("ML1802,Boni,site,ML18,,,,95,1", "out of range"),
        ("ML1802,Boni,site,ML18,,,!!!,,", "normalises to nothing"),
        ("ML1802,,site,ML18,,,,,", "no usable name"),
        ("ML1802,Boni,site,ML18,,ML-5,,,", "duplicate iso_code"),
        ("ML1802,Boni,site,ML18", "expected 9 columns"),
    ],
)
def test_load_rejects_bad_rows_naming_the_line(tmp_path: Path, bad_row: str, message: str) -> None:
    path = write_csv(tmp_path / "p.csv", [*GOOD_ROWS, bad_row])
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        load_place_records(path)
    assert f"p.csv:{len(GOOD_ROWS) + 2}:" in str(error.value)


def test_load_rejects_wrong_header(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "p.csv", GOOD_ROWS, header="code,name,kind")
    with pytest.raises(ValueError, match=re.escape("p.csv:1: header")):
        load_place_records(path)


def test_gazetteer_rejects_duplicate_codes() -> None:
    record = load_place_records()[0]
    with pytest.raises(ValueError, match="duplicate"):
        Gazetteer([record, record])


def test_default_is_cached() -> None:
    assert Gazetteer.default() is Gazetteer.default()


# ---------------------------------------------------------------------------------------------
# Normalisation


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Ségou", "segou"),
        ("  TOMBOUCTOU  ", "tombouctou"),
        ("Gourma-Rharous", "gourma rharous"),
        ("Aguel'hoc", "aguel hoc"),
        ("Bamakɔ", "bamako"),
        ("Maɲambugu", "manyambugu"),
        ("Kɛnɛ ŋaa", "kene ngaa"),
        ("Dioïla", "dioila"),
        ("Commune VI", "commune 6"),
        ("commune i", "commune 1"),
        ("Commune un", "commune 1"),
        ("commune  six", "commune 6"),
        ("c1", "commune 1"),
        ("C6", "commune 6"),
        ("cne 5", "commune 5"),
        ("commune4", "commune 4"),
        ("6ème commune", "commune 6"),
        ("1ère commune de Bamako", "commune 1 de bamako"),
        ("commune 10", "commune 10"),
        ("commune de Kati", "commune de kati"),
        ("ci", "ci"),
        ("", ""),
        ("\x00\t\n", ""),
    ],
)
def test_normalize_examples(raw: str, expected: str) -> None:
    assert normalize_place_text(raw) == expected


TEXTS = st.one_of(
    st.text(),
    st.text(alphabet="abcdeiouvxyzéèëïɛɔɲŋÉ -'.,0123456789CIVcommune\x00"),
    st.lists(
        st.sampled_from(
            [
                *("commune", "com", "cne", "c", "i", "vi", "un", "une", "6", "1ere", "premiere"),
                *("de", "Sévaré", "🙏", "تمبكتو", "\x00", "ﬃ", "ẞ", "İ", "ǅ", "ⅵ", "²"),
            ]
        ),
        max_size=8,
    ).map(" ".join),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS)
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize_place_text(text)
    assert normalize_place_text(once) == once
    assert once == once.strip() and "  " not in once


# ---------------------------------------------------------------------------------------------
# resolve()

REQUIRED = {
    "tombouctou": ("Tombouctou", PlaceKind.REGION),
    "Timbuktu": ("Tombouctou", PlaceKind.REGION),
    "TOMBOUCTOU": ("Tombouctou", PlaceKind.REGION),
    "tombuctu": ("Tombouctou", PlaceKind.REGION),
    "tbk": ("Tombouctou", PlaceKind.REGION),
    "sevare": ("Sévaré", PlaceKind.SITE),
    "Sévaré": ("Sévaré", PlaceKind.SITE),
    "gaoo": ("Gao", PlaceKind.REGION),
    "Gao ": ("Gao", PlaceKind.REGION),
    "menaka": ("Ménaka", PlaceKind.REGION),
    "segou": ("Ségou", PlaceKind.REGION),
    "djenne": ("Djenné", PlaceKind.CERCLE),
    "niafunke": ("Niafunké", PlaceKind.CERCLE),
    "rharous": ("Gourma-Rharous", PlaceKind.CERCLE),
    "bamako": ("Bamako", PlaceKind.REGION),
    "commune 6": ("Commune VI", PlaceKind.COMMUNE),
    "commune VI": ("Commune VI", PlaceKind.COMMUNE),
    "banconi": ("Banconi", PlaceKind.SITE),
    "faladie": ("Faladié", PlaceKind.SITE),
    "niamana": ("Niamana", PlaceKind.SITE),
    "douentza": ("Douentza", PlaceKind.REGION),
    "Bandjagara": ("Bandiagara", PlaceKind.REGION),
    "kidal": ("Kidal", PlaceKind.REGION),
    "Mopti": ("Mopti", PlaceKind.REGION),
    "Kati": ("Kati", PlaceKind.CERCLE),
    "Nioro du Sahel": ("Nioro", PlaceKind.REGION),
    "District de Bamako": ("Bamako", PlaceKind.REGION),
    "BKO": ("Bamako", PlaceKind.REGION),
    "Segu": ("Ségou", PlaceKind.REGION),
    "Sikaso": ("Sikasso", PlaceKind.REGION),
    "Koutyala": ("Koutiala", PlaceKind.REGION),
    "Douanza": ("Douentza", PlaceKind.REGION),
    "Tombouktou": ("Tombouctou", PlaceKind.REGION),
    "Kayi": ("Kayes", PlaceKind.REGION),
    "Taoudeni": ("Taoudénit", PlaceKind.REGION),
    "Aguelhoc": ("Aguelhok", PlaceKind.COMMUNE),
    "Lere": ("Léré", PlaceKind.COMMUNE),
    "Kalabancoro": ("Kalaban Coro", PlaceKind.COMMUNE),
    "Kalaban Coura": ("Kalaban Coura", PlaceKind.SITE),
}


@pytest.mark.parametrize(("text", "expected"), sorted(REQUIRED.items()))
def test_required_resolutions(gaz: Gazetteer, text: str, expected: tuple[str, PlaceKind]) -> None:
    match = gaz.resolve(text)
    assert match is not None, text
    assert (match.place.name, match.place.kind) == expected
    assert 0.75 <= match.confidence <= 1.0


@pytest.mark.parametrize(("text", "expected"), sorted(HELD_OUT.items()))
def test_held_out_misspellings_resolve(gaz: Gazetteer, text: str, expected: str) -> None:
    match = gaz.resolve(text)
    assert match is not None, text
    assert match.place.name == expected
    assert not match.exact and match.confidence < 1.0


@pytest.mark.parametrize(
    "text",
    [
        *("", "   ", "asdfgh", "bonjour", "merci", "eau", "ji", "an", "help", "menace", "sang"),
        *("commune 7", "commune", "xyz", "!!!", "🙏🙏", "svp", "aide", "qwertyuiop", "12345"),
    ],
)
def test_rejections(gaz: Gazetteer, text: str) -> None:
    assert gaz.resolve(text) is None


def test_exact_matches_have_full_confidence(gaz: Gazetteer) -> None:
    match = gaz.resolve("Timbuktu")
    assert match == PlaceMatch(gaz.get("ML06"), 1.0, "Timbuktu", True)  # type: ignore[arg-type]
    fuzzy = gaz.resolve("Tombouctouu")
    assert fuzzy is not None and not fuzzy.exact and 0.75 <= fuzzy.confidence < 1.0


def test_every_name_resolves_to_itself_or_a_namesake(gaz: Gazetteer) -> None:
    for record in gaz:
        match = gaz.resolve(record.name)
        assert match is not None and match.exact, record
        assert normalize_place_text(match.place.name) == normalize_place_text(record.name) or (
            gaz.is_within(record.code, match.place.code)
        ), (record, match)
        only_kind = gaz.resolve(record.name, kinds=[record.kind], within=record.code)
        assert only_kind is not None and only_kind.place == record


def test_every_alias_resolves_exactly(gaz: Gazetteer) -> None:
    for record in gaz:
        for alias in record.aliases:
            match = gaz.resolve(alias)
            assert match is not None and match.exact, (record.code, alias)
            assert normalize_place_text(alias) in match.place.search_forms


def test_more_general_kind_wins_ties(gaz: Gazetteer) -> None:
    assert resolved(gaz, "gao").code == "ML07"
    assert resolved(gaz, "gao", kinds=[PlaceKind.CERCLE]).code == "ML0701"
    assert resolved(gaz, "gao", kinds={PlaceKind.COMMUNE}).code == "ML0701001"
    assert resolved(gaz, "cercle de Gao").code == "ML0701"
    assert resolved(gaz, "Gao ville").code == "ML0701001"
    assert resolved(gaz, "Mopti ville").code == "ML0501001"
    assert resolved(gaz, "region de mopti").code == "ML05"
    assert resolved(gaz, "Région de Ségou").code == "ML04"
    assert resolved(gaz, "commune de Kati").code == "ML0202001"
    assert [m.place.code for m in gaz.candidates("gao", limit=3)] == [
        "ML07",
        "ML0701",
        "ML0701001",
    ]


@pytest.mark.parametrize(
    "text",
    [
        *("commune 6", "Commune VI", "commune six", "c6", "C6", "CVI", "cne 6", "6eme commune"),
        *("6ème commune", "sixième commune", "Commune 6 Bamako", "commune VI bamako"),
    ],
)
def test_bamako_commune_spellings(gaz: Gazetteer, text: str) -> None:
    assert resolved(gaz, text).code == "ML0006"


def test_commune_numbers_never_fuzzy_match(gaz: Gazetteer) -> None:
    for number in range(1, 7):
        assert resolved(gaz, f"commune {number}").code == f"ML000{number}"
    assert gaz.resolve("commune 7") is None
    assert gaz.resolve("commune 16") is None


def test_within_and_kinds_filters(gaz: Gazetteer) -> None:
    assert resolved(gaz, "niamana", within="ML02").code == "ML0202003"
    assert gaz.resolve("niamana", within="ML00") is None
    assert resolved(gaz, "faladie", within="ML00").name == "Faladié"
    assert gaz.resolve("sevare", kinds=[PlaceKind.REGION]) is None
    assert resolved(gaz, "mopti", within="ML0501").code == "ML0501"
    with pytest.raises(ValueError, match="unknown place code"):
        gaz.resolve("gao", within="ML99")


def test_candidates_are_distinct_and_sorted(gaz: Gazetteer) -> None:
    found = gaz.candidates("kalaban", limit=5)
    assert {m.place.name for m in found} >= {"Kalaban Coro", "Kalaban Coura"}
    assert len({m.place.code for m in found}) == len(found)
    assert [m.confidence for m in found] == sorted((m.confidence for m in found), reverse=True)
    assert gaz.candidates("gao", limit=0) == []


def test_resolve_is_fast(gaz: Gazetteer) -> None:
    queries = [*REQUIRED, *HELD_OUT, "asdfgh", "bonjour", "commune 7", "Niono"] * 10
    started = time.perf_counter()
    for query in queries:
        gaz.resolve(query)
    average = (time.perf_counter() - started) / len(queries)
    assert average < 0.001, f"{average * 1000:.3f} ms per resolve()"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS)
def test_resolve_never_raises_and_confidence_is_bounded(text: str) -> None:
    gaz = Gazetteer.default()
    match = gaz.resolve(text)
    if match is not None:
        assert 0.0 <= match.confidence <= 1.0
        assert match.exact == (match.confidence == 1.0)
    for candidate in gaz.candidates(text, min_confidence=0.0):
        assert 0.0 <= candidate.confidence <= 1.0
    found = gaz.find_in_text(text)
    assert found is None or 0.85 <= found.confidence <= 1.0


# ---------------------------------------------------------------------------------------------
# Hierarchy helpers


def test_douentza_region_and_cercle(gaz: Gazetteer) -> None:
    region = resolved(gaz, "douentza")
    cercle = resolved(gaz, "douentza", kinds=[PlaceKind.CERCLE])
    assert (region.code, cercle.code) == ("ML18", "ML1801")
    assert gaz.is_within(cercle.code, region.code)
    assert not gaz.is_within(cercle.code, "ML05")
    assert gaz.is_within(cercle.code, "ML05", include_former=True)
    hombori = resolved(gaz, "Hombori")
    assert gaz.is_within(hombori.code, "ML18")
    assert gaz.is_within(hombori.code, "ML05", include_former=True)
    assert gaz.region_of(hombori.code) == region
    assert gaz.region_of("ML18") == region
    assert gaz.region_of("ML") is None


def test_is_within_edge_cases(gaz: Gazetteer) -> None:
    assert gaz.is_within("ML07", "ML07")
    assert gaz.is_within("ML07", "ML")
    assert not gaz.is_within("ML07", "ML0701")
    assert not gaz.is_within("nope", "ML")
    assert not gaz.is_within("ML07", "nope")


def test_ancestors_children_get(gaz: Gazetteer) -> None:
    assert [a.code for a in gaz.ancestors("ML0006001")] == ["ML0006", "ML00"]
    assert gaz.ancestors("ML07") == []
    assert gaz.ancestors("nope") == []
    assert gaz.get("nope") is None
    assert gaz.children("nope") == []
    gao = [c.name for c in gaz.children("ML07")]
    assert gao == sorted(gao, key=normalize_place_text)
    assert "ML0006001" in {d.code for d in gaz.descendants("ML00")}
    assert len(gaz) == len(list(gaz)) and "ML07" in gaz


# ---------------------------------------------------------------------------------------------
# find_in_text()

IN_TEXT = {
    "pa d'eau potable ici a sevare depuis lundi": "Sévaré",
    "ji te an fe Sevare": "Sévaré",
    "we are 7 people in timbuktu": "Tombouctou",
    "an be gao": "Gao",
    "nous sommes a tombouctu depuis lundi": "Tombouctou",
    "we r in gao now": "Gao",
    "Nous sommes à Ménaka, pas de bâche": "Ménaka",
    "an be Bamakɔ commune 6": "Commune VI",
    "nous sommes en c6 a faladie": "Faladié",
    "an bora Léré, an be Mbera sisan": "Léré",
    "an bora Lere an be Mopti": "Mopti",
    "venus de Tombouctou, maintenant a Segou": "Ségou",
    "Kati": "Kati",
    "an be kati": "Kati",
    "we are in San": "San",
    "cercle de Diré": "Diré",
    "an be Niamana": "Niamana",
    "mogo 12 be Kalabancoro": "Kalaban Coro",
    "ANSONGO: pas de soins": "Ansongo",
}


@pytest.mark.parametrize(("text", "expected"), sorted(IN_TEXT.items()))
def test_find_in_text(gaz: Gazetteer, text: str, expected: str) -> None:
    match = gaz.find_in_text(text)
    assert match is not None, text
    assert match.place.name == expected


NO_PLACE = [
    "bonjour svp aide",
    "an ye mogo 7 ye",
    "an mago be ji la",
    "ji te yen",
    "an deme kosebe",
    "muso konoma bana",
    "a san",
    "a be san",
    "a bla",
    "bla bla bla",
    "a koro",
    "je veux vous dire merci",
    "il faut le dire au chef",
    "celle ci est bonne",
    "la commune une fois de plus",
    "menace de mort contre ma famille",
    "les gosses sont malades",
    "help we need water",
    "merci beaucoup pour votre aide",
    "an ni ce, aw ni ce",
    "denmisenw te dumuni soro",
    "bonne annee a tous",
    "je suis au mali",
    "lere 5 la",
    "",
    "🙏🙏🙏",
]


@pytest.mark.parametrize("text", NO_PLACE)
def test_find_in_text_ignores_ordinary_words(gaz: Gazetteer, text: str) -> None:
    assert gaz.find_in_text(text) is None


def test_find_all_in_text_in_reading_order(gaz: Gazetteer) -> None:
    found = gaz.find_all_in_text("an bora Tombouctou, an be Sevare, commune 6 a bamako")
    assert [m.place.name for m in found] == ["Tombouctou", "Sévaré", "Commune VI", "Bamako"]
    joined = gaz.find_all_in_text("commune 6 bamako")  # one alias: "Commune VI Bamako"
    assert [m.place.name for m in joined] == ["Commune VI"]
    assert gaz.find_all_in_text("bonjour") == []
    longest = gaz.find_all_in_text("nous sommes a Gourma Rharous")
    assert [m.place.name for m in longest] == ["Gourma-Rharous"]


def test_find_in_text_handles_long_messages(gaz: Gazetteer) -> None:
    text = "bonjour nous sommes fatigues " * 150 + " an be sevare"
    started = time.perf_counter()
    gaz.find_in_text(text)
    assert time.perf_counter() - started < 1.0
