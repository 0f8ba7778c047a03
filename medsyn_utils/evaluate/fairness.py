"""Fairness: per-note measures by the task's sex and age group with bootstrap intervals, and a
sex-consistency check of the note's grammar against the task's sex.

The check reads past-tense verbs and short adjectives in the singular (short participles are left
out: in notes they are mostly about findings, "СД диагностирован") whose
subject is the patient: the clause has no nominative noun before the word, or the nearest one is
a word for the patient ("пациент", "больная", "она", "я", …). "Боль усилилась" is about the pain
and is skipped; "заболела остро", "пациент жаловалась", "она обратилась" are feminine evidence.
Gendered nouns for the patient ("пациентка", "мужчина") count too. A heuristic: a note without
such words gets no verdict (``None``), never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pandas as pd

AGE_BINS = (0, 18, 40, 60, 200)
AGE_LABELS = ("<18", "18-39", "40-59", "60+")
SEXES = ("male", "female")
# Nouns and pronouns that stand for the patient (as the subject of a clause).
PATIENT_SUBJECTS = frozenset({
    "пациент", "пациентка", "больной", "больная", "он", "она", "я", "мужчина", "женщина",
    "юноша", "девушка", "мальчик", "девочка", "парень", "ребёнок", "ребенок", "подросток",
})
# Lemmas whose own gender says the patient's sex (in any case: "со слов пациентки").
GENDERED_PATIENT_LEMMAS = {
    "пациентка": "female", "женщина": "female", "девушка": "female", "девочка": "female",
    "мужчина": "male", "юноша": "male", "мальчик": "male", "парень": "male",
}
# Verbs that in notes are about a symptom with its subject left out ("появилась 3 дня назад").
SYMPTOM_VERBS = frozenset({
    "появиться", "возникнуть", "усилиться", "уменьшиться", "закончиться", "начаться", "развиться",
    "развиваться", "сохраняться", "нарастать", "снизиться", "повыситься", "подняться", "купироваться",
    "беспокоить", "отечь", "пройти", "стать", "исчезнуть", "участиться", "ухудшиться", "улучшиться",
})
CLAUSE = re.compile(r"[.!?;:\n()]+|,\s*(?:что|который|которая|когда|так как|но|а)\b")
TOKEN = re.compile(r"[А-Яа-яЁё]+")


@lru_cache(maxsize=1)
def _morph():
    import pymorphy3

    return pymorphy3.MorphAnalyzer()


@lru_cache(maxsize=200_000)
def _word_info(word: str) -> tuple[str | None, bool, str | None]:
    """(gender of a singular past verb / short adjective / short participle or None,
    whether some parse is a nominative noun or pronoun, the first parse's lemma)."""
    parses = _morph().parse(word)
    first = parses[0]
    tag = first.tag
    gender = None
    if first.normal_form in SYMPTOM_VERBS or not _morph().word_is_known(word):
        pass
    elif ((tag.POS == "VERB" and "past" in tag) or tag.POS == "ADJS") and "sing" in tag:
        gender = {"masc": "male", "femn": "female"}.get(tag.gender)
    nominative = any(p.tag.POS in ("NOUN", "NPRO") and "nomn" in p.tag and p.score >= 0.05
                     for p in parses)
    return gender, nominative, first.normal_form


def sex_evidence(text: str) -> dict[str, int]:
    """Counts of masculine and feminine words about the patient in ``text``."""
    counts = {"male": 0, "female": 0}
    for clause in CLAUSE.split(str(text)):
        subject: str | None = None  # lemma of the nearest nominative noun so far in the clause
        for token in TOKEN.findall(clause):
            word = token.lower()
            gender, nominative, lemma = _word_info(word)
            if lemma in GENDERED_PATIENT_LEMMAS:
                counts[GENDERED_PATIENT_LEMMAS[lemma]] += 1
            if gender is not None and (subject is None or subject in PATIENT_SUBJECTS):
                counts[gender] += 1
                continue
            if nominative and gender is None:
                subject = word if word in PATIENT_SUBJECTS else lemma
    return counts


def sex_consistency(text: str, sex: str | None) -> tuple[str | None, bool | None]:
    """(the sex the note's grammar says, whether it matches ``sex``); ``None`` without evidence
    or without a task sex. The grammar "says" a sex when its words for it outnumber the others."""
    counts = sex_evidence(text)
    if counts["male"] == counts["female"]:
        return None, None
    said = "male" if counts["male"] > counts["female"] else "female"
    if sex not in SEXES:
        return said, None
    return said, said == sex


def age_group(age) -> str | None:
    """The age band of :data:`AGE_LABELS` (None for a missing or non-numeric age)."""
    try:
        value = float(age)
    except (TypeError, ValueError):
        return None
    if not np.isfinite(value):
        return None
    for low, high, label in zip(AGE_BINS[:-1], AGE_BINS[1:], AGE_LABELS):
        if low <= value < high:
            return label
    return None


def group_means(frame: pd.DataFrame, by: str, column: str, *, seed: int, boot: int = 200,
                min_size: int = 1) -> dict:
    """Mean of ``column`` per value of ``by`` with a bootstrap 95 % interval, and the gap
    (largest minus smallest group mean) with its own bootstrap interval (groups resampled
    independently). Groups smaller than ``min_size`` are reported but left out of the gap."""
    data = frame[[by, column]].dropna()
    data = data[np.isfinite(data[column].astype(float))]
    rng = np.random.default_rng(seed)
    groups = {str(k): g[column].to_numpy(float) for k, g in data.groupby(by, sort=True)}
    out: dict = {"groups": {}, "gap": None, "gap_ci": None, "n": int(len(data))}
    draws = {}
    for name, values in groups.items():
        means = values[rng.integers(0, len(values), (boot, len(values)))].mean(1)
        draws[name] = means
        out["groups"][name] = {"mean": float(values.mean()), "n": int(len(values)),
                               "ci": [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]}
    usable = [name for name, values in groups.items() if len(values) >= min_size]
    if len(usable) >= 2:
        means = {name: groups[name].mean() for name in usable}
        out["gap"] = float(max(means.values()) - min(means.values()))
        stacked = np.vstack([draws[name] for name in usable])
        gaps = stacked.max(0) - stacked.min(0)
        out["gap_ci"] = [float(np.quantile(gaps, 0.025)), float(np.quantile(gaps, 0.975))]
        out["groups_in_gap"] = usable
    return out


def fairness_table(frame: pd.DataFrame, columns: Sequence[str], *, seed: int, boot: int = 200,
                   min_size: int = 1) -> dict:
    """:func:`group_means` of every measure in ``columns`` by ``sex`` and by ``age_group``."""
    out: dict = {}
    for by in ("sex", "age_group"):
        if by not in frame.columns or frame[by].isna().all():
            continue
        out[by] = {c: group_means(frame, by, c, seed=seed, boot=boot, min_size=min_size)
                   for c in columns if c in frame.columns}
    return out


def with_task_columns(notes: pd.DataFrame, tasks: pd.DataFrame,
                      columns: Sequence[str] = ("sex", "age")) -> pd.DataFrame:
    """``notes`` with the task table's ``sex`` and ``age`` joined on ``idx`` = ``task_id`` (the
    scored table does not carry them; fairness needs them). Columns already present are kept."""
    wanted = [c for c in columns if c not in notes.columns and c in tasks.columns]
    if not wanted or "task_id" not in tasks.columns:
        return notes
    extra = tasks[["task_id", *wanted]].drop_duplicates("task_id").rename(columns={"task_id": "idx"})
    extra["idx"] = extra["idx"].astype(str)
    merged = notes.assign(_key=notes["idx"].astype(str)).merge(
        extra.rename(columns={"idx": "_key"}), on="_key", how="left")
    return merged.drop(columns="_key")
