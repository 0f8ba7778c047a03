"""Just over 400 lines: the one entry point the stage calls, with its input checks, the shared
embedding step and the per-group loop, kept together (its benchmark: ``bench/evaluate.py``).

The notes as a corpus: realism against real notes, diversity and near-duplicates, copying and
privacy, fairness by sex and age — per model × prior, each number beside its real-vs-real ceiling
(held-out real notes measured the same way against the same real train sample, at the same size).

The entry point is :func:`corpus_summary`. Inputs:

- ``notes``: the scored table (published layout): ``idx``, ``response``, ``generation_model``,
  ``prior``; used when present: ``category`` / ``ICD-10`` (code), ``anamnesis`` (style example
  text), ``example_visit_id``, ``sex`` ("male"/"female") and ``age`` from the task table.
- ``real_train`` / ``real_heldout``: real notes with ``idx`` and ``text`` (``full_text`` is
  accepted), optionally ``code``; :func:`real_reference` reads them from the mirror.

The realism reference is ``real_train`` minus every note used as a style example (by visit id and
by text); distance-to-closest-record uses all of ``real_train`` (or its sample, below), copied
spans always all of it.

``reference_max`` (the stage's ``corpus_reference_max``): each real set — train, held-out — is cut
to a seeded sample of that many notes before anything is embedded (0: all). It bounds the one
cost that grows with the reference, the encoder's first pass over the real notes (later runs read
their vectors from the embedding cache); DCR then means the closest of the sampled train notes,
for the notes and the held-out notes alike. The smallest cap is :data:`MIN_REFERENCE`.

Documented minimum sizes (:data:`MIN_SIZES`, notes per model × prior, or per fairness group):
realism 100 (MAUVE's k-means and the Fréchet covariance are noisy below), two-sample tests 50 per
side, diversity 50, privacy 50, fairness 30 per sex / age group. Below them the metric is still
computed and a warning names the group, the metric, the size and the minimum.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from medsyn_utils.core.errors import InputTableError, ParameterError
from medsyn_utils.evaluate import diversity, fairness, privacy, realism
from medsyn_utils.evaluate.fairness import with_task_columns  # noqa: F401  (part of this entry point)
from medsyn_utils.evaluate.vectors import (  # noqa: F401  (the vector sources, part of this entry point)
    EncoderVectors, HashedVectors, e5_embed, hashed_ngram_embed, vectors_for, vectors_record)

MIN_SIZES = {"realism": 100, "two_sample": 50, "diversity": 50, "privacy": 50, "fairness_group": 30}
MIN_REFERENCE = 2 * MIN_SIZES["realism"]  # smallest cap on each real set (reference_max)
REFERENCE_MAX = 0  # the stage's default cap on each real set (corpus_reference_max; 0: all)
MAUVE_SEEDS = (0, 1, 2)
SELF_BLEU_SAMPLE = 100
DIVERSITY_SAMPLE = 500
NEAR_DUPLICATE_THRESHOLD = diversity.NEAR_DUPLICATE_THRESHOLD
BOOTSTRAP = 200
PER_NOTE_COLUMNS = (
    "idx", "dcr", "dcr_visit_id", "copied_span", "copied_words", "copied_visit_id",
    "copied_from_example", "example_similarity", "sex_from_text", "sex_consistent", "age_group",
    "near_duplicate_cluster",
)
NEAR_DUPLICATE_FILE = "near_duplicates.parquet"
SCORE_COLUMNS = ("symptoms_recall", "anamnesis_precision")
Embed = Callable[[list[str]], np.ndarray]  # texts → one row per text (evaluate.vectors)


def real_reference(kind: str = "full") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, held-out) real notes from the mirror: ``kind="full"`` the full notes (train vs dev),
    ``"complaints"`` the RuMedTop3 complaints (train vs dev). Columns ``idx``, ``code``, ``text``."""
    from medsyn_utils.core import corpus

    if kind == "full":
        frame = corpus.load_full_notes(("train", "dev")).rename(columns={"full_text": "text"})
    elif kind == "complaints":
        frame = corpus.load_rumedtop3(("train", "dev"))
    else:
        raise ParameterError(f"real reference kind {kind!r} is unknown: use 'full' or 'complaints'")
    frame = frame[frame["text"].fillna("").str.strip() != ""]
    return (frame[frame["split"] == "train"][["idx", "code", "text"]].reset_index(drop=True),
            frame[frame["split"] == "dev"][["idx", "code", "text"]].reset_index(drop=True))


def _real(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    if "text" not in frame.columns and "full_text" in frame.columns:
        frame = frame.rename(columns={"full_text": "text"})
    if "text" not in frame.columns or "idx" not in frame.columns:
        raise InputTableError(f"{name} lacks the columns idx and text: pass real notes "
                              f"(evaluate.corpus.real_reference() reads them from the mirror)")
    frame = frame[frame["text"].fillna("").astype(str).str.strip() != ""].reset_index(drop=True)
    if len(frame) < 2:
        raise InputTableError(f"{name} has {len(frame)} non-empty notes: at least 2 are needed")
    frame = frame.assign(idx=frame["idx"].astype(str), text=frame["text"].astype(str))
    return frame


def _notes(notes: pd.DataFrame, group_columns: Sequence[str]) -> pd.DataFrame:
    missing = [c for c in ("idx", "response", *group_columns) if c not in notes.columns]
    if missing:
        raise InputTableError(f"notes table lacks {', '.join(missing)}: pass the scored table "
                              f"(published layout) or name other group_columns")
    frame = notes.reset_index(drop=True).copy()
    frame["response"] = frame["response"].fillna("").astype(str)
    if len(frame) == 0 or (frame["response"].str.strip() == "").all():
        raise InputTableError("notes table has no non-empty response: nothing to evaluate")
    if "category" in frame.columns and frame["category"].notna().any():
        frame["_code"] = frame["category"].astype(str)
    elif "ICD-10" in frame.columns:
        frame["_code"] = frame["ICD-10"].astype(str).str[:3]
    else:
        frame["_code"] = "all"
    return frame


def _embed_all(embed: Embed, texts: Sequence[str]) -> dict[str, np.ndarray]:
    unique = list(dict.fromkeys(str(t) for t in texts))
    vectors = np.asarray(embed(unique), dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) != len(unique):
        raise InputTableError(f"embed returned shape {vectors.shape} for {len(unique)} texts: "
                              f"it must return one row per text")
    if not np.isfinite(vectors).all():
        raise InputTableError("embed returned non-finite values: check the encoder and its precision")
    return dict(zip(unique, vectors))


def _sample(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, size=min(size, n), replace=False))


def _cap(frame: pd.DataFrame, size: int, rng: np.random.Generator) -> pd.DataFrame:
    """A seeded sample of ``size`` real notes, in their order (all of them when ``size`` is 0)."""
    if size <= 0 or len(frame) <= size:
        return frame
    return frame.iloc[_sample(len(frame), size, rng)].reset_index(drop=True)


def _metric(value, ceiling, **extra) -> dict:
    return {"value": value, "ceiling": ceiling, **extra}


def _warn(warnings: list[str], label: str, metric: str, size: int, key: str) -> None:
    if size < MIN_SIZES[key]:
        warnings.append(f"{label}: {metric} uses {size} notes, below the documented minimum "
                        f"{MIN_SIZES[key]}: read it as indicative")


class _Timer:
    """Wall and CPU seconds per part (CPU seconds: this process's, all threads; on a shared
    machine they say what a part costs when wall seconds mostly say how loaded it was)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}

    @staticmethod
    def now() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def add(self, part: str, start: tuple[float, float]) -> None:
        wall, cpu = self.now()
        self.seconds[part] = self.seconds.get(part, 0.0) + wall - start[0]
        self.cpu_seconds[part] = self.cpu_seconds.get(part, 0.0) + cpu - start[1]


def corpus_summary(notes: pd.DataFrame, real_train: pd.DataFrame, real_heldout: pd.DataFrame, *,
                   embed: Embed, out_dir: Path | None, seed: int,
                   group_columns: Sequence[str] = ("generation_model", "prior"),
                   per_note: pd.DataFrame | None = None, reference_max: int = REFERENCE_MAX) -> dict:
    """Corpus metrics per group of ``group_columns`` (default model × prior), JSON-ready, plus
    ``"per_note"``: a DataFrame of :data:`PER_NOTE_COLUMNS` keyed by ``idx`` for the stage to merge
    into evaluation.parquet (pop it before writing JSON). ``per_note``: optional per-note measures
    (``idx`` + numeric columns such as coverage or scores) broken down by sex and age group too.
    Writes :data:`NEAR_DUPLICATE_FILE` into ``out_dir`` when given.

    Result: ``groups`` (one dict per group: the group's values, ``n_notes``, ``realism``,
    ``diversity``, ``privacy``, ``fairness``; a metric is ``{"value", "ceiling", "spread",
    "ceiling_spread", ...}``), ``reference`` (sizes, style examples left out), ``minimum_sizes``,
    ``warnings``, ``parameters``, ``files``, ``vectors`` (which text vectors: kind, encoder,
    layer, precision, cache key, texts read from the cache / embedded), ``seconds`` and
    ``cpu_seconds`` (per part), ``per_note``."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"seed {seed!r} must be a non-negative integer")
    if not isinstance(reference_max, (int, np.integer)) or not (
            reference_max == 0 or reference_max >= MIN_REFERENCE):
        raise ParameterError(f"reference_max {reference_max!r} must be 0 (all real notes) or at "
                             f"least {MIN_REFERENCE}: the realism reference and its ceiling need "
                             f"{MIN_SIZES['realism']} notes each")
    import mauve  # noqa: F401  (loads torch and faiss first, so the limit below covers their threads)

    import torch

    # One BLAS/OpenMP thread: the matrices are small (≤ a few thousand × 384), and on a shared
    # 2-core machine spinning threads made an eigendecomposition 100× slower than one thread.
    # The encoder's forward passes (large products) get back the threads torch has now.
    encoder_threads = torch.get_num_threads()
    with threadpool_limits(limits=1):
        return _corpus_summary(notes, real_train, real_heldout, embed=embed, out_dir=out_dir,
                               seed=int(seed), group_columns=group_columns, per_note=per_note,
                               reference_max=int(reference_max), encoder_threads=encoder_threads)


def _corpus_summary(notes: pd.DataFrame, real_train: pd.DataFrame, real_heldout: pd.DataFrame, *,
                    embed: Embed, out_dir: Path | None, seed: int, group_columns: Sequence[str],
                    per_note: pd.DataFrame | None, reference_max: int, encoder_threads: int) -> dict:
    timer = _Timer()
    group_columns = list(group_columns)
    frame = _notes(notes, group_columns)
    train, heldout = _real(real_train, "real_train"), _real(real_heldout, "real_heldout")
    train_all, n_heldout_all = train, len(heldout)  # copied spans: all train notes (no vectors needed)
    train = _cap(train, reference_max, np.random.default_rng([seed, 1]))
    heldout = _cap(heldout, reference_max, np.random.default_rng([seed, 2]))
    examples_ids = set(frame["example_visit_id"].dropna().astype(str)) if "example_visit_id" in frame else set()
    example_texts = set(frame["anamnesis"].dropna().astype(str).str.strip()) if "anamnesis" in frame else set()
    is_example = train["idx"].isin(examples_ids) | train["text"].str.strip().isin(example_texts)
    reference = train[~is_example].reset_index(drop=True)
    if len(reference) < 2:
        raise InputTableError(f"real_train has {len(reference)} notes left after removing the "
                              f"{int(is_example.sum())} used as style examples: pass more real notes")

    start = timer.now()
    example_list = [t for t in frame.get("anamnesis", pd.Series(dtype=object)).dropna().astype(str)]
    with threadpool_limits(limits=encoder_threads):
        vec = _embed_all(embed, [*frame["response"], *train["text"], *heldout["text"], *example_list])
    timer.add("embed", start)
    note_vecs = np.vstack([vec[t] for t in frame["response"]])
    train_vecs = np.vstack([vec[t] for t in train["text"]])
    held_vecs = np.vstack([vec[t] for t in heldout["text"]])
    ref_vecs = train_vecs[~is_example.to_numpy()]

    # Per-note copying and privacy.
    start = timer.now()
    dcr, where = privacy.closest_records(note_vecs, train_vecs)
    held_dcr, _ = privacy.closest_records(held_vecs, train_vecs)
    spans = privacy.SpanIndex(train_all["text"].tolist(), train_all["idx"].tolist())
    found = [spans.longest_span(t) for t in frame["response"]]
    held_spans = np.array([spans.longest_span(t).words for t in heldout["text"]])
    out = pd.DataFrame({"idx": frame["idx"].to_numpy(), "dcr": dcr,
                        "dcr_visit_id": train["idx"].to_numpy()[where],
                        "copied_span": [s.text or None for s in found],
                        "copied_words": [s.words for s in found],
                        "copied_visit_id": [s.visit_id for s in found]})
    ex_ids = frame["example_visit_id"].astype(object) if "example_visit_id" in frame else pd.Series([None] * len(frame))
    out["copied_from_example"] = [bool(s.visit_id is not None and str(e) == s.visit_id)
                                  for s, e in zip(found, ex_ids)]
    sims = np.full(len(frame), np.nan)
    if "anamnesis" in frame:
        has = frame["anamnesis"].notna().to_numpy() & (frame["anamnesis"].fillna("").astype(str).str.strip() != "").to_numpy()
        if has.any():
            ex_vecs = np.vstack([vec[str(t)] for t in frame["anamnesis"][has]])
            sims[has] = privacy.pair_similarity(note_vecs[has], ex_vecs)
    out["example_similarity"] = sims
    timer.add("privacy", start)

    start = timer.now()
    sexes = frame["sex"] if "sex" in frame else pd.Series([None] * len(frame))
    verdicts = [fairness.sex_consistency(t, s) for t, s in zip(frame["response"], sexes)]
    out["sex_from_text"] = [v[0] for v in verdicts]
    out["sex_consistent"] = pd.array([v[1] for v in verdicts], dtype="boolean")
    out["age_group"] = [fairness.age_group(a) for a in frame["age"]] if "age" in frame else None
    timer.add("fairness", start)
    out["near_duplicate_cluster"] = -1

    example_ceiling = (privacy.same_code_similarity(heldout["code"].astype(str).tolist(), held_vecs,
                                                    train["code"].astype(str).tolist(), train_vecs, seed=seed)
                       if "code" in heldout.columns and "code" in train.columns else None)
    diversity_options = {"threshold": NEAR_DUPLICATE_THRESHOLD, "bleu_sample": SELF_BLEU_SAMPLE}
    warnings: list[str] = []
    for column in ("sex", "age"):
        if column not in frame.columns or frame[column].isna().all():
            warnings.append(f"notes have no {column!r}: fairness by {column} is left out (join the "
                            f"task table: evaluate.corpus.with_task_columns(notes, tasks))")
    groups, cluster_rows, ceilings = [], [], {}
    rng_seed = int(seed)
    for key, rows in frame.groupby(group_columns, sort=True, dropna=False).indices.items():
        key = key if isinstance(key, tuple) else (key,)
        label = " / ".join(str(k) for k in key)
        texts = frame["response"].to_numpy(object)[rows].tolist()
        vecs = note_vecs[rows]
        entry: dict = {c: (None if pd.isna(k) else str(k)) for c, k in zip(group_columns, key)}
        entry["n_notes"] = len(rows)

        # Realism: q = these notes, p = an equal-sized sample of the reference; ceiling q = held-out.
        start = timer.now()
        size = min(len(rows), len(reference), len(heldout))
        rng = np.random.default_rng(rng_seed)
        p_pick = _sample(len(reference), size, rng)
        q_pick = _sample(len(rows), size, rng)
        p_texts = reference["text"].to_numpy(object)[p_pick].tolist()
        real = realism.realism_pair(p_texts, ref_vecs[p_pick], [texts[i] for i in q_pick], vecs[q_pick],
                                    seed=rng_seed, mauve_seeds=MAUVE_SEEDS)
        if size not in ceilings:
            h_pick = _sample(len(heldout), size, np.random.default_rng(rng_seed + 1))
            ceilings[size] = {"realism": realism.realism_pair(
                p_texts, ref_vecs[p_pick], heldout["text"].to_numpy(object)[h_pick].tolist(),
                held_vecs[h_pick], seed=rng_seed, mauve_seeds=MAUVE_SEEDS)}
        ceil = ceilings[size]["realism"]
        entry["realism"] = {
            "mauve": _metric(real["mauve"]["mean"], ceil["mauve"]["mean"], spread=real["mauve"]["spread"],
                             ceiling_spread=ceil["mauve"]["spread"], seeds=real["mauve"]["seeds"]),
            **{name: _metric(real[name]["mean"], ceil[name]["mean"], spread=real[name]["spread"],
                             ceiling_spread=ceil[name]["spread"], folds=real[name]["folds"])
               for name in ("auc_embeddings", "auc_char_ngrams")},
            "frechet": _metric(real["frechet"], ceil["frechet"], spread=real["frechet_spread"],
                               ceiling_spread=ceil["frechet_spread"]),
            "shape_js": {name: _metric(v, ceil["shape"][name], spread=real["shape_spread"][name],
                                       ceiling_spread=ceil["shape_spread"][name])
                         for name, v in real["shape"].items()},
            "n_synthetic": size, "n_real": size,
        }
        _warn(warnings, label, "realism", size, "realism")
        timer.add("realism", start)

        # Diversity, at equal sizes for the notes and the held-out real notes.
        start = timer.now()
        dsize = min(len(rows), len(heldout), DIVERSITY_SAMPLE)
        mine = diversity.diversity_summary(texts, vecs, dsize, seed=rng_seed, **diversity_options)
        if ("div", dsize) not in ceilings:
            ceilings[("div", dsize)] = diversity.diversity_summary(heldout["text"].tolist(), held_vecs, dsize,
                                                                   seed=rng_seed, **diversity_options)
        ceil_div = ceilings[("div", dsize)]
        entry["diversity"] = {name: _metric(mine[name], ceil_div[name], spread=mine["spread"][name],
                                            ceiling_spread=ceil_div["spread"][name])
                              for name in mine["spread"]}
        entry["diversity"].update(n=dsize, spread_subsample=mine["spread_subsample"])
        _warn(warnings, label, "diversity", dsize, "diversity")
        clusters = diversity.near_duplicate_clusters(texts, threshold=NEAR_DUPLICATE_THRESHOLD, seed=rng_seed)
        codes = frame["_code"].to_numpy(object)[rows]
        in_cluster = np.zeros(len(rows), bool)
        for number, members in enumerate(clusters):
            shared = diversity.shared_word_trigrams([texts[i] for i in members])
            for i in members:
                in_cluster[i] = True
                out.loc[rows[i], "near_duplicate_cluster"] = number
                cluster_rows.append({**{c: entry[c] for c in group_columns}, "cluster": number,
                                     "cluster_size": len(members), "idx": str(frame["idx"].iloc[rows[i]]),
                                     "code": str(codes[i]), "response": texts[i],
                                     "shared_trigrams": shared})
        entry["diversity"]["near_duplicates_all_notes"] = {
            "clusters": len(clusters), "share": float(in_cluster.mean()), "n": len(rows),
            "threshold_jaccard": NEAR_DUPLICATE_THRESHOLD}
        entry["diversity"]["by_code"] = {
            str(code): {"n": int((codes == code).sum()),
                        "near_duplicate_share": float(in_cluster[codes == code].mean()),
                        "distinct_2": diversity.distinct_n([t for t, c in zip(texts, codes) if c == code], 2)}
            for code in sorted(set(codes))}
        timer.add("diversity", start)

        # Privacy.
        start = timer.now()
        part = out.iloc[rows]
        entry["privacy"] = {
            "dcr": privacy.dcr_comparison(part["dcr"].to_numpy(), held_dcr, seed=rng_seed, boot=BOOTSTRAP),
            "copied_share": _metric(float((part["copied_words"] >= privacy.MIN_SPAN_WORDS).mean()),
                                    float((held_spans >= privacy.MIN_SPAN_WORDS).mean())),
            "copied_words_median": _metric(float(part["copied_words"].median()), float(np.median(held_spans))),
            "copied_from_example_share": float(part["copied_from_example"].mean()),
            "max_copied_words": int(part["copied_words"].max()),
            "example_similarity": _metric(
                float(np.nanmean(part["example_similarity"])) if part["example_similarity"].notna().any() else None,
                example_ceiling),
            "span_words": privacy.MIN_SPAN_WORDS,
        }
        _warn(warnings, label, "privacy", len(rows), "privacy")
        timer.add("privacy", start)

        # Fairness: per-note measures by the task's sex and age group.
        start = timer.now()
        table = part.assign(sex=sexes.to_numpy(object)[rows],
                            sex_consistent=part["sex_consistent"].astype("Float64").astype(float))
        columns = ["dcr", "copied_words", "example_similarity", "sex_consistent"]
        for name in SCORE_COLUMNS:  # the scoring stage's per-note scores, where the table has them
            if name in frame.columns and pd.api.types.is_numeric_dtype(frame[name]):
                table[name] = frame[name].to_numpy(float)[rows]
                columns.append(name)
        if per_note is not None and "idx" in per_note.columns:
            extra = per_note.assign(idx=per_note["idx"].astype(str)).drop_duplicates("idx")
            numeric = [c for c in extra.columns if c != "idx" and c not in table.columns
                       and pd.api.types.is_numeric_dtype(extra[c])]
            table = table.assign(idx=table["idx"].astype(str)).merge(extra[["idx", *numeric]], on="idx", how="left")
            columns += numeric
        verdict = part["sex_consistent"].dropna()
        entry["fairness"] = {
            "sex_consistency_rate": float(verdict.astype(bool).mean()) if len(verdict) else None,
            "sex_verdict_share": float(len(verdict) / len(part)),
            "by": fairness.fairness_table(table, columns, seed=rng_seed, boot=BOOTSTRAP,
                                          min_size=2),
        }
        for by, measures in entry["fairness"]["by"].items():
            first = next(iter(measures.values()), {"groups": {}})
            for name, g in first["groups"].items():
                if g["n"] < MIN_SIZES["fairness_group"]:
                    warnings.append(f"{label}: fairness group {by}={name} has {g['n']} notes, below "
                                    f"the documented minimum {MIN_SIZES['fairness_group']}: its gap is indicative")
        timer.add("fairness", start)
        groups.append(entry)

    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        columns = [*group_columns, "cluster", "cluster_size", "idx", "code", "response", "shared_trigrams"]
        pd.DataFrame(cluster_rows, columns=columns).to_parquet(out_dir / NEAR_DUPLICATE_FILE, index=False)
    return {
        "groups": groups,
        "reference": {"n_train": len(train), "n_train_reference": len(reference),
                      "n_excluded_style_examples": int(is_example.sum()), "n_heldout": len(heldout),
                      "n_train_available": len(train_all), "n_heldout_available": n_heldout_all,
                      "reference_max": reference_max},
        "minimum_sizes": dict(MIN_SIZES), "warnings": warnings,
        "parameters": {"seed": int(seed), "group_columns": group_columns, "mauve_seeds": list(MAUVE_SEEDS),
                       "self_bleu_sample": SELF_BLEU_SAMPLE, "diversity_sample": DIVERSITY_SAMPLE,
                       "near_duplicate_threshold": NEAR_DUPLICATE_THRESHOLD, "bootstrap": BOOTSTRAP,
                       "span_words": privacy.MIN_SPAN_WORDS, "age_groups": list(fairness.AGE_LABELS)},
        "files": [NEAR_DUPLICATE_FILE] if out_dir is not None else [],
        "vectors": vectors_record(embed),
        "seconds": {k: round(v, 3) for k, v in timer.seconds.items()},
        "cpu_seconds": {k: round(v, 3) for k, v in timer.cpu_seconds.items()},
        "per_note": out[list(PER_NOTE_COLUMNS)],
    }
