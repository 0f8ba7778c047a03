"""The task table: columns, reproducible files, the CLI, sex-specific codes, examples, bad input."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from medsyn_utils.core import corpus

from medsyn_utils.tasks import build, views
from medsyn_utils.tasks import table as task_files
from medsyn_utils.cli import tasks as cli_tasks
from medsyn_utils.core.errors import CodeError, InputTableError, ParameterError
from medsyn_utils.core.schema import TASK_COLUMNS


@pytest.fixture(scope="module")
def kg(data_dir):
    from medsyn_utils.kg.graph import load_graph
    return load_graph()


@pytest.fixture(scope="module")
def table(data_dir):
    return build.build_task_table(600, 3)


def _cli(argv: list[str]) -> int:
    """``medsyn tasks ...`` through this module's own sub-command (independent of other stages)."""
    parser = argparse.ArgumentParser(prog="medsyn")
    cli_tasks.add_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_columns_and_values(table):
    assert tuple(table.columns) == TASK_COLUMNS
    assert table["task_id"].is_unique and table["task_id"].iloc[0] == "t000001"
    assert (table["seed"] == 3).all()
    assert set(table["prompt_kind"]) == {"symptoms+example", "symptoms", "code"}
    assert set(table["sex"]) == {"male", "female"} and (table["age"] >= 9).all()
    assert set(table["location"]) <= {"city", "countryside"}
    assert set(table["marital_status"]) <= {"married", "single"}
    assert (table["category"] == table["icd10"].str[:3]).all()
    assert table["code_name_ru"].str.len().gt(0).all()
    assert table["completion_prompt"].str.endswith("\n").all()
    assert not table[["system_prompt", "user_prompt", "completion_prompt"]].apply(
        lambda col: col.str.contains(r"[{}]")).any().any()


def test_prompt_kinds_carry_what_they_promise(table):
    counts = table["prompt_kind"].value_counts()
    assert counts["symptoms+example"] == 300 and counts["symptoms"] == 240 and counts["code"] == 60
    code = table[table["prompt_kind"] == "code"]
    assert code["symptoms"].map(len).eq(0).all() and code["example_text"].isna().all()
    with_symptoms = table[table["prompt_kind"] != "code"]
    assert with_symptoms["symptoms"].map(len).between(1, 5).all()
    assert (with_symptoms["symptoms"].map(len) >= 2).mean() > 0.95
    for row in with_symptoms.itertuples():
        assert ", ".join(row.symptoms) in row.user_prompt
        assert row.icd10 not in row.user_prompt and row.icd10 not in row.completion_prompt
    example = table[table["prompt_kind"] == "symptoms+example"]
    assert example["example_text"].notna().all() and example["example_source"].notna().all()
    assert all(text in prompt for text, prompt in zip(example["example_text"], example["user_prompt"]))
    plain = table[table["prompt_kind"] == "symptoms"]
    assert plain["example_visit_id"].isna().all() and plain["example_source"].isna().all()
    for row in code.itertuples():
        assert row.code_name_ru in row.user_prompt


def test_examples_are_train_visits_by_default(table):
    train = set(corpus.load_rumedtop3("train")["idx"])
    ids = table["example_visit_id"].dropna()
    assert len(ids) > 200 and set(ids) <= train
    rows = table[table["example_visit_id"].notna()]
    assert set(rows["example_source"]) <= {"RuMedTop3-train", "RuMedPrime-note-train"}


def test_dev_examples_only_when_asked(data_dir):
    frame = build.build_task_table(80, 0, prompt_mix={"symptoms+example": 1}, splits=["dev"])
    dev = set(corpus.load_rumedtop3("dev")["idx"])
    assert set(frame["example_visit_id"].dropna()) <= dev


def test_template_fallback_is_recorded(data_dir):
    frame = build.build_task_table(10, 0, codes=["I63"], prompt_mix={"symptoms+example": 1})
    assert (frame["example_source"] == "template").all()
    assert frame["example_visit_id"].isna().all()
    from medsyn_utils.tasks.prompts import load_templates
    fallback = load_templates().fallback_example
    assert (frame["example_text"] == fallback).all()
    assert frame["user_prompt"].str.contains(fallback, regex=False).all()


def test_sex_specific_codes_never_for_the_other_sex(kg, data_dir):
    for selection in ("frequency", "allocation"):
        frame = build.build_task_table(3000, 5, code_selection=selection)
        sex = frame["icd10"].map(lambda c: kg.sex(c) or "")
        specific = frame[sex != ""]
        assert len(specific) > 0
        assert (specific["sex"] == sex[sex != ""]).all(), selection
    listed = build.build_task_table(40, 1, codes=["N40", "N76", "J06"], counts=[10, 10, 20])
    assert (listed.loc[listed["category"] == "N40", "sex"] == "male").all()
    assert (listed.loc[listed["category"] == "N76", "sex"] == "female").all()
    assert listed["category"].value_counts().to_dict() == {"J06": 20, "N40": 10, "N76": 10}


def test_list_allocation_and_frequency(kg, data_dir):
    even = build.build_task_table(7, 0, codes=["J06", "I10.0" if "I10.0" in kg.codes else "I10"])
    assert sorted(even["category"].value_counts().tolist()) == [3, 4]
    allocated = build.build_task_table(1000, 0, code_selection="allocation")
    assert allocated["category"].nunique() > 90  # damped counts: nearly every category appears
    by_frequency = build.build_task_table(1000, 0, code_selection="frequency")
    assert by_frequency["category"].value_counts().index[0] == "J06"  # the most frequent category
    sub = build.build_task_table(5, 0, codes=["J06.9"], prompt_mix={"symptoms": 1})
    assert (sub["icd10"] == "J06.9").all()


def test_same_seed_same_table_and_parts_use_their_own_streams(data_dir):
    a = build.build_task_table(120, 11)
    b = build.build_task_table(120, 11)
    pd.testing.assert_frame_equal(a, b)
    c = build.build_task_table(120, 11, prompt_mix={"symptoms": 1})
    assert (a["icd10"] == c["icd10"]).all() and (a["age"] == c["age"]).all()
    d = build.build_task_table(120, 12)
    assert not a[["icd10", "age"]].equals(d[["icd10", "age"]])


def test_cli_twice_identical_files_other_seed_different(tmp_path, data_dir):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        assert _cli(["tasks", "--n", "150", "--seed", str(seed), "--out", str(tmp_path / name)]) == 0
    for file in ("tasks.parquet", "tasks.csv"):
        first = (tmp_path / "a" / file).read_bytes()
        assert first == (tmp_path / "b" / file).read_bytes()
        assert first != (tmp_path / "c" / file).read_bytes()
    record = json.loads((tmp_path / "a" / f"{build.STAGE}.json").read_text(encoding="utf-8"))
    assert record["metrics"]["n_tasks"] == 150 and record["parameters"]["seed"] == 7


def test_parquet_and_csv_read_back_equal(tmp_path, table):
    task_files.write_task_table(table, tmp_path)
    from_parquet = task_files.load_task_table(tmp_path / "tasks.parquet")
    from_csv = task_files.load_task_table(tmp_path / "tasks.csv")
    pd.testing.assert_frame_equal(from_parquet, from_csv)
    from medsyn_utils.core.artefacts import task_fingerprints
    assert task_fingerprints(from_parquet) == task_fingerprints(from_csv)  # notes bind either way
    assert from_parquet["symptoms"].tolist() == table["symptoms"].tolist()
    assert from_parquet["example_visit_id"].tolist() == table["example_visit_id"].tolist()
    header = (tmp_path / "tasks.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header.split(",") == list(TASK_COLUMNS)
    with pytest.raises(InputTableError, match="lacks column"):
        task_files.write_task_table(table.drop(columns=["symptoms"]), tmp_path / "bad")


def test_params_file_with_tasks_mapping(tmp_path, data_dir):
    params = tmp_path / "params.yaml"
    params.write_text("common:\n  seed: 4\n  data_dir: ''\ntasks:\n  n: 30\n  k_min: 3\n"
                      "  k_max: 3\n  run_dir: ignored\n  show_per_kind: 1\n"
                      "  prompt_mix: {symptoms: 1}\n", encoding="utf-8")
    assert _cli(["tasks", "--out", str(tmp_path / "run"), "--params", str(params)]) == 0
    frame = task_files.load_task_table(tmp_path / "run")
    assert len(frame) == 30 and (frame["seed"] == 4).all()
    assert (frame["symptoms"].map(len) == 3).mean() > 0.9
    params.write_text("tasks:\n  n: 3\n  seed: 0\n  colour: red\n", encoding="utf-8")
    with pytest.raises(ParameterError, match=r"unknown parameter tasks\.colour"):
        _cli(["tasks", "--out", str(tmp_path / "run2"), "--params", str(params)])


@pytest.mark.parametrize("n,seed,options,error,pattern", [
    (5, 0, {"codes": ["J06", "Q9Z"]}, CodeError, "Q9Z"),
    (5, 0, {"codes": ["XYZ"]}, CodeError, "malformed ICD-10 code 'XYZ'"),
    (5, 0, {"temperature": 0}, ParameterError, "temperature=0.0 must be positive"),
    (5, 0, {"temperature": -2}, ParameterError, "temperature"),
    (5, 0, {"k_min": 4, "k_max": 2}, ParameterError, "k_min=4 is larger than k_max=2"),
    (0, 0, {}, ParameterError, "n=0 must be a positive integer"),
    (-3, 0, {}, ParameterError, "n=-3"),
    (5, -1, {}, ParameterError, "seed=-1"),
    (5, 0, {"prompt_mix": {"story": 1}}, ParameterError, "unknown prompt kind 'story'"),
    (5, 0, {"prompt_kinds": ["symptoms/long"]}, ParameterError, "unknown prompt variant"),
    (5, 0, {"codes": ["J06"], "counts": [4]}, ParameterError, "counts sum to 4 but n=5"),
    (5, 0, {"codes": ["V01"]}, CodeError, "V01 has no symptoms"),
    (5, 0, {"colour": "red"}, ParameterError, "unknown task option 'colour'"),
    (5, 0, {"k_min": "two"}, ParameterError, "task option 'k_min'"),
    (5, 0, {"code_selection": "random"}, ParameterError, "task option 'code_selection'"),
    (5, 0, {"splits": ["val"]}, ParameterError, "unknown split 'val'"),
    (5, 0, {"templates_dir": "/nonexistent/templates"}, ParameterError, "templates_dir"),
])
def test_bad_input_is_one_line_error(n, seed, options, error, pattern, data_dir):
    with pytest.raises(error, match=pattern) as raised:
        build.build_task_table(n, seed, **options)
    assert "\n" not in str(raised.value)


def test_missing_symptoms_fallback_uses_prompt_code(data_dir):
    frame = build.build_task_table(6, 0, codes=["V01", "J06"], on_missing_symptoms="fallback",
                                   prompt_mix={"symptoms": 1})
    v01 = frame[frame["category"] == "V01"]
    assert (v01["prompt_kind"] == "code").all() and v01["symptoms"].map(len).eq(0).all()
    assert (frame.loc[frame["category"] == "J06", "prompt_kind"] == "symptoms").all()
    only_code = build.build_task_table(3, 0, codes=["V01"], prompt_mix={"code": 1})
    assert (only_code["prompt_kind"] == "code").all()  # no symptoms needed: no error


def test_summary_and_views(table):
    summary = views.task_summary(table)
    assert summary["n_tasks"] == 600 and sum(summary["prompt_kinds"].values()) == 600
    dist = views.code_distribution(table)
    assert dist["tasks"].sum() == 600 and np.isclose(dist["visit_share"].sum(), 1)
    demo = views.demographic_comparison(table)
    assert set(demo["variable"]) == {"sex", "location", "age_group", "smoking", "marital_status"}
    shown = views.prompt_examples(table, 1)
    assert len(shown) == len(shown[["prompt_kind", "prompt_variant"]].drop_duplicates()) == 8
    assert "--- user ---" in views.format_prompt(shown.iloc[0])
    preview = views.resample_preview("N40", 2, 0, codes=["J06"], counts=[3])
    assert (preview["category"] == "N40").all() and (preview["sex"] == "male").all()


def test_lenient_reader_parses_symptom_lists(tmp_path):
    frame = pd.DataFrame({"task_id": ["t1", "t2"], "user_prompt": ["a", "b"],
                          "symptoms": [["кашель", "насморк"], []]})
    frame.to_csv(tmp_path / "by_pandas.csv", index=False)  # lists as Python text
    (tmp_path / "by_hand.csv").write_text('task_id,user_prompt,symptoms\nt1,a,"[""кашель""]"\n',
                                          encoding="utf-8")
    assert task_files.load_task_table(tmp_path / "by_pandas.csv")["symptoms"].tolist() == [
        ["кашель", "насморк"], []]
    assert task_files.load_task_table(tmp_path / "by_hand.csv")["symptoms"].tolist() == [["кашель"]]
    assert task_files.load_task_table(tmp_path / "by_hand.csv")["task_id"].tolist() == ["t1"]


def test_visit_share_distance():
    same = pd.DataFrame({"task_share": [0.5, 0.5], "visit_share": [0.5, 0.5]})
    apart = pd.DataFrame({"task_share": [1.0, 0.0], "visit_share": [0.0, 1.0]})
    assert views.visit_share_distance(same) == 0.0
    assert views.visit_share_distance(apart) == 1.0


# sha256 of `medsyn tasks --n 200 --seed 0` on main before the tasks/ split (commit 1f13532):
# the split into build/table/views/targets/patients/symptoms/examples changed no byte.
# Re-pinned when the completion templates became few-shot (issue 20, item 5): with the old
# templates (templates_dir) the table still hashes to csv def697c6…, parquet c1283c68…, and the
# new table differs from it only in completion_prompt.
PINNED_N200_SEED0 = {
    "tasks.csv": "f2612c102013517233faf78f033c1edd7cffc69ec7511a92981856e150837762",
    "tasks.parquet": "8c676702997ccc2ec38e5d9d25fd9c1b5c8472f528a939680b197f2efc89a452",
}


def test_task_table_bytes_unchanged_since_before_the_split(tmp_path, data_dir):
    import hashlib

    assert _cli(["tasks", "--n", "200", "--seed", "0", "--out", str(tmp_path)]) == 0
    for name, digest in PINNED_N200_SEED0.items():
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.parametrize("name,content,pattern", [
    ("empty.csv", b"", "is empty"),
    ("header.csv", b"task_id,user_prompt,symptoms\n", "has no tasks"),
    ("latin1.csv", "task_id,user_prompt\nt1,жалобы\n".encode("cp1251"), "not UTF-8"),
    ("ages.csv", b"task_id,age\nt1,old\n", "task table .*ages.csv"),
    ("table.xlsx", b"x", "unknown format"),
])
def test_one_reader_bad_files_are_one_line_errors(tmp_path, name, content, pattern):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputTableError, match=pattern) as raised:
        task_files.load_task_table(tmp_path / name)
    assert "\n" not in str(raised.value)
    with pytest.raises(InputTableError, match="does not exist"):
        task_files.load_task_table(tmp_path / "nowhere")
