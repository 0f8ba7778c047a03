"""The symptom matcher on constructed notes with known answers."""

from __future__ import annotations

import pytest

from medsyn_utils.core.errors import ParameterError
from medsyn_utils.evaluate.faithfulness import SymptomMatcher, match_note, parse_symptoms, \
    symptom_coverage

ASKED = ["кашель", "боль в мышцах", "температура"]


def statuses(note: str, symptoms: list[str]) -> dict[str, str]:
    return {m.symptom: m.status for m in SymptomMatcher(unrequested=False).match(note, symptoms).symptoms}


def test_affirmed_in_another_word_form_with_its_span():
    note = "Пациентка жалуется на сильные боли в мышцах и сухой кашель."
    result = SymptomMatcher(unrequested=False).match(note, ["боль в мышцах", "кашель"])
    assert [m.status for m in result.symptoms] == ["affirmed", "affirmed"]
    assert result.symptoms[0].span_text(note) == "боли в мышцах"
    assert result.coverage == 1.0


@pytest.mark.parametrize("note", ["Температуры нет.", "Без температуры.", "Отрицает температуру.",
                                  "Повышения температуры не было.", "Кашель, температура отсутствует."])
def test_negated_symptom(note):
    assert statuses(note, ["температура"]) == {"температура": "negated"}


def test_negation_ends_at_a_contrast_and_does_not_reach_back_over_a_comma():
    assert statuses("Без температуры, но кашель сильный.", ["температура", "кашель"]) == \
        {"температура": "negated", "кашель": "affirmed"}
    assert statuses("Жалобы на кашель, нет температуры.", ["кашель", "температура"]) == \
        {"кашель": "affirmed", "температура": "negated"}


def test_missing_and_a_part_of_the_name_is_not_enough():
    # "головная боль" leaves "боль" behind: "боль в мышцах" is still missing
    assert statuses("Головная боль, головокружение.", ASKED) == \
        {"кашель": "missing", "боль в мышцах": "missing", "температура": "missing"}


def test_a_name_with_a_comma_needs_both_words_or_either_synonym():
    assert statuses("Сухость кожи, слабость.", ["кожа, сухая"]) == {"кожа, сухая": "affirmed"}
    assert statuses("Кожа чистая, слабость.", ["кожа, сухая"]) == {"кожа, сухая": "missing"}
    assert statuses("Беспокоит рвота по утрам.", ["тошнота, рвота"]) == {"тошнота, рвота": "affirmed"}


def test_symptom_lists_are_parsed_as_the_kit_and_the_schema_write_them():
    vocabulary = ["кашель", "кожа, сухая", "тошнота, рвота", "боль в горле"]
    assert parse_symptoms("кашель, кожа, сухая, тошнота, рвота, боль в горле", vocabulary) == vocabulary
    assert parse_symptoms('["кожа, сухая", "кашель"]', vocabulary) == ["кожа, сухая", "кашель"]
    assert parse_symptoms(["кашель"], vocabulary) == ["кашель"]
    assert parse_symptoms("", vocabulary) == [] and parse_symptoms(None, vocabulary) == []
    # without the name in the vocabulary a noun followed by a lone adjective stays together
    assert parse_symptoms("кашель, кожа, сухая", []) == ["кашель", "кожа, сухая"]


def test_unrequested_findings_are_graph_symptoms_nobody_asked_for(data_dir):
    note = "Беспокоит кашель. Также отмечает головокружение и тошноту. Насморка нет."
    result = match_note(note, ["кашель"], example=None)
    found = [m.symptom for m in result.unrequested]
    assert any("головокружение" in name for name in found)
    assert any("тошнота" in name for name in found)
    assert not any("насморк" in name for name in found)  # negated: not a finding
    assert not any(name == "кашель" for name in found)  # it was asked for
    # a finding that stands in the style example was not added by the model
    with_example = match_note(note, ["кашель"], example="Жалобы на головокружение.")
    assert not any("головокружение" in m.symptom for m in with_example.unrequested)


def test_symptom_coverage_counts_only_affirmed():
    note = "Кашель сухой. Температуры нет."
    assert symptom_coverage(note, ["кашель", "температура", "насморк", "кожа, сухая"]) == 0.25
    with pytest.raises(ParameterError, match="no symptoms"):
        symptom_coverage(note, [])


@pytest.mark.parametrize("name,value", [("threshold", 1.5), ("threshold", float("nan")),
                                        ("fuzzy", 10.0), ("slack", -1)])
def test_matcher_parameters_out_of_range_are_one_clear_error(name, value):
    with pytest.raises(ParameterError, match=name):
        SymptomMatcher(**{name: value})
