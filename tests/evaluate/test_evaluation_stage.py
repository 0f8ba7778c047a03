"""The evaluation stage and ``medsyn evaluate`` on small constructed tables with known answers."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from medsyn_utils.evaluate.config import EvaluationConfig
from medsyn_utils.evaluate.stage import evaluate_notes, summarise

NOTES = pd.DataFrame({
    "idx": ["a", "b", "c", "d"],
    "ICD-10": ["J06", "J06", "I10", "I10"],
    "generation_model": ["m1", "m1", "m2", "m2"],
    "prior": ["symptoms", "symptoms", "symptoms", "code"],
    "response": ["Беспокоит кашель. Температуры нет.", "Кашель и температура 38.",
                 "Сухость кожи. Головокружение.", "Жалоб нет."],
    "symptoms": ["кашель, температура", "кашель, температура", "кожа, сухая", ""],
    "anamnesis": [None, None, None, None],
})


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medsyn_utils.cli", *args], capture_output=True,
                          text=True, timeout=300)


def test_per_note_columns_and_summary_with_known_answers(data_dir):
    notes = evaluate_notes(NOTES, "response", EvaluationConfig(), progress=False)
    assert list(notes["symptom_coverage"][:3]) == [0.5, 1.0, 1.0] and pd.isna(notes["symptom_coverage"][3])
    assert list(notes["symptoms_negated"][0]) == ["температура"]
    assert list(notes["symptoms_missing"][0]) == []
    assert notes["n_symptoms"].tolist() == [2, 2, 1, 0]
    assert any("головокружение" in n for n in notes["unrequested_findings"][2])
    summary = summarise(notes, bootstrap=50, seed=0)
    groups = {(g["generation_model"], g["prior"]): g for g in summary["groups"]}
    assert groups[("m1", "symptoms")]["symptom_coverage"]["mean"] == 0.75
    assert groups[("m1", "symptoms")]["negated_share"]["mean"] == 0.25
    low, high = groups[("m1", "symptoms")]["symptom_coverage"]["low"], groups[("m1", "symptoms")]["symptom_coverage"]["high"]
    assert 0.5 <= low <= 0.75 <= high <= 1.0
    # a code-only note has no coverage: reported as None, never as NaN
    code_only = groups[("m2", "code")]
    assert code_only["symptom_coverage"] == {"mean": None, "low": None, "high": None, "n": 0}
    assert "NaN" not in json.dumps(summary)


def test_medsyn_evaluate_writes_every_output(tmp_path, data_dir):
    source = tmp_path / "scored.csv"
    NOTES.to_csv(source, index=False)
    done = run_cli("evaluate", "--in", str(source), "--out", str(tmp_path / "ev"), "--json", "--no-corpus",
                   "--quiet", "--bootstrap", "20")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["notes"] == 4
    for name in ("evaluation.parquet", "evaluation.json", "evaluation.md"):
        assert (tmp_path / "ev" / name).is_file()
    table = pd.read_parquet(tmp_path / "ev" / "evaluation.parquet")
    assert len(table) == 4 and {"symptom_coverage", "symptoms_negated", "symptoms_missing",
                                "unrequested_count", "unrequested_findings"} <= set(table.columns)
    assert (tmp_path / "ev" / "figures" / "evaluation_symptom_coverage.png").is_file()
    assert (tmp_path / "ev" / "figures" / "evaluation_symptom_coverage.pdf").is_file()


@pytest.mark.parametrize("drop,rows,message", [
    ("response", 4, "no note text column"), ("symptoms", 4, "no 'symptoms' column"),
    (None, 1, "needs at least 2 notes")])
def test_bad_input_is_one_clear_line(tmp_path, drop, rows, message):
    source = tmp_path / "bad.csv"
    (NOTES.drop(columns=[drop]) if drop else NOTES).head(rows).to_csv(source, index=False)
    done = run_cli("evaluate", "--in", str(source), "--out", str(tmp_path / "ev"), "--quiet")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and str(source) in lines[0]
    assert "Traceback" not in done.stderr and not (tmp_path / "ev" / "evaluation.json").exists()


def test_parameters_out_of_range_are_refused_before_any_work(tmp_path):
    source = tmp_path / "scored.csv"
    NOTES.to_csv(source, index=False)
    done = run_cli("evaluate", "--in", str(source), "--out", str(tmp_path / "ev"), "--threshold", "1.5")
    assert done.returncode == 2 and "threshold" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    with pytest.raises(ValueError):
        EvaluationConfig(fuzzy=float("nan"))
    with pytest.raises(ValueError):
        EvaluationConfig(colour="red")


def test_notebook_parameters_match_the_config():
    from pathlib import Path
    cell = next(c for c in json.loads((Path(__file__).resolve().parents[2] / "notebooks" /
                                       "08_evaluation.ipynb").read_text())["cells"]
                if "parameters" in c["metadata"].get("tags", []))
    names = {}
    for line in "".join(cell["source"]).splitlines():
        name, rest = line.split(":", 1)
        names[name.strip()] = rest.split("=", 1)[1].split("#", 1)[0].strip()
    for field, info in EvaluationConfig.model_fields.items():
        assert field in names, field
        assert eval(names[field]) == info.default, field  # noqa: S307 - our own literal
    assert np.isfinite(EvaluationConfig().threshold)
