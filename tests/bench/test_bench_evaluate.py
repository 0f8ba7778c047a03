"""``medsyn bench evaluate`` times every part of the evaluation stage, the corpus parts included."""

from __future__ import annotations

import json

import pytest

from medsyn_utils.cli import main


@pytest.mark.integration
def test_bench_evaluate_prints_each_part_as_json(data_dir, capsys):
    assert main(["bench", "evaluate", "--notes", "20", "--corpus-notes", "60", "--corpus-embed", "hashed",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["notes"] == 20 and result["notes_per_second"] > 0
    parts = result["corpus"]["parts"]
    assert set(parts) == {"embed", "realism", "diversity", "privacy", "fairness"}
    assert all(part["seconds"] > 0 and part["cpu_seconds"] >= 0 for part in parts.values())
    assert result["corpus"]["n_notes"] == 60 and result["corpus"]["embed"] == "hashed"
    assert result["corpus"]["vectors"]["kind"] == "hashed"
    assert result["corpus"]["reference"]["reference_max"] == 0


def test_bench_evaluate_refuses_a_small_reference_cap(data_dir, capsys):
    assert main(["bench", "evaluate", "--corpus-reference-max", "50", "--json"]) != 0
    assert "--corpus-reference-max 50" in capsys.readouterr().err


def test_bench_evaluate_can_skip_the_corpus_parts(data_dir, capsys):
    assert main(["bench", "evaluate", "--notes", "5", "--corpus-notes", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["corpus"] is None
