"""IFT export: record shape, determinism by seed, split-awareness, synthetic filter and leakage."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from medsyn_utils.core import artefacts, corpus

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


def _synthetic_run(folder, example_visits, *, fingerprints="match"):
    """A run folder with a task table, a generation store carrying task fingerprints (built by
    hand, as the generation stage writes them) and a scored table of the same notes."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(example_visits)
    tasks = pd.DataFrame({
        "task_id": [f"t{i + 1}" for i in range(n)], "icd10": ["J06.9"] * n,
        "symptoms": [["кашель", f"симптом {i}"] for i in range(n)],
        "example_visit_id": list(example_visits),
        "example_text": [None if v is None else f"пример {v}" for v in example_visits],
        "system_prompt": ["Ты врач."] * n, "user_prompt": [f"Напиши жалобы {i}" for i in range(n)],
        "completion_prompt": [f"Пациент {i}." for i in range(n)],
    })
    tasks.to_parquet(folder / "tasks.parquet")
    expected = artefacts.task_fingerprints(tasks)
    store = []
    for task_id, fingerprint in expected.items():
        record = {"task_id": task_id, "response": "…", "finish_reason": "stop"}
        if fingerprints == "match":
            record["task_fingerprint"] = fingerprint
        elif fingerprints == "other":
            record["task_fingerprint"] = "0" * 16
        store.append(json.dumps(record, ensure_ascii=False))
    (folder / "generations.jsonl").write_text("\n".join(store) + "\n", encoding="utf-8")
    return tasks


def _scored(folder, responses, passed, example_visits):
    scored = pd.DataFrame({
        "idx": [f"t{i + 1}" for i in range(len(responses))],
        "prompt": ["Напиши жалобы: кашель"] * len(responses),
        "response": responses, "passed_filter": passed, "example_visit_id": example_visits,
    })
    scored.to_parquet(folder / "scored.parquet")
    return folder / "scored.parquet"


def _synthetic_options(path, **extra):
    return ift.IftOptions(types=("synthetic",), scored_path=str(path), **extra)


def test_synthetic_records_keep_only_passing_notes_without_leakage(tmp_path, data_dir):
    dev_visit = corpus.load_rumedtop3("dev")["idx"].iloc[0]
    train_visit = corpus.load_rumedtop3("train")["idx"].iloc[0]
    visits = [train_visit, train_visit, dev_visit, None]
    _synthetic_run(tmp_path, visits)
    path = _scored(tmp_path, ["Кашель три дня.", "Плохая заметка", "Утечка из dev", ""],
                   [True, False, True, True], visits)
    frame, summary = ift.build_records(_synthetic_options(path))
    assert list(frame["output"]) == ["Кашель три дня."]
    assert summary["synthetic_failed_filter"] == 1
    assert summary["synthetic_leakage_excluded"] == 1
    assert ift.export_visit_ids(frame) == [train_visit]  # the style example, for the card


def test_synthetic_notes_of_other_tasks_are_refused(tmp_path, data_dir):
    visits = [None, None]
    tasks = _synthetic_run(tmp_path / "run", visits)
    path = _scored(tmp_path / "run", ["Кашель.", "Насморк."], [True, True], visits)
    assert len(ift.build_records(_synthetic_options(path))[0]) == 2
    changed = tasks.assign(symptoms=[["кашель"], ["насморк"]])  # the table was rebuilt since
    changed.to_parquet(tmp_path / "other_tasks.parquet")
    with pytest.raises(InputTableError, match="written for other tasks") as raised:
        ift.build_records(_synthetic_options(path, tasks_path=str(tmp_path / "other_tasks.parquet")))
    assert "\n" not in str(raised.value)
    _synthetic_run(tmp_path / "stale", visits, fingerprints="other")
    stale = _scored(tmp_path / "stale", ["Кашель.", "Насморк."], [True, True], visits)
    with pytest.raises(InputTableError, match="written for other tasks"):
        ift.build_records(_synthetic_options(stale))
    _synthetic_run(tmp_path / "unbound", visits, fingerprints="none")  # store from before
    unbound = _scored(tmp_path / "unbound", ["Кашель.", "Насморк."], [True, True], visits)
    with pytest.raises(InputTableError, match="written for other tasks"):
        ift.build_records(_synthetic_options(unbound))
    tasks.iloc[:1].to_parquet(tmp_path / "one_task.parquet")
    with pytest.raises(InputTableError, match="missing from the task table"):
        ift.build_records(_synthetic_options(path, tasks_path=str(tmp_path / "one_task.parquet")))


def test_synthetic_notes_need_their_task_table_and_store(tmp_path, data_dir):
    lone = tmp_path / "lone"
    lone.mkdir()
    path = _scored(lone, ["Кашель."], [True], [None])
    with pytest.raises(artefacts.MissingInputError, match="no tasks.parquet .* tasks stage"):
        ift.build_records(_synthetic_options(path))
    _synthetic_run(tmp_path / "nostore", [None])
    (tmp_path / "nostore" / "generations.jsonl").unlink()
    path = _scored(tmp_path / "nostore", ["Кашель."], [True], [None])
    with pytest.raises(artefacts.MissingInputError, match="no generations.jsonl .* generation"):
        ift.build_records(_synthetic_options(path))


def test_bad_options(tmp_path):
    with pytest.raises(ParameterError, match="unknown IFT type"):
        ift.build_records(ift.IftOptions(types=("poems",)))
    with pytest.raises(ParameterError, match="unknown split"):
        ift.build_records(ift.IftOptions(splits=("validation",)))
    with pytest.raises(InputTableError, match="not found"):
        ift.build_records(ift.IftOptions(types=("synthetic",), scored_path=str(tmp_path / "x.csv")))
    with pytest.raises(ParameterError, match="'synthetic' needs scored_path"):
        ift.build_records(ift.IftOptions(types=ift.TYPES))
    with pytest.raises(ParameterError, match="leaves out 'synthetic'"):
        ift.build_records(ift.IftOptions(scored_path=str(tmp_path / "x.csv")))


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


def test_cli_synthetic_export_checks_the_binding(tmp_path, capsys, data_dir):
    visits = [None, None]
    tasks = _synthetic_run(tmp_path / "run", visits)
    scored = _scored(tmp_path / "run", ["Кашель.", "Насморк."], [True, True], visits)
    assert main(["ift", "export", "--out", str(tmp_path / "ok.jsonl"), "--scored-path",
                 str(scored)]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["records_synthetic"] == 2 and counts["records_symptoms_to_note"] > 0
    tasks.assign(user_prompt=["другой", "промпт"]).to_parquet(tmp_path / "run" / "tasks.parquet")
    assert main(["ift", "export", "--out", str(tmp_path / "bad.jsonl"), "--scored-path",
                 str(scored)]) == 2
    err = capsys.readouterr().err.strip()
    assert "written for other tasks" in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "bad.jsonl").exists()
