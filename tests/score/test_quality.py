"""Per-note checks on hand-made texts."""

from __future__ import annotations

import math

import pytest

from medsyn_utils.score import quality
from medsyn_utils.core.errors import ParameterError

EXAMPLE = ("Пациент жалуется на головную боль в височной области, усиливающуюся к вечеру, "
           "и слабость в течение недели. Лечился самостоятельно без эффекта.")


def test_copy_share_counts_copied_8grams() -> None:
    # 10 words, the first 8 copied verbatim from the example, then 2 new ones: 3 8-grams, 1 copied
    note = "Пациент жалуется на головную боль в височной области сегодня утром"
    assert quality.copied_ngram_share(note, EXAMPLE) == pytest.approx(1 / 3)
    assert quality.longest_copied_span(note, EXAMPLE) == 8


def test_copy_share_of_a_verbatim_copy_is_one_and_of_a_new_note_zero() -> None:
    assert quality.copied_ngram_share(EXAMPLE, EXAMPLE) == 1.0
    fresh = "Беспокоит кашель с мокротой, насморк и боль в горле третий день подряд после переохлаждения."
    assert quality.copied_ngram_share(fresh, EXAMPLE) == 0.0
    assert quality.longest_copied_span(fresh, EXAMPLE) <= 2


def test_copy_metrics_without_example_are_nan() -> None:
    assert math.isnan(quality.copied_ngram_share(EXAMPLE, None))
    assert math.isnan(quality.copied_ngram_share(EXAMPLE, "  "))
    assert math.isnan(quality.longest_copied_span(EXAMPLE, float("nan")))
    assert math.isnan(quality.copied_ngram_share("слишком короткая заметка", EXAMPLE))


def test_copy_ignores_case_and_yo() -> None:
    a = "ЁЛКА стоит в лесу зимой и летом стройная зелёная была"
    b = "елка стоит в лесу зимой и летом стройная зеленая была"
    assert quality.copied_ngram_share(a, b) == 1.0


def test_memorised_flag_uses_share_or_span() -> None:
    copied = quality.note_metrics(EXAMPLE, EXAMPLE, copy_threshold=0.5)
    assert copied["memorised"] and copied["copied_8gram_share"] == 1.0
    fresh = quality.note_metrics("Кашель и насморк три дня.", EXAMPLE)
    assert not fresh["memorised"]
    spanning = quality.note_metrics(EXAMPLE + " " + "новые слова " * 100, EXAMPLE,
                                    copy_threshold=0.99, span_threshold=15)
    assert spanning["memorised"] and spanning["copied_8gram_share"] < 0.99


def test_distinct_n_over_the_set() -> None:
    assert quality.distinct_n(["a b c", "a b d"], 1) == pytest.approx(4 / 6)
    assert quality.distinct_n(["a b c", "a b d"], 2) == pytest.approx(3 / 4)
    assert math.isnan(quality.distinct_n(["", None], 2))
    with pytest.raises(ParameterError):
        quality.distinct_n(["a"], 0)


def test_names_diagnosis_up_to_inflection_and_alternatives() -> None:
    name = "Острый назофарингит [насморк]"
    assert quality.names_diagnosis("Диагноз: острый назофарингит.", name) == 1.0
    assert quality.names_diagnosis("Лечение острого назофарингита начато.", name) == 1.0
    assert quality.names_diagnosis("Беспокоит насморк два дня.", name) == 1.0  # the bracketed variant
    assert quality.names_diagnosis("Беспокоит кашель, температура 37,5.", name) == 0.0
    assert quality.names_diagnosis("Гипертензия с кризами.",
                                   "Эссенциальная [первичная] гипертензия") == 0.0
    assert quality.names_diagnosis("Эссенциальная гипертензия, 2 ст.",
                                   "Эссенциальная [первичная] гипертензия") == 1.0
    assert math.isnan(quality.names_diagnosis("текст", None))


def test_placeholders_found_but_not_markdown_bold() -> None:
    note = "Осмотрен *ДАТА* в *МО* г. *Город*; **Жалобы**: боль."
    assert quality.placeholders(note) == ["*ДАТА*", "*МО*", "*Город*"]
    assert quality.note_metrics(note)["placeholders_copied"] == 3
    assert quality.placeholders("Без меток, *курсив* тоже не метка.") == []
    assert quality.placeholder_counts([note, "*ДАТА*"])["*ДАТА*"] == 2


def test_cyrillic_share_and_non_russian_flag() -> None:
    assert quality.cyrillic_share("абв") == 1.0
    assert quality.cyrillic_share("abc где") == pytest.approx(0.5)
    assert math.isnan(quality.cyrillic_share("123 !!"))
    assert quality.note_metrics("The patient complains of headache.")["non_russian"]
    assert not quality.note_metrics("Жалобы на головную боль (headache).")["non_russian"]
    assert not quality.note_metrics("")["non_russian"]  # empty is flagged elsewhere, not as a language


def test_quality_table_shape_and_checks() -> None:
    table = quality.quality_table(["Кашель.", EXAMPLE], [None, EXAMPLE], [None, "Головная боль"])
    assert list(table.columns) == list(quality.QUALITY_COLUMNS)
    assert table.loc[1, "copied_8gram_share"] == 1.0 and math.isnan(table.loc[0, "copied_8gram_share"])
    assert table.loc[1, "names_diagnosis"] == 1.0
    with pytest.raises(ParameterError):
        quality.quality_table(["a", "b"], ["x"])


def test_set_metrics() -> None:
    numbers = quality.set_metrics(["a b", "a c d"])
    assert numbers["mean_words"] == 2.5 and numbers["distinct_1"] == pytest.approx(4 / 5)
