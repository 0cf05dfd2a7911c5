"""Test tables for the one SEA screen (tickets.psea_screen): reports of sexual exploitation or
abuse by aid workers in French, Bambara (mostly written without its letters, SMS style) and
English, and hard negatives that must stay what they are.

Written for these tests — not copied from any blind or held-out set, nor from the NLU
training data: paraphrases, indirect wording, reports about a daughter or a neighbour, typos.
"""

from __future__ import annotations

SEA_FR: list[str] = [
    "Le gars qui fait les listes au site m'a dit de venir chez lui ce soir si je veux la bâche",
    "l'agent de l'ONG dit que ma fille doit rester avec lui la nuit pour qu'on ait la ration",
    "un humanitaire a proposé a ma voisine de l argent contre une relation avec lui",
    "le distributeur de savon a touché les seins de ma soeur pendant la distribution",
    "chef de camp exige des filles qu elles couchent avec lui pour la carte de vivres",
    "les volontaires demandent aux femmes seules des faveurs pour les coupons",
    "jai ete forcee a coucher avc le recenseur pour etre inscrite sur la liste",
    "Le responsable de la distribution m'oblige à le voir la nuit sinon pas de tente",
    "ya un agent humanitère qui veut épouser les jeunes filles du site contre le mil",
    "mon enfant de 13 ans a été abusée par un employé de l'ONG au point d'eau",
    "le superviseur du cash transfert harcele les veuves au telephone le soir",
    "je signale une exploitation sexuelle au camp par ceux qui donnent les kits",
    "Le chauffeur de l'organisation humanitaire a caressé une fille derrière l'entrepôt",
    "Il a dit que j'aurai deux sacs de riz si je passe la nuit avec lui, c'est l'agent de saisie",
    "l enqueteur du ciblage demande des rapports intimes pour mettre les noms",
]
SEA_BM: list[str] = [
    "ong baarakela ko ni n ma la a fe a te tente di n ma",
    "tilabaga ko n ka na a ka so su fe ni n b a fe ka dumuni soro",
    "Ɔ.N.G baarakɛla dɔ ye n denmuso maga a farikolo la tila waati",
    "lisi sebenbaga b a fe n ka sunogo a fe sani a ka n togo seben",
    "humanitaire ce do ko a bena bache di n ma ni n ye a furu",
    "deme jekulu cɛ dɔ bɛ musow ɲininka cɛ ni muso ko la wari kama",
    "n sigiyonogon muso ko agent ye a binkan dumuni tila yoro la",
    "site kuntigi ko sunguruw ka da a fe walasa u ka kiti soro",
    "ong mogo ko n ka taa a ka so su fe ka kariti soro",
    "distributeur ko ni n ma n yere di a ma a te suman di n ma",
    "croix rouge baarakela be musow maga u la ka malo di u ma",
    "agent ko n ka ke a muso ye walasa n togo ka to lisi la",
    "tilalikela ye n dogomuso nyininka a ka la a fe ka deme soro",
    "oim baarakela b a fe ka n ka sunguru furu wari kama",
    "an ka site la volontaire do be sunguruw nyini jatoya la",
]
SEA_EN: list[str] = [
    "the NGO guy told my daughter she gets the blanket only if she visits his room tonite",
    "a volunteer keeps asking the widows for sex before he gives out the soap",
    "The man handing out tokens said I must be his girlfriend or my name leaves the list",
    "one of the aid workers touched my neighbour's girl when she went for the rations",
    "food distribution staff want women to spend the night with them for extra grain",
    "my sister was forced to sleep wit the registration officer to get the card",
    "I am reporting sexual abuse by an employee of the humanitarian agency",
    "the camp manager promised us a tent if my niece comes to his house after dark",
    "the cash officer offered money to have intercourse with a 16 year old girl",
    "a UNHCR driver raped a girl near the warehouse",
    "Aid staff are exploiting girls at the site in exchange for food",
    "the enumerator said he will register my family if I am nice to him at night",
    "distribiter asked my wife to marry him to receive the kit",
    "the WFP monitor groped women in the queue for the voucher",
    "the people giving out food demand sexual favours from the young girls",
]
SEA_ALL: list[str] = SEA_FR + SEA_BM + SEA_EN

# Hard negatives: ordinary protection / GBV with no aid worker (those stay sensitive protection,
# seen by the protection team) and ordinary needs, thanks and complaints.
NOT_SEA: list[str] = [
    # GBV / protection without an aid worker
    "mon voisin a violé ma fille hier soir, aidez nous",
    "ma fille a été violée par des hommes armés sur la route",
    "mon mari me frappe tous les soirs, je n'ai nulle part où aller",
    "my neighbour raped my daughter and the police did nothing",
    "my husband beats me and took our money",
    "armed men attacked the women fetching firewood",
    "n ce be n gosi su o su",
    "n sigiyonogon ye n denmuso binkan",
    "they want to marry my 13 year old daughter to an old man in the village",
    "on veut marier ma fille de 14 ans de force à un vieux du village",
    # thanks / positive feedback about aid
    "merci à l'ONG pour la tente, mes enfants dorment au sec maintenant",
    "thanks to the NGO for the tent and the blankets, God bless you",
    "an ye barika da ong ye bache kama",
    "l'agent de distribution était très gentil, merci pour les vivres",
    "the volunteers did us a great favour, they came at night with food when we arrived",
    "merci beaucoup, l'aide de l'ONG nous a touché le coeur, je vous embrasse",
    # complaints about distribution without sexual content
    "le distributeur a refusé de nous donner les vivres, notre nom n'est pas sur la liste",
    "the distribution was unfair, the agent gave rice only to his relatives",
    "the NGO staff were rude and made us wait all day for the cards",
    "tilabaga ma dumuni di an ma, a ko an togo te lisi la",
    "le chef de site demande de l'argent pour inscrire les gens sur la liste",
    "the camp manager asks 2000 francs from each family to get registered",
    # ordinary needs
    "my wife is pregnant and needs the clinic, we have no money for transport",
    "ma femme est enceinte et doit aller au centre de santé",
    "n muso kono be, a mago be dogotoroso la",
    "nous dormons dehors la nuit avec les enfants, il nous faut une bâche",
    "mes enfants dorment avec moi sous une bâche, il nous faut une tente pour la saison des pluies",
    "we sleep outside at night with the kids, we need a tent",
    "an be sunogo kenema su fe, an mago be bache la",
    "l'agent d'enregistrement a demandé l'âge et le sexe de chaque enfant",
    "nous n'avons pas reçu de kit de couchage à la distribution",
    "quand est la prochaine distribution de vivres à Sévaré ? nous sommes 8",
    "the registration officer asked the age and sex of everyone, when will we get the cards",
    "on n'a pas encore touché l'argent du cash transfert depuis deux mois",
    "there is no water in the camp since three days, children are sick",
]
