"""Notebook 08 runs headless under papermill on a published-schema table, writes every output and
the stage record, and stops naming the scoring stage when there is no scored table."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
NB08 = ROOT / "notebooks" / "08_evaluation.ipynb"

pytestmark = pytest.mark.notebooks

TABLE = pd.DataFrame({
    "idx": [f"n{i}" for i in range(6)],
    "ICD-10": ["J06", "J06", "J06", "I10", "I10", "I10"],
    "generation_model": ["m1"] * 3 + ["m2"] * 3,
    "prior": ["symptoms"] * 6,
    "response": ["Кашель, температуры нет.", "Кашель и насморк.", "Боли в горле.",
                 "Головная боль, головокружение.", "Без головной боли.", "Сухость кожи."],
    "symptoms": ["кашель, температура", "кашель, насморк", "боль в горле",
                 "головная боль", "головная боль", "кожа, сухая"],
    "anamnesis": [None] * 6,
})


def _run(out: Path, parameters: dict) -> None:
    papermill = pytest.importorskip("papermill")
    papermill.execute_notebook(str(NB08), str(out.parent / "08.executed.ipynb"), kernel_name="python3",
                               parameters=parameters, cwd=str(NB08.parent), progress_bar=False,
                               execution_timeout=600)


def test_notebook_08_on_a_published_schema_table(tmp_path, data_dir):
    source = tmp_path / "scored.csv"
    TABLE.to_csv(source, index=False)
    run = tmp_path / "run"
    _run(run, {"run_dir": str(run), "input_path": str(source), "bootstrap": 20, "corpus": False})
    record = json.loads((run / "08_evaluation.json").read_text(encoding="utf-8"))
    groups = {g["generation_model"]: g for g in record["metrics"]["groups"]}
    assert groups["m1"]["symptom_coverage"]["mean"] == pytest.approx((0.5 + 1.0 + 1.0) / 3, abs=1e-3)
    assert groups["m2"]["negated_share"]["mean"] == pytest.approx(1 / 3, abs=1e-3)
    table = pd.read_parquet(run / "evaluation.parquet")
    assert len(table) == 6 and (run / "evaluation.md").is_file()
    assert (run / "figures" / "evaluation_symptom_coverage.pdf").is_file()
    assert record["parameters"]["input_path"] == str(source)


def test_without_a_scored_table_notebook_08_names_the_scoring_stage(tmp_path, data_dir):
    papermill = pytest.importorskip("papermill")
    run = tmp_path / "run"
    with pytest.raises(papermill.PapermillExecutionError, match="no scored.parquet in .*run the scoring stage"):
        _run(run, {"run_dir": str(run)})
    assert not (run / "evaluation.json").exists()
