"""The run-folder loaders after generation: one shape, ``read_<file>(run_dir, path, *, demo)``
-> ``(table, source)``, one missing-input error naming the stage, stand-ins only with demo."""

from __future__ import annotations

import pandas as pd
import pytest

from medsyn_utils.core import artefacts
from medsyn_utils.score.demo import DEMO_MARK, schema_shaped_dataset
from medsyn_utils.score.inputs import read_generations, read_scored
from medsyn_utils.score.stage import DEMO_LABEL, DEMO_MODEL


def test_read_generations_without_generations_is_an_error_unless_demo(data_dir, tmp_path):
    with pytest.raises(artefacts.MissingInputError, match="generations.jsonl .*generation stage"):
        read_generations(tmp_path)
    demo = read_generations(tmp_path, demo=True, demo_size=3, seed=0)
    table, source = demo  # unpacks like every loader
    assert source == demo.source and source.startswith(DEMO_LABEL) and len(table) == 3
    assert table["generation_model"].eq(DEMO_MODEL).all()


def test_read_scored_missing_is_an_error_naming_the_scoring_stage(tmp_path):
    with pytest.raises(artefacts.MissingInputError,
                       match=r"no scored.parquet in .*run the scoring stage first"):
        read_scored(tmp_path)


def test_read_scored_reads_the_run_folder_or_a_named_file_and_demo_only_when_asked(
        data_dir, tmp_path):
    frame, source = read_scored(tmp_path / "empty", demo=True, n_rows=40, seed=2)
    assert source.startswith(DEMO_MARK) and len(frame) == 40 and "passed_filter" in frame
    run = tmp_path / "run"
    run.mkdir()
    written = schema_shaped_dataset(25, seed=4, extra_columns=True)
    artefacts.write_table(written, run / "scored.csv")
    assert read_scored(run, demo=True)[1].startswith(DEMO_MARK)  # demo asked: never mixed
    table, source = read_scored(run)
    assert source == f"scoring stage output {run / 'scored.csv'}" and len(table) == 25
    assert table["passed_filter"].tolist() == written["passed_filter"].tolist()
    named, source = read_scored(tmp_path / "elsewhere", str(run / "scored.csv"))
    assert source == f"file {run / 'scored.csv'}"
    pd.testing.assert_frame_equal(named, table)
