"""The bot's message catalog (responses in domain.yml, labels in actions/labels.yml): every
reply exists in fr/bm/en, fits one SMS (<=160 chars with realistic values) and is GSM-7 safe."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

BOT_DIR = Path(__file__).resolve().parent.parent
DOMAIN = yaml.safe_load((BOT_DIR / "domain.yml").read_text(encoding="utf-8"))
LABELS = yaml.safe_load((BOT_DIR / "actions" / "labels.yml").read_text(encoding="utf-8"))

# GSM 03.38 basic character set (no escape table characters needed for our texts)
GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
PLACEHOLDERS = {
    "ref": "T-7K2Q9",
    "size": "99",
    "place": "Gourma-Rharous",
    "tickets": "x" * 130,  # ActionTicketStatus keeps the list within 130 characters
}


def variants():
    for name, items in DOMAIN["responses"].items():
        for item in items:
            langs = [c["value"] for c in item.get("condition", []) if c.get("name") == "lang"]
            yield name, (langs[0] if langs else "fr"), item["text"]


@pytest.mark.parametrize("name,lang,text", list(variants()))
def test_reply_fits_one_gsm7_sms(name, lang, text):
    filled = re.sub(r"\{(\w+)\}", lambda m: PLACEHOLDERS[m.group(1)], text)
    assert len(filled) <= 160, f"{name}/{lang} is {len(filled)} chars"
    bad = sorted({c for c in filled if c not in GSM7})
    assert not bad, f"{name}/{lang} has non GSM-7 characters {bad}"


def test_every_response_in_three_languages():
    for name, items in DOMAIN["responses"].items():
        langs = set()
        for item in items:
            conds = [c["value"] for c in item.get("condition", []) if c.get("name") == "lang"]
            langs.add(conds[0] if conds else "fr")
        assert langs == {"fr", "bm", "en"}, name


def test_labels_three_languages_gsm7():
    for kind in LABELS.values():
        for key, by_lang in kind.items():
            assert set(by_lang) == {"fr", "bm", "en"}, key
            for text in by_lang.values():
                assert all(c in GSM7 for c in text), (key, text)
