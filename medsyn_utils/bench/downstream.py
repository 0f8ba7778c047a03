"""``medsyn bench downstream``: each classifier of the downstream panel, fit time and accuracy.

Real RuMedTop3 train / dev / test visits (4,690 / 848 / 822) and a stand-in synthetic set of
``--n-synthetic`` long notes (default 2,400), each two to three real *train* full notes of one
code joined (about 150 words, like LLM notes; no dev/test text). Measured in one run:

* per classifier of ``--classifiers`` (the panel: ``tfidf-logreg``, ``tfidf-svm``,
  ``e5-logreg``): the real-only fit time (features or embeddings timed apart) and dev/test
  acc@1/3/5, the logreg / svm fit-time ratio and the dev winner; with ``--lbfgs-reference``
  also tfidf-logreg's multinomial lbfgs solver (its fit time over the sgd one's);
* unless ``--real-only``, the wall time of every setting and control the study runs by default
  (real only, real + synthetic, synthetic only, oversampled, class-weighted, recombined; random
  ones over 3 seeds) for each classifier, and their total (the panel's time); the machine's load
  average before and after (the 2 cores are often shared, which slows every number).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from medsyn_utils.core.checks import SEED_MAX
from medsyn_utils.score.encoders import EMBEDDED_E5


# Options of `medsyn bench downstream` (flags, argparse keywords); cli/bench.py adds them.
OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--n-synthetic",), dict(type=int, default=2400, help="stand-in synthetic notes [1..]")),
    (("--logreg-max-iter",), dict(type=int, default=300, help="solver iterations (sgd: epochs) of the logistic regression [1..]")),
    (("--lbfgs-reference",), dict(action="store_true",
                                  help="also time tfidf-logreg's multinomial lbfgs solver (real-only fit), for the ratio")),
    (("--seed",), dict(type=int, default=0, help="which train notes are joined [0..]")),
    (("--classifiers",), dict(default="tfidf-logreg,tfidf-svm,e5-logreg",
                              help="comma-separated classifiers of the panel to time")),
    (("--embedding-encoder",), dict(default=EMBEDDED_E5,
                                    help="e5-logreg: encoder folder or embedded:multilingual-e5-small")),
    (("--real-only",), dict(action="store_true",
                            help="only the real-only fits, not every setting and control of the panel")),
)

# Allowed values of the numeric options (keywords of core.checks.check_number), checked by
# `medsyn bench` before anything loads.
RANGES: dict[str, dict[str, Any]] = {
    "n_synthetic": dict(low=1, high=10_000_000, integer=True),
    "logreg_max_iter": dict(low=1, high=1_000_000, integer=True),
    "seed": dict(low=0, high=SEED_MAX, integer=True),
}


def stand_in_synthetic(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` long notes (``text``, ``code``), each 2–3 real train full notes of one code joined."""
    from medsyn_utils.core.corpus import load_full_notes

    rng = np.random.default_rng(seed)
    notes = load_full_notes("train")
    by_code = {code: list(group["full_text"]) for code, group in notes.groupby("code")}
    codes = rng.choice(notes["code"].to_numpy(), size=n)
    rows = []
    for code in codes:
        pool = by_code[code]
        picked = rng.choice(len(pool), size=min(len(pool), int(rng.integers(2, 4))), replace=False)
        rows.append({"text": " ".join(pool[i] for i in picked), "code": code})
    return pd.DataFrame(rows)


def _real_only(kind: str, real: dict[str, pd.DataFrame], **options: Any) -> dict[str, float]:
    """Real-only fit of one classifier: fit seconds (embedding or features apart) and dev/test acc."""
    from medsyn_utils.downstream.classifiers import TfidfLinear, make_classifier
    from medsyn_utils.downstream.experiment import top_k_accuracy

    model = make_classifier(kind, **options)
    out: dict[str, float] = {}
    start = time.perf_counter()
    if isinstance(model, TfidfLinear):
        model.fit_features(real["train"]["text"])
        matrices = {s: model.features.transform(real[s]["text"]) for s in ("train", "dev", "test")}
        out["features_seconds"] = round(time.perf_counter() - start, 2)
        start = time.perf_counter()
        model.fit_matrix(matrices["train"], list(real["train"]["code"]))
        scores = {s: model.scores_matrix(matrices[s]) for s in ("dev", "test")}
    else:
        if hasattr(model, "vectors"):
            model.vectors([t for s in ("train", "dev", "test") for t in real[s]["text"]])
            out["embed_seconds"] = round(time.perf_counter() - start, 2)
            start = time.perf_counter()
        model.fit(list(real["train"]["text"]), list(real["train"]["code"]))
        scores = {s: model.scores(list(real[s]["text"])) for s in ("dev", "test")}
    out["fit_seconds"] = round(time.perf_counter() - start, 2)
    for split in ("dev", "test"):
        acc = top_k_accuracy(scores[split], real[split]["code"], model.classes_, (1, 3, 5))
        out.update({f"{split}_{k}": round(v, 4) for k, v in acc.items()})
    return out


def _panel(kinds: list[str], options: dict[str, dict[str, Any]], real: dict[str, pd.DataFrame],
           synthetic: pd.DataFrame, per: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every default setting and control (3 seeds) per classifier, as the study runs them: the
    TF-IDF members share one feature cache; e5 vectors of the synthetic notes are embedded first
    (a kit run reads them from the cache scoring filled) and timed apart."""
    from medsyn_utils.downstream.classifiers import classifier_factory
    from medsyn_utils.downstream.experiment import CONTROLS, experiment_settings, run_settings

    settings = experiment_settings(False, CONTROLS)
    out: dict[str, Any] = {}
    if "e5-logreg" in kinds:
        from medsyn_utils.downstream.embedding import embed

        start = time.perf_counter()
        embed(list(synthetic["text"]), options["e5-logreg"].get("encoder", EMBEDDED_E5))
        out["synthetic_embed_seconds"] = round(time.perf_counter() - start, 1)
    seconds, feature_cache = {}, {}
    for kind in kinds:
        start = time.perf_counter()
        result = run_settings(real["train"], real["dev"], real["test"], synthetic,
                              settings=settings, seeds=3,
                              make_model=classifier_factory(kind, **options.get(kind, {})),
                              progress=False, reuse={"feature_cache": feature_cache})
        seconds[kind] = round(time.perf_counter() - start, 1)
        per[kind]["panel_fits"] = int(result.runs[result.runs["split"] == "test"].shape[0])
        summary = result.summary().query("split == 'test'").set_index("setting")
        per[kind]["settings_test_acc@1"] = {name: round(float(row["acc@1"]), 4)
                                            for name, row in summary.iterrows()}
    out.update(panel_settings_seconds=seconds, panel_seconds_total=round(sum(seconds.values()), 1),
               settings=[s.name for s in settings], seeds=3)
    return out


def run(args: Any) -> dict[str, Any]:
    import os

    from medsyn_utils.core.errors import ParameterError
    from medsyn_utils.downstream.classifiers import CLASSIFIERS
    from medsyn_utils.downstream.inputs import load_real

    kinds = [k.strip() for k in str(args.classifiers).split(",") if k.strip()]
    unknown = [k for k in kinds if k not in CLASSIFIERS or k == "transformer"]
    if not kinds or unknown:
        raise ParameterError(f"--classifiers {args.classifiers!r}: use a comma-separated list of "
                             f"tfidf-svm, tfidf-logreg, e5-logreg")
    for name in ("n_synthetic", "logreg_max_iter"):
        if getattr(args, name) < 1:
            raise ParameterError(f"--{name.replace('_', '-')} {getattr(args, name)}: use 1 or more")
    options = {"tfidf-logreg": {"max_iter": args.logreg_max_iter},
               "e5-logreg": {"encoder": args.embedding_encoder}}
    load_before = [round(x, 2) for x in os.getloadavg()]
    start_all = time.perf_counter()
    real = load_real()
    synthetic = stand_in_synthetic(args.n_synthetic, args.seed)
    per = {kind: _real_only(kind, real, **options.get(kind, {})) for kind in kinds}
    out: dict[str, Any] = {"classifiers": per}
    if getattr(args, "lbfgs_reference", False):
        out["tfidf-logreg_lbfgs_real_only"] = _real_only(
            "tfidf-logreg", real, **{**options["tfidf-logreg"], "solver": "lbfgs"})
        if "tfidf-logreg" in per:
            out["lbfgs_over_sgd_fit_ratio"] = round(
                out["tfidf-logreg_lbfgs_real_only"]["fit_seconds"]
                / max(per["tfidf-logreg"]["fit_seconds"], 1e-9), 2)
    if {"tfidf-svm", "tfidf-logreg"} <= set(per):
        out.update(svm_fit_seconds=per["tfidf-svm"]["fit_seconds"],
                   logreg_fit_seconds=per["tfidf-logreg"]["fit_seconds"],
                   ratio=round(per["tfidf-logreg"]["fit_seconds"]
                               / max(per["tfidf-svm"]["fit_seconds"], 1e-9), 2))
    ranked = sorted(per, key=lambda k: (per[k]["dev_acc@1"], per[k]["dev_acc@3"]), reverse=True)
    out["dev_winner"] = ranked[0]
    if not getattr(args, "real_only", False):
        out.update(_panel(kinds, options, real, synthetic, per))
    out.update({
        "n_real_train": int(len(real["train"])), "n_synthetic": int(len(synthetic)),
        "real_median_words": float(real["train"]["text"].str.split().str.len().median()),
        "synthetic_median_words": float(synthetic["text"].str.split().str.len().median()),
        "seconds_total": round(time.perf_counter() - start_all, 1),
        "load_average_1_5_15": {"before": load_before,
                                "after": [round(x, 2) for x in os.getloadavg()]},
        "cpu_count": os.cpu_count(),
    })
    return out
