"""What the scoring stage lets in (fingerprints, failed notes), honest filter groups, the CLI's
checks before work, --json and --calibrate."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from score_helpers import EXAMPLES, LAYER, NOTES, SYMPTOMS, make_store, make_tasks

from medsyn_utils.cli.app import main
from medsyn_utils.core.errors import InputTableError
from medsyn_utils.score.filter import group_counts
from medsyn_utils.score.layout import check_table, load_scoring_input, read_scoring_input
from medsyn_utils.score.scorer import NoteScorer
from medsyn_utils.score.stage import score_table, summary


@pytest.fixture(scope="module")
def scorer(tiny_encoder_dir):
    return NoteScorer(str(tiny_encoder_dir), LAYER, batch_size=4)


def test_notes_written_for_other_tasks_are_refused(tmp_path) -> None:
    tasks = make_tasks()
    tasks.to_parquet(tmp_path / "tasks.parquet", index=False)
    other = tasks.copy()
    other.loc[1, "user_prompt"] = "another prompt"  # the note of t000001 was written for this
    make_store(tmp_path / "generations.jsonl", NOTES[:4], tasks=other)
    with pytest.raises(InputTableError, match=r"1 note\(s\) .* other tasks .*first: t000001.*regenerate"):
        read_scoring_input(tmp_path / "generations.jsonl")
    lines = (tmp_path / "generations.jsonl").read_text(encoding="utf-8").splitlines()
    old = [json.loads(line) for line in lines]
    for record in old:
        record.pop("task_fingerprint")  # written before fingerprints existed
    (tmp_path / "generations.jsonl").write_text("\n".join(json.dumps(r) for r in old) + "\n",
                                                encoding="utf-8")
    with pytest.raises(InputTableError, match=r"4 note\(s\).*regenerate"):
        read_scoring_input(tmp_path / "generations.jsonl")


def test_failed_notes_are_left_out_and_counted(tmp_path) -> None:
    make_tasks().to_parquet(tmp_path / "tasks.parquet", index=False)
    make_store(tmp_path / "generations.jsonl", [NOTES[0], "", NOTES[2], "x"],
               finish=["stop", "empty", "length", "error"])
    loaded = load_scoring_input(tmp_path / "generations.jsonl")
    assert loaded.table["idx"].tolist() == ["t000000", "t000002"]
    assert loaded.failed == {"empty": 1, "error": 1} and loaded.failed_total == 2
    make_store(tmp_path / "generations.jsonl", ["", ""], finish=["empty", "error"])
    with pytest.raises(InputTableError, match="all 2 notes .* failed"):
        load_scoring_input(tmp_path / "generations.jsonl")


def test_template_examples_get_no_precision_and_no_pass(scorer) -> None:
    table = check_table(pd.DataFrame({
        "response": NOTES[:5], "symptoms": [SYMPTOMS[0], SYMPTOMS[1], "", SYMPTOMS[3], ""],
        "anamnesis": [EXAMPLES[0], "Пациент обратился с жалобами.", None, None, EXAMPLES[4]],
        "example_source": ["RuMedTop3-train", "template", None, None, "RuMedTop3-train"]}))
    scored = score_table(table, scorer, recall_threshold=-1.0, precision_threshold=-1.0,
                                 progress=False)
    assert math.isnan(scored.loc[1, "anamnesis_precision"])  # never against the template
    assert scored["filter_applies"].tolist() == [True, False, False, True, True]
    assert scored["passed_filter"].tolist() == [True, False, False, True, True]
    groups = group_counts(scored)
    assert groups == {"both": {"notes": 1, "passed": 1}, "symptoms-only": {"notes": 1, "passed": 1},
                      "example-only": {"notes": 1, "passed": 1},
                      "code-only": {"notes": 1, "passed": 0},
                      "template-example": {"notes": 1, "passed": 0}}
    numbers = summary(scored)
    assert numbers["criteria_applied"] == {"symptoms_recall": 3, "anamnesis_precision": 2,
                                           "filter_applies": 3}


def test_cli_checks_the_output_before_scoring(tmp_path, capsys) -> None:
    make_tasks().to_parquet(tmp_path / "tasks.parquet", index=False)
    store = make_store(tmp_path / "generations.jsonl", NOTES[:4])
    # the encoder does not exist: a failure about it would mean scoring had started
    for out, message in ((tmp_path / "x.xlsx", "must end in .csv or .parquet"),
                         (tmp_path / "tasks.parquet" / "scored.csv", "is a file, not a folder")):
        code = main(["score", "--in", str(store), "--out", str(out), "--encoder", str(tmp_path / "none")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err


def test_cli_json_stdout_is_one_json_object(tiny_encoder_dir, tmp_path, capsys) -> None:
    make_tasks().to_parquet(tmp_path / "tasks.parquet", index=False)
    store = make_store(tmp_path / "generations.jsonl", NOTES[:4], finish=["stop", "stop", "stop", "error"])
    code = main(["score", "--in", str(store), "--out", str(tmp_path / "s.parquet"), "--json",
                 "--encoder", str(tiny_encoder_dir), "--layer", "2", "--no-calibrate"])
    captured = capsys.readouterr()
    numbers = json.loads(captured.out)  # nothing else on stdout
    assert code == 0 and numbers["rows"] == 3 and numbers["failed_notes_excluded"] == {"error": 1}
    assert "left out 1 note(s)" in captured.err and "--calibrate" in captured.err
    assert numbers["criteria_applied"]["anamnesis_precision"] == 1


def test_cli_calibrate_maps_the_thresholds(data_dir, tiny_encoder_dir, tmp_path, capsys) -> None:
    make_tasks().to_parquet(tmp_path / "tasks.parquet", index=False)
    store = make_store(tmp_path / "generations.jsonl", NOTES[:4])
    code = main(["score", "--in", str(store), "--out", str(tmp_path / "s.csv"), "--json", "--quiet",
                 "--encoder", str(tiny_encoder_dir), "--layer", "2", "--calibrate",
                 "--calibration-size", "6", "--assumed-percentile", "20"])
    numbers = json.loads(capsys.readouterr().out)
    assert code == 0 and [row["score"] for row in numbers["calibration"]] == \
        ["symptoms_recall", "anamnesis_precision"]
    assert numbers["thresholds_used"]["symptoms_recall"] == numbers["calibration"][0]["mapped_threshold"]
    assert numbers["thresholds_used"]["symptoms_recall"] != 0.65
    assert all(row["percentile"] == 20.0 for row in numbers["calibration"])
