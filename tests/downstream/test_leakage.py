"""The leakage guard: by id, by style-example text, and by n-grams for text-only tables."""

from __future__ import annotations

import pandas as pd
from conftest import HELD

from medsyn_utils.downstream.inputs import prepare_synthetic
from medsyn_utils.downstream.leakage import LEAKAGE_NGRAM, HeldOut, check_leakage


def test_leakage_guard_by_example_visit_id(published):
    held = HeldOut.from_frames(HELD)
    frame = published([{}, {}, {}, {}])
    frame["example_visit_id"] = ["qtrain9", "qdev1", None, "qtest2"]
    kept, counts = prepare_synthetic(frame, categories=["J06"], held_out=held)
    assert counts["leakage"]["checks"]["example_visit_id"] == "ran on 3 of 4 rows"
    assert counts["leakage"]["rows_checked"]["example_visit_id"] == 3
    assert counts["leakage"]["flagged"]["example_visit_id"] == 2
    assert kept["idx"].tolist() == [0, 2] and counts["leaked_dev_test"] == 2
    # a train visit whose text starts with a test complaint (a repeat visit) is caught by text
    frame.loc[0, "anamnesis"] = HELD.loc[1, "text"] + " Анамнез: повторный визит."
    kept, counts = prepare_synthetic(frame, categories=["J06"], held_out=held)
    assert kept["idx"].tolist() == [2]
    kept, counts = prepare_synthetic(frame.drop(columns=["anamnesis"]), categories=["J06"], held_out=held)
    assert counts["leakage"]["checks"]["anamnesis text"] == "not run: no anamnesis column"
    assert kept["idx"].tolist() == [0, 2]


def test_leakage_guard_by_anamnesis_text_with_published_columns_only(published):
    held = HeldOut.from_frames(HELD)
    frame = published([
        {"anamnesis": "жалобы на кашель с мокротой,   насморк в течение недели."},  # = dev text
        {"anamnesis": "Боль в эпигастрии после еды, изжога, тошнота по утрам. Анамнез: болеет год."},
        {"anamnesis": "Жалоб нет. Анамнез: плановый осмотр."},  # a 2-word held-out text is too generic
        {"anamnesis": "private_data"},
        {"anamnesis": None, "example": False},
        {"response": "Боль в эпигастрии после еды, изжога, тошнота по утрам."},  # copies a test text
    ])
    kept, counts = prepare_synthetic(frame, categories=["J06"], held_out=held)
    assert counts["leakage"]["checks"]["example_visit_id"].startswith("not run: no")
    assert counts["leakage"]["flagged"]["anamnesis text"] == 2
    assert counts["leakage"]["flagged"]["response equals dev/test"] == 1
    assert kept["idx"].tolist() == [2, 3, 4]


DEV_NOTE = ("Жалобы на боли в правом подреберье после приёма жирной пищи, горечь во рту по утрам, "
            "тяжесть в животе. Анамнез: впервые три года назад, лечилась у гастроэнтеролога.")
TRAIN_NOTE = ("Жалобы на давящие боли за грудиной при ходьбе на расстояние более двухсот метров, "
              "проходящие в покое. Повторный визит.")


def test_ngram_check_finds_a_planted_dev_note_in_a_text_only_table_and_ignores_train_text():
    # the dev/test visit repeats a train history (RuMedTop3 does that) and adds its own text
    visits = pd.DataFrame({"idx": ["qdev7"], "text": [TRAIN_NOTE + " " + DEV_NOTE]})
    held = HeldOut.from_frames(visits, train_texts=[TRAIN_NOTE])
    text_only = pd.DataFrame({"response": [
        "Пациентка 54 лет. " + DEV_NOTE[:120] + " Направлена на УЗИ.",  # planted dev text
        "Мужчина 60 лет. " + TRAIN_NOTE,  # shares only text that also stands in train
        "Жалобы на кашель и насморк три дня.",  # unrelated
    ], "ICD-10": ["K80", "I20", "J06"]})
    kept, counts = prepare_synthetic(text_only, categories=["K80", "I20", "J06"], held_out=held)
    checks = counts["leakage"]["checks"]
    assert checks["response n-grams"] == "ran" and checks["prompt n-grams"].startswith("not run: no")
    assert checks["example_visit_id"].startswith("not run: no")
    assert counts["leakage"]["flagged"]["response n-grams"] == 1 and counts["leaked_dev_test"] == 1
    assert kept["code"].tolist() == ["I20", "J06"]
    # the prompt is checked as well where the table has one
    with_prompt = text_only.assign(prompt=["", "Напиши запись. Пример: " + DEV_NOTE, ""])
    leaked, report = check_leakage(with_prompt.assign(text=with_prompt["response"]), held)
    assert leaked.tolist() == [True, True, False] and report["flagged"]["prompt n-grams"] == 1
    assert report["checks"]["prompt n-grams"] == "ran on 1 of 3 rows"
    assert report["ngram"] == LEAKAGE_NGRAM


def test_a_check_over_an_empty_column_says_not_run_and_claims_nothing(published):
    """The published CSV has `anamnesis` and `prompt` columns that are empty in every row: the
    record must say the checks could not run (with the rows they could check), not "ran"."""
    held = HeldOut.from_frames(HELD)
    frame = published([{}, {}, {}]).assign(anamnesis=[None, "", "  "], prompt=[float("nan")] * 3)
    frame.loc[1, "response"] = HELD.loc[1, "text"]  # a copy of a test text is still caught
    leaked, report = check_leakage(frame.assign(text=frame["response"]), held)
    assert report["checks"]["anamnesis text"] == "not run: column anamnesis empty (0 of 3 rows to check)"
    assert report["checks"]["prompt n-grams"].startswith("not run: column prompt empty")
    assert report["rows_checked"]["anamnesis text"] == 0 and report["rows_checked"]["prompt n-grams"] == 0
    assert "anamnesis text" not in report["flagged"] and "prompt n-grams" not in report["flagged"]
    assert {"anamnesis text", "prompt n-grams", "example_visit_id"} == set(report["could_not_run"])
    assert "response n-grams" in report["ran"] and report["checks"]["response n-grams"] == "ran"
    assert leaked.tolist() == [False, True, False] and report["flagged_rows"] == 1
