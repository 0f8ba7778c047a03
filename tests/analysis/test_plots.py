"""Analysis figures: made from any table in the published schema, skipped (not crashed) when
a column is missing, labels read from the data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from medsyn_utils.analysis import columns, plots
from medsyn_utils.analysis.figure_io import DEMO_WATERMARK, index_table, save_figure
from medsyn_utils.core.schema import PUBLISHED_COLUMNS

ALL_FIGURES = ["scores_by_model_prior", "scores_by_example_source", "share_passing", "counts",
               "code_coverage", "note_length", "recall_vs_n_symptoms", "copy_vs_precision"]


def _table(n: int = 60, seed: int = 0, models=("Alpha-1", "Beta-2"), priors=("p-one", "p-two", "p-three")
           ) -> pd.DataFrame:
    """A hand-made table in the published schema (no data mirror needed)."""
    rng = np.random.default_rng(seed)
    example = "Пациент жалуется на боль в горле и кашель в течение трёх дней без температуры"
    rows = []
    for i in range(n):
        has_example = i % 3 != 0
        symptoms = ["кашель", "насморк", "боль в горле", "слабость"][: 1 + i % 4]
        copied = i % 5 == 0 and has_example
        response = ("Жалобы на " + ", ".join(symptoms) + ". " + (example if copied else "Болеет два дня."))
        rows.append({
            "idx": i, "ICD-10": ["J06.9", "J02", "I10", "Z99.9"][i % 4], "generation_model": models[i % len(models)],
            "prompt": "p", "prior": priors[i % len(priors)], "example": has_example,
            "example_source": ("RuMedPrime" if i % 2 else "private data") if has_example else None,
            "response": response, "symptoms": ", ".join(symptoms),
            "anamnesis": (example if i % 2 else "private_data") if has_example else None,
            "symptoms_recall": float(rng.uniform(0.5, 0.9)),
            "anamnesis_precision": float(rng.uniform(0.6, 0.9)) if has_example else float("nan"),
        })
    return pd.DataFrame(rows, columns=list(PUBLISHED_COLUMNS))


def _status(records):
    return {r.name: ("skipped" if r.skipped else "saved") for r in records}


def test_all_figures_saved_as_png_and_pdf_with_an_index(tmp_path):
    records = plots.make_figures(_table(), tmp_path, compare_real=False)
    assert [r.name for r in records] == ALL_FIGURES
    assert all(not r.skipped for r in records), {r.name: r.skipped for r in records}
    for record in records:
        assert sorted(p.rsplit(".", 1)[1] for p in record.files) == ["pdf", "png"]
        for path in record.files:
            assert (tmp_path / path.rsplit("/", 1)[1]).stat().st_size > 1000
    index = (tmp_path / "index.md").read_text(encoding="utf-8")
    for name in ALL_FIGURES:
        assert f"## {name}" in index and f"({name}.png)" in index and f"({name}.pdf)" in index
    assert "*Skipped*" not in index
    table = index_table(records)
    assert list(table["status"]) == ["saved"] * len(ALL_FIGURES)


def test_missing_score_columns_skip_their_figures_with_a_note(tmp_path):
    frame = _table().drop(columns=["symptoms_recall", "anamnesis_precision"])
    records = plots.make_figures(frame, tmp_path, compare_real=False)
    status = _status(records)
    for name in ("scores_by_model_prior", "scores_by_example_source", "share_passing",
                 "recall_vs_n_symptoms", "copy_vs_precision"):
        assert status[name] == "skipped", name
    for name in ("counts", "code_coverage", "note_length"):
        assert status[name] == "saved", name
    index = (tmp_path / "index.md").read_text(encoding="utf-8")
    assert index.count("*Skipped*") == 5
    assert "no score column" in index
    assert not (tmp_path / "share_passing.png").exists()


@pytest.mark.parametrize("dropped, skipped", [
    (["anamnesis"], "copy_vs_precision"),
    (["example_source"], "scores_by_example_source"),
    (["symptoms"], "recall_vs_n_symptoms"),
    (["ICD-10"], "code_coverage"),
    (["response", "anamnesis"], "note_length"),
])
def test_one_missing_optional_column_skips_one_figure(tmp_path, dropped, skipped):
    records = plots.make_figures(_table().drop(columns=dropped), tmp_path, compare_real=False)
    status = _status(records)
    assert status[skipped] == "skipped"
    assert status["scores_by_model_prior"] == "saved"


def test_group_labels_come_from_the_data_and_missing_group_columns_degrade(tmp_path):
    frame = _table(models=("Мой-LLM", "other"), priors=("x", "y"))
    frame.loc[0, "prior"] = None
    data, groups = columns.prepare_groups(frame, ["generation_model", "prior"])
    assert groups.facet_order == ["other", "Мой-LLM"] and groups.hue_order == [columns.MISSING_LABEL, "x", "y"]
    records = plots.make_figures(frame.drop(columns=["prior"]), tmp_path, compare_real=False)
    assert _status(records)["scores_by_model_prior"] == "saved"
    assert "grouping column(s) prior absent" in (tmp_path / "index.md").read_text(encoding="utf-8")
    metrics = plots.summary_metrics(frame, records)
    assert metrics["generation_model_values"] == ["other", "Мой-LLM"]
    assert metrics["figures_saved"] and metrics["rows"] == len(frame)


def test_display_label():
    assert columns.display_label("/tmp/pytest-1/tiny-lm0/model") == "…/tiny-lm0/model"
    assert columns.display_label("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"
    assert columns.display_label(float("nan")) == columns.MISSING_LABEL and columns.display_label(None) == "(none)"


def test_scorer_metric_columns_are_used_when_present():
    frame = _table()
    frame["note_words"] = 7
    frame["copied_8gram_share"] = 0.5
    frame["passed_filter"] = [i % 2 == 0 for i in range(len(frame))]
    data, notes = columns.add_derived_columns(frame)
    assert notes["_length"] == "column note_words" and (data["_length"] == 7).all()
    assert notes["_copy"] == "column copied_8gram_share" and notes["_passed"].startswith("passed_filter column")
    # scoring's decision is used as it is (score/filter.py::filter_status, the one rule); a row
    # with no score at all that scoring did not pass is its own group
    assert (data["_passed"] == frame["passed_filter"].astype(float)).all()
    no_score = frame["symptoms_recall"].isna() & frame["anamnesis_precision"].isna()
    assert (data.loc[no_score & ~frame["passed_filter"], "_filter_group"] ==
            "filter not applicable").all()


def test_derived_columns_computed_from_text():
    frame = _table()
    data, notes = columns.add_derived_columns(frame, recall_threshold=0.7, precision_threshold=0.75)
    assert notes["_length"].startswith("words counted")
    assert data.loc[0, "_length"] == len("Жалобы на кашель Болеет два дня".split())
    assert data["_n_symptoms"].tolist()[:4] == [1.0, 2.0, 3.0, 4.0]
    # the scoring rule: a missing precision is a criterion that does not apply, recall decides
    recall_ok = data["symptoms_recall"] >= 0.7
    precision_ok = (data["anamnesis_precision"] > 0.75) | data["anamnesis_precision"].isna()
    some_score = data["symptoms_recall"].notna() | data["anamnesis_precision"].notna()
    assert (data["_passed"] == (recall_ok.where(data["symptoms_recall"].notna(), True)
                                & precision_ok & some_score).astype(float)).all()
    assert {"passed", "failed"} <= set(data["_filter_group"])
    assert data.loc[frame["anamnesis"] == "private_data", "_copy"].isna().all()
    assert data.loc[frame["anamnesis"].isna(), "_copy"].isna().all()
    assert data["_category"].tolist()[:4] == ["J06", "J02", "I10", "Z99"]


@pytest.mark.parametrize("value, count", [
    (["a", "b"], 2.0), ("['кашель', 'насморк', 'жар']", 3.0), ("кашель, насморк", 2.0), ("кашель", 1.0),
    ("", 0.0), ("[broken", 1.0), (np.array(["a", "b", "c"]), 3.0),
])
def test_count_symptoms(value, count):
    assert columns.count_symptoms(value) == count
    assert math.isnan(columns.count_symptoms(None)) and math.isnan(columns.count_symptoms(float("nan")))


def test_copy_share_on_hand_made_texts():
    example = "один два три четыре пять шесть семь восемь"
    # ten words, the first eight copied: 3 word 8-grams, 1 found in the example
    assert columns.copy_share("один два три четыре пять шесть семь восемь девять десять", example) == pytest.approx(1 / 3)
    assert columns.copy_share(example, example) == 1.0
    assert columns.copy_share("совсем другой текст из девяти слов без всякого копирования", example) == 0.0
    assert math.isnan(columns.copy_share("коротко", example))  # no 8-gram at all
    assert math.isnan(columns.copy_share(example, "private_data"))
    assert math.isnan(columns.copy_share(example, None))


def test_published_csv_round_trip_reads_example_as_bool(tmp_path):
    from medsyn_utils.core.artefacts import read_scored_table

    path = tmp_path / "published.csv"
    frame = _table(12)
    frame["example"] = frame["example"].map({True: "True", False: "False"})
    frame.to_csv(path, index=False)
    assert read_scored_table(path)["example"].tolist() == _table(12)["example"].tolist()


def test_demo_figures_carry_the_watermark_and_say_so(tmp_path):
    import matplotlib.pyplot as plt

    fig, _ = plt.subplots()
    record = save_figure(fig, tmp_path, "x", "caption", demo=True)
    assert DEMO_WATERMARK in fig.texts[-1].get_text() and record.caption.startswith(DEMO_WATERMARK)
    records = plots.make_figures(_table(), tmp_path / "demo", compare_real=False, demo=True)
    assert all(r.caption.startswith(DEMO_WATERMARK) for r in records if not r.skipped)
    assert "**DEMO DATA**" in (tmp_path / "demo" / "index.md").read_text(encoding="utf-8")


def test_scoring_thresholds_read_from_the_stage_record(tmp_path):
    import json

    assert plots.scoring_thresholds(tmp_path) is None
    (tmp_path / "04_bertscore_evaluation.json").write_text(json.dumps(
        {"metrics": {"thresholds_used": {"symptoms_recall": 0.81, "anamnesis_precision": 0.84}}}))
    assert plots.scoring_thresholds(tmp_path) == {"symptoms_recall": 0.81, "anamnesis_precision": 0.84}


def test_demo_dataset_has_the_published_schema_and_real_codes(data_dir, tmp_path):
    from medsyn_utils.core.corpus import load_rumedtop3
    from medsyn_utils.score.demo import schema_shaped_dataset
    from medsyn_utils.downstream.inputs import to_category

    frame = schema_shaped_dataset(200, seed=3)
    assert list(frame.columns) == list(PUBLISHED_COLUMNS) and len(frame) == 200
    assert frame["generation_model"].nunique() >= 3 and frame["prior"].nunique() >= 3
    assert frame["generation_model"].str.startswith("demo-model-").all()  # never real model names
    assert frame["example"].dtype == bool
    categories = frame["ICD-10"].map(to_category)
    task = set(load_rumedtop3("train")["code"])
    assert categories.isin(task).mean() > 0.9 and categories[~categories.isin(task)].notna().all()
    assert frame.equals(schema_shaped_dataset(200, seed=3))  # seeded
    extra = schema_shaped_dataset(120, seed=3, extra_columns=True)
    visits = set(load_rumedtop3("train")["idx"])
    assert extra["example_visit_id"].dropna().isin(visits).all()  # style examples: train visits only
    assert not (extra["passed_filter"] & ~extra["filter_applies"]).any()
    records = plots.make_figures(frame, tmp_path)  # with the real notes for comparison
    assert all(not r.skipped for r in records)
    assert "unavailable" not in (tmp_path / "index.md").read_text(encoding="utf-8")
