"""Synthetic inputs: code mapping, selection by model / prior / source, the filter's honest semantics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import HELD

from medsyn_utils.core.errors import InputTableError, ParameterError
from medsyn_utils.downstream import inputs
from medsyn_utils.score.filter import filter_status, passed_filter
from medsyn_utils.downstream.inputs import prepare_synthetic
from medsyn_utils.downstream.leakage import HeldOut


@pytest.mark.parametrize("code, category", [
    ("J06.9", "J06"), ("j06", "J06"), (" M54.50 ", "M54"), ("М54.5", "M54"),  # Cyrillic М
    ("К29", "K29"), ("Z00.00", "Z00"), ("bad", None), ("", None), (None, None), (float("nan"), None),
])
def test_to_category(code, category):
    assert inputs.to_category(code) == category


def test_selection_by_model_prior_and_source(published):
    frame = published([{"generation_model": m, "prior": p, "example_source": s}
                       for m, p, s in [("GPT-x", "a", "RuMedPrime"), ("GPT-x", "b", None),
                                       ("LLaMA-y", "a", "RuMedPrime"), ("LLaMA-y", "b", "private data")]])
    picked, counts = inputs.select_rows(frame, models=["GPT-x"])
    assert picked["idx"].tolist() == [0, 1] and counts["rows_selected"] == 2
    assert counts["generation_model_counts"] == {"GPT-x": 2}
    picked, _ = inputs.select_rows(frame, models=["GPT-x", "LLaMA-y"], priors=["a"])
    assert picked["idx"].tolist() == [0, 2]
    picked, _ = inputs.select_rows(frame, example_sources=["(none)", "private data"])
    assert picked["idx"].tolist() == [1, 3]
    assert len(inputs.select_rows(frame)[0]) == 4  # nothing asked: everything kept
    with pytest.raises(ParameterError, match="GPT-4 not in the table's generation_model .present: GPT-x, LLaMA-y"):
        inputs.select_rows(frame, models=["GPT-4"])
    with pytest.raises(ParameterError, match="lacks"):
        inputs.select_rows(frame.drop(columns=["prior"]), priors=["a"])


def test_use_filter_on_missing_scores_says_to_score_first(published):
    held = HeldOut.from_frames(HELD)
    frame = published([{}, {}]).drop(columns=["symptoms_recall", "anamnesis_precision"])
    with pytest.raises(InputTableError, match=r"score it first \(medsyn score\)"):
        inputs.prepare_synthetic(frame, categories=["J06"], held_out=held, use_filter=True)
    empty_scores = published([{"symptoms_recall": None, "anamnesis_precision": None}] * 2)
    with pytest.raises(InputTableError, match="has none"):
        inputs.prepare_synthetic(empty_scores, categories=["J06"], held_out=held, use_filter=True)
    kept, counts = inputs.prepare_synthetic(frame, categories=["J06"], held_out=held, use_filter=False)
    assert len(kept) == 2 and counts["filter"] == "off"


def test_a_criterion_that_does_not_apply_never_counts_as_passed(published):
    held = HeldOut.from_frames(HELD)
    frame = published([{"symptoms_recall": 0.9, "anamnesis_precision": 0.9},
                       {"symptoms_recall": 0.5, "anamnesis_precision": 0.9},
                       {"symptoms_recall": 0.9, "anamnesis_precision": 0.7},  # not > 0.7
                       {"symptoms_recall": 0.9, "anamnesis_precision": float("nan")},  # no example
                       {"symptoms_recall": float("nan"), "anamnesis_precision": float("nan")}])  # code-only
    kept, counts = inputs.prepare_synthetic(frame, categories=["J06"], held_out=held, use_filter=True)
    # scoring's rule: the missing precision does not apply, recall alone decides (as in scored.parquet)
    assert kept["idx"].tolist() == [0, 3]
    assert counts["failed_filter"] == 2 and counts["filter_not_applicable"] == 1
    assert "applies where a score is present" in counts["filter"]
    frame = frame.iloc[:4].copy()
    # the scoring stage's columns win; filter_applies False is its own group even with passed_filter
    frame["passed_filter"] = [False, True, True, True]
    frame["filter_applies"] = [True, True, False, True]
    kept, counts = inputs.prepare_synthetic(frame, categories=["J06"], held_out=held, use_filter=True)
    assert kept["idx"].tolist() == [1, 3] and counts["filter_not_applicable"] == 1
    assert counts["filter"] == "passed_filter column; filter_applies column"
    kept, counts = inputs.prepare_synthetic(frame, categories=["J06"], held_out=held, use_filter=False)
    assert len(kept) == 4 and counts["failed_filter"] == 0
    assert kept["filter_group"].tolist() == ["failed", "passed", "filter not applicable", "passed"]


def test_filter_status_without_filter_applies_column():
    """The scoring rule (score/filter.py): a missing score is a criterion that does not apply."""
    frame = pd.DataFrame({"symptoms_recall": [0.7, np.nan, 0.7, 0.5, np.nan],
                          "anamnesis_precision": [0.8, 0.9, np.nan, np.nan, np.nan]})
    applies, passed, _ = filter_status(frame)
    assert applies.tolist() == [True, True, True, True, False]
    assert passed.tolist() == [True, True, True, False, False]
    # the same decisions as scoring's passed_filter on the same scores
    assert passed.tolist() == passed_filter(frame["symptoms_recall"], frame["anamnesis_precision"],
                                            **{"recall_threshold": 0.65,
                                               "precision_threshold": 0.7}).tolist()


def test_prepare_synthetic_maps_codes_and_counts_what_it_leaves_out(published):
    held = HeldOut.from_frames(HELD)
    frame = published([
        {"ICD-10": "J06.9"}, {"ICD-10": "М54.5"}, {"ICD-10": "Z99.9"}, {"ICD-10": "U07.1"},
        {"ICD-10": "Z99.9"}, {"ICD-10": "nonsense"}, {"response": ""}, {"response": None},
    ])
    kept, counts = inputs.prepare_synthetic(frame, categories=["J06", "M54"], held_out=held)
    assert kept["code"].tolist() == ["J06", "M54"]
    assert counts["empty_response"] == 2 and counts["outside_task_codes"] == 4
    assert counts["outside_task_code_examples"] == {"Z99.9": 2, "U07.1": 1, "nonsense": 1}
    assert counts["kept_codes"] == 2
    assert set(kept.columns) >= {"text", "code", "generation_model", "prior"}


def test_prepare_synthetic_names_missing_columns():
    held = HeldOut.from_frames(HELD)
    with pytest.raises(InputTableError, match="response"):
        inputs.prepare_synthetic(pd.DataFrame({"ICD-10": ["J06"]}), categories=["J06"], held_out=held)
    with pytest.raises(InputTableError, match="code column"):
        inputs.prepare_synthetic(pd.DataFrame({"response": ["x"]}), categories=["J06"], held_out=held)


def test_select_parses_any_numeric_column_and_names_the_columns_on_a_bad_expression(published):
    from medsyn_utils.downstream.inputs import parse_select, select_mask

    frame = published([{"symptoms_recall": 0.5}, {"symptoms_recall": 0.7}, {"symptoms_recall": None}])
    frame["symptom_coverage"] = [1.0, 0.25, 0.5]
    assert parse_select("symptom_coverage >= 0.5", frame) == ("symptom_coverage", ">=", 0.5)
    assert select_mask(frame, "symptom_coverage>=0.5").tolist() == [True, False, True]
    assert select_mask(frame, "symptoms_recall>0.6").tolist() == [False, True, False]  # NaN never passes
    assert select_mask(frame, "symptom_coverage<0.5").tolist() == [False, True, False]
    assert select_mask(frame, "symptom_coverage==1").tolist() == [True, False, False]
    assert select_mask(frame, "symptoms_recall<=0.5").tolist() == [True, False, False]
    for bad, why in (("coverage>=0.5", "no column 'coverage'"), ("symptom_coverage=>0.5", "not COLUMN OP VALUE"),
                     ("symptom_coverage>=high", "not a finite number"), ("response>=1", "holds no numbers"),
                     ("symptom_coverage>=nan", "not a finite number")):
        with pytest.raises(ParameterError, match=why) as error:
            parse_select(bad, frame)
        assert "symptom_coverage" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("case", ["codes", "empty", "filtered"])
def test_no_note_left_stops_with_the_counts_at_each_step(published, case):
    """Issue 24 cases 4–6 at the input step: every code outside the 105, every response empty,
    every note failing the filter → one line with the counts, never an experiment of 0 notes."""
    from medsyn_utils.core.errors import InputTableError
    from medsyn_utils.downstream.inputs import require_notes

    rows = {"codes": [{"ICD-10": "Z99.9"}] * 3, "empty": [{"response": "  "}, {"response": None}, {}],
            "filtered": [{"symptoms_recall": 0.1}] * 3}[case]
    if case == "empty":
        rows[2] = {"response": ""}
    frame = published(rows).drop(columns=["anamnesis"])
    kept, counts = prepare_synthetic(frame, categories=["J06"], use_filter=case == "filtered",
                                     held_out=HeldOut.from_frames(HELD))
    assert counts["kept"] == 0 and kept.empty
    with pytest.raises(InputTableError) as error:
        require_notes(counts, counts["kept"])
    message = str(error.value)
    assert "\n" not in message and message.startswith("no synthetic notes left to train on")
    assert "3 read" in message
    expected = {"codes": "3 outside: Z99.9 ×3", "empty": "(3 empty)", "filtered": "0 passed the filter (3 failed"}[case]
    assert expected in message
