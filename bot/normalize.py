"""Text normalisation shared by training data, the Rasa channel and the fallback classifier.

Pure standard library; runs on Python 3.10 (bot venv) and 3.11+ (platform). The SAME function is
applied when the NLU training files are written (bot/scripts/normalize_data.py rewrites them) and
to every inbound message (bot/channels/deme_channel.py, bot/fallback.py), so the model never sees
a spelling it was not trained on only because of accents, Bambara letters or SMS shorthand.

Also holds the small keyword language detector and the household-size parser (digits and number
words in French, Bambara and English), both used by the actions and the fallback classifier.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = [
    "SHORTHANDS",
    "detect_language",
    "guess_language",
    "normalize",
    "parse_household_size",
    "tokens",
]

# Bambara letters people cannot type on basic phones, and typographic characters. A copy of
# core.textfold.BAMBARA_LETTERS (this module runs in Rasa's Python, which cannot import the
# platform); tests/bot/test_normalize.py proves the two agree.
_CHAR_MAP = {
    "ɛ": "e",
    "Ɛ": "e",
    "ɔ": "o",
    "Ɔ": "o",
    "ɲ": "ny",
    "Ɲ": "ny",
    "ŋ": "ng",
    "Ŋ": "ng",
    "’": "'",
    "‘": "'",
    "`": "'",
    "´": "'",
    "«": '"',
    "»": '"',
    "œ": "oe",
    "Œ": "oe",
    "æ": "ae",
    "ß": "ss",
}
_CHAR_TABLE = str.maketrans(_CHAR_MAP)

# SMS shorthand -> one canonical spelling. Only tokens that are unambiguous across the three
# languages: "ke" (French "que") is NOT expanded because it is also Bambara "kɛ" (to do), nor
# "c" / "r" / "u" alone when they may be initials or list markers... except "u" in English-only
# contexts is too rare to matter here.
SHORTHANDS: dict[str, str] = {
    # French
    "svp": "svp",
    "stp": "svp",
    "svpl": "svp",
    "svpp": "svp",
    "ns": "nous",
    "nou": "nous",
    "vs": "vous",
    "pr": "pour",
    "pk": "pourquoi",
    "pq": "pourquoi",
    "bcp": "beaucoup",
    "bcq": "beaucoup",
    "pa": "pas",
    "ya": "il y a",
    "yà": "il y a",
    "dpuis": "depuis",
    "dpui": "depuis",
    "depui": "depuis",
    "dps": "depuis",
    "tjr": "toujours",
    "tjrs": "toujours",
    "pb": "probleme",
    "pbm": "probleme",
    "qd": "quand",
    "ds": "dans",
    "tt": "tout",
    "kel": "quel",
    "koi": "quoi",
    "bjr": "bonjour",
    "bsr": "bonsoir",
    "slt": "salut",
    "mrc": "merci",
    "mci": "merci",
    "enfts": "enfants",
    "enfs": "enfants",
    "jsuis": "je suis",
    "chui": "je suis",
    "jai": "j ai",
    "ms": "mais",
    "bn": "bien",
    "auj": "aujourd hui",
    "ajd": "aujourd hui",
    "pers": "personnes",
    "prs": "personnes",
    # English
    "pls": "please",
    "plz": "please",
    "pliz": "please",
    "plss": "please",
    "thx": "thanks",
    "thnx": "thanks",
    "tnx": "thanks",
    "thks": "thanks",
    "ppl": "people",
    "coz": "because",
    "cuz": "because",
    "bcoz": "because",
    "hv": "have",
    "wat": "what",
    "abt": "about",
}

_SPACE_RE = re.compile(r"\s+")
_REPEAT_RE = re.compile(r"([^\W\d_])\1{2,}")
_DIGIT_ALPHA_RE = re.compile(r"(?<=\d)(?=[^\W\d_])|(?<=[^\W\d_])(?=\d)")
_REFERENCE_RE = re.compile(r"^t-[0-9a-z]{4,8}[.,!?:]*$")
_TOKEN_RE = re.compile(r"[^\W_]+(?:-[^\W_]+)*")
_APOSTROPHE_RE = re.compile(r"'+")
# Characters that carry no meaning in a request but split or glue words unpredictably.
_PUNCT_RE = re.compile(r"[\"()\[\]{}<>*#_~^|\\=+;]")


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalize(text: str | None) -> str:
    """Return the canonical form of an inbound message (idempotent).

    lower-case; Bambara ɛ/ɔ/ɲ/ŋ -> e/o/ny/ng; accents stripped; apostrophes -> spaces
    ("l'eau" == "l eau"); digits split from letters ("7pers" -> "7 personnes"); letters repeated
    more than twice collapsed to two ("aideeeez" -> "aidee z" no: -> "aideez"); a few SMS
    shorthands expanded; a leading "/" removed (Rasa would parse "/intent" as an injected intent).
    """
    if not text:
        return ""
    out = text.translate(_CHAR_TABLE)
    out = _strip_accents(out).lower()
    out = out.translate(_CHAR_TABLE)  # in case NFKD produced mapped characters
    out = _APOSTROPHE_RE.sub(" ", out)
    out = _PUNCT_RE.sub(" ", out)
    out = _REPEAT_RE.sub(r"\1\1", out)
    words: list[str] = []
    for word in _SPACE_RE.split(out.strip()):
        if not word:
            continue
        if not _REFERENCE_RE.match(word):  # keep ticket references ("T-7K2Q9") whole
            split = _DIGIT_ALPHA_RE.sub(" ", word)
            if split != word:
                words.extend(SHORTHANDS.get(w, w) for w in split.split())
                continue
        # Shorthand lookup ignores trailing punctuation ("svp!" / "ns,").
        core = word.rstrip(".,!?:")
        tail = word[len(core) :]
        if core in SHORTHANDS:
            word = SHORTHANDS[core] + tail
        words.append(word)
    out = " ".join(words)
    # Never hand Rasa a message starting with "/" (or "\").
    out = out.lstrip("/\\ ").strip()
    return out


def tokens(text: str) -> list[str]:
    """Word tokens of an already-normalised text (hyphenated names kept whole)."""
    return _TOKEN_RE.findall(text)


# --- language detection -------------------------------------------------------------------------

_LANG_MARKERS: dict[str, dict[str, float]] = {
    "fr": {
        w: 1.0
        for w in [
            "nous",
            "sommes",
            "avons",
            "est",
            "sont",
            "pas",
            "ici",
            "il",
            "y",
            "a",
            "de",
            "des",
            "du",
            "le",
            "les",
            "la",
            "une",
            "un",
            "pour",
            "avec",
            "sans",
            "depuis",
            "besoin",
            "aide",
            "aidez",
            "svp",
            "merci",
            "bonjour",
            "bonsoir",
            "salut",
            "eau",
            "potable",
            "malade",
            "malades",
            "enfant",
            "enfants",
            "femme",
            "maison",
            "abri",
            "personnes",
            "famille",
            "je",
            "j",
            "ai",
            "suis",
            "mon",
            "ma",
            "mes",
            "notre",
            "nos",
            "oui",
            "non",
            "quand",
            "quel",
            "quoi",
            "beaucoup",
            "tres",
            "dans",
            "sur",
            "chez",
            "au",
            "aux",
            "et",
            "ou",
            "mais",
            "qui",
            "que",
            "toujours",
            "plus",
            "rien",
            "fievre",
            "medicament",
            "bache",
            "couverture",
            "arrive",
            "arrives",
            "deplaces",
            "vous",
            "stop",
            "arreter",
            "supprimer",
            "effacer",
            "donnees",
            "ou",
            "en",
            "est",
            "ma",
            "demande",
            "ok",
            "d",
            "accord",
            "mari",
            "bebe",
            "hier",
            "il",
            "elle",
            "ils",
            "on",
            "ne",
            "plus",
            "se",
            "moi",
            "votre",
            "vos",
            "fille",
            "fils",
            "mere",
            "pere",
            "soeur",
            "frere",
            "village",
            "quartier",
            "ville",
            "camp",
            "site",
            "rue",
            "nuit",
            "jours",
            "semaine",
            "lundi",
            "froid",
            "dormons",
            "dort",
            "dehors",
            "manger",
            "nourriture",
            "faim",
            "argent",
            "papiers",
            "ecole",
            "travail",
            "veut",
            "veux",
            "faut",
            "rien",
            "tout",
            "tous",
            "aussi",
            "encore",
            "deja",
            "cette",
            "ce",
            "cet",
            "sont",
            "etait",
        ]
    },
    "bm": {
        w: 1.0
        for w in [
            "an",
            "ne",
            "n",
            "be",
            "bi",
            "te",
            "ye",
            "ka",
            "ni",
            "ko",
            "fe",
            "la",
            "yen",
            "mogo",
            "mogow",
            "ji",
            "deme",
            "mago",
            "bana",
            "banana",
            "fura",
            "dogotoro",
            "dogotoroso",
            "so",
            "tinye",
            "tinyena",
            "sanji",
            "nene",
            "sunogo",
            "kene",
            "kan",
            "muso",
            "ce",
            "den",
            "denw",
            "denmisenw",
            "denmuso",
            "denke",
            "sisan",
            "kunun",
            "dugu",
            "sugu",
            "siran",
            "siranna",
            "kele",
            "marifatigiw",
            "binkani",
            "gosi",
            "tooro",
            "mine",
            "tunun",
            "furu",
            "fanga",
            "nyininkali",
            "kosebe",
            "i",
            "aw",
            "owo",
            "ayi",
            "nana",
            "bora",
            "kelen",
            "fila",
            "saba",
            "naani",
            "nani",
            "duuru",
            "duru",
            "wooro",
            "woro",
            "wolonwula",
            "seegin",
            "segin",
            "kononton",
            "tan",
            "mugan",
            "minnogo",
            "kongo",
            "dumuni",
            "farigan",
            "sumaya",
            "konoboli",
            "kolon",
            "saniyalen",
            "konoma",
            "baara",
            "barika",
            "hakke",
            "hake",
            "ale",
            "olu",
            "anw",
            "tun",
            "sara",
            "dun",
            "jigin",
            "sigi",
            "don",
            "jumen",
            "joli",
            "u",
            "a",
            "ka",
        ]
    },
    "en": {
        w: 1.0
        for w in [
            "we",
            "are",
            "is",
            "the",
            "a",
            "an",
            "our",
            "my",
            "i",
            "am",
            "need",
            "needs",
            "help",
            "please",
            "water",
            "clean",
            "sick",
            "people",
            "family",
            "children",
            "child",
            "woman",
            "women",
            "house",
            "shelter",
            "no",
            "yes",
            "hello",
            "hi",
            "thanks",
            "thank",
            "you",
            "since",
            "from",
            "in",
            "at",
            "there",
            "here",
            "have",
            "has",
            "been",
            "of",
            "to",
            "for",
            "with",
            "and",
            "what",
            "where",
            "when",
            "how",
            "status",
            "request",
            "stop",
            "delete",
            "erase",
            "data",
            "fever",
            "medicine",
            "tent",
            "blanket",
            "arrived",
            "displaced",
            "persons",
            "there's",
            "its",
            "it's",
            "ok",
            "okay",
            "me",
            "husband",
            "wife",
            "baby",
            "son",
            "daughter",
            "mother",
            "father",
            "brother",
            "sister",
            "kids",
            "since",
            "yesterday",
            "night",
            "days",
            "week",
            "they",
            "he",
            "she",
            "his",
            "her",
            "us",
            "them",
            "took",
            "this",
            "that",
            "your",
            "you",
            "be",
            "will",
            "can",
            "cannot",
            "anymore",
            "not",
            "food",
            "hungry",
            "money",
            "school",
            "work",
            "sleep",
            "outside",
            "cold",
            "rain",
            "town",
            "village",
            "camp",
            "site",
            "near",
            "nothing",
            "everything",
            "all",
            "any",
            "some",
            "still",
        ]
    },
}
# Words that are strong evidence for one language (weigh more than function words).
_STRONG = {
    "fr": [
        "nous",
        "sommes",
        "avons",
        "besoin",
        "aidez",
        "merci",
        "bonjour",
        "depuis",
        "potable",
        "malade",
        "enfants",
        "personnes",
        "suis",
        "beaucoup",
        "toujours",
        "deplaces",
        "svp",
        "oui",
        "non",
        "bonjour",
    ],
    "bm": [
        "mogo",
        "mogow",
        "deme",
        "mago",
        "bana",
        "banana",
        "dogotoro",
        "sanji",
        "tinyena",
        "sunogo",
        "denmisenw",
        "sisan",
        "kunun",
        "siran",
        "kosebe",
        "owo",
        "ayi",
        "nana",
        "bora",
        "wolonwula",
        "duuru",
        "naani",
        "mugan",
        "minnogo",
        "yen",
        "fe",
        "ce",
        "ni",
        "be",
        "te",
        "ye",
        "ka",
        "barika",
    ],
    "en": [
        "we",
        "need",
        "please",
        "water",
        "sick",
        "people",
        "family",
        "children",
        "shelter",
        "hello",
        "thanks",
        "since",
        "the",
        "are",
        "our",
        "yes",
        "hello",
        "my",
        "husband",
        "wife",
        "baby",
        "since",
        "yesterday",
        "they",
        "you",
        "your",
    ],
}
for _lang, _words in _STRONG.items():
    for _w in _words:
        _LANG_MARKERS[_lang][_w] = 2.5


def _language_scores(text: str) -> dict[str, float]:
    scores = {lang: 0.0 for lang in _LANG_MARKERS}
    for word in tokens(normalize(text)):
        for lang, markers in _LANG_MARKERS.items():
            scores[lang] += markers.get(word, 0.0)
    return scores


def guess_language(text: str, min_score: float = 2.0, min_margin: float = 1.0) -> str | None:
    """Language of the message when the evidence is clear, else None (e.g. "7", "Gao", "ok")."""
    scores = _language_scores(text)
    ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
    (best, top), (_, second) = ranked[0], ranked[1]
    if top >= min_score and top - second >= min_margin:
        return best
    return None


def detect_language(text: str, default: str = "fr") -> str:
    """Guess fr / bm / en from keyword evidence in a (raw or normalised) message."""
    words = tokens(normalize(text))
    if not words:
        return default
    scores = {lang: 0.0 for lang in _LANG_MARKERS}
    for word in words:
        for lang, markers in _LANG_MARKERS.items():
            scores[lang] += markers.get(word, 0.0)
    best = max(scores.values())
    if best <= 0:
        return default
    winners = [lang for lang, score in scores.items() if score == best]
    if default in winners:
        return default
    for lang in ("fr", "bm", "en"):
        if lang in winners:
            return lang
    return default


# --- household size -----------------------------------------------------------------------------

_FR_UNITS = {
    "zero": 0,
    "un": 1,
    "une": 1,
    "deux": 2,
    "trois": 3,
    "quatre": 4,
    "cinq": 5,
    "six": 6,
    "sept": 7,
    "set": 7,
    "huit": 8,
    "uit": 8,
    "neuf": 9,
    "dix": 10,
    "onze": 11,
    "douze": 12,
    "treize": 13,
    "quatorze": 14,
    "quinze": 15,
    "seize": 16,
}
_FR_TENS = {
    "vingt": 20,
    "vingts": 20,
    "vint": 20,
    "trente": 30,
    "quarante": 40,
    "cinquante": 50,
    "soixante": 60,
}
_EN_UNITS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_EN_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fourty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_BM_UNITS = {
    "kelen": 1,
    "fila": 2,
    "saba": 3,
    "naani": 4,
    "nani": 4,
    "duuru": 5,
    "duru": 5,
    "wooro": 6,
    "woro": 6,
    "wolonwula": 7,
    "wolonfila": 7,
    "wolonwla": 7,
    "seegin": 8,
    "segin": 8,
    "kononton": 9,
    "konondon": 9,
    "tan": 10,
}
_BM_TENS = {
    "mugan": 20,
    "bisaba": 30,
    "binaani": 40,
    "binani": 40,
    "biduuru": 50,
    "biduru": 50,
    "biwooro": 60,
    "biworo": 60,
    "biwolonwula": 70,
    "biseegin": 80,
    "bisegin": 80,
    "bikononton": 90,
}
_NUMBER_WORDS = {**_FR_UNITS, **_FR_TENS, **_EN_UNITS, **_EN_TENS, **_BM_UNITS, **_BM_TENS}
_DIGITS_RE = re.compile(r"(?<![\d.,])(\d{1,3})(?![\d.,]?\d)")


def _words_to_number(words: list[str]) -> int | None:
    """Parse the first run of number words (fr/en/bm) in a token list.

    Values are added ("vingt et un", "twenty one", "mugan ni duuru", "soixante dix sept"), except
    French "quatre vingt" (4 x 20). Two units in a row end the run ("deux trois" -> 2).
    """
    connectors = ("et", "and", "ni")
    for start, word in enumerate(words):
        if not any(p in _NUMBER_WORDS for p in word.split("-")):
            continue
        parts: list[str] = []
        for w in words[start:]:
            pieces = [p for p in w.split("-") if p]
            if pieces and all(p in _NUMBER_WORDS or p in connectors for p in pieces):
                parts.extend(pieces)
            else:
                break
        values: list[int] = []
        for part in parts:
            if part in connectors:
                continue
            value = _NUMBER_WORDS[part]
            if values and value in (20,) and values[-1] == 4 and part.startswith("vingt"):
                values[-1] = 80
                continue
            if values and values[-1] < 10 and value < 10:
                break
            if values and value >= 20 and values[-1] < value and sum(values) < value:
                break  # "trois vingt" is not a number; keep what we have
            values.append(value)
        if values:
            return sum(values)
    return None


def parse_household_size(text: str | int | None) -> int | None:
    """Return a household size 1..99 from digits or fr/bm/en number words, else None."""
    if text is None:
        return None
    if isinstance(text, int):
        return text if 1 <= text <= 99 else None
    norm = normalize(str(text))
    match = _DIGITS_RE.search(norm)
    if match:
        value = int(match.group(1))
        return value if 1 <= value <= 99 else None
    spelled = _words_to_number(tokens(norm))
    if spelled is not None and 1 <= spelled <= 99:
        return spelled
    return None
