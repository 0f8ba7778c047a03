"""Prompts of the method from editable template files: prompt(S, E), prompt(S), prompt(code).

The wording lives in ``medsyn_utils/tasks/templates/`` (or a folder of your own laid out the same way):
``prompts.yaml`` maps each prompt kind and variant to three files — the system and user messages
of the chat form (for instruction-tuned models; the generation stage applies the tokenizer's chat
template) and a plain document for base models to continue. Templates are checked when loaded:
an unknown placeholder, a missing required one, or the diagnosis in a kind that must not name it
is a one-line :class:`ParameterError` naming the file and the placeholder.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from medsyn_utils.core.errors import ParameterError

KINDS: tuple[str, ...] = ("symptoms+example", "symptoms", "code")
FORMS: tuple[str, ...] = ("system", "user", "completion")
PLACEHOLDERS: dict[str, str] = {
    "symptoms": "sampled symptoms joined by ', '",
    "example": "the style example: a real note of the category, or the neutral template",
    "patient": "patient phrase (sex, age, marital status, smoking, location)",
    "code": "target ICD-10 code",
    "code_name": "Russian name of the target code",
    "category": "three-character category",
    "category_name": "Russian name of the category",
    "sex": "patient's sex as a word",
    "age": "patient's age with its word (45 лет)",
}
DIAGNOSIS_PLACEHOLDERS = frozenset({"code", "code_name", "category", "category_name"})
CATALOGUE = "prompts.yaml"
PATIENT_WORDS = "patient.yaml"
FALLBACK_EXAMPLE = "example_fallback.txt"


def _required(kind: str, variant: str, form: str) -> set[str]:
    """Placeholders a template must contain so the prompt carries what its kind promises."""
    if form == "system":
        return set()
    need: set[str] = set()
    if kind in ("symptoms", "symptoms+example"):
        need.add("symptoms")
    if kind == "symptoms+example":
        need.add("example")
    if kind == "code":
        need.add("code_name")
    if variant == "patient":
        need.add("patient")
    return need


def placeholders_of(text: str, where: str) -> set[str]:
    """Field names used in a template; malformed braces raise a one-line error naming ``where``."""
    try:
        names = {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}
    except ValueError as error:
        raise ParameterError(f"template {where}: malformed braces ({error}); write {{{{ and }}}} "
                             f"for literal braces") from error
    return names


@dataclass(frozen=True)
class PromptTemplates:
    """A checked prompt catalogue: ``texts[kind][variant][form]`` and where each came from."""

    folder: str
    texts: dict[str, dict[str, dict[str, str]]]
    files: dict[str, dict[str, dict[str, str]]]
    patient_words: dict[str, Any]
    fallback_example: str

    def variants(self, kind: str) -> list[str]:
        """Variants of a kind, in catalogue order."""
        if kind not in self.texts:
            raise ParameterError(f"unknown prompt kind {kind!r}: use one of "
                                 f"{', '.join(self.texts)}")
        return list(self.texts[kind])

    def pairs(self) -> list[tuple[str, str]]:
        """Every (kind, variant) of the catalogue."""
        return [(kind, variant) for kind in self.texts for variant in self.texts[kind]]

    def render(self, kind: str, variant: str, fields: Mapping[str, Any]) -> dict[str, str]:
        """``{"system", "user", "completion"}`` texts of one prompt.

        System and user messages are stripped; the completion document ends with one newline,
        where a base model continues.
        """
        if variant not in self.texts.get(kind, {}):
            raise ParameterError(f"unknown prompt {kind}/{variant}: the catalogue has "
                                 f"{', '.join(f'{k}/{v}' for k, v in self.pairs())}")
        values = {name: fields.get(name, "") for name in PLACEHOLDERS}
        parts = self.texts[kind][variant]
        return {
            "system": parts["system"].format(**values).strip(),
            "user": parts["user"].format(**values).strip(),
            "completion": parts["completion"].format(**values).rstrip() + "\n",
        }

    def patient_phrase(self, sex: str, age: int, marital_status: str, smoking: bool,
                       location: str, smoking_min_age: int = 16) -> str:
        """``"женщина, 45 лет, замужем, не курит, живёт в городе"`` from the words in patient.yaml.

        Marital status is left out for minors, smoking for non-smoking children.
        """
        w = self.patient_words
        if age < int(w["child_below"]):
            stage = "child"
        elif age < int(w["adult_from"]):
            stage = "teen"
        else:
            stage = "adult"
        marital = ("" if age < int(w["adult_from"])
                   else w["married" if marital_status == "married" else "single"][sex])
        smokes = w["smoker" if smoking else "non_smoker"][sex]
        if not smoking and age < smoking_min_age:
            smokes = ""
        values = {"person": w["person"][stage][sex], "age": self.age_words(age),
                  "marital": marital, "smoking": smokes, "location": w["location"][location]}
        phrase = str(w["phrase"]).format(**values)
        return ", ".join(part.strip() for part in phrase.split(",") if part.strip())

    def age_words(self, age: int) -> str:
        """``1 год``, ``3 года``, ``45 лет``: the Russian plural of years."""
        years = self.patient_words["years"]
        n = abs(int(age))
        if n % 10 == 1 and n % 100 != 11:
            word = years["one"]
        elif 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
            word = years["few"]
        else:
            word = years["many"]
        return f"{int(age)} {word}"

    def sex_word(self, sex: str) -> str:
        return str(self.patient_words["sex"][sex])


def _read(folder: Path, name: str, what: str) -> str:
    path = folder / name
    if not path.is_file():
        raise ParameterError(f"template file {path} (named for {what}) does not exist: add it or "
                             f"fix {folder / CATALOGUE}")
    return path.read_text(encoding="utf-8")


def _packaged_folder() -> Path:
    return Path(str(resources.files("medsyn_utils.tasks").joinpath("templates")))


@lru_cache(maxsize=8)
def _load(folder_text: str, stamp: tuple) -> PromptTemplates:
    folder = Path(folder_text)
    catalogue_path = folder / CATALOGUE
    try:
        catalogue = yaml.safe_load(_read(folder, CATALOGUE, "the catalogue")) or {}
        words = yaml.safe_load(_read(folder, PATIENT_WORDS, "patient words")) or {}
    except yaml.YAMLError as error:
        raise ParameterError(f"template catalogue in {folder} is not valid YAML: "
                             f"{str(error).splitlines()[0]}") from error
    if not isinstance(catalogue, dict) or not catalogue:
        raise ParameterError(f"{catalogue_path} must map prompt kinds to variants")
    texts: dict[str, dict[str, dict[str, str]]] = {}
    files: dict[str, dict[str, dict[str, str]]] = {}
    for kind, variants in catalogue.items():
        if kind not in KINDS:
            raise ParameterError(f"{catalogue_path}: unknown prompt kind {kind!r}; use "
                                 f"{', '.join(KINDS)}")
        if not isinstance(variants, dict) or not variants:
            raise ParameterError(f"{catalogue_path}: kind {kind!r} needs at least one variant")
        for variant, forms in variants.items():
            if not isinstance(forms, dict) or set(forms) != set(FORMS):
                raise ParameterError(f"{catalogue_path}: {kind}/{variant} must name exactly the "
                                     f"files {', '.join(FORMS)}")
            for form in FORMS:
                name = str(forms[form])
                text = _read(folder, name, f"{kind}/{variant} {form}")
                used = placeholders_of(text, str(folder / name))
                unknown = sorted(used - set(PLACEHOLDERS))
                if unknown:
                    raise ParameterError(
                        f"template {folder / name}: unknown placeholder {{{unknown[0]}}}; use "
                        f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
                missing = sorted(_required(kind, str(variant), form) - used)
                if missing:
                    raise ParameterError(f"template {folder / name}: missing placeholder "
                                         f"{{{missing[0]}}} required by {kind}/{variant}")
                leak = sorted(used & DIAGNOSIS_PLACEHOLDERS) if kind != "code" else []
                if leak:
                    raise ParameterError(f"template {folder / name}: placeholder {{{leak[0]}}} "
                                         f"names the diagnosis, which {kind} prompts must not")
                texts.setdefault(kind, {}).setdefault(str(variant), {})[form] = text
                files.setdefault(kind, {}).setdefault(str(variant), {})[form] = name
    for key in ("child_below", "adult_from", "person", "sex", "married", "single", "smoker",
                "non_smoker", "location", "years", "phrase"):
        if key not in words:
            raise ParameterError(f"{folder / PATIENT_WORDS}: missing key {key!r}")
    unknown = sorted(placeholders_of(str(words["phrase"]), str(folder / PATIENT_WORDS))
                     - {"person", "age", "marital", "smoking", "location"})
    if unknown:
        raise ParameterError(f"{folder / PATIENT_WORDS}: unknown placeholder {{{unknown[0]}}} in "
                             f"phrase; use {{person}}, {{age}}, {{marital}}, {{smoking}}, "
                             f"{{location}}")
    fallback = _read(folder, FALLBACK_EXAMPLE, "the neutral example").strip()
    if not fallback:
        raise ParameterError(f"{folder / FALLBACK_EXAMPLE} is empty: write one neutral sentence")
    return PromptTemplates(folder=str(folder), texts=texts, files=files, patient_words=words,
                           fallback_example=fallback)


def load_templates(folder: str | Path | None = None) -> PromptTemplates:
    """The checked prompt catalogue of ``folder`` (the packaged templates when empty).

    Cached per folder and file modification times, so an edited template is picked up.
    """
    if folder:
        from medsyn_utils.core.paths import resolve
        path = resolve(folder)
        if not path.is_dir():
            raise ParameterError(f"templates_dir={folder} is not a folder: point it at a copy of "
                                 f"medsyn_utils/tasks/templates, or leave it empty")
    else:
        path = _packaged_folder()
    stamp = tuple(sorted((p.name, p.stat().st_mtime_ns) for p in path.iterdir() if p.is_file()))
    return _load(str(path), stamp)


def parse_mix(mix: Mapping[str, float] | Sequence[str], templates: PromptTemplates
              ) -> dict[tuple[str, str], float]:
    """Weights per (kind, variant) from ``{"symptoms": 0.4, "code/short": 0.1, ...}``.

    A key ``kind`` spreads its weight evenly over the kind's variants; ``kind/variant`` names one.
    A list of such keys weighs them equally. Unknown kinds or variants are one-line errors.
    """
    if not isinstance(mix, Mapping):
        mix = {key: 1.0 for key in mix}
    if not mix:
        raise ParameterError("prompt_mix is empty: name at least one prompt kind, e.g. "
                             "{'symptoms+example': 1}")
    out: dict[tuple[str, str], float] = {}
    for key, weight in mix.items():
        kind, _, variant = str(key).partition("/")
        if kind not in KINDS:
            raise ParameterError(f"unknown prompt kind {kind!r} in prompt_mix: use one of "
                                 f"{', '.join(KINDS)} (optionally /variant)")
        try:
            weight = float(weight)
        except (TypeError, ValueError) as error:
            raise ParameterError(f"prompt_mix[{key!r}]={weight!r} must be a number") from error
        if not weight >= 0:
            raise ParameterError(f"prompt_mix[{key!r}]={weight} must be non-negative")
        variants = templates.variants(kind)
        if variant and variant not in variants:
            raise ParameterError(f"unknown prompt variant {key!r}: {kind} has "
                                 f"{', '.join(variants)}")
        for v in ([variant] if variant else variants):
            share = weight if variant else weight / len(variants)
            out[(kind, v)] = out.get((kind, v), 0.0) + share
    if sum(out.values()) <= 0:
        raise ParameterError("prompt_mix weights are all zero: give at least one kind a weight")
    return {pair: w for pair, w in out.items() if w > 0}
