"""``medsyn bench downstream``: the downstream classifier against plain logistic regression.

Real RuMedTop3 train / dev / test visits (4,690 / 848 / 822) and a stand-in synthetic set of
``--n-synthetic`` long notes (default 2,400), each two to three real *train* full notes of one
code joined (about 150 words, like LLM notes; no dev/test text). Measured in one run:

* fit time and dev/test acc@1/3 of the real-only ``tfidf-svm`` (the default) and of a plain
  multinomial logistic regression on the same features (``tfidf-logreg``), and their ratio;
* the wall time of every setting the study runs by default (real only, real + synthetic,
  synthetic only, real oversampled, real class-weighted) with ``tfidf-svm``, features included.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from medsyn_utils.core.checks import SEED_MAX


# Options of `medsyn bench downstream` (flags, argparse keywords); cli/bench.py adds them.
OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--n-synthetic",), dict(type=int, default=2400, help="stand-in synthetic notes")),
    (("--logreg-max-iter",), dict(type=int, default=300, help="solver iterations of the logistic regression (lbfgs)")),
    (("--seed",), dict(type=int, default=0, help="which train notes are joined")),
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
    from medsyn_utils.downstream.classifiers import make_classifier
    from medsyn_utils.downstream.experiment import top_k_accuracy

    model = make_classifier(kind, **options).fit_features(real["train"]["text"])
    matrix = model.features.transform(real["train"]["text"])
    start = time.perf_counter()
    model.fit_matrix(matrix, list(real["train"]["code"]))
    seconds = time.perf_counter() - start
    out = {"fit_seconds": round(seconds, 2)}
    for split in ("dev", "test"):
        acc = top_k_accuracy(model.scores(real[split]["text"]), real[split]["code"], model.classes_, (1, 3))
        out.update({f"{split}_{k}": round(v, 4) for k, v in acc.items()})
    return out


def run(args: Any) -> dict[str, Any]:
    from medsyn_utils.downstream.classifiers import classifier_factory
    from medsyn_utils.downstream.experiment import experiment_settings, run_settings
    from medsyn_utils.downstream.inputs import load_real

    real = load_real()
    synthetic = stand_in_synthetic(args.n_synthetic, args.seed)
    svm = _real_only("tfidf-svm", real)
    logreg = _real_only("tfidf-logreg", real, max_iter=args.logreg_max_iter, C=10.0)
    start = time.perf_counter()
    result = run_settings(real["train"], real["dev"], real["test"], synthetic,
                          settings=experiment_settings(False), seeds=1,
                          make_model=classifier_factory("tfidf-svm"), progress=False)
    settings_seconds = time.perf_counter() - start
    summary = result.summary().query("split == 'test'").set_index("setting")
    return {
        "svm_fit_seconds": svm["fit_seconds"], "logreg_fit_seconds": logreg["fit_seconds"],
        "ratio": round(logreg["fit_seconds"] / max(svm["fit_seconds"], 1e-9), 2),
        **{f"svm_{k}": v for k, v in svm.items() if k != "fit_seconds"},
        **{f"logreg_{k}": v for k, v in logreg.items() if k != "fit_seconds"},
        "settings": list(summary.index),
        "settings_seconds": round(settings_seconds, 1),
        **{f"{name}_test_acc@1": round(float(row["acc@1"]), 4) for name, row in summary.iterrows()},
        "n_real_train": int(len(real["train"])), "n_synthetic": int(len(synthetic)),
        "real_median_words": float(real["train"]["text"].str.split().str.len().median()),
        "synthetic_median_words": float(synthetic["text"].str.split().str.len().median()),
        "classifier": result.classifier,
    }
