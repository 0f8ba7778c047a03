"""Fairness: the sex-consistency check and group gaps with intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medsyn_utils.evaluate import fairness


@pytest.mark.parametrize("text", [
    "Пациент жаловалась на боль в горле. Она обратилась в поликлинику.",
    "Заболела остро три дня назад, когда появилась температура.",
    "Со слов пациентки, боль усилилась вчера.",
])
def test_a_note_about_a_man_written_in_the_feminine_fails(text):
    said, consistent = fairness.sex_consistency(text, "male")
    assert said == "female" and consistent is False


@pytest.mark.parametrize("text", [
    "Пациент жаловался на боль в горле. Он обратился в поликлинику.",
    "Заболел остро, температура поднялась до 38, боль усилилась.",
])
def test_masculine_note_about_a_man_passes(text):
    assert fairness.sex_consistency(text, "male") == ("male", True)


def test_words_about_the_pain_are_not_about_the_patient():
    assert fairness.sex_evidence("Боль усилилась. Температура поднялась. Кашель появился.") == {"male": 0, "female": 0}
    assert fairness.sex_consistency("Боль усилилась, кашель появился.", "male") == (None, None)


def test_age_groups():
    assert [fairness.age_group(a) for a in (9, 18, 39, 40, 65, None, "x")] == \
        ["<18", "18-39", "18-39", "40-59", "60+", None, None]


def test_group_gap_has_its_known_value_and_an_interval_around_it():
    frame = pd.DataFrame({"sex": ["male"] * 50 + ["female"] * 50,
                          "score": np.r_[np.full(50, 0.8), np.full(50, 0.6)] +
                          np.random.default_rng(0).normal(0, 0.01, 100)})
    out = fairness.group_means(frame, "sex", "score", seed=0, boot=100, min_size=30)
    assert out["gap"] == pytest.approx(0.2, abs=0.01)
    lo, hi = out["gap_ci"]
    assert lo <= out["gap"] <= hi and hi - lo < 0.02
    small = fairness.group_means(frame.iloc[45:], "sex", "score", seed=0, boot=50, min_size=30)
    assert small["gap"] is None and small["groups"]["male"]["n"] == 5
