"""The evaluation stage: per-note faithfulness of any scored table, and its summary.

Reads the kit's ``scored.parquet`` or a CSV in the published layout; writes ``evaluation.parquet``
(one row per note), ``evaluation.json`` (per model × prior with bootstrap intervals) and
``evaluation.md``. Figures are drawn by ``analysis.evaluation_figures``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medsyn_utils.core import artefacts
from medsyn_utils.core.errors import InputTableError, MedsynError
from medsyn_utils.core.provenance import package_versions, write_atomic, write_json_atomic
from medsyn_utils.evaluate import corpus_report
from medsyn_utils.evaluate.config import EvaluationConfig
from medsyn_utils.evaluate.faithfulness import SymptomMatcher, parse_symptoms

TEXT_COLUMNS = ("response", "text", "note")
GROUPS = ("generation_model", "prior")
OUTPUTS = ("evaluation.parquet", "evaluation.json", "evaluation.md")
CHUNK = 128  # notes per call of the learned detector (one model call per chunk, and the bar moves)


def read_input(path: str | Path) -> tuple[pd.DataFrame, str]:
    """The table and its text column; one clear line when it cannot be evaluated."""
    frame = artefacts.read_table(path, what="scored table")
    text = next((c for c in TEXT_COLUMNS if c in frame.columns), None)
    if text is None:
        raise InputTableError(f"scored table {path} has no note text column (one of "
                              f"{', '.join(TEXT_COLUMNS)}): give the scored table of stage 04")
    if "symptoms" not in frame.columns:
        raise InputTableError(f"scored table {path} has no 'symptoms' column: give a table in the "
                              "published layout (symptoms as a list or joined by ', ')")
    if len(frame) < 2:
        raise InputTableError(f"scored table {path} has {len(frame)} row(s): the evaluation "
                              "summarises with intervals and needs at least 2 notes")
    return frame, text


def evaluate_notes(frame: pd.DataFrame, text_column: str = "response",
                   config: EvaluationConfig | None = None, progress: bool = True) -> pd.DataFrame:
    """One row per note: coverage, affirmed/negated/missing lists, spans, unrequested findings."""
    from tqdm.auto import tqdm

    config = config or EvaluationConfig()
    matcher = SymptomMatcher(config.threshold, config.slack, config.fuzzy, config.unrequested,
                             config.detector)
    examples = frame["anamnesis"] if "anamnesis" in frame.columns else [None] * len(frame)
    examples = [e if isinstance(e, str) and e.strip() else None for e in examples]
    texts = [n if isinstance(n, str) else "" for n in frame[text_column]]
    lists = [parse_symptoms(cell) for cell in frame["symptoms"]]
    results = []
    with tqdm(total=len(texts), desc="faithfulness", unit="note", disable=not progress) as bar:
        for start in range(0, len(texts), CHUNK):
            part = slice(start, start + CHUNK)
            results += matcher.match_many(texts[part], lists[part], examples[part])
            bar.update(len(texts[part]))
    rows = []
    for names, result in zip(lists, results):
        rows.append({
            "n_symptoms": len(names), "symptom_coverage": result.coverage,
            "symptoms_affirmed": result.names("affirmed"), "symptoms_negated": result.names("negated"),
            "symptoms_missing": result.names("missing"),
            "n_negated": len(result.names("negated")), "n_missing": len(result.names("missing")),
            "symptom_spans": json.dumps([[m.symptom, m.status, m.start, m.stop]
                                         for m in result.symptoms], ensure_ascii=False),
            "unrequested_count": len(result.unrequested),
            "unrequested_findings": [m.symptom for m in result.unrequested],
            "unrequested_spans": json.dumps([[m.symptom, m.start, m.stop] for m in result.unrequested],
                                            ensure_ascii=False),
        })
    keep = [c for c in ("idx", "ICD-10", *GROUPS, "symptoms", "symptoms_recall", "passed_filter",
                        text_column) if c in frame.columns]
    out = frame[keep].reset_index(drop=True).rename(columns={text_column: "response"})
    for group in GROUPS:
        if group not in out.columns:
            out[group] = "all"
    return pd.concat([out, pd.DataFrame(rows)], axis=1)


def _interval(values: np.ndarray, rng: np.random.Generator, n: int) -> dict[str, Any]:
    values = values[np.isfinite(values)]
    if not len(values):
        return {"mean": None, "low": None, "high": None, "n": 0}
    mean = float(values.mean())
    if n <= 0 or len(values) < 2:
        return {"mean": round(mean, 4), "low": None, "high": None, "n": int(len(values))}
    draws = rng.choice(values, size=(n, len(values)), replace=True).mean(axis=1)
    low, high = np.percentile(draws, [2.5, 97.5])
    return {"mean": round(mean, 4), "low": round(float(low), 4), "high": round(float(high), 4),
            "n": int(len(values))}


def summarise(notes: pd.DataFrame, bootstrap: int = 200, seed: int = 0) -> dict[str, Any]:
    """Per model × prior: coverage, negated and missing shares of requested symptoms, unrequested
    findings per note, each with a 95 % bootstrap interval over notes (None where none apply)."""
    rng = np.random.default_rng(seed)
    groups = []
    for (model, prior), part in notes.groupby(list(GROUPS), sort=True, dropna=False):
        asked = part["n_symptoms"].to_numpy(float)
        with_symptoms = asked > 0
        share = lambda column: np.where(with_symptoms, part[column].to_numpy(float) / np.maximum(asked, 1), np.nan)
        groups.append({
            "generation_model": str(model), "prior": str(prior), "notes": int(len(part)),
            "notes_with_symptoms": int(with_symptoms.sum()),
            "symptom_coverage": _interval(part["symptom_coverage"].to_numpy(float), rng, bootstrap),
            "negated_share": _interval(share("n_negated"), rng, bootstrap),
            "missing_share": _interval(share("n_missing"), rng, bootstrap),
            "unrequested_per_note": _interval(part["unrequested_count"].to_numpy(float), rng, bootstrap),
            "notes_with_unrequested": round(float((part["unrequested_count"] > 0).mean()), 4),
        })
    return {"notes": int(len(notes)), "bootstrap": bootstrap, "seed": seed,
            "interval": "95 % percentile bootstrap over notes", "groups": groups}


def _task_table(source: Path | None) -> pd.DataFrame | None:
    """The task table beside the scored table (a run folder), when there is one."""
    if source is None:
        return None
    for name in ("tasks.parquet", "tasks.csv"):
        if (source.parent / name).is_file():
            return artefacts.read_table(source.parent / name, what="task table")
    return None


def corpus_part(scored: pd.DataFrame, notes: pd.DataFrame, out: Path,
                config: EvaluationConfig, source: Path | None = None) -> tuple[dict[str, Any] | None, pd.DataFrame | None]:
    """The corpus metrics (``evaluate.corpus.corpus_summary``) where that module exists, and its
    per-note columns; a metric that cannot be computed is recorded as skipped with the reason."""
    if not config.corpus:
        return {"skipped": "corpus: false"}, None
    try:
        from medsyn_utils.evaluate import corpus  # the corpus metrics' module
    except ImportError:
        return None, None
    function = getattr(corpus, "corpus_summary", None)
    if function is None:
        return None, None
    embed = corpus.vectors_for(config.corpus_embed)  # records which vectors it gave
    frame = scored.copy()
    if "idx" not in frame.columns:
        frame["idx"] = [f"n{i}" for i in range(len(frame))]
    tasks = _task_table(source)
    if tasks is not None and hasattr(corpus, "with_task_columns"):
        frame = corpus.with_task_columns(frame, tasks)  # sex and age for the fairness part
    try:
        train, heldout = corpus.real_reference(config.corpus_reference)
        result = function(frame, train, heldout, embed=embed, out_dir=out, seed=config.seed,
                          per_note=notes[["idx", "symptom_coverage", "unrequested_count"]]
                          if "idx" in notes.columns else None,
                          reference_max=config.corpus_reference_max)
    except MedsynError as error:
        return {"skipped": str(error)}, None
    per_note = result.pop("per_note", None)
    result["embed"] = config.corpus_embed
    return result, per_note


def _cell(value: dict[str, Any]) -> str:
    if value["mean"] is None:
        return "—"
    if value["low"] is None:
        return f"{value['mean']:.3f}"
    return f"{value['mean']:.3f} [{value['low']:.3f}, {value['high']:.3f}]"


def markdown(summary: dict[str, Any], source: str = "", corpus: bool = True) -> str:
    """The summary as markdown; ``corpus``: with the corpus metrics, a table per family
    (``evaluate.corpus_report``; the full record stays in evaluation.json)."""
    lines = ["# Evaluation: does each note say what it was asked to?", "",
             f"Input: `{source}`; {summary['notes']} notes; intervals: {summary['interval']} "
             f"({summary['bootstrap']} resamples, seed {summary['seed']}). A symptom counts as "
             "covered only when the note affirms it (a negated one does not count).", "",
             "| model | prior | notes | with symptoms | coverage | negated | missing | "
             "unrequested / note |", "|---|---|---|---|---|---|---|---|"]
    for g in summary["groups"]:
        lines.append(f"| {g['generation_model']} | {g['prior']} | {g['notes']} | "
                     f"{g['notes_with_symptoms']} | {_cell(g['symptom_coverage'])} | "
                     f"{_cell(g['negated_share'])} | {_cell(g['missing_share'])} | "
                     f"{_cell(g['unrequested_per_note'])} |")
    if corpus and summary.get("corpus") is not None:
        lines += ["", "## Corpus metrics", "", corpus_report.corpus_markdown(summary["corpus"]).rstrip()]
    return "\n".join(lines) + "\n"


def write_outputs(out: str | Path, notes: pd.DataFrame, summary: dict[str, Any],
                  source: str = "") -> dict[str, str]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: str(out / name) for name in OUTPUTS}
    artefacts.write_table(notes, out / "evaluation.parquet")
    write_json_atomic(out / "evaluation.json", summary)
    write_atomic(out / "evaluation.md", markdown(summary, source))
    return paths


def matcher_record(config: EvaluationConfig) -> dict[str, Any]:
    """What decided each symptom: the rule threshold, or the learned detector's cut and train fit."""
    if config.detector == "rule":
        return {"detector": "rule", "threshold": config.threshold}
    from medsyn_utils.evaluate.detector import FEATURE_VERSION, cache_key
    from medsyn_utils.evaluate.faithfulness import load_detector

    detector = load_detector()
    return {"detector": "learned", "threshold": round(detector.threshold, 4),
            "trained_on": "RuMedSymptomRec gold pairs of RuMedTop3 train visits",
            "train_fit": detector.train_report, "feature_version": FEATURE_VERSION,
            "cache_key": cache_key()}


def run_evaluation(input_path: str | Path, out: str | Path, config: EvaluationConfig,
                   progress: bool = True) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read, evaluate every note, summarise (with the corpus summary where present) and write."""
    frame, text = read_input(input_path)
    notes = evaluate_notes(frame, text, config, progress=progress)
    summary = summarise(notes, config.bootstrap, config.seed)
    summary["config"] = config.model_dump()
    summary["input"] = str(input_path)
    summary["matcher"] = matcher_record(config)
    summary["packages"] = package_versions(("razdel", "pymorphy3", "pymorphy3-dicts-ru",
                                            "rapidfuzz", "scikit-learn", "pandas"))
    summary["corpus"], per_note = corpus_part(frame, notes, Path(out), config, Path(input_path))
    if per_note is not None and "idx" in notes.columns and len(per_note):
        notes = notes.merge(per_note, on="idx", how="left", suffixes=("", "_corpus"))
    write_outputs(out, notes, summary, str(input_path))
    return notes, summary
