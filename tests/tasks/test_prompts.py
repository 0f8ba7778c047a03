"""Prompt templates: every kind renders fully, the diagnosis stays out, broken files fail clearly."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from medsyn_utils.tasks import prompts
from medsyn_utils.core.errors import ParameterError

FIELDS = {
    "symptoms": "кашель, насморк, боль в горле",
    "example": "Жалобы на слабость и озноб в течение трёх дней.",
    "patient": "женщина, 45 лет, замужем, не курит, живёт в городе",
    "code": "Q99.9",
    "code_name": "Выдуманная болезнь Тестова",
    "category": "Q99",
    "category_name": "Выдуманные болезни",
    "sex": "женский",
    "age": "45 лет",
}
PACKAGED = prompts.load_templates()
PAIRS = PACKAGED.pairs()


def test_catalogue_has_the_three_kinds_and_the_method_variants():
    assert set(PACKAGED.texts) == set(prompts.KINDS)
    assert PACKAGED.variants("symptoms") == ["detailed", "patient", "short", "examinations"]
    assert PACKAGED.variants("symptoms+example") == ["style"]


@pytest.mark.parametrize("kind,variant", PAIRS, ids=[f"{k}/{v}" for k, v in PAIRS])
def test_every_prompt_renders_without_unfilled_placeholders(kind, variant):
    rendered = PACKAGED.render(kind, variant, FIELDS)
    assert set(rendered) == {"system", "user", "completion"}
    for form, text in rendered.items():
        assert text.strip(), f"{kind}/{variant} {form} is empty"
        assert not re.search(r"[{}]", text), f"{kind}/{variant} {form} left a brace: {text!r}"
    assert rendered["completion"].endswith("\n") and not rendered["completion"].endswith("\n\n")
    body = rendered["user"] + rendered["completion"]
    if kind != "code":
        assert FIELDS["symptoms"] in rendered["user"] and FIELDS["symptoms"] in rendered["completion"]
    if kind == "symptoms+example":
        assert FIELDS["example"] in rendered["user"] and FIELDS["example"] in rendered["completion"]
    if variant == "patient":
        assert FIELDS["patient"] in body


@pytest.mark.parametrize("kind,variant", PAIRS, ids=[f"{k}/{v}" for k, v in PAIRS])
def test_diagnosis_named_only_by_the_code_kind(kind, variant):
    rendered = PACKAGED.render(kind, variant, FIELDS)
    text = "\n".join(rendered.values())
    named = any(FIELDS[key] in text for key in ("code", "code_name", "category_name"))
    assert named == (kind == "code")


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    shutil.copytree(prompts._packaged_folder(), folder)
    return folder


def test_unknown_placeholder_names_file_and_placeholder(tmp_path):
    folder = _copy(tmp_path)
    path = folder / "user_symptoms_short.txt"
    path.write_text(path.read_text(encoding="utf-8") + " {diagnosis}", encoding="utf-8")
    with pytest.raises(ParameterError) as error:
        prompts.load_templates(folder)
    message = str(error.value)
    assert "user_symptoms_short.txt" in message and "{diagnosis}" in message
    assert "\n" not in message


def test_missing_required_placeholder_names_file_and_placeholder(tmp_path):
    folder = _copy(tmp_path)
    path = folder / "user_example_style.txt"
    path.write_text(path.read_text(encoding="utf-8").replace("{example}", "пример"),
                    encoding="utf-8")
    with pytest.raises(ParameterError, match=r"user_example_style\.txt: missing placeholder "
                                             r"\{example\}"):
        prompts.load_templates(folder)


def test_diagnosis_placeholder_in_a_symptom_kind_is_refused(tmp_path):
    folder = _copy(tmp_path)
    path = folder / "completion_symptoms_detailed.txt"
    path.write_text(path.read_text(encoding="utf-8") + "Диагноз: {code_name}\n", encoding="utf-8")
    with pytest.raises(ParameterError, match=r"completion_symptoms_detailed\.txt: placeholder "
                                             r"\{code_name\} names the diagnosis"):
        prompts.load_templates(folder)


def test_missing_file_and_broken_braces(tmp_path):
    folder = _copy(tmp_path)
    (folder / "system_code.txt").unlink()
    with pytest.raises(ParameterError, match="system_code.txt"):
        prompts.load_templates(folder)
    folder = _copy(tmp_path / "b")
    (folder / "user_code_short.txt").write_text("{code_name} {", encoding="utf-8")
    with pytest.raises(ParameterError, match="user_code_short.txt: malformed braces"):
        prompts.load_templates(folder)


def test_edited_template_is_used(tmp_path):
    folder = _copy(tmp_path)
    (folder / "user_symptoms_short.txt").write_text("Коротко: {symptoms}.", encoding="utf-8")
    edited = prompts.load_templates(folder)
    assert edited.render("symptoms", "short", FIELDS)["user"] == f"Коротко: {FIELDS['symptoms']}."


def test_parse_mix_spreads_kinds_and_rejects_unknown_kinds():
    mix = prompts.parse_mix({"symptoms": 0.4, "code/short": 0.1}, PACKAGED)
    assert mix[("symptoms", "detailed")] == pytest.approx(0.1)
    assert ("code", "detailed") not in mix and mix[("code", "short")] == 0.1
    assert prompts.parse_mix(["symptoms+example"], PACKAGED) == {("symptoms+example", "style"): 1.0}
    with pytest.raises(ParameterError, match="unknown prompt kind 'story'"):
        prompts.parse_mix({"story": 1}, PACKAGED)
    with pytest.raises(ParameterError, match="unknown prompt variant 'symptoms/long'"):
        prompts.parse_mix({"symptoms/long": 1}, PACKAGED)
    with pytest.raises(ParameterError, match="all zero"):
        prompts.parse_mix({"code": 0}, PACKAGED)


@pytest.mark.parametrize("age,words", [(1, "1 год"), (3, "3 года"), (5, "5 лет"), (11, "11 лет"),
                                       (12, "12 лет"), (21, "21 год"), (22, "22 года"),
                                       (45, "45 лет"), (101, "101 год"), (114, "114 лет")])
def test_age_words(age, words):
    assert PACKAGED.age_words(age) == words


def test_patient_phrase_agrees_with_sex_and_age():
    assert (PACKAGED.patient_phrase("female", 45, "married", False, "city")
            == "женщина, 45 лет, замужем, не курит, живёт в городе")
    assert (PACKAGED.patient_phrase("male", 61, "single", True, "countryside")
            == "мужчина, 61 год, не женат, курит, живёт в сельской местности")
    child = PACKAGED.patient_phrase("male", 10, "single", False, "city")
    assert child == "мальчик, 10 лет, живёт в городе"
    assert PACKAGED.patient_phrase("female", 16, "single", True, "city").startswith("девушка")


def test_fallback_example_is_one_short_sentence():
    assert PACKAGED.fallback_example.endswith(".") and len(PACKAGED.fallback_example.split()) < 15


SYMPTOM_PAIRS = [(k, v) for k, v in PAIRS if k != "code"]


@pytest.mark.parametrize("kind,variant", SYMPTOM_PAIRS, ids=[f"{k}/{v}" for k, v in SYMPTOM_PAIRS])
def test_completion_ends_on_the_tasks_symptom_line_after_worked_records(kind, variant):
    """A base model continues right after its own symptom list, in the layout of the worked
    records before it ("Симптомы: …" then a note "Жалобы на …"), the style example first."""
    completion = PACKAGED.render(kind, variant, FIELDS)["completion"]
    assert completion.splitlines()[-1] == f"Симптомы: {FIELDS['symptoms']}."
    worked = re.findall(r"^Симптомы: (.+)\.\nЖалобы на ", completion, flags=re.MULTILINE)
    assert len(worked) >= 2 and FIELDS["symptoms"] not in worked
    if kind == "symptoms+example":
        assert completion.index(FIELDS["example"]) < completion.index("\nСимптомы: ")
