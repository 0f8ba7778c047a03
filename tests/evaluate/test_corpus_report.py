"""The corpus summary as a tidy table, markdown and a figure: known answers on a constructed summary."""

from __future__ import annotations

import pytest

from medsyn_utils.analysis.evaluation_figures import corpus_ceilings, make_evaluation_figures
from medsyn_utils.analysis.figure_io import SkipFigure
from medsyn_utils.evaluate import corpus_report, stage


def _group(model: str, n: int) -> dict:
    return {
        "generation_model": model, "prior": "symptoms", "n_notes": n,
        "realism": {"mauve": {"value": 0.8, "ceiling": 0.99, "spread": 0.01, "ceiling_spread": 0.002, "seeds": [0]},
                    "auc_embeddings": {"value": 0.7, "ceiling": 0.5, "spread": 0.05, "ceiling_spread": 0.04, "folds": 5},
                    "shape_js": {"characters": {"value": 0.2, "ceiling": 0.1, "spread": 0.03, "ceiling_spread": 0.02}},
                    "n_synthetic": n, "n_real": n},
        "diversity": {"distinct_2": {"value": 0.6, "ceiling": 0.7, "spread": 0.02, "ceiling_spread": 0.01},
                      "n": n, "spread_subsample": n - 1,
                      "near_duplicates_all_notes": {"clusters": 2, "share": 0.1, "n": n, "threshold_jaccard": 0.7},
                      "by_code": {"I10": {"n": n, "near_duplicate_share": 0.1, "distinct_2": 0.6}}},
        "privacy": {"dcr": {"share_closer": 0.2, "share_closer_ci": [0.1, 0.3], "expected_share": 0.05,
                            "attack_auc": 0.6, "attack_auc_ci": [0.55, 0.65], "median_dcr": 0.3,
                            "median_dcr_heldout": 0.4, "n_synthetic": n, "n_heldout": 80},
                    "copied_share": {"value": 0.25, "ceiling": 0.3},
                    "example_similarity": {"value": None, "ceiling": None},
                    "copied_from_example_share": 0.0, "max_copied_words": 12, "span_words": 8},
        "fairness": {"sex_consistency_rate": 0.9, "sex_verdict_share": 0.5,
                     "by": {"sex": {"dcr": {"groups": {"female": {"mean": 0.3, "n": n // 2, "ci": [0.2, 0.4]},
                                                       "male": {"mean": 0.4, "n": n - n // 2, "ci": [0.3, 0.5]}},
                                            "gap": 0.1, "gap_ci": [0.0, 0.2], "n": n}}}},
    }


def _summary() -> dict:
    return {"groups": [_group("A", 120), _group("B", 40)],
            "reference": {"n_train": 500, "n_train_reference": 450, "n_excluded_style_examples": 50, "n_heldout": 80},
            "minimum_sizes": {"realism": 100, "two_sample": 50, "diversity": 50, "privacy": 50, "fairness_group": 30},
            "warnings": ["B / symptoms: realism uses 40 notes, below the documented minimum 100"],
            "parameters": {"group_columns": ["generation_model", "prior"]}, "embed": "hashed_ngram_embed"}


def test_table_rows_known_answers():
    table = corpus_report.corpus_table(_summary())
    assert list(table.columns[:2]) == ["generation_model", "prior"]
    assert list(dict.fromkeys(table["family"])) == ["realism", "diversity", "privacy", "fairness"]
    per_group = table[table["generation_model"] == "A"]
    # 3 realism + 3 diversity + 3 dcr + copied_share + 2 value-only + consistency + 1 gap; the
    # all-None example_similarity is left out
    assert len(per_group) == 14 and len(table) == 28
    row = table.set_index(["generation_model", "metric"])
    mauve = row.loc[("A", "mauve")]
    assert (mauve["family"], mauve["value"], mauve["spread"], mauve["ceiling"], mauve["ceiling_spread"],
            mauve["n"], mauve["minimum"]) == ("realism", 0.8, 0.01, 0.99, 0.002, 120, 100)
    assert not mauve["below_minimum"] and row.loc[("B", "mauve"), "below_minimum"]
    # the two-sample AUC has its own minimum (50): 40 notes are below it, 120 are not
    assert row.loc[("B", "auc_embeddings"), "minimum"] == 50 and row.loc[("B", "auc_embeddings"), "below_minimum"]
    assert row.loc[("A", "shape_js:characters"), "ceiling"] == 0.1
    closer = row.loc[("A", "dcr_share_closer")]
    assert (closer["low"], closer["high"], closer["ceiling"]) == (0.1, 0.3, 0.05)
    assert row.loc[("A", "dcr_attack_auc"), "ceiling"] == 0.5
    assert row.loc[("A", "dcr_median"), "ceiling"] == 0.4
    assert "example_similarity" not in set(table["metric"])
    assert row.loc[("A", "near_duplicate_clusters:all_notes"), "value"] == 2
    gap = row.loc[("A", "gap:dcr by sex")]
    # n of a gap is its smallest group: 60 ≥ 30 for A, 20 < 30 for B
    assert (gap["value"], gap["low"], gap["high"], gap["n"], gap["below_minimum"]) == (0.1, 0.0, 0.2, 60, False)
    assert row.loc[("B", "gap:dcr by sex"), "n"] == 20 and row.loc[("B", "gap:dcr by sex"), "below_minimum"]
    assert row.loc[("A", "sex_consistency_rate"), "n"] == 60


@pytest.mark.parametrize("corpus", [None, {"skipped": "corpus: false"}])
def test_no_corpus_summary_gives_an_empty_table(corpus):
    table = corpus_report.corpus_table(corpus)
    assert len(table) == 0 and "below_minimum" in table.columns


def test_markdown_tables_replace_the_json_dump():
    summary = {"notes": 2, "interval": "x", "bootstrap": 0, "seed": 0, "groups": [], "corpus": _summary()}
    text = stage.markdown(summary)
    assert "### Realism" in text and "### Fairness" in text and "```json" not in text
    assert "| A | symptoms | mauve | 0.800 ± 0.010 | 0.990 ± 0.002 | 120 |" in text
    assert "| B | symptoms | mauve | 0.800 ± 0.010 | 0.990 ± 0.002 | 40 ⚠ < 100 |" in text
    assert "| A | symptoms | dcr_share_closer | 0.200 [0.100, 0.300] | 0.050 | 120 |" in text
    assert "below the documented minimum 100" in text  # the summary's warnings are listed
    assert "Corpus metrics" not in stage.markdown(summary, corpus=False)
    skipped = stage.markdown({**summary, "corpus": {"skipped": "corpus: false"}})
    assert "Corpus metrics skipped: corpus: false" in skipped


def test_figure_written_and_skipped_without_corpus(tmp_path):
    faith = {"groups": [{"generation_model": "A", "prior": "symptoms",
                         **{m: {"mean": 0.5, "low": 0.4, "high": 0.6, "n": 3}
                            for m in ("symptom_coverage", "negated_share", "unrequested_per_note")}}]}
    records = {r.name: r for r in make_evaluation_figures({**faith, "corpus": _summary()}, tmp_path / "a")}
    record = records["evaluation_corpus_ceilings"]
    assert record.skipped is None
    assert sorted(p.rsplit(".", 1)[1] for p in record.files) == ["pdf", "png"]
    assert all((tmp_path / "a" / f"evaluation_corpus_ceilings.{x}").stat().st_size > 1000 for x in ("png", "pdf"))
    fig = corpus_ceilings({"corpus": _summary()})
    titled = [ax.get_title() for ax in fig.axes if ax.get_title()]
    # one panel per metric with a ceiling: mauve, auc, shape, distinct_2, 3 dcr, copied_share
    import matplotlib.pyplot as plt
    plt.close(fig)
    assert len(titled) == 8 and "realism: mauve\nn=40–120" in titled
    for corpus in (None, {"skipped": "corpus: false"}):
        records = {r.name: r for r in make_evaluation_figures({**faith, "corpus": corpus}, tmp_path / "b")}
        assert records["evaluation_corpus_ceilings"].skipped and not records["evaluation_corpus_ceilings"].files
        with pytest.raises(SkipFigure):
            corpus_ceilings({"corpus": corpus})
    assert not (tmp_path / "b" / "evaluation_corpus_ceilings.png").exists()


def test_unknown_metrics_dropped_and_counts_formatted():
    summary = _summary()
    summary["groups"][1]["realism"]["frechet"] = {"value": float("nan"), "ceiling": float("nan"),
                                                  "spread": None, "ceiling_spread": None}
    summary["groups"][1]["realism"]["auc_embeddings"]["value"] = 1.0
    table = corpus_report.corpus_table(summary)
    assert not ((table["generation_model"] == "B") & (table["metric"] == "frechet")).any()
    text = corpus_report.corpus_markdown(summary)
    assert "| B | symptoms | auc_embeddings | 1.000 ± 0.050 | 0.500 ± 0.040 | 40 ⚠ < 50 |" in text
    assert "| A | symptoms | near_duplicate_clusters:all_notes | 2 | — | 120 |" in text
