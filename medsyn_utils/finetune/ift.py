"""Instruction fine-tuning (IFT) export: real and filtered synthetic notes as instruction records.

Each record is ``{"instruction", "input", "output"}`` as in the MedSyn release. Instruction types:

* ``symptoms_to_note``: marked-up symptoms of a real visit (with sex and age where known) → note;
* ``diagnosis_to_note``: the Russian name of the visit's category → note;
* ``continue_note``: first half of a real note → second half;
* ``synthetic``: a synthetic note that passed the filter: the prompt it was made from → note.

Each type has several Russian wordings (``templates/ift.yaml``), picked by seed. By default only
**train** visits are used, and synthetic notes whose style example is a dev/test visit are left out,
so the downstream experiment on dev/test stays clean. The same parameters give the same bytes.

Synthetic notes are bound to their tasks: each must carry the fingerprint
(:func:`medsyn_utils.core.artefacts.task_fingerprint`) of its row in the task table it is joined
with (``tasks_path``, else ``tasks.parquet`` beside the scored dataset); a note written for another
task, or one nothing binds to a task, is refused. The card lists every real visit the export
holds (as a note or as a synthetic note's style example), so a later comparison can prove its
tasks are held out.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from medsyn_utils.core import artefacts, corpus
from medsyn_utils.core.data import checksums
from medsyn_utils.core.errors import InputTableError, ParameterError
from medsyn_utils.core.paths import resolve
from medsyn_utils.core.provenance import package_versions, to_json, write_atomic
from medsyn_utils.generate.store import read_records as read_store_records
from medsyn_utils.score.filter import SCORE_COLUMNS, filter_status
from medsyn_utils.tasks.table import load_task_table, text_or

TYPES = ("symptoms_to_note", "diagnosis_to_note", "continue_note", "synthetic")
REAL_TYPES = TYPES[:3]
STORE_NAME = "generations.jsonl"
LICENCE = ("CC BY-NC 4.0: derived from RuMedBench/RuMedPrime (CC BY-NC 4.0 / CC BY 3.0) and the "
           "MedSyn tables; non-commercial research use")
RECORD_KEYS = ("instruction", "input", "output")
SOURCE_FILES: tuple[str, ...] = (*corpus.RUMEDTOP3_FILES.values(), *corpus.FULL_NOTE_FILES.values(),
                                 corpus.MARKUP_FILE)


@dataclass
class IftOptions:
    """What goes into the export."""

    seed: int = 0
    splits: tuple[str, ...] = ("train",)
    types: tuple[str, ...] = REAL_TYPES  # add "synthetic" (with scored_path) for synthetic notes
    min_words: int = 10           # real notes shorter than this are skipped
    min_words_continue: int = 30  # notes split into halves need at least this many words
    scored_path: str = ""         # scored dataset (scored.parquet/.csv) for synthetic records
    tasks_path: str = ""          # task table of the synthetic notes; empty: beside scored_path
    store_path: str = ""          # generation store with their fingerprints; empty: beside it
    max_per_type: int = 0         # 0 = no cap

    def check(self) -> None:
        unknown = set(self.types) - set(TYPES)
        if unknown:
            raise ParameterError(f"unknown IFT type(s) {sorted(unknown)}: use any of {', '.join(TYPES)}")
        for split in self.splits:
            if split not in corpus.SPLITS:
                raise ParameterError(f"unknown split {split!r} in splits: use train, dev or test")
        if self.min_words < 1 or self.min_words_continue < 2:
            raise ParameterError("min_words must be ≥ 1 and min_words_continue ≥ 2")
        if "synthetic" in self.types and not self.scored_path:
            raise ParameterError("IFT type 'synthetic' needs scored_path (the scored.parquet of "
                                 "stage 04): give it, or leave 'synthetic' out of types")
        if self.scored_path and "synthetic" not in self.types:
            raise ParameterError(f"scored_path={self.scored_path} is given but types leaves out "
                                 f"'synthetic': add it, or leave scored_path empty")


@lru_cache(maxsize=1)
def wordings() -> dict[str, list[str]]:
    """Instruction wordings per type, from ``templates/ift.yaml``."""
    text = resources.files("medsyn_utils.tasks").joinpath("templates", "ift.yaml").read_text(encoding="utf-8")
    table = yaml.safe_load(text)
    for kind in TYPES[:3]:
        if not table.get(kind):
            raise ParameterError(f"templates/ift.yaml: no wordings for {kind}; add at least one")
    return table


def _words(text: str) -> int:
    return len(str(text).split())


def split_in_halves(text: str) -> tuple[str, str]:
    """Cut a note near its middle, at a sentence end when one is close, else between words."""
    words = text.split()
    middle = len(words) // 2
    sentence_ends = [i + 1 for i, w in enumerate(words[:-1]) if re.search(r"[.!?;]$", w)]
    if sentence_ends:
        best = min(sentence_ends, key=lambda i: abs(i - middle))
        if abs(best - middle) <= max(3, len(words) // 5):
            middle = best
    return " ".join(words[:middle]), " ".join(words[middle:])


def _real_notes(options: IftOptions) -> pd.DataFrame:
    """One row per real visit of the chosen splits: the full note where known, else complaints."""
    visits = corpus.load_rumedtop3(options.splits)
    full = corpus.load_full_notes(tuple(s for s in options.splits if s in corpus.FULL_NOTE_FILES))
    note = visits.set_index("idx")["text"].copy()
    if not full.empty:
        note.update(full.set_index("idx")["full_text"])
    visits = visits.assign(note=visits["idx"].map(note).str.strip())
    return visits[visits["note"].map(_words) >= options.min_words].sort_values("idx")


def _synthetic(options: IftOptions) -> tuple[pd.DataFrame, dict[str, int]]:
    """Filtered synthetic notes bound to their tasks: (prompt, response) pairs and counts of what
    was left out."""
    path = resolve(options.scored_path)
    if not path.is_file():
        raise InputTableError(f"scored dataset {options.scored_path} not found: run the scoring "
                              f"stage (04) first or leave scored_path empty")
    frame = artefacts.read_scored_table(path)
    missing = [c for c in ("idx", "prompt", "response") if c not in frame.columns]
    if missing:
        raise InputTableError(f"scored dataset {path} lacks column(s) {', '.join(missing)}")
    frame["idx"] = frame["idx"].astype(str)
    check_bound_to_tasks(frame, path, options)
    counts = {"synthetic_total": int(len(frame))}
    if "passed_filter" in frame.columns or any(c in frame.columns for c in SCORE_COLUMNS):
        frame = frame[filter_status(frame)[1]]  # the one filter rule (score/filter.py)
    counts["synthetic_failed_filter"] = counts["synthetic_total"] - int(len(frame))
    if "example_visit_id" in frame.columns:
        splits = corpus.visit_splits()
        leaked = frame["example_visit_id"].map(splits).isin(["dev", "test"])
        counts["synthetic_leakage_excluded"] = int(leaked.sum())
        frame = frame[~leaked]
    frame = frame[frame["response"].fillna("").str.strip().astype(bool)
                  & frame["prompt"].fillna("").str.strip().astype(bool)]
    return frame, counts


def check_bound_to_tasks(scored: pd.DataFrame, scored_path: Path, options: IftOptions) -> None:
    """Refuse synthetic notes that were not written for the task table they are joined with.

    The fingerprints come from the scored table's ``task_fingerprint`` column where it has one,
    else from the generation store (``store_path``, else ``generations.jsonl`` beside it).
    """
    tasks_file = (resolve(options.tasks_path) if options.tasks_path
                  else artefacts.require_input(scored_path.parent, "tasks.parquet", "tasks.csv"))
    tasks = load_task_table(tasks_file)
    known = set(tasks["task_id"].astype(str))
    unknown = sorted(set(scored["idx"]) - known)
    if unknown:
        raise InputTableError(f"{len(unknown)} synthetic note(s) in {scored_path} name tasks "
                              f"missing from the task table {tasks_file} (first: {unknown[0]}): "
                              f"pass the task table they were generated from (tasks_path)")
    if "task_fingerprint" in scored.columns:
        fingerprints = dict(zip(scored["idx"], scored["task_fingerprint"]))
        source = scored_path
    else:
        source = (resolve(options.store_path) if options.store_path
                  else artefacts.require_input(scored_path.parent, STORE_NAME))
        fingerprints = {str(r.get("task_id")): r.get("task_fingerprint")
                        for r in read_store_records(source)}
    records = [{"task_id": idx, "task_fingerprint": fingerprints.get(idx)}
               for idx in scored["idx"]]
    artefacts.check_fingerprints(records, tasks, store=source)


def build_records(options: IftOptions | None = None) -> tuple[pd.DataFrame, dict]:
    """Build the IFT records (columns ``instruction``, ``input``, ``output``, ``type``,
    ``source_id``, ``split``) and a summary of counts."""
    from medsyn_utils.kg.graph import load_graph

    options = options or IftOptions()
    options.check()
    rng = np.random.default_rng(options.seed)
    texts = wordings()
    rows: list[tuple[str, str, str, str, str, str, str | None]] = []
    summary: dict[str, int] = {}
    notes = _real_notes(options) if set(options.types) & set(TYPES[:3]) else pd.DataFrame()

    def pick(kind: str) -> str:
        return texts[kind][int(rng.integers(len(texts[kind])))]

    if "symptoms_to_note" in options.types:
        markup = corpus.load_markup()
        markup = markup[markup["split"].isin(options.splits) & markup["symptom"].notna()]
        symptoms = markup.groupby("idx")["symptom"].agg(lambda s: ", ".join(dict.fromkeys(s)))
        for row in notes[notes["idx"].isin(symptoms.index)].itertuples(index=False):
            details = [f"Симптомы: {symptoms[row.idx]}"]
            for attr, label in (("sex", "Пол"), ("age", "Возраст")):
                value = getattr(row, attr, None)
                if value is not None and value == value:
                    details.append(f"{label}: {value}")
            rows.append((pick("symptoms_to_note"), "\n".join(details), row.note,
                         "symptoms_to_note", row.idx, row.split, None))
    if "diagnosis_to_note" in options.types:
        kg = load_graph()
        for row in notes.itertuples(index=False):
            rows.append((pick("diagnosis_to_note"), f"Диагноз: {kg.name(row.code)}", row.note,
                         "diagnosis_to_note", row.idx, row.split, None))
    if "continue_note" in options.types:
        for row in notes[notes["note"].map(_words) >= options.min_words_continue].itertuples(index=False):
            first, second = split_in_halves(row.note)
            rows.append((pick("continue_note"), first, second, "continue_note", row.idx,
                         row.split, None))
    if "synthetic" in options.types:
        synthetic, counts = _synthetic(options)
        summary.update(counts)
        examples = (synthetic["example_visit_id"] if "example_visit_id" in synthetic.columns
                    else [None] * len(synthetic))
        for source_id, prompt, response, example in zip(
                synthetic["idx"], synthetic["prompt"], synthetic["response"], examples):
            rows.append((str(prompt).strip(), "", str(response).strip(), "synthetic",
                         str(source_id), "synthetic", text_or(example, "") or None))
    records = pd.DataFrame(rows, columns=["instruction", "input", "output", "type", "source_id",
                                          "split", "example_visit_id"])
    if options.max_per_type:
        records = records.groupby("type", sort=False).head(options.max_per_type)
    records = records.iloc[rng.permutation(len(records))].reset_index(drop=True)
    summary.update({f"records_{kind}": int((records["type"] == kind).sum()) for kind in TYPES})
    summary["records_total"] = int(len(records))
    return records, summary


def write_records(records: pd.DataFrame, path: str | Path, summary: dict,
                  options: IftOptions) -> tuple[Path, Path]:
    """Write the JSONL (three keys a line) and its card ``<name>.card.json`` beside it."""
    path = Path(path)
    lines = [json.dumps({k: r[k] for k in RECORD_KEYS}, ensure_ascii=False)
             for r in records[list(RECORD_KEYS)].to_dict("records")]
    write_atomic(path, "\n".join(lines) + ("\n" if lines else ""))
    card = {
        "file": path.name,
        "format": "JSON lines, keys: instruction, input, output",
        "licence": LICENCE,
        "counts": summary,
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(options).items()},
        "sources": checksums(list(SOURCE_FILES)),
        "synthetic_source": options.scored_path or None,
        "visit_ids": export_visit_ids(records),
        "packages": {k: v for k, v in package_versions().items() if k in ("medsyn-utils", "python")},
    }
    card_path = path.with_name(path.stem + ".card.json")
    write_atomic(card_path, to_json(card))
    return path, card_path


def export_visit_ids(records: pd.DataFrame) -> list[str]:
    """Every real visit the records hold: real notes' visits and synthetic notes' style examples."""
    real = records.loc[records["type"] != "synthetic", "source_id"]
    examples = records["example_visit_id"].dropna()
    return sorted({str(v) for v in (*real, *examples) if str(v)})


def card_visit_ids(path: str | Path) -> set[str]:
    """The visit ids recorded in the card of an IFT export (``<name>.card.json``)."""
    path = resolve(path)
    card = path.with_name(path.stem + ".card.json")
    if not card.is_file():
        raise InputTableError(f"IFT file {path} has no card {card.name} beside it: export it with "
                              f"`medsyn ift export` (the card lists the visits it holds)")
    data = json.loads(card.read_text(encoding="utf-8"))
    if "visit_ids" not in data:
        raise InputTableError(f"IFT card {card} lists no visit_ids: re-export {path.name} with "
                              f"this version of the kit")
    return {str(v) for v in data["visit_ids"]}


def export(path: str | Path, options: IftOptions | None = None) -> dict:
    """Build and write the IFT dataset; returns the counts."""
    options = options or IftOptions()
    records, summary = build_records(options)
    if records.empty:
        raise InputTableError("the IFT export is empty: check splits, types and min_words")
    write_records(records, path, summary, options)
    return summary
