"""PSEA recognition by the keyword fallback (bot/fallback.py, lexicon in
bot/fallback_keywords.py): sexual exploitation and abuse by aid workers in French, Bambara
(with and without its special letters) and English, phrased many ways.

The sentences here were written for this test, not copied from the lexicon: the lexicon holds
stems and co-occurrence rules (an aid-worker term with a sexual term, or sex asked for in
exchange for aid), and these check that it generalises. The negatives are what a hotline
receives every day that must NOT become a PSEA case: a registration asking sex and age, a
sleeping kit ("couchage"), receiving ("toucher") a ration, a GBV report with no aid context
(that one is for the protection team).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.fallback import classify, psea_in_text  # noqa: E402

FRENCH = [
    "L'agent de distribution m'a demandé de coucher avec lui sinon je n'aurai pas le kit",
    "Le monsieur de l'ONG veut que je dorme avec lui pour me mettre sur la liste",
    "un humanitaire exige des relations sexuelles aux femmes pour donner les vivres",
    "Au site, le distributeur propose du riz contre du sexe aux jeunes filles",
    "le chef de site a touché ma fille de 15 ans quand elle est allée chercher la ration",
    "Une volontaire m'a dit que son collègue veut m'épouser ou on nous raye de la liste",
    "celui qui distribue les cartes demande aux filles de passer la nuit avec lui",
    "Lagent de lONG ma demande une relation avec lui pour avoir largent du cash",
    "ils ont dit pas de carte sans faveurs, c'est l'agent du PAM",
    "mon amie a été obligée d'avoir des rapports sexuels avec un enregistreur pour être inscrite",
    "L'agent m'a proposé de l'argent pour coucher ensemble après la distribution",
    "le responsable du comité de distribution harcèle les veuves et les touche",
    "Un travailleur humanitaire abuse sexuellement des enfants du camp",
    "Il faut coucher avec le gestionnaire pour recevoir les bâches, c'est honteux",
    "Le chauffeur de l'ONG a caressé ma soeur dans la voiture",
    "l'agent recenseur a dit qu'il me donne la carte si je deviens sa copine",
]
BAMBARA = [
    "Baarakɛla dɔ ye n ɲininka ka sunɔgɔ a fɛ sani a ka dumuni di n ma",
    "baarakela do ye n nyininka ka sunogo a fe sani a ka dumuni di n ma",
    "ONG cɛ dɔ ko ni n ma sunɔgɔ a fɛ a tɛ kariti di n ma",
    "ong ce do ko ni n ma sunogo a fe a te kariti di n ma",
    "tilabaga ye maga n denmuso la tuma min a taara dumuni ta",
    "agent ko a b'a fɛ ka n furu walasa ka n tɔgɔ sɛbɛn",
    "agent ko a b a fe ka n furu walasa ka n togo seben",
    "deme baarakela be muso nyininka ce ni muso ko la malo kama",
    "ONG baarakelaw be sunguruw nyininka ka sunogo u fe wari kama",
    "sɛbɛnbaga ko n ka n yɛrɛ di a ma sani a ka n sɛbɛn",
    "sebenbaga ko n ka n yere di a ma sani a ka n seben",
    "distribution agent ye maga n na kit tali la",
    "jekulu cɛ dɔ bɛ musow ɲininka jatɔya la dumuni kama",
    "jekulu ce do be musow nyininka jatoya la dumuni kama",
    "nyemogo ko ni i ma da a fe i te deme soro",
    "ONG mɔgɔ ye n tɔɔrɔ ka sunɔgɔ a fɛ, a ko a bɛ wari di n ma",
]
ENGLISH = [
    "The aid worker said I must sleep with him to get the food card",
    "a man from the NGO asked my sister for sex before giving her the kit",
    "distributors are demanding sexual favours from girls in exchange for rations",
    "The registration officer told me he will put me on the list if I spend the night with him",
    "one of the WFP staff touched my daughter at the distribution point",
    "The camp manager wants to marry my 14 year old or we lose our assistance",
    "They wont give us food unless we have relations with the agent",
    "an NGO volunteer keeps harassing women who come for cash",
    "He offered money for sex, he works for the humanitarian organisation",
    "the food distribution guy groped me and said nobody will believe me",
    "to be registered the official asked my wife to go to bed with him",
    "a UN worker is sexually exploiting girls in our site",
    "the driver of the charity asked me to become his girlfriend for a bag of rice",
    "the man who registers people wants sex in return for a card",
    "Relief staff abused a child in the camp",
    "aid workers ask women to sleep with them otherwise no voucher",
]
NOT_PSEA = [
    "l'agent d'enregistrement a demandé l'âge et le sexe de chaque enfant",
    "nous n'avons pas reçu de kit de couchage à la distribution",
    "on n'a pas encore touché les vivres ni l'argent du cash",
    "ma fille a été violée, nous avons besoin de nourriture",
    "the registration staff asked for the age and sex of everyone in the household",
    "we need sleeping mats, children sleep on the ground since the distribution",
    "an ye mogo 7 ye, dumuni te an bolo, an be Sevare",
    "Bonjour, quand est la prochaine distribution de vivres à Mopti ?",
    "the NGO gave us blankets, thank you very much",
    "Mon mari est malade, l'agent de santé n'est pas venu",
]


@pytest.mark.parametrize(
    ("language", "messages"), [("fr", FRENCH), ("bm", BAMBARA), ("en", ENGLISH)]
)
def test_at_least_fifteen_phrasings_per_language(language: str, messages: list[str]) -> None:
    assert len(set(messages)) >= 15, language


@pytest.mark.parametrize("text", FRENCH + BAMBARA + ENGLISH)
def test_sexual_exploitation_by_an_aid_worker_is_a_psea_protection_case(text: str) -> None:
    result = classify(text)
    assert result.kind == "psea", text
    assert result.intent == "protection_concern"
    assert result.category == "protection"
    assert psea_in_text(text)


@pytest.mark.parametrize("text", NOT_PSEA)
def test_everyday_messages_are_not_psea(text: str) -> None:
    assert classify(text).kind is None, text
    assert not psea_in_text(text)


def test_a_gbv_report_without_aid_context_stays_an_ordinary_protection_concern() -> None:
    result = classify("ma fille a été violée hier soir par des hommes armés")
    assert result.intent == "protection_concern"
    assert result.kind is None


def test_bambara_with_and_without_its_letters_agree() -> None:
    pairs = [
        (BAMBARA[0], BAMBARA[1]),
        (BAMBARA[2], BAMBARA[3]),
        (BAMBARA[5], BAMBARA[6]),
        (BAMBARA[9], BAMBARA[10]),
        (BAMBARA[12], BAMBARA[13]),
    ]
    for special, plain in pairs:
        assert classify(special).kind == classify(plain).kind == "psea"
