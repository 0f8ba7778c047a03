"""Scoring on Ray (issue 14): scorer actors on a local Ray started by the test (127.0.0.1), a tiny
encoder; the table equals the local engine's, and a re-run resumes from the written chunks."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from score_helpers import EXAMPLES, LAYER, SYMPTOMS

from medsyn_utils.core.errors import ModelError, ParameterError
from medsyn_utils.generate import ray_engine
from medsyn_utils.score.layout import check_table
from medsyn_utils.score.scorer import NoteScorer
from medsyn_utils.score.stage import score_table
from medsyn_utils.score.chunks import chunk_folder
from medsyn_utils.testing.tiny import SENTENCES

ROWS = 10  # chunks of 3, 3, 3, 1


def _table() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    pick = rng.integers(0, len(SENTENCES), size=(ROWS, 2))
    return check_table(pd.DataFrame({
        "idx": [f"n{i}" for i in range(ROWS)],
        "response": [SENTENCES[a] for a, _ in pick],
        "symptoms": [SYMPTOMS[b % len(SYMPTOMS)] for _, b in pick],
        "anamnesis": [EXAMPLES[0] if i % 3 else SENTENCES[b] for i, (_, b) in enumerate(pick)]}))


def _score(scorer, out, **engine):
    return score_table(_table(), scorer, recall_threshold=0.3, precision_threshold=0.3,
                               chunk_rows=3, out=out, progress=False, **engine)


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="the extra 'cluster' is not installed")
    try:
        ray_engine.start_ray("", attempts=2)
    except ModelError as error:  # Ray's own start-up on a busy machine, not the kit
        pytest.skip(f"a local Ray does not start on this machine now: {error}")
    yield ray
    ray.shutdown()


@pytest.fixture()
def scorer(tiny_encoder_dir):
    return NoteScorer(str(tiny_encoder_dir), LAYER, batch_size=2, device="cpu")


RAY = dict(engine="ray", ray_options=dict(actors=2))


@pytest.mark.timeout(600)
def test_ray_engine_scores_the_table_of_the_local_engine(local_ray, scorer, tmp_path):
    local = _score(scorer, tmp_path / "local" / "scored.parquet")
    on_ray = _score(scorer, tmp_path / "ray" / "scored.parquet", **RAY)
    assert on_ray["idx"].tolist() == local["idx"].tolist()  # same row order
    for column in ("symptoms_recall", "anamnesis_precision"):
        np.testing.assert_allclose(on_ray[column].to_numpy(float), local[column].to_numpy(float),
                                   rtol=0, atol=1e-5, equal_nan=True)
    pd.testing.assert_frame_equal(on_ray.drop(columns=["symptoms_recall", "anamnesis_precision"]),
                                  local.drop(columns=["symptoms_recall", "anamnesis_precision"]))
    assert scorer.last_report.rows == ROWS  # the actors' counts come back to the driver


@pytest.mark.timeout(600)
def test_ray_engine_resumes_from_written_chunks(local_ray, scorer, tmp_path):
    out = tmp_path / "scored.parquet"
    whole = _score(scorer, tmp_path / "one" / "scored.parquet")
    _score(scorer, out, keep_chunks=True)  # every chunk written, as after a crash at the end
    out.unlink()
    resumed = _score(scorer, out, **RAY)
    assert scorer.last_report.rows == 0  # nothing sent to the actors again
    pd.testing.assert_frame_equal(resumed, whole)
    assert not chunk_folder(out).exists()


def test_ray_engine_needs_an_output_and_the_extra(scorer, tmp_path, monkeypatch):
    with pytest.raises(ParameterError, match="give out="):
        score_table(_table(), scorer, recall_threshold=0.3, precision_threshold=0.3,
                            progress=False, **RAY)
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ParameterError, match=r"\.\[cluster\]"):
        _score(scorer, tmp_path / "scored.parquet", **RAY)
    with pytest.raises(ParameterError, match="unknown"):
        _score(scorer, tmp_path / "scored.parquet", engine="spark")
