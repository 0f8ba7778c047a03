"""Calibration: the paper's thresholds mapped to the encoder at hand by percentile on real notes.

The paper's thresholds (recall ≥ 0.65, precision > 0.7) are on the scale of
``bert-base-multilingual-cased``; :func:`calibrate` scores real notes (RuMedPrime mark-up, train
visits only) against their own symptoms and another note of the same code, and maps each
threshold to the score at the same percentile under the encoder in use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from medsyn_utils.core.errors import ModelError, ParameterError
from medsyn_utils.score.encoders import PAPER_ENCODER, PAPER_LAYER
from medsyn_utils.score.filter import PAPER_THRESHOLDS
from medsyn_utils.score.scorer import NoteScorer


def calibration_pairs(n: int, seed: int) -> pd.DataFrame:
    """Real train notes with their own marked-up symptom(s) and another real note of the same code.

    Only RuMedTop3 *train* visits are used (the downstream test must stay unseen). Columns:
    ``idx``, ``code``, ``note`` (the full note), ``symptoms`` (mark-up joined by ", "),
    ``other_idx``, ``other_note`` (None when the code has a single note).
    """
    from medsyn_utils.core.corpus import load_full_notes, load_markup

    if n < 1:
        raise ParameterError(f"calibration size n={n} must be >= 1")
    markup = load_markup()
    markup = markup[(markup["split"] == "train") & markup["symptom"].notna()]
    symptoms = markup.groupby("idx")["symptom"].agg(lambda s: ", ".join(dict.fromkeys(s.str.strip())))
    notes = load_full_notes("train")
    notes = notes[notes["full_text"].str.strip().astype(bool)]
    with_markup = notes[notes["idx"].isin(symptoms.index)].sort_values("idx").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    picked = with_markup.iloc[np.sort(rng.choice(len(with_markup), size=min(n, len(with_markup)),
                                                 replace=False))]
    by_code = {code: group for code, group in notes.sort_values("idx").groupby("code")}
    others_idx, others = [], []
    for idx, code in zip(picked["idx"], picked["code"]):
        pool = by_code[code][by_code[code]["idx"] != idx]
        if len(pool):
            row = pool.iloc[int(rng.integers(len(pool)))]
            others_idx.append(row["idx"])
            others.append(row["full_text"])
        else:
            others_idx.append(None)
            others.append(None)
    return pd.DataFrame({"idx": picked["idx"].to_numpy(), "code": picked["code"].to_numpy(),
                         "note": picked["full_text"].to_numpy(),
                         "symptoms": picked["idx"].map(symptoms).to_numpy(),
                         "other_idx": others_idx, "other_note": others})


@dataclass
class Calibration:
    """Thresholds mapped to an encoder by percentile on real notes."""

    table: pd.DataFrame                # one row per score: paper threshold, percentile, mapped threshold
    scores: pd.DataFrame               # per real note: its recall and precision (and the paper encoder's)
    thresholds: dict[str, float] = field(default_factory=dict)

    def threshold(self, score: str) -> float:
        return self.thresholds[score]


def map_threshold(threshold: float, target_scores: Sequence[float],
                  reference_scores: Sequence[float] | None = None, *, assumed_percentile: float = 10.0,
                  strict: bool = False) -> tuple[float, float]:
    """(mapped threshold, percentile): the score at the same percentile of real notes.

    The percentile is the share of real notes below ``threshold`` under the paper's encoder
    (``reference_scores``; ``strict`` counts ties as below, for a ">" rule), or
    ``assumed_percentile`` where that encoder cannot be run.
    """
    target = np.asarray(target_scores, dtype=float)
    target = target[~np.isnan(target)]
    if not len(target):
        return math.nan, math.nan
    if reference_scores is not None:
        ref = np.asarray(reference_scores, dtype=float)
        ref = ref[~np.isnan(ref)]
        percentile = 100.0 * float(np.mean(ref <= threshold if strict else ref < threshold))
    else:
        percentile = float(assumed_percentile)
    return float(np.percentile(target, percentile)), percentile


def calibrate(scorer: NoteScorer, n: int = 200, seed: int = 0, *,
              paper_thresholds: Mapping[str, float] = PAPER_THRESHOLDS,
              reference: NoteScorer | None = None, assumed_percentile: float = 10.0,
              pairs: pd.DataFrame | None = None, progress: bool = False) -> Calibration:
    """Score real notes against their own symptoms and a same-code note; map the paper's
    thresholds to ``scorer``'s scale by percentile.

    ``reference``: a scorer with the paper's encoder (``bert-base-multilingual-cased``, layer 9),
    when it can be loaded; without it the percentile is ``assumed_percentile`` (labelled so).
    """
    if not 0 <= assumed_percentile <= 100:
        raise ParameterError(f"assumed_percentile={assumed_percentile} must lie in 0..100")
    pairs = calibration_pairs(n, seed) if pairs is None else pairs
    own = scorer.score(pairs["note"].tolist(), pairs["symptoms"].tolist(), pairs["other_note"].tolist(),
                       progress=progress)
    scores = pairs[["idx", "code", "other_idx"]].copy()
    scores["symptoms_recall"] = own["symptoms_recall"].to_numpy()
    scores["anamnesis_precision"] = own["anamnesis_precision"].to_numpy()
    ref = None
    if reference is not None:
        ref = reference.score(pairs["note"].tolist(), pairs["symptoms"].tolist(),
                              pairs["other_note"].tolist(), progress=progress)
        scores["paper_symptoms_recall"] = ref["symptoms_recall"].to_numpy()
        scores["paper_anamnesis_precision"] = ref["anamnesis_precision"].to_numpy()
    rows, thresholds = [], {}
    for name, strict in (("symptoms_recall", False), ("anamnesis_precision", True)):
        paper = float(paper_thresholds[name])
        values = scores[name].to_numpy(dtype=float)
        mapped, percentile = map_threshold(paper, values, None if ref is None else ref[name],
                                           assumed_percentile=assumed_percentile, strict=strict)
        clean = values[~np.isnan(values)]
        thresholds[name] = mapped
        rows.append({
            "score": name, "rule": ">" if strict else ">=", "paper_threshold": paper,
            "percentile": percentile,
            "percentile_source": (f"measured with {reference.info.name} layer {reference.layer}"
                                  if ref is not None else "assumed (paper encoder not available here)"),
            "mapped_threshold": mapped, "encoder": scorer.info.name, "layer": scorer.layer,
            "real_notes": len(clean),
            "real_mean": float(clean.mean()) if len(clean) else math.nan,
            **{f"real_p{q:02d}": float(np.percentile(clean, q)) if len(clean) else math.nan
               for q in (5, 10, 25, 50)},
            "real_passing_paper_number": float(np.mean(clean > paper if strict else clean >= paper))
            if len(clean) else math.nan,
            "real_passing_mapped": float(np.mean(clean > mapped if strict else clean >= mapped))
            if len(clean) else math.nan,
        })
    return Calibration(table=pd.DataFrame(rows), scores=scores, thresholds=thresholds)


def paper_reference_scorer(encoder: str = PAPER_ENCODER, layer: int = PAPER_LAYER,
                           **options) -> NoteScorer | None:
    """The paper's encoder where it can be loaded (cached or online), else None."""
    if not encoder:
        return None
    try:
        return NoteScorer(encoder, layer, **options)
    except ModelError:
        return None

