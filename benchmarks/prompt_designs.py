"""Study: which completion-prompt design makes the embedded base model name its symptoms.

Reads generation stores (``medsyn generate`` output) next to their task tables and prints, per
design x prompt kind, the symptom coverage of the notes by a 4-letter stem match (issue 20, item
5): a sampled symptom counts as mentioned when at least half of its words (of 3+ letters) have
their first 4 letters at the start of some word of the note. Coverage of a note = mentioned share
of its sampled symptoms; the table gives the mean over notes with a seeded bootstrap 95 %
interval, the number of notes and their median length in words.

Layout read: ``ROOT/<design>_<kind>/`` with ``tasks.parquet`` and ``generated.jsonl`` (``kind`` is
``symptoms_example`` or ``symptoms``), as written by the study commands in README.md
("Prompt designs for the embedded base model"). A ``scored.parquet`` beside them (``medsyn
score``) adds the mean BERTScore ``symptoms_recall`` and ``anamnesis_precision``. When ``medsyn_utils.evaluate.faithfulness``
with ``symptom_coverage(note, symptoms)`` is importable (the evaluation stage of issue 20), its
coverage is printed as a second column.

    python benchmarks/prompt_designs.py outputs/prompt_study [--json] [--boot 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
# a note that goes on into a new record of the prompt's layout (a base model not stopping)
RUN_ON = re.compile(r"\n\s*(Симптомы:|Пациент \d|Медицинская карта)")
KINDS = ("symptoms_example", "symptoms")
# symptoms of the worked examples in the few-shot templates: a note that names one it was not
# asked for has copied the demonstration rather than its own list
DEMO_SYMPTOMS = ("кашель", "насморк", "повышение температуры тела", "изжога", "боль в эпигастрии",
                 "тошнота")


def words(text: str) -> list[str]:
    """Lower-case letter runs, ё folded to е."""
    return WORD.findall(str(text).lower().replace("ё", "е"))


def stem_mentioned(note_words: set[str], symptom: str, stem: int = 4) -> bool:
    """At least half of the symptom's words (3+ letters) start some note word by their stem."""
    keys = [w[:stem] for w in words(symptom) if len(w) >= 3]
    if not keys:
        return False
    prefixes = {w[:stem] for w in note_words}
    hits = sum(1 for k in keys if k in prefixes)
    return hits * 2 >= len(keys)


def stem_coverage(note: str, symptoms: list[str]) -> float:
    """Share of ``symptoms`` the note mentions by the stem match."""
    note_words = set(words(note))
    return float(np.mean([stem_mentioned(note_words, s) for s in symptoms])) if symptoms else np.nan


def demo_leak(note: str, symptoms: list[str]) -> bool:
    """The note names a worked-example symptom that was not among its own."""
    own = {w[:4] for s in symptoms for w in words(s)}
    note_words = set(words(note))
    return any(stem_mentioned(note_words, d) and not {w[:4] for w in words(d) if len(w) >= 3} & own
               for d in DEMO_SYMPTOMS)


def bootstrap(values: np.ndarray, boot: int, seed: int) -> tuple[float, float]:
    """Percentile 95 % interval of the mean."""
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(boot, len(values)), replace=True).mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def read_notes(folder: Path) -> pd.DataFrame:
    """Task id, symptoms and note text of every stored note (failed records left out)."""
    tasks = pd.read_parquet(folder / "tasks.parquet")
    rows = {}
    with open(folder / "generated.jsonl", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if record.get("error") or record.get("response") is None:
                continue
            rows.setdefault(record["task_id"], record["response"])
    tasks = tasks[tasks["task_id"].isin(rows)].copy()
    tasks["note"] = tasks["task_id"].map(rows)
    tasks["symptoms"] = tasks["symptoms"].map(lambda s: [str(x) for x in s])
    return tasks


def eval_matcher() -> Callable[[str, list[str]], float] | None:
    """The evaluation stage's ``symptom_coverage``, when that module is on the path."""
    try:
        from medsyn_utils.evaluate.faithfulness import symptom_coverage  # type: ignore
    except Exception:
        return None
    return symptom_coverage


def summarise(root: Path, boot: int, seed: int) -> list[dict[str, Any]]:
    matcher = eval_matcher()
    out = []
    for folder in sorted(p for p in root.iterdir() if (p / "generated.jsonl").is_file()):
        design, kind = next(((folder.name[: -len(k) - 1], k) for k in KINDS
                             if folder.name.endswith("_" + k)), (folder.name, ""))
        notes = read_notes(folder)
        if notes.empty:
            continue
        cov = np.array([stem_coverage(n, s) for n, s in zip(notes["note"], notes["symptoms"])])
        low, high = bootstrap(cov, boot, seed)
        row: dict[str, Any] = {
            "design": design, "kind": kind.replace("_example", "+example"),
            "coverage": round(float(cov.mean()), 3), "ci_low": round(low, 3),
            "ci_high": round(high, 3), "n": int(len(cov)),
            "median_words": float(np.median([len(str(n).split()) for n in notes["note"]])),
            "empty_notes": int(sum(not str(n).strip() for n in notes["note"])),
            "coverage_cut": round(float(np.mean([stem_coverage(RUN_ON.split(str(n))[0], s) for n, s
                                                 in zip(notes["note"], notes["symptoms"])])), 3),
            "run_on": round(float(np.mean([bool(RUN_ON.search(str(n)))
                                           for n in notes["note"]])), 3),
            "demo_leak": round(float(np.mean([demo_leak(n, s) for n, s in
                                              zip(notes["note"], notes["symptoms"])])), 3),
        }
        if matcher is not None:
            ev = np.array([matcher(n, s) for n, s in zip(notes["note"], notes["symptoms"])],
                          dtype=float)
            row["coverage_eval"] = round(float(np.nanmean(ev)), 3)
            lo2, hi2 = bootstrap(ev[np.isfinite(ev)], boot, seed)
            row["coverage_eval_ci"] = [round(lo2, 3), round(hi2, 3)]
        scored = folder / "scored.parquet"
        if scored.is_file():
            table = pd.read_parquet(scored)
            for column in ("symptoms_recall", "anamnesis_precision"):
                if column in table and table[column].notna().any():
                    row[column] = round(float(table[column].mean()), 3)
        out.append(row)
    return out


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder of <design>_<kind> generation folders")
    parser.add_argument("--boot", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--json", action="store_true", help="print JSON rows only")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        print(f"prompt_designs: {args.root} is not a folder: pass the study folder",
              file=sys.stderr)
        return 2
    if args.boot < 1:
        print(f"prompt_designs: --boot={args.boot} must be at least 1", file=sys.stderr)
        return 2
    rows = summarise(args.root, args.boot, args.seed)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    extra = "coverage_eval" in (rows[0] if rows else {})
    print("| design | kind | stem coverage [95 % CI] |" + (" eval coverage |" if extra else "")
          + " n | median words | run-on | cut at run-on | demo leak | BERTScore S recall | E precision |")
    print("|---|---|---|" + ("---|" if extra else "") + "---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        cell = f" {r['coverage_eval']:.2f} |" if extra else ""
        print(f"| {r['design']} | {r['kind']} | {r['coverage']:.2f} [{r['ci_low']:.2f}, "
              f"{r['ci_high']:.2f}] |{cell} {r['n']} | {r['median_words']:.0f} | "
              f"{r['run_on']:.2f} | {r['coverage_cut']:.2f} | {r['demo_leak']:.2f} | "
              f"{_num(r.get('symptoms_recall'))} | {_num(r.get('anamnesis_precision'))} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
