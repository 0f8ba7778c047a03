"""IFT export: record shape, determinism by seed, split-awareness, synthetic filter and leakage."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from medsyn_utils.core import corpus

from medsyn_utils.finetune import ift
from medsyn_utils.cli.app import main
from medsyn_utils.core.errors import InputTableError, ParameterError


@pytest.fixture(scope="module")
def records(data_dir):
    return ift.build_records(ift.IftOptions(seed=0))


def test_every_record_has_three_keys_and_an_answer(tmp_path, records):
    frame, summary = records
    path, card = ift.write_records(frame, tmp_path / "ift.jsonl", summary, ift.IftOptions())
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == summary["records_total"] > 5000
    for line in lines:
        assert set(line) == {"instruction", "input", "output"}
        assert line["output"].strip() and line["instruction"].strip()
    card_data = json.loads(card.read_text(encoding="utf-8"))
    assert card_data["licence"].startswith("CC BY-NC 4.0")
    assert card_data["counts"]["records_diagnosis_to_note"] > 0
    assert set(card_data["sources"]) >= set(corpus.RUMEDTOP3_FILES.values())


def test_no_dev_or_test_visit_by_default(records):
    frame, _ = records
    assert set(frame["split"]) == {"train"}
    held_out = corpus.load_rumedtop3(("dev", "test"))
    assert not set(frame["source_id"]) & set(held_out["idx"])
    long_texts = {t.strip() for t in held_out["text"] if len(t.split()) >= 12}
    train_texts = {t.strip() for t in corpus.load_rumedtop3("train")["text"]}
    leaking = long_texts - train_texts  # texts that exist only in dev/test
    # Whole notes only: a train note's second half can repeat a later visit of the same patient.
    outputs = set(frame.loc[frame["type"] != "continue_note", "output"])
    assert not any(text in outputs for text in leaking)


def test_dev_visits_appear_when_asked(data_dir):
    frame, _ = ift.build_records(ift.IftOptions(splits=("dev",), types=("diagnosis_to_note",)))
    assert set(frame["split"]) == {"dev"}


def test_wordings_vary_and_depend_on_seed(data_dir, tmp_path):
    first = ift.export(tmp_path / "a.jsonl", ift.IftOptions(seed=1, max_per_type=200))
    ift.export(tmp_path / "b.jsonl", ift.IftOptions(seed=1, max_per_type=200))
    ift.export(tmp_path / "c.jsonl", ift.IftOptions(seed=2, max_per_type=200))
    a, b, c = ((tmp_path / f"{n}.jsonl").read_bytes() for n in "abc")
    assert a == b and a != c
    instructions = {json.loads(line)["instruction"] for line in a.decode().splitlines()}
    assert len(instructions) >= 6  # several wordings per type
    assert first["records_total"] == 600


def test_halves_join_back():
    text = "Жалобы на кашель. Температура 38. Болеет три дня, лечился сам. Слабость, потливость."
    first, second = ift.split_in_halves(text)
    assert first and second and f"{first} {second}" == " ".join(text.split())
    assert first.endswith(".")


def test_synthetic_records_keep_only_passing_notes_without_leakage(tmp_path, data_dir):
    dev_visit = corpus.load_rumedtop3("dev")["idx"].iloc[0]
    train_visit = corpus.load_rumedtop3("train")["idx"].iloc[0]
    scored = pd.DataFrame({
        "idx": ["t1", "t2", "t3", "t4"],
        "prompt": ["Напиши жалобы: кашель"] * 4,
        "response": ["Кашель три дня.", "Плохая заметка", "Утечка из dev", ""],
        "passed_filter": [True, False, True, True],
        "example_visit_id": [train_visit, train_visit, dev_visit, None],
    })
    path = tmp_path / "scored.parquet"
    scored.to_parquet(path)
    frame, summary = ift.build_records(ift.IftOptions(types=("synthetic",), scored_path=str(path)))
    assert list(frame["output"]) == ["Кашель три дня."]
    assert summary["synthetic_failed_filter"] == 1
    assert summary["synthetic_leakage_excluded"] == 1


def test_bad_options(tmp_path):
    with pytest.raises(ParameterError, match="unknown IFT type"):
        ift.build_records(ift.IftOptions(types=("poems",)))
    with pytest.raises(ParameterError, match="unknown split"):
        ift.build_records(ift.IftOptions(splits=("validation",)))
    with pytest.raises(InputTableError, match="not found"):
        ift.build_records(ift.IftOptions(types=("synthetic",), scored_path=str(tmp_path / "x.csv")))


def test_cli(tmp_path, capsys, data_dir):
    params = tmp_path / "p.yaml"
    params.write_text("ift:\n  max_per_type: 5\n  types: [diagnosis_to_note, continue_note]\n")
    assert main(["ift", "export", "--out", str(tmp_path / "x.jsonl"), "--params", str(params),
                 "--seed", "3"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["records_total"] == 10
    params.write_text("ift:\n  colour: blue\n")
    assert main(["ift", "export", "--out", str(tmp_path / "y.jsonl"), "--params", str(params)]) == 2
    assert "unknown IFT option" in capsys.readouterr().err
