"""The threshold explorer of notebook 04: share passing, the notes either side, the widget."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from medsyn_utils.core.errors import InputTableError, ParameterError
from medsyn_utils.score import explorer

NAN = math.nan


def _scored() -> pd.DataFrame:
    """Six notes, two models, two priors; one empty response, one without an example."""
    rows = [  # model, prior, recall, precision, empty
        ("m-a", "symptoms+example", 0.90, 0.80, False),
        ("m-a", "symptoms+example", 0.60, 0.75, False),
        ("m-a", "symptoms", 0.70, NAN, False),
        ("m-b", "symptoms+example", 0.65, 0.70, False),
        ("m-b", "symptoms+example", 0.50, 0.95, False),
        ("m-b", "symptoms", 0.00, NAN, True),
    ]
    return pd.DataFrame([{
        "idx": f"t{i}", "ICD-10": "J06.9", "generation_model": model, "prior": prior,
        "symptoms_recall": recall, "anamnesis_precision": precision, "empty_response": empty,
        "symptoms": f"симптом {i}", "response": "" if empty else f"запись {i}",
        "anamnesis": None if math.isnan(precision) else f"пример {i}"}
        for i, (model, prior, recall, precision, empty) in enumerate(rows)])


def test_share_passing_per_model_and_prior_follows_the_filter_rule():
    table = explorer.share_passing(_scored(), 0.65, 0.7).set_index(["generation_model", "prior"])
    # t0 passes; t1 recall low; t2 passes (no example: precision does not apply);
    # t3 precision 0.70 is not > 0.70; t4 recall low; t5 empty never passes
    assert table.loc[("m-a", "symptoms+example"), ["notes", "passing"]].tolist() == [2, 1]
    assert table.loc[("m-a", "symptoms"), "share_passing"] == 1.0
    assert table.loc[("m-b", "symptoms+example"), "passing"] == 0
    assert table.loc[("m-b", "symptoms"), "passing"] == 0
    assert table.loc[("all", "all"), ["notes", "passing"]].tolist() == [6, 2]


def test_share_passing_changes_with_the_thresholds():
    low = explorer.share_passing(_scored(), 0.5, 0.69).set_index(["generation_model", "prior"])
    # recall >= 0.5 and precision > 0.69: all but the empty response
    assert low.loc[("all", "all"), "passing"] == 5
    high = explorer.share_passing(_scored(), 0.95, 0.69)
    assert high["passing"].iloc[-1] == 0


def test_share_passing_labels_missing_group_values():
    scored = _scored()
    scored.loc[0, "generation_model"] = None
    table = explorer.share_passing(scored, 0.65, 0.7)
    assert explorer.MISSING_LABEL in table["generation_model"].tolist()


def test_notes_near_recall_threshold_closest_first():
    near = explorer.notes_near(_scored(), "symptoms_recall", 0.65, k=2)
    above = near[near["side"] == "just above"]["idx"].tolist()
    below = near[near["side"] == "just below"]["idx"].tolist()
    assert above == ["t3", "t2"]  # 0.65 meets >= 0.65, then 0.70
    assert below == ["t1", "t4"]  # 0.60, then 0.50; the empty response is left out
    assert near.loc[near["idx"] == "t1", "distance"].iloc[0] == pytest.approx(0.05)


def test_notes_near_precision_is_strict_and_skips_notes_without_an_example():
    near = explorer.notes_near(_scored(), "anamnesis_precision", 0.7, k=3)
    assert near[near["side"] == "just below"]["idx"].tolist() == ["t3"]  # 0.70 is not > 0.70
    assert near[near["side"] == "just above"]["idx"].tolist() == ["t1", "t0", "t4"]
    assert {"symptoms", "response", "anamnesis"} <= set(near.columns)


def test_bad_inputs_are_kit_errors():
    with pytest.raises(ParameterError, match="0..1"):
        explorer.share_passing(_scored(), 1.5, 0.7)
    with pytest.raises(ParameterError, match="not one of"):
        explorer.notes_near(_scored(), "recall", 0.5)
    with pytest.raises(InputTableError, match="prior"):
        explorer.share_passing(_scored().drop(columns=["prior"]), 0.5, 0.5)


def test_marks_leave_out_a_nan_calibrated_threshold():
    marks = explorer.threshold_marks({"symptoms_recall": 0.8, "anamnesis_precision": NAN})
    assert marks["symptoms_recall"] == {"paper": 0.65, "in use": 0.8}
    assert marks["anamnesis_precision"] == {"paper": 0.7}


def test_near_html_puts_below_and_above_side_by_side_escaped():
    scored = _scored()
    scored.loc[1, "response"] = "<script>x</script>"
    html = explorer.near_html(explorer.notes_near(scored, "symptoms_recall", 0.65), "symptoms_recall", 0.65)
    assert html.index("t1") < html.index("t3")  # below on the left
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert "пример 1" in html and "симптом 3" in html


def test_widget_starts_at_the_thresholds_in_use_and_reacts_to_the_sliders():
    pytest.importorskip("ipywidgets")
    view = explorer.threshold_explorer(_scored(), {"symptoms_recall": 0.65, "anamnesis_precision": 0.7})
    assert view.thresholds() == {"symptoms_recall": 0.65, "anamnesis_precision": 0.7}
    before = view.share.value
    assert "0.333" in before  # 2 of 6 pass
    view.sliders["symptoms_recall"].value = 0.5
    view.sliders["anamnesis_precision"].value = 0.69
    assert view.share.value != before and "0.833" in view.share.value  # 5 of 6
    assert "now 0.500" in view.scales["symptoms_recall"].value
    assert "t4" in view.near.value  # 0.50 now sits just above the recall threshold


def test_widget_buttons_snap_to_the_marked_thresholds():
    widgets = pytest.importorskip("ipywidgets")
    view = explorer.threshold_explorer(_scored(), {"symptoms_recall": 0.8, "anamnesis_precision": 0.9})
    row = view.box.children[0]
    paper = next(c for c in row.children if isinstance(c, widgets.Button) and c.description == "paper")
    paper.click()
    assert view.sliders["symptoms_recall"].value == pytest.approx(0.65)
    assert "now 0.650" in view.scales["symptoms_recall"].value
