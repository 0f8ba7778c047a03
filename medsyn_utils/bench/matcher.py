"""``medsyn bench matcher``: the symptom matcher on RuMedSymptomRec gold pairs, with two baselines.

Positive: a RuMedTop3 visit's complaint text and its marked-up symptom; negative: the same text
with the marked spans removed. The matcher (the stage's learned detector, and the plain rule
matcher beside it) calls a pair positive when it finds the symptom (affirmed or negated: the
mark-up marks where a symptom is stated, in either sense). Thresholds
are chosen on pairs of *train* visits; precision/recall/F1/AUC are reported on dev+test visits.
Baselines measured in the same run: the 4-letter stem match (at least half the words), and
BERTScore recall of the symptom against the text with the kit's scorer on a seeded subsample.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from medsyn_utils.evaluate.detector import FEATURES
from medsyn_utils.evaluate.faithfulness import load_detector
from medsyn_utils.evaluate.faithfulness import DEFAULT_THRESHOLD, SymptomMatcher
from medsyn_utils.evaluate.gold import auc, best_threshold, detection, evaluate_detector, \
    gold_pairs, stem_baseline
from medsyn_utils.evaluate.lexicon import tokens
from medsyn_utils.score.encoders import EMBEDDED_E5

OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--bertscore-pairs",), dict(type=int, default=400,
                                  help="pairs (train and held-out each) for the BERTScore baseline; 0 skips it")),
    (("--encoder",), dict(default=EMBEDDED_E5, help="encoder of the BERTScore baseline")),
    (("--layer",), dict(type=int, default=9, help="encoder layer of the BERTScore baseline")),
    (("--seed",), dict(type=int, default=0, help="seed of the BERTScore subsample")),
)


def _clean(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "scores"}


def _bertscore(pairs, args) -> dict[str, Any]:
    from medsyn_utils.score.scorer import NoteScorer

    rng = np.random.default_rng(args.seed)
    n = int(args.bertscore_pairs)
    parts = []
    for held in (False, True):
        pool = np.flatnonzero((pairs["split"] != "train").to_numpy() == held)
        parts.append(rng.choice(pool, size=min(n, len(pool)), replace=False))
    sample = pairs.iloc[np.concatenate(parts)].reset_index(drop=True)
    scorer = NoteScorer(args.encoder, args.layer, batch_size=32)
    scored = scorer.score(list(sample["text"]), list(sample["symptom"]), [None] * len(sample),
                          progress=False)
    scores = scored["symptoms_recall"].to_numpy(float)
    labels = sample["label"].to_numpy()
    train = (sample["split"] == "train").to_numpy()
    chosen = best_threshold(scores[train], labels[train]).threshold
    return {"encoder": args.encoder, "layer": args.layer, "pairs_train": int(train.sum()),
            "pairs_heldout": int((~train).sum()), "threshold": round(chosen, 4),
            "heldout": detection(scores[~train], labels[~train], chosen).as_dict()
            | {"auc": round(auc(scores[~train], labels[~train]), 4)},
            "heldout_best_threshold_in_hindsight": best_threshold(scores[~train], labels[~train]).as_dict()}


def _learned(pairs, cache) -> tuple[dict[str, Any], float]:
    """The stage's detector: trained on train pairs (cached), its train threshold, held-out."""
    detector = load_detector()
    matcher = SymptomMatcher(unrequested=False)
    started = time.perf_counter()
    rows = [matcher.pair_features(symptom, text, cache.setdefault(text, tokens(text)), detector)[0]
            for text, symptom in zip(pairs["text"], pairs["symptom"])]
    chances = detector.model.predict_proba(np.vstack(rows))[:, 1]
    seconds = time.perf_counter() - started
    lookup = dict(zip(zip(pairs["text"], pairs["symptom"]), chances))
    result = evaluate_detector(pairs, lambda text, symptom: lookup[(text, symptom)],
                               detector.threshold)
    return _clean(result) | {"trained_on": "train pairs only", "features": list(FEATURES),
                             "pairs_per_second": round(len(pairs) / seconds, 1)}, seconds


def run(args) -> dict[str, Any]:
    pairs = gold_pairs()
    rule = SymptomMatcher(threshold=0.0, unrequested=False, detector="rule")
    cache: dict[str, list] = {}

    def score(text: str, symptom: str) -> float:
        return rule.match_symptom(symptom, cache.setdefault(text, tokens(text))).score

    tuned = evaluate_detector(pairs, score)
    at_default = evaluate_detector(pairs, score, DEFAULT_THRESHOLD)
    stem = evaluate_detector(pairs, stem_baseline, 0.5)
    learned, _ = _learned(pairs, cache)
    result = {
        "pairs": int(len(pairs)), "visits": int(pairs["idx"].nunique()),
        "matcher": learned,
        "rule_matcher_threshold_from_train": _clean(tuned),
        "rule_matcher_at_default_threshold": _clean(at_default),
        "stem_baseline": _clean(stem),
        "target_f1": 0.9,
    }
    if args.bertscore_pairs > 0:
        result["bertscore_baseline"] = _bertscore(pairs, args)
    result["ratio_f1_matcher_over_stem"] = round(
        result["matcher"]["heldout"]["f1"] / max(stem["heldout"]["f1"], 1e-9), 3)
    return result
