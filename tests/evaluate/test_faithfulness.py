"""The symptom matcher on constructed notes with known answers."""

from __future__ import annotations

import pytest

from medsyn_utils.core.errors import ParameterError
from medsyn_utils.evaluate.faithfulness import SymptomMatcher, match_note, parse_symptoms, \
    symptom_coverage

ASKED = ["кашель", "боль в мышцах", "температура"]


def statuses(note: str, symptoms: list[str]) -> dict[str, str]:
    return {m.symptom: m.status for m in SymptomMatcher(unrequested=False).match(note, symptoms).symptoms}


def test_affirmed_in_another_word_form_with_its_span(data_dir):
    note = "Пациентка жалуется на сильные боли в мышцах и сухой кашель."
    result = SymptomMatcher(unrequested=False).match(note, ["боль в мышцах", "кашель"])
    assert [m.status for m in result.symptoms] == ["affirmed", "affirmed"]
    assert result.symptoms[0].span_text(note) == "боли в мышцах"
    assert result.coverage == 1.0


@pytest.mark.parametrize("note", ["Температуры нет.", "Без температуры.", "Отрицает температуру.",
                                  "Повышения температуры не было.", "Кашель, температура отсутствует."])
def test_negated_symptom(note, data_dir):
    assert statuses(note, ["температура"]) == {"температура": "negated"}


def test_negation_ends_at_a_contrast_and_does_not_reach_back_over_a_comma(data_dir):
    assert statuses("Без температуры, но кашель сильный.", ["температура", "кашель"]) == \
        {"температура": "negated", "кашель": "affirmed"}
    assert statuses("Жалобы на кашель, нет температуры.", ["кашель", "температура"]) == \
        {"кашель": "affirmed", "температура": "negated"}


def test_missing_and_a_part_of_the_name_is_not_enough(data_dir):
    # "головная боль" leaves "боль" behind: "боль в мышцах" is still missing
    assert statuses("Головная боль, головокружение.", ASKED) == \
        {"кашель": "missing", "боль в мышцах": "missing", "температура": "missing"}


def test_a_name_with_a_comma_needs_both_words_or_either_synonym(data_dir):
    assert statuses("Сухость кожи, слабость.", ["кожа, сухая"]) == {"кожа, сухая": "affirmed"}
    assert statuses("Кожа чистая, слабость.", ["кожа, сухая"]) == {"кожа, сухая": "missing"}
    assert statuses("Беспокоит рвота по утрам.", ["тошнота, рвота"]) == {"тошнота, рвота": "affirmed"}


def test_half_a_name_inside_another_graph_symptom_is_explained_elsewhere(data_dir):
    from medsyn_utils.evaluate.faithfulness import _hits, explained_elsewhere, variants
    from medsyn_utils.evaluate.lexicon import tokens

    matcher = SymptomMatcher(unrequested=False)

    def explained(note: str, name: str) -> float:
        toks = tokens(note)
        hits = [_hits(keys, toks, matcher.slack, matcher.fuzzy) for keys in variants(name)]
        return explained_elsewhere(variants(name), hits, matcher._graph_windows(toks))

    assert explained("Кашель сухой.", "кожа, сухая") == 1.0  # "сух" is the graph's "сухой кашель"
    assert explained("Сухость во рту.", "сухой кашель") == 1.0  # ... and "сухость во рту"
    assert explained("Беспокоит кашель.", "сухой кашель") == 0.0  # "кашель" is part of the name
    assert explained("Сухость кожи.", "кожа, сухая") == 0.0  # the whole name: nothing to explain
    assert explained("Головная боль.", "кашель") == 0.0  # nothing of the name found
    assert statuses("Кожа сухая, слабость.", ["сухой кашель"]) == {"сухой кашель": "missing"}
    assert statuses("Сухость во рту.", ["сухой кашель"]) == {"сухой кашель": "missing"}


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


def test_symptom_coverage_counts_only_affirmed(data_dir):
    note = "Кашель сухой. Температуры нет."
    assert symptom_coverage(note, ["кашель", "температура", "насморк", "кожа, сухая"]) == 0.25
    with pytest.raises(ParameterError, match="no symptoms"):
        symptom_coverage(note, [])


@pytest.mark.parametrize("name,value", [("threshold", 1.5), ("threshold", float("nan")),
                                        ("fuzzy", 10.0), ("slack", -1)])
def test_matcher_parameters_out_of_range_are_one_clear_error(name, value):
    with pytest.raises(ParameterError, match=name):
        SymptomMatcher(**{name: value})


def test_variant_table_counts_marked_spans_and_keeps_one_word_of_a_longer_name_for_covered():
    from medsyn_utils.evaluate.detector import variant_features, variant_table
    names = ["Избыточная масса тела", "избыточная масса тела", "насморк", "кожа, сухая", "кашель",
             "пастозность лица", "пастозность лица"]
    spans = [frozenset({"избыточн", "вес"}), frozenset({"избыточн", "вес"}),
             frozenset({"насморк"}), frozenset({"сух"}), frozenset(),
             frozenset({"припухл"}), frozenset({"пастозн", "лиц"})]
    table = variant_table(names + ["сухой кашель"], spans + [frozenset({"сух"})])
    # "сух" alone is a modifier of "кожа, сухая" and of "сухой кашель": dropped; "припухл" alone
    # is a paraphrase: kept
    assert table == {"избыточная масса тела": {frozenset({"избыточн", "вес"}): 2},
                     "насморк": {frozenset({"насморк"}): 1},
                     "пастозность лица": {frozenset({"припухл"}): 1,
                                          frozenset({"пастозн", "лиц"}): 1}}
    best, covered, spans = variant_features(table, " Избыточная масса тела", {"избыточн", "вес"})
    assert (best, covered) == (1.0, 1.0) and spans == pytest.approx(1.0986, abs=1e-4)  # log(3)
    assert variant_features(table, "избыточная масса тела", {"вес"})[:2] == [0.5, 0.0]
    assert variant_features(table, "кожа, сухая", {"сух", "кож"}) == [0.0, 0.0, 0.0]  # unknown
    # the one-word span counts in the covered share only: alone it would be a whole span found
    best, covered, spans = variant_features(table, "пастозность лица", {"припухл", "век"})
    assert (best, covered) == (0.0, 0.5) and spans == pytest.approx(0.6931, abs=1e-4)  # log(2)


def test_a_span_learned_from_train_mark_up_is_a_variant_of_the_name(data_dir):
    # the trained detector keeps the table of all train spans: a note holding the commonest span of
    # the commonest name has that span wholly found
    from medsyn_utils.evaluate.faithfulness import load_detector

    detector = load_detector()
    assert detector.train_report["out_of_fold"] == 5
    name, spans = max(detector.variants.items(), key=lambda item: sum(item[1].values()))
    stems = max(spans, key=spans.get)
    matcher = SymptomMatcher(unrequested=False)
    from medsyn_utils.evaluate.lexicon import tokens

    note = "Жалобы на " + " ".join(sorted(stems)) + "."
    row, _ = matcher.pair_features(name, note, tokens(note), detector)
    assert row[-3] == 1.0 and row[-1] > 0


def test_word_association_leaves_out_the_names_own_words_and_stop_words():
    from medsyn_utils.evaluate.detector import association_features, key_association
    from medsyn_utils.evaluate.faithfulness import variants
    from medsyn_utils.evaluate.lexicon import content_words

    (fever,) = content_words("лихорадка")
    (temperature,) = content_words("температура")
    (cough,) = content_words("кашель")
    skin, dry = content_words("кожа сухая")
    # two train visits mark "лихорадка" (and a stop word) for "температура"; one also states
    # "температура" and "кашель" outside the span; "кожа, сухая" marks its own words
    table = key_association(
        [variants("температура"), variants("температура"), variants("кожа, сухая")],
        [frozenset({fever, "в"}), frozenset({fever}), frozenset({skin, dry})],
        [{fever, "в", cough}, {fever, temperature, cough}, {skin, dry, cough}])
    assert table == {temperature: {fever: pytest.approx(2 / 4)}}  # 2 in spans / (2 notes + 2)
    assert association_features(table, variants("температура"), {fever, cough}) == \
        [pytest.approx(0.5), pytest.approx(0.5)]
    # a name's own word never speaks for it, even where the table had learned it
    own = {skin: {skin: 1.0}, dry: {dry: 1.0, fever: 0.25}}
    assert association_features(own, variants("кожа, сухая"), {skin, "чист"}) == [0.0, 0.0]
    assert association_features(own, variants("кожа, сухая"), {skin, fever}) == \
        [0.25, pytest.approx(0.125)]  # best word, mean over the name's two words
