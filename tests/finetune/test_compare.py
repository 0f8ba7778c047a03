"""The base-vs-fine-tuned comparison runs on tasks whose style examples the export never holds."""

from __future__ import annotations

import pytest

from medsyn_utils.core import corpus
from medsyn_utils.core.errors import InputTableError, ParameterError
from medsyn_utils.finetune import compare, ift


@pytest.fixture(scope="module")
def export_visits(data_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("ift") / "ift.jsonl"
    ift.export(path, ift.IftOptions(seed=0))
    return ift.card_visit_ids(path)


def test_no_comparison_example_is_in_the_export(export_visits, data_dir):
    assert len(export_visits) > 1000  # the card lists the train visits the export holds
    tasks = compare.held_out_tasks(30, 1, export_visits)
    examples = tasks["example_visit_id"].dropna()
    assert (tasks["prompt_kind"] == "symptoms+example").all()
    assert len(examples) > 0 and not set(examples) & export_visits
    splits = corpus.visit_splits()
    assert set(examples.map(splits)) == {"dev"}


def test_comparison_examples_from_the_training_split_are_refused(export_visits, data_dir):
    with pytest.raises(ParameterError, match="in the instruction export") as raised:
        compare.held_out_tasks(30, 1, export_visits, {"splits": ["train"]})
    assert "\n" not in str(raised.value)


def test_an_export_without_its_card_cannot_vouch_for_held_out_tasks(tmp_path):
    (tmp_path / "own.jsonl").write_text('{"instruction": "a", "input": "", "output": "b"}\n',
                                        encoding="utf-8")
    with pytest.raises(InputTableError, match="no card"):
        ift.card_visit_ids(tmp_path / "own.jsonl")
