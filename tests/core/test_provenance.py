"""Run records: atomic writes, readable files, what a stage record holds."""

from __future__ import annotations

import json
import os
import stat

from medsyn_utils.core import provenance
def test_atomic_write_replaces_whole_file_and_is_readable(tmp_path):
    path = tmp_path / "a" / "record.json"
    provenance.write_json_atomic(path, {"b": 1, "a": [1, 2]})
    provenance.write_json_atomic(path, {"c": "ё"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"c": "ё"}
    assert [p.name for p in path.parent.iterdir()] == ["record.json"]  # no temporary left
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_stage_record(tmp_path, data_dir):
    path = provenance.write_stage_record(
        tmp_path, "99_test", parameters={"n": 3}, metrics={"score": 0.5},
        models={"lm": "tiny"}, data_files=["rumedbench/RuMedTop3/train_v1.jsonl"],
        artefacts={"table": {"path": "t.csv", "rows": 3}})
    record = json.loads(path.read_text(encoding="utf-8"))
    assert path.name == "99_test.json"
    assert record["parameters"] == {"n": 3} and record["metrics"] == {"score": 0.5}
    assert record["data"]["rumedbench/RuMedTop3/train_v1.jsonl"]["sha256"].startswith("b185fe85")
    assert record["packages"]["torch"] and record["packages"]["python"]
    assert set(record["git"]) == {"commit", "dirty"}


def test_notebook_parameters_are_the_plain_variables_as_given():
    namespace = {"In": [""], "Out": {}, "get_ipython": print, "_": 3, "json": json,
                 "run_dir": "outputs/x", "n": 4, "codes": ["J06"], "mix": {"code": 1.0},
                 "rebuild": False, "base_url": None, "threshold": 0.65}
    params = provenance.notebook_parameters(namespace)
    assert params == {"run_dir": "outputs/x", "n": 4, "codes": ["J06"], "mix": {"code": 1.0},
                      "rebuild": False, "base_url": None, "threshold": 0.65}
    namespace["codes"].append("I10")  # a later change in the notebook does not leak in
    assert params["codes"] == ["J06"]


def test_stage_record_takes_the_hash_of_the_file_read(tmp_path, data_dir):
    import json

    from medsyn_utils.core.data import file_sha256, registry
    from medsyn_utils.core.provenance import write_stage_record

    name = "rumedbench/RuMedTop3/dev_v1.jsonl"
    write_stage_record(tmp_path, "01_x", parameters={}, data_files=[name])
    record = json.loads((tmp_path / "01_x.json").read_text())
    assert record["data"][name]["sha256"] == file_sha256(data_dir / name)
    assert record["data"][name]["sha256"] == registry()[name].sha256
