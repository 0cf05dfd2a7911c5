"""GSM-7 measurement, transliteration, keywords and catalogs (pure functions)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.gsm7 import GSM7_ALL, GSM7_EXTENSION, is_gsm7, measure, to_gsm7
from gateway.i18n import CATALOG_DIR, translate
from gateway.keywords import KeywordAction, match_keyword
from models.enums import MessageEncoding

FRENCH = (
    "Bonjour, votre demande T-4821 a été reçue. Une équipe de l'OIM passera à Sévaré "
    "demain matin pour la distribution de bâches et de couvertures. Gardez ce numéro."
)
BAMBARA = (
    "I ni ce. An ye i ka cikan sɔrɔ. Dɔgɔtɔrɔ bɛ na Sevare sini sɔgɔma. "
    "Aw ye a lajɛ ko den misɛnw ka ji saniyalen min. Aw ni ce."
)


def test_plain_gsm7_limits() -> None:
    assert measure("a" * 160).segments == 1
    assert measure("a" * 161).segments == 2
    assert measure("a" * 306).segments == 2
    assert measure("a" * 307).segments == 3
    assert measure("").segments == 1


def test_extension_characters_cost_two_and_are_never_split() -> None:
    assert measure("€" * 80).units == 160
    assert measure("€" * 80).segments == 1
    assert measure("€" * 81).segments == 2
    # 152 septets then an escape pair: the pair must move whole to the second part.
    body = "a" * 152 + "€" + "b" * 152
    info = measure(body)
    assert info.units == 306
    assert info.segments == 3  # a naive 153-septet cut would say 2 and split the pair


def test_ucs2_limits_and_surrogate_pairs() -> None:
    assert measure("ê" * 70) == measure("ê" * 70)
    assert measure("ê" * 70).encoding == MessageEncoding.UCS2
    assert measure("ê" * 70).segments == 1
    assert measure("ê" * 71).segments == 2
    assert measure("ê" * 134).segments == 2
    assert measure("ê" * 135).segments == 3
    assert measure("😀" * 35).segments == 1
    assert measure("😀" * 36).segments == 2
    assert measure("a" * 66 + "😀" + "b" * 66).segments == 3  # the pair is not cut


def test_french_sample_fits_gsm7_after_transliteration() -> None:
    raw = measure(FRENCH)
    assert len(FRENCH) == 160
    assert raw.encoding == MessageEncoding.UCS2  # "ç" and "â" force UCS-2: 160/67 → 3 parts
    assert raw.segments == 3
    text = to_gsm7(FRENCH)
    assert "bâches" not in text and "baches" in text
    assert "été reçue" not in text and "été recue" in text  # é stays, ç → c
    info = measure(text)
    assert info.encoding == MessageEncoding.GSM7
    assert info.segments == 1  # the same words in one SMS instead of three


def test_bambara_sample_fits_gsm7_after_transliteration() -> None:
    raw = measure(BAMBARA)
    assert raw.encoding == MessageEncoding.UCS2
    assert raw.segments == 2
    text = to_gsm7(BAMBARA)
    assert "soro" in text and "Dogotoro" in text and "laje" in text
    assert "misenw" in text
    info = measure(text)
    assert info.encoding == MessageEncoding.GSM7
    assert info.segments == 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ê", "e"),
        ("ç", "c"),
        ("œuvre", "oeuvre"),
        ("À", "A"),
        ("ɛ", "e"),
        ("ɔ", "o"),
        ("ɲ", "ny"),
        ("ŋ", "ng"),
        ("«oui»", '"oui"'),
        ("l’eau", "l'eau"),
        ("a – b — c", "a - b - c"),
        ("Ç", "Ç"),
        ("é è à ù", "é è à ù"),
        ("ɛ̀", "e"),
    ],
)
def test_transliteration_table(raw: str, expected: str) -> None:
    assert to_gsm7(raw) == expected


def test_scripts_without_equivalent_are_kept() -> None:
    for text in ("مرحبا", "ⵜⴰⵎⴰⵣⵉⵖⵜ", "😀"):
        assert to_gsm7(text) == text


@given(st.text(alphabet=st.sampled_from(sorted(GSM7_ALL)), max_size=600))
def test_gsm7_segments_agree_with_a_reference_packer(body: str) -> None:
    info = measure(body)
    assert info.encoding == MessageEncoding.GSM7
    units = sum(2 if c in GSM7_EXTENSION else 1 for c in body)
    assert info.units == units
    if units <= 160:
        assert info.segments == 1
    else:
        parts, used = 1, 0
        for char in body:
            cost = 2 if char in GSM7_EXTENSION else 1
            if used + cost > 153:
                parts, used = parts + 1, 0
            used += cost
        assert info.segments == parts
        assert (units + 152) // 153 <= info.segments <= (units + 152) // 153 + units // 153


@given(st.text(max_size=300))
def test_transliteration_never_grows_the_cost_of_gsm_text(body: str) -> None:
    if is_gsm7(body):
        assert to_gsm7(body) == body


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("STOP", KeywordAction.OPT_OUT),
        ("stop", KeywordAction.OPT_OUT),
        ("  Arrêt ! ", KeywordAction.OPT_OUT),
        ("ARRETE", KeywordAction.OPT_OUT),
        ("a dabila", KeywordAction.OPT_OUT),
        ("Dabila.", KeywordAction.OPT_OUT),
        ("unsubscribe", KeywordAction.OPT_OUT),
        ("Stopall", KeywordAction.OPT_OUT),
        ("start", KeywordAction.OPT_IN),
        ("Démarrer", KeywordAction.OPT_IN),
        ("UNSTOP", KeywordAction.OPT_IN),
    ],
)
def test_keywords_match_whole_message(text: str, action: KeywordAction) -> None:
    match = match_keyword(text)
    assert match is not None and match.action == action


@pytest.mark.parametrize("text", ["stop the shooting", "arret de bus", "", "STOPPED", "start ?x"])
def test_keywords_do_not_match_sentences(text: str) -> None:
    assert match_keyword(text) is None


def test_catalogs_have_every_key_in_every_language_within_one_gsm7_sms() -> None:
    catalogs = {p.stem: json.loads(p.read_text()) for p in CATALOG_DIR.glob("*.json")}
    assert set(catalogs) == {"fr", "bm", "en"}
    keys = set(catalogs["fr"])
    for language, entries in catalogs.items():
        assert set(entries) == keys, language
        for key, text in entries.items():
            info = measure(text)
            assert info.encoding == MessageEncoding.GSM7, (language, key)
            assert info.segments == 1, (language, key)
            assert text.isascii(), (language, key)


def test_translate_falls_back_to_french() -> None:
    assert translate("opt_out.confirmation", "bm").startswith("Deme: an tena")
    assert translate("opt_out.confirmation", None) == translate("opt_out.confirmation", "fr")
    with pytest.raises(KeyError):
        translate("no.such.key", "fr")
