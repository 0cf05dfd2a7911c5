#!/usr/bin/env python3
"""Evaluate the trained NLU model on the HELD-OUT files bot/eval/heldout_{fr,bm,en}.yml.

``--set blind`` evaluates bot/eval/blind_{fr,bm,en}.yml instead: sentences written once by
someone who had not read the training data, never trained on and never tuned against. Its
errors are not written anywhere (only the scores, to bot/eval/results_blind.md), so that the
set stays blind.

Each example is normalised exactly as the Deme channel does before Rasa sees it, then parsed
either by a running Rasa server (--url, POST /model/parse) or by the model loaded in-process
(--model, default: the newest cached model). Intent accuracy, intent macro-F1 (over the gold
intents) and entity precision/recall/F1 are computed PER LANGUAGE; the table is written to
bot/eval/results.md and printed; misclassified examples go to bot/eval/errors.md.

    bot/scripts/evaluate.py --model ~/.cache/deme/bot-models/deme-XXXX.tar.gz
    bot/scripts/evaluate.py --url http://127.0.0.1:5005 [--token T]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

BOT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BOT_DIR))
sys.path.insert(0, str(BOT_DIR / "scripts"))

from normalize_data import ANNOTATION_RE, normalize_example  # noqa: E402

LANGS = ("fr", "bm", "en")
EVAL_DIR = BOT_DIR / "eval"
# The evaluation files predate the finer intents of issue 14: they file a food need under
# request_other and sexual exploitation by an aid worker under protection_concern. A
# prediction of the finer intent is scored as the intent the file uses for it.
FINER_INTENTS = {"request_food": "request_other", "psea_report": "protection_concern"}
# The ticket category each (file-level) intent opens; other intents open no ticket.
CATEGORY_OF = {
    "request_health": "health",
    "request_wash": "wash",
    "request_shelter_nfi": "shelter_nfi",
    "request_other": "other",
    "protection_concern": "protection",
}


def fallback_category(text: str) -> str | None:
    """The keyword fallback's ticket category for ``text`` (food scored as "other", like the
    evaluation files); None when it finds no need."""
    sys.path.insert(0, str(BOT_DIR.parent))
    from bot.fallback import classify

    category = classify(text, language_hint=None).category
    return "other" if category == "food" else category


def load_heldout(path: Path) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """-> [(intent, normalised text, [(entity, normalised value)])]"""
    items = []
    intent = None
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^- intent:\s*(\S+)", line)
        if m:
            intent = m.group(1)
            continue
        m = re.match(r"^\s{4,}- (.*)$", line)
        if m and intent:
            annotated = normalize_example(m.group(1))
            entities = [
                (label.strip("()"), value) for value, label in ANNOTATION_RE.findall(annotated)
            ]
            text = ANNOTATION_RE.sub(lambda a: a.group(1), annotated)
            items.append((intent, text, entities))
    return items


class HttpParser:
    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/") + "/model/parse" + (f"?token={token}" if token else "")

    def parse(self, text: str) -> dict:
        req = urllib.request.Request(
            self.url,
            data=json.dumps({"text": text}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())


class AgentParser:
    def __init__(self, model: str) -> None:
        os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
        import logging

        from rasa.core.agent import Agent
        from rasa.utils.log_utils import configure_structlog

        logging.basicConfig(level=logging.WARNING)
        configure_structlog(logging.WARNING)  # no per-message debug lines on stdout

        self.loop = asyncio.new_event_loop()
        self.agent = Agent.load(model)

    def parse(self, text: str) -> dict:
        return self.loop.run_until_complete(self.agent.parse_message(text))


def newest_model() -> str | None:
    cache = Path(os.environ.get("DEME_CACHE_DIR", Path.home() / ".cache" / "deme"))
    models = sorted((cache / "bot-models").glob("deme-*.tar.gz"), key=lambda p: p.stat().st_mtime)
    return str(models[-1]) if models else None


def f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def evaluate(parser, lang: str, errors: list[str], which: str = "heldout") -> dict:
    items = load_heldout(EVAL_DIR / f"{which}_{lang}.yml")
    gold_intents = sorted({i for i, _, _ in items})
    tp = Counter()
    fp = Counter()
    fn = Counter()
    ent_tp = ent_fp = ent_fn = 0
    fallback = 0
    latencies = []
    category_right = Counter()  # rasa | fallback | vote -> examples whose category is right
    category_gold = 0
    for intent, text, gold_entities in items:
        started = time.perf_counter()
        result = parser.parse(text)
        latencies.append(time.perf_counter() - started)
        predicted = (result.get("intent") or {}).get("name")
        predicted = FINER_INTENTS.get(predicted, predicted)
        if intent in CATEGORY_OF:
            category_gold += 1
            # The pipeline's answer is the vote (components/keyword_vote.py); when the vote
            # replaced the model's intent, the parse result keeps the model's as voted_over.
            model_alone = (result.get("voted_over") or result.get("intent") or {}).get("name")
            model_alone = FINER_INTENTS.get(model_alone, model_alone)
            for name, category in (
                ("model", CATEGORY_OF.get(model_alone or "")),
                ("fallback", fallback_category(text)),
                ("pipeline", CATEGORY_OF.get(predicted or "")),
            ):
                category_right[name] += category == CATEGORY_OF[intent]
        if predicted == "nlu_fallback":
            fallback += 1
        if predicted == intent:
            tp[intent] += 1
        else:
            fn[intent] += 1
            fp[predicted] += 1
            conf = (result.get("intent") or {}).get("confidence", 0)
            errors.append(f"| {lang} | {text} | {intent} | {predicted} ({conf:.2f}) |")
        gold = Counter((e, v) for e, v in gold_entities)
        pred = Counter(
            (e["entity"], text[e["start"] : e["end"]])
            for e in result.get("entities", [])
            if e.get("entity") in ("place", "household_size") and "start" in e
        )
        matched = sum((gold & pred).values())
        ent_tp += matched
        ent_fp += sum(pred.values()) - matched
        ent_fn += sum(gold.values()) - matched
        if gold != pred:
            errors.append(
                f"| {lang} | {text} | entities {sorted(gold.elements())} |"
                f" {sorted(pred.elements())} |"
            )
    per_intent = {}
    for intent in gold_intents:
        p = tp[intent] / (tp[intent] + fp[intent]) if tp[intent] + fp[intent] else 0.0
        r = tp[intent] / (tp[intent] + fn[intent]) if tp[intent] + fn[intent] else 0.0
        per_intent[intent] = f1(p, r)
    ep = ent_tp / (ent_tp + ent_fp) if ent_tp + ent_fp else 0.0
    er = ent_tp / (ent_tp + ent_fn) if ent_tp + ent_fn else 0.0
    latencies.sort()
    return {
        "n": len(items),
        "accuracy": sum(tp.values()) / len(items),
        "macro_f1": sum(per_intent.values()) / len(per_intent),
        "per_intent": per_intent,
        "entity_p": ep,
        "entity_r": er,
        "entity_f1": f1(ep, er),
        "entities": ent_tp + ent_fn,
        "fallback": fallback,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "category": {
            name: category_right[name] / category_gold if category_gold else 0.0
            for name in ("model", "fallback", "pipeline")
        },
        "category_gold": category_gold,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="running Rasa server, e.g. http://127.0.0.1:5005")
    ap.add_argument("--token", default=os.environ.get("DEME_RASA_TOKEN"))
    ap.add_argument("--model", help="model .tar.gz (default: newest in the cache)")
    ap.add_argument("--set", dest="which", choices=("heldout", "blind"), default="heldout")
    ap.add_argument("--out", type=Path, help="default: bot/eval/results.md (results_blind.md)")
    ap.add_argument("--min-fr", type=float, default=0.0, help="fail below this French macro-F1")
    ap.add_argument("--min-bm", type=float, default=0.0, help="fail below this Bambara macro-F1")
    args = ap.parse_args()
    if args.url:
        parser = HttpParser(args.url, args.token)
        source = f"Rasa server {args.url}"
    else:
        model = args.model or newest_model()
        if not model:
            print("no model: run bot/scripts/train_if_changed.sh or pass --model", file=sys.stderr)
            return 2
        parser = AgentParser(model)
        source = f"model {Path(model).name}"
    errors: list[str] = []
    blind = args.which == "blind"
    results = {lang: evaluate(parser, lang, errors, args.which) for lang in LANGS}
    out = args.out or EVAL_DIR / ("results_blind.md" if blind else "results.md")

    described = (
        "Blind files bot/eval/blind_{fr,bm,en}.yml (written without reading the training data; "
        "never trained on, never tuned against; their errors are not recorded)"
        if blind
        else "Held-out files bot/eval/heldout_{fr,bm,en}.yml (never trained on)"
    )
    lines = [
        f"# Deme bot: NLU evaluation on the {'blind' if blind else 'held-out'} sets",
        "",
        f"{described}, normalised as the channel does; parsed by {source}. Macro-F1 over the "
        "gold intents; nlu_fallback counts as a wrong intent.",
        "",
        "| language | examples | intent accuracy | intent macro-F1 | entity P | entity R "
        "| entity F1 | fallbacks | parse p50 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for lang, r in results.items():
        lines.append(
            f"| {lang} | {r['n']} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | "
            f"{r['entity_p']:.3f} | {r['entity_r']:.3f} | {r['entity_f1']:.3f} "
            f"({r['entities']} gold) | {r['fallback']} | {r['p50_ms']:.0f} ms |"
        )
    lines += [
        "",
        "Ticket category right, on the examples that open a ticket (need or protection): the "
        "trained model alone, the keyword fallback alone (bot/fallback.py, what answers when "
        "Rasa is down) and the pipeline (the model with the KeywordVote component: what the bot "
        "does; the intent accuracy above is the pipeline's). Predictions of request_food / "
        "psea_report count as the files' request_other / protection_concern.",
        "",
        "| language | examples | model alone | fallback alone | pipeline (vote) |",
        "|---|---|---|---|---|",
    ]
    for lang, r in results.items():
        c = r["category"]
        lines.append(
            f"| {lang} | {r['category_gold']} | {c['model']:.3f} | {c['fallback']:.3f} "
            f"| {c['pipeline']:.3f} |"
        )
    intents = sorted({i for r in results.values() for i in r["per_intent"]})
    lines += [
        "",
        "Per-intent F1:",
        "",
        "| intent | " + " | ".join(LANGS) + " |",
        "|---|" + "---|" * len(LANGS),
    ]
    for intent in intents:
        cells = [f"{results[lang]['per_intent'].get(intent, float('nan')):.2f}" for lang in LANGS]
        lines.append(f"| {intent} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    out.write_text(text, encoding="utf-8")
    if blind:
        print(text)
        ok = results["fr"]["macro_f1"] >= args.min_fr and results["bm"]["macro_f1"] >= args.min_bm
        return 0 if ok else 1
    (EVAL_DIR / "errors.md").write_text(
        "# Held-out errors (for improving the TRAINING data, never copy these lines)\n\n"
        "| lang | text | gold | predicted |\n|---|---|---|---|\n" + "\n".join(errors) + "\n",
        encoding="utf-8",
    )
    print(text)
    ok = results["fr"]["macro_f1"] >= args.min_fr and results["bm"]["macro_f1"] >= args.min_bm
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
