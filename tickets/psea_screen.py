"""The one SEA screen: does a person's text report sexual exploitation or abuse (SEA) by an
aid worker? (issues 14 and 15)

Every path that creates or updates a ticket from a person's words asks it
(``tickets.intake``: the bot through the API, the keyword fallback, USSD, the console's call
form, the API; ``conversation.dispatch`` on every bot turn; ``bot.fallback`` delegates here).
Pure standard library plus ``core.textfold``: the keyword fallback imports it without a
database.

High recall by design: a report is PSEA when the text has

- an explicit standalone term (exploitation sexuelle, sexual exploitation; abus / harcèlement
  sexuel, sexual abuse / harassment unless the one named is plainly not an aid worker — a
  neighbour, a husband), or
- a SEXUAL term (sex, sleeping with, coming to his house at night, a relationship, marrying,
  favours, Bambara "ka la a fɛ", "cɛ ni muso ko") or an ASSAULT term (touching, rape, groping)
  together with an aid context: an aid worker (NGO, humanitarian, distributor, volunteer,
  camp manager, Bambara "baarakɛla", "tilabaga"), or something of the aid (food, a tent, a kit,
  a card, the list, registration, cash) bargained for or withheld.

Ordinary GBV with no aid context ("a neighbour raped my daughter") stays a protection concern
for the protection team; when in doubt it is PSEA (fewer eyes). Text is folded with
``core.textfold`` (accents, Bambara letters), punctuation dropped, repeated letters squeezed
and a few SMS shorthands expanded; patterns are stems, so usual typos still match.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from core.textfold import fold

__all__ = ["PseaScreen", "prepare", "screen"]


@dataclass(frozen=True)
class PseaScreen:
    """The screen's answer: ``hit`` and why (the signal groups that matched, never words of
    the message — it may be logged)."""

    hit: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.hit


_SHORTHANDS = {
    "jai": "j ai",
    "pr": "pour",
    "pk": "pourquoi",
    "ds": "dans",
    "ki": "qui",
    "kil": "qu il",
    "c": "c",
    "sa": "sa",
    "chui": "je suis",
    "dmd": "demande",
    "dmde": "demande",
    "ong": "ong",
    "hum": "hum",
    "avc": "avec",
    "avk": "avec",
    "avek": "avec",
    "wiv": "with",
    "wit": "with",
    "wth": "with",
    "hse": "house",
    "tonite": "tonight",
    "2nite": "tonight",
    "b4": "before",
    "coz": "because",
    "nyt": "night",
    "nite": "night",
    "gal": "girl",
    "gals": "girls",
    "mi": "me",
    "hiz": "his",
    "ur": "your",
}
_NOT_WORD = re.compile(r"[^a-z0-9]+")
_REPEAT = re.compile(r"([a-z])\1{2,}")


def prepare(text: str) -> str:
    """``core.textfold.fold`` + punctuation and apostrophes as spaces, letters repeated more
    than twice squeezed, a few shorthands expanded: the form every pattern below reads."""
    folded = _NOT_WORD.sub(" ", fold(text))
    folded = _REPEAT.sub(r"\1\1", folded)
    return " ".join(_SHORTHANDS.get(w, w) for w in folded.split())


# --- the lexicon: regular expressions over ``prepare(text)`` ------------------------------------
# Terms of every language count in every message (people mix French words into Bambara).

# Not sexual at all: the "sex and age" a registration asks for, "en faveur de".
NOT_SEXUAL: tuple[str, ...] = (
    r"\b(?:age|ages) (?:et |and |, ?)?(?:le |du |the |leur |their |of )?sex\w*",
    r"\bsex\w* (?:et |and |, ?)?(?:l |the |leur |their )?ages?\b",
    r"\b(?:par|by) sexe?\b",
    r"\bsexe (?:des|du|de l|de chaque) (?:enfant|membre|personne|beneficiaire)\w*",
    r"\ben faveur (?:de|des|du)\b",
    r"\bkits? de couchage\b",
    r"\bkits? (?:d )?hygiene intime\b",
    r"\btouch\w* (?:\w+ ){0,2}(?:hearts?|c(?:oe|o)ur)\b",
)

# Explicit terms that are SEA on their own.
STANDALONE: tuple[str, ...] = (
    r"\bexploit\w* (?:et (?:d )?abus )?sexu\w*",
    r"\bsexu\w* exploit\w*",
    r"\bexploitation sexelle\b",
    r"\b(?:psea|peas|pseah|eas)\b",
)
# Explicit terms that are SEA unless the one named is plainly not an aid worker.
STANDALONE_UNLESS_OTHER: tuple[str, ...] = (
    r"\b(?:abus\w*|harcel\w*|harcell\w*|agress\w*) sexu\w*",
    r"\bsexu\w* (?:abus\w*|harass\w*|assault\w*|violence)\b",
    r"\b(?:abus\w*|harass\w*) (?:me |her |girls |women |children )?sexu\w*",
)
NOT_AID_ACTOR: tuple[str, ...] = (
    r"\b(?:son|mon|ma|sa|notre|leur|un|une|le|la) (?:voisin\w*|mari|beau pere|oncle|cousin|"
    r"tante|frere|pere|copain|enseignant|maitre)\b",
    r"\b(?:her|my|our|a|the|their) (?:neighbou?r\w*|husband|stepfather|step father|uncle|"
    r"cousin|brother|father|boyfriend|teacher)\b",
    r"\b(?:hommes armes|bandits?|militaires?|soldats?|armed men|soldiers?|rebels?|jihadist\w*)\b",
    r"\b(?:sigiyonogon|sigiyonogonw|benke|koroke|karamogo) (?:ye|ko)\b",
)

SEXUAL: tuple[str, ...] = (
    # fr
    r"\bse[xk]s?[uy][ae]?l\w*",  # sexuel(le)(s), sexuellement, sexsuel, seksual
    r"\bse(?:cs|s|ss)u[ae]?l\w*",  # secsuel, sesuel
    r"\bsexe?s?\b",
    r"\bcou?ch\w* (?:avec|ensemble)\b",
    r"\bcou?ch\w* (?:\w+ ){0,2}(?:lui|elle|eux)\b",
    r"\b(?:dor[mts]\w*|passe\w* la nuit|passer une nuit|nuit entiere|nuits?) avec (?:lui|elle|eux|"
    r"l agent|le chef|un agent|les agents|des agents|ce|cet|le)\b",
    r"\b(?:viens?|venir|vient|veux|veut) (?:dormir|coucher|passer la nuit) avec moi\b",
    r"\b(?:dor[mts]\w*|passe\w* la nuit|rester|reste) chez (?:lui|elle|eux)\b",
    r"\b(?:vien\w*|veni\w*|pass\w*|all\w*|rejoin\w*|rend\w* visite|voir) (?:\w+ ){0,3}"
    r"(?:chez lui|chez eux|sa chambre|sa maison|sa tente|sa voiture)\b",
    r"\b(?:chez lui|sa chambre|sa maison|le voir|son hotel) (?:\w+ ){0,3}(?:la nuit|le soir|"
    r"ce soir|de nuit|tard|seule?s?)\b",
    r"\b(?:la nuit|le soir|ce soir|de nuit|tard le soir) (?:\w+ ){0,3}(?:chez lui|sa chambre|"
    r"sa maison|le voir)\b",
    r"\b(?:rest\w*|sej\w*) avec (?:lui|eux)\b",
    r"\bavec (?:lui|eux) (?:\w+ ){0,2}(?:la nuit|le soir|ce soir|toute la nuit|seule?s?)\b",
    r"\brelations? (?:sexuel\w*|intime\w*|amoureuse\w*)",
    r"\b(?:une |des |de |en )?relations? avec (?:lui|elle|moi|eux|l|le|la|un|une|ma|sa|les)\b",
    r"\brapports? (?:sexuel\w*|intime\w*)",
    r"\b(?:des|ses|les|de|en echange de|contre) faveurs?\b",
    r"\bfaveurs (?:sexuel\w*)?",
    r"\b(?:epous\w*|m epous\w*|l epous\w*|t epous\w*)",
    r"\b(?:se |me |la |te |l |les )?marier\b",
    r"\bmariage\b",
    r"\b(?:petite amie|sa copine|copine|sa maitresse|maitresse|sa femme|deuxieme femme|"
    r"sortir avec (?:lui|elle|moi|eux)|se donner|me donner a lui|se livrer)\b",
    r"\b(?:mon|son|leur|ton|notre) corps\b",
    r"\bprostitu\w*",
    r"\bmis (?:\w+ ){0,3}enceinte\b",
    r"\b(?:viens?|venir|vient|passe\w*) chez moi\b",
    r"\bchez moi (?:\w+ ){0,2}(?:la nuit|le soir|ce soir|de nuit)\b",
    r"\bprofit\w* (?:des |de |d )?(?:jeunes |petites )?(?:filles|femmes|veuves|fille|femme)\b",
    r"\b(?:de|pour|veut|doit|faut|doivent|accepte\w*) coucher\b",
    r"\bechange de rapports\b",
    r"\bgentille? avec (?:lui|eux)\b",
    r"\brendez vous (?:\w+ ){0,2}(?:nuit|soir|chambre|seule?s?)\b",
    # en
    r"\bsle+pe?\w* (?:wi?th?|w)\b",  # sleep / slept / sleeping with
    r"\bslept (?:with|at his)\b",
    r"\b(?:spend|spent|spending|pass) (?:the|a) night\b",
    r"\b(?:stay|stays|stayed|staying) (?:the night |overnight )?(?:with him|at his|in his)\b",
    r"\bgo to bed with\b",
    r"\bin (?:his|her) (?:bed|room)\b",
    r"\b(?:come|comes|came|coming|go|goes|went|going|visit|visits|visited|meet|meets|met)"
    r" (?:\w+ ){0,3}(?:his|their) (?:house|home|room|place|tent|car|hotel|compound)\b",
    r"\b(?:his|their) (?:house|home|room|place|tent|office|hotel) (?:\w+ ){0,3}"
    r"(?:at night|tonight|in the evening|after dark|alone|late)\b",
    r"\b(?:at night|tonight|after dark) (?:\w+ ){0,3}(?:his|their) (?:house|home|room|place)\b",
    r"\b(?:meet|see|visit) (?:him|them) (?:\w+ ){0,2}(?:at night|tonight|alone|after dark)\b",
    r"\b(?:have|had|having|has) (?:sexual )?(?:relations|a relationship|intercourse)\b",
    r"\bintimate\w*",
    r"\b(?:got|get|gets|made|make|makes|left) (?:\w+ ){0,3}pregnant\b",
    r"\btak\w* advantage of (?:\w+ )?(?:girls?|women|woman|widows?|her|me|us)\b",
    r"\b(?:calling|calls|call|phon\w*|text\w*) (?:me|her) (?:\w+ ){0,2}"
    r"(?:at night|late|every night)\b",
    r"\bif (?:i|she|we|you) (?:meet|see|visit|join) (?:him|them)\b",
    r"\bsexual favou?rs?\b",
    r"\bfavou?rs\b",
    r"\bmarry\w*",
    r"\bmarried to him\b",
    r"\bmarriage\b",
    r"\b(?:his|a|second|new) wife\b",
    r"\b(?:girlfriend|lover|mistress|sugar daddy)\b",
    r"\b(?:my|her|your|their) body\b",
    r"\bprostitut\w*",
    r"\b(?:be nice|nice) to him\b",
    # bm
    r"\bsunogo (?:\w+ ){0,2}fe\b",  # sunɔgɔ a fɛ: sleep with him/her
    r"\bda (?:n|ne|a|i|ale|u|an) (?:fe|koro|kan)\b",
    r"\bla (?:n|ne|a|i|ale|u|an|olu|musow|sunguruw|muso|sunguru|denmusow?) fe\b",  # lie with
    r"\bkono don\b",  # made pregnant
    r"\blafili\w*",
    r"\b(?:musow?|sunguruw?|denmusow?|npogotigiw?) nyini\b",
    r"\bce ni muso\b",  # cɛ ni muso ko: "the man-and-woman thing"
    r"\b(?:jatoya|kakalaya|sungurunya|jeneya)\b",
    r"\bk(?:a)? ?(?:n|ne|a|i|an) furu\b",  # ka n furu: marry me
    r"\b(?:n|ne|a|i) furu\b",
    r"\bfurusiri\b",
    r"\b(?:sunguru|muso|denmuso|npogotigi|dogomuso)w? furu\b",
    r"\b(?:n|ne|a|i|u) yere di\b",  # give oneself
    r"\bke (?:a|u) muso ye\b",
    r"\bmuso (?:\w+ ){0,2}(?:ta|mine)\b",
    r"\b(?:na|taa|se) (?:a|u) (?:fe|ka so|ka bon|yoro)\b(?: \w+){0,3} su fe\b",  # at night
    r"\b(?:a|u) ka so (?:\w+ ){0,2}su fe\b",
    r"\bsu fe (?:\w+ ){0,3}(?:a|u) ka so\b",
    r"\b(?:a|u) ka (?:so|bon|biro) (?:kono )?(?:n|ne|i|a|u) (?:kelen|kelenpe)\b",
)
ASSAULT: tuple[str, ...] = (
    # fr
    r"\battouch\w*",
    r"\b(?:m|me|la|nous|les filles|ma fille|sa fille|les femmes) (?:a |ont |avait |avaient )?"
    r"(?:touch|caress|tripot|pelot)\w*",
    r"\b(?:caress|tripot|pelot)\w*",
    r"\btouch\w* (?:\w+ ){0,2}(?:corps|seins?|poitrine|fesses?|cuisses?|parties intimes|"
    r"filles?|femmes?|veuves?|jeunes)\b",
    r"\bdeshabill\w*",
    r"\bembrass\w* (?:de force|les filles|les femmes|ma |sa |des filles)",
    r"\b(?:m|l|les) (?:a |ont )?(?:embrass|bais)\w*",
    r"\b(?:toute nue|tout nu)\b",
    r"\b(?:viol|viols|violee?s?|viole|violer|violait)\b",
    r"\babus\w* (?:de |d )?(?:elle|moi|nous|ma|sa|des|les|la|filles?|femmes?|enfants?)\b",
    r"\babuse\w*",
    r"\bharcel\w*",
    r"\bharcell\w*",
    r"\b(?:violences?|agressions?) sexu\w*",
    # en
    r"\btouch(?:ed|es|ing)? (?:me|my|her|them|us|girls?|women|children|widows?|breast\w*)\b",
    r"\b(?:grop|fondl|molest)\w*",
    r"\bkiss(?:ed|es|ing)? (?:me|her|girls?|women|them|us)\b",
    r"\b(?:undress|naked)\w*",
    r"\b(?:rape\w*|raping|harass\w*)\b",
    r"\babus(?:e|ed|es|ing) (?:a |my |the |our |young )?(?:girls?|child|children|women|woman|"
    r"her|me|daughters?|minors?|kids?|widows?)\b",
    r"\bsexual (?:violence|assault|abuse)\b",
    r"\bexploit\w* (?:girls?|women|children|widows?|her|me)\b",
    # bm
    r"\bmaga\w* (?:\w+ ){0,3}(?:la|na)\b",  # maga n na: touch me
    r"\bbinkan\w*",
    r"\b(?:sunguru|muso|denmuso)w? tooro\b",
)
STRONG_ACTOR: tuple[str, ...] = (
    # fr
    r"\bongs?\b",
    r"\bo n g\b",
    r"\b(?:h?umanit\w*|humanitere\w*)",
    r"\bdistrib\w*(?:eur|teur|trice|tor|ter)s?\b",
    r"\b(?:celui|ceux|celle|les gens|l homme|les hommes|le monsieur|le gars|le type|"
    r"un monsieur|un homme) (?:qui|de la|du) (?:distrib\w*|enregistr\w*|inscri\w*|donne\w*|"
    r"recens\w*|cible\w*|lisit|liste)\b",
    r"\b(?:oim|iom|onu|unicef|pam|hcr|msf|cicr|crs|oxfam|drc|nrc|irc|minusma|acf|"
    r"world vision|wfp|unhcr|icrc)\b",
    r"\bcroix rouge\b",
    r"\bvolontaire\w*",
    r"\bbenevole\w*",
    r"\btravailleur\w* (?:humanitaire|social|sociaux|de l ong|d une ong)\w*",
    r"\bpersonnel (?:de l ong|d une ong|humanitaire|de la distribution|du projet)\b",
    r"\b(?:membre|equipe|agent)\w* (?:de l |d une |du |de la )?(?:equipe |projet |ong|oim|pam|"
    r"hcr|organisation|humanitaire)\w*",
    r"\bagent\w* (?:de |d |du |des )(?:la )?(?:distribution|l ong|ong|enregistrement|"
    r"recensement|ciblage|l oim|oim|pam|hcr|unicef|sante|terrain|croix|protection|cash|"
    r"transfert|saisie|projet|aide|vivres|site|camp)\w*",
    r"\b(?:enregistreur|recenseur|enqueteur|ciblage)\w*",
    r"\bchef (?:de|du) (?:site|camp|projet|distribution)\b",
    r"\bgestionnaire\w*",
    r"\bcomite (?:de |du )?(?:gestion|distribution|ciblage|site)\w*",
    r"\b(?:animateur|animatrice|superviseur|mobilisateur|facilitateur|relais)\w*",
    # en
    r"\baid (?:worker|workers|staff|agency|agent|official|officer|man|guy|people|team|group)\b",
    r"\bngos?\b",
    r"\bvolunteer\w*",
    r"\b(?:man|guy|men|people|person|woman|those|one|ones|guys) (?:who|doing the|at the|from"
    r" the|handing|giving|in charge of)? ?(?:distribut|registr|register|hand\w* out|giv\w* out|"
    r"food|aid)\w*",
    r"\b(?:red cross|save the children|world food)\b",
    r"\bun (?:staff|worker|agency|official|employee|people|man|guy)\w*",
    r"\b(?:relief|charity|camp|site|registration|distribution|food|field|case|outreach|cash|"
    r"transfer|project|program\w*|ngo|agency|shelter|wash|protection)"
    r" (?:staff|worker|official|officer|agent|employee|man|guy|people|team|manager|monitor|"
    r"clerk|leader|committee|coordinator|supervisor)\w*",
    r"\bstaff\b",
    r"\bcharity\b",
    r"\b(?:food|ticket|card|voucher|token|kit|tent|cash|list) (?:\w+ )?"
    r"(?:man|guy|men|people|staff|worker|agent|lady)\b",
    r"\benumerator\w*",
    # bm
    r"\bbaarakela\w*",
    r"\bdeme (?:baarakela|jekulu|ton|tonw|mogo|mogow|kela)\w*",
    r"\bjekulu\w*",
    r"\btila\w*",
    r"\bseben(?:baga|nikela|bagaw|kela)\w*",
    r"\bdumuni (?:tilabaga|dibaga|dilaw?)\w*",
)
WEAK_ACTOR: tuple[str, ...] = (
    r"\bagent\w*",
    r"\bresponsable\w*",
    r"\bchef\w*",
    r"\bpatron\b",
    r"\bchauffeur\w*",
    r"\bemploye\w*",
    r"\btravailleur\w*",
    r"\b(?:celui|ceux|celle) qui (?:donn|distribu|enregistr|inscri|ecri|appel)\w*",
    r"\bofficials?\b",
    r"\bofficers?\b",
    r"\bclerks?\b",
    r"\bman from\b",
    r"\bboss\b",
    r"\bworkers?\b",
    r"\bdriver\w*",
    r"\bemployee\w*",
    r"\bleader\w*",
    r"\bcommittee\b",
    r"\bcomite\b",
    r"\bthe (?:man|guy|one) who (?:gives|registers|distributes|hands|writes|calls)\b",
    r"\b(?:du|de ce|le|ce) projet\b",
    r"\b(?:the|from the|of the|this) project\b",
    r"\bnyemogo\w*",
    r"\bkuntigi\w*",
    r"\bce (?:do|min|kelen)\b",
    r"\bmogo min be\b",
)
AID_ITEM: tuple[str, ...] = (
    # fr
    r"\bnourritur\w*",
    r"\bvivres?\b",
    r"\bration\w*",
    r"\bkits?\b",
    r"\bcartes?\b",
    r"\bcoupons?\b",
    r"\bjetons?\b",
    r"\btickets?\b",
    r"\bargent\b",
    r"\bcash\b",
    r"\btransferts?\b",
    r"\benregistr\w*",
    r"\binscri\w*",
    r"\blistes?\b",
    r"\baides?\b",
    r"\bassistance\b",
    r"\bdistrib\w*",
    r"\btentes?\b",
    r"\babris?\b",
    r"\b(?:riz|mil|sorgho|mais|huile|farine|sucre|savons?|bache\w*|natte\w*|couverture\w*|"
    r"bidons?|seaux?|moustiquaires?|vetements?|pagnes?)\b",
    r"\bsacs? de\b",
    r"\bfournitures?\b",
    r"\bbons? (?:d achat|alimentaires?)\b",
    # en
    r"\bfood\b",
    r"\bcards?\b",
    r"\bvouchers?\b",
    r"\btokens?\b",
    r"\bmoney\b",
    r"\bregist\w*",
    r"\b(?:the|a|on the|his) list\b",
    r"\baid\b",
    r"\btents?\b",
    r"\bshelter\b",
    r"\b(?:rice|grain|millet|oil|flour|sugar|soap|tarpaulins?|blankets?|items|supplies|bags? of|"
    r"mats?|jerrycans?|buckets?|nets?|clothes|nfi)\b",
    # bm
    r"\bdumuni\b",
    r"\bsuman\b",
    r"\bmalo\b",
    r"\bnyo\b",
    r"\bwari\b",
    r"\bk(?:a)?r(?:i)?ti\b",
    r"\bseben\w*",
    r"\btogo\b",
    r"\bdeme\b",
    r"\bkitiw?\b",
    r"\btulu\b",
    r"\blisi\b",
    r"\bfini\b",
    r"\bsafune\b",
    r"\bbache\b",
)
DEMAND: tuple[str, ...] = (
    # fr
    r"\bdemand\w*",
    r"\bexig\w*",
    r"\boblig\w*",
    r"\bforc\w*",
    r"\bpropos\w*",
    r"\bpromi\w*",
    r"\bveu[tx]\b",
    r"\bvoul\w*",
    r"\ben echange\b",
    r"\bcontre\b",
    r"\bpour (?:avoir|recevoir|obtenir|etre|me donner|nous donner|lui donner|donner|"
    r"m inscrire|figurer|toucher|les|la|le|des|une|un|sa|ma)\b",
    r"\bsinon\b",
    r"\bavant de\b",
    r"\ba condition\b",
    r"\bsi (?:je|j|tu|on|elle|nous|ma|sa|les|la)\b",
    r"\b(?:j|tu|elle|on|nous) (?:aurai|aurais|aura|auras|aurait|aurons|aurez|auront)\b",
    r"\bpas de (?:kit|carte|nourriture|vivres|aide|ration|tente|argent)\b",
    r"\b(?:ou|sinon) (?:on|nous|elle|je) (?:perd|raye|enleve|sort)\w*",
    r"\bdit qu\w*",
    r"\b(?:m|nous|lui|leur|l) a dit\b",
    # en
    r"\bask\w*",
    r"\bdemand\w*",
    r"\bwant\w*",
    r"\bforc\w*",
    r"\bpromis\w*",
    r"\bin (?:exchange|return)\b",
    r"\bfor (?:food|aid|a card|the card|cash|money|registration|a kit|kits|rice|the list|a tent|"
    r"the tent|blankets)\b",
    r"\bto (?:get|receive|be registered|register|stay on|be on|be added|keep)\b",
    r"\botherwise\b",
    r"\bunless\b",
    r"\bor else\b",
    r"\bbefore (?:he|she|they|giving|handing|paying)\b",
    r"\bif (?:i|she|we|you|my|her|they) \w+",
    r"\btold (?:me|her|us|them)\b",
    r"\bsaid (?:i|she|we|they|my|her)\b",
    r"\b(?:would|will|could|can) (?:get|give|receive|have|add|put)\b",
    r"\b(?:won t|will not|would not|wouldn t|refus\w*) (?:to )?(?:give|register|hand|pay)\b",
    r"\boffer\w*",
    r"\bowe\b",
    # bm
    r"\bnyinin\w*",
    r"\bb a fe\b",
    r"\bbe a fe\b",
    r"\ba ko\b",
    r"\bu ko\b",
    r"\bsani\b",
    r"\bwalasa\b",
    r"\bkama\b",
    r"\bni (?:n|ne|i|a|an|u|musow|aw) ma\b",
    r"\bni (?:n|ne|i|a|an|u|aw) (?:ma|te|ye|sonna|na)\b",
    r"\bfanga\b",
    r"\bdi (?:n|ne|an|a|i|u|aw) ma\b",
    r"\blayidu\w*",
)


def _compile(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns))


@lru_cache(maxsize=1)
def _patterns() -> dict[str, re.Pattern[str]]:
    return {
        name: _compile(group)
        for name, group in {
            "not_sexual": NOT_SEXUAL,
            "standalone": STANDALONE,
            "standalone_unless_other": STANDALONE_UNLESS_OTHER,
            "not_aid_actor": NOT_AID_ACTOR,
            "sexual": SEXUAL,
            "assault": ASSAULT,
            "strong_actor": STRONG_ACTOR,
            "weak_actor": WEAK_ACTOR,
            "aid_item": AID_ITEM,
            "demand": DEMAND,
        }.items()
    }


def screen(text: str | None, language: str | None = None) -> PseaScreen:
    """Whether ``text`` reports sexual exploitation or abuse by an aid worker, and why.

    ``language`` (fr, bm, en) is accepted for callers that know it; every language's terms
    are read anyway, since messages mix them."""
    del language  # mixed-language messages: all terms count
    if not text:
        return PseaScreen(False)
    p = _patterns()
    joined = p["not_sexual"].sub(" ", prepare(text))
    if not joined.strip():
        return PseaScreen(False)
    if p["standalone"].search(joined):
        return PseaScreen(True, "explicit")
    strong = bool(p["strong_actor"].search(joined))
    if p["standalone_unless_other"].search(joined) and (
        strong or not p["not_aid_actor"].search(joined)
    ):
        return PseaScreen(True, "explicit abuse")
    sexual = bool(p["sexual"].search(joined))
    assault = bool(p["assault"].search(joined))
    if not (sexual or assault):
        return PseaScreen(False)
    signal = "sexual" if sexual else "assault"
    if strong:
        return PseaScreen(True, f"{signal}+aid worker")
    weak = bool(p["weak_actor"].search(joined))
    item = bool(p["aid_item"].search(joined))
    demand = bool(p["demand"].search(joined))
    if sexual and item and (weak or demand):
        return PseaScreen(True, "sexual+aid bargained")
    if sexual and weak and demand:
        return PseaScreen(True, "sexual+agent demand")
    if assault and weak and item:
        return PseaScreen(True, "assault+agent+aid")
    return PseaScreen(False)
