"""The corpus summary (``evaluate.corpus.corpus_summary``) as a tidy table and as markdown.

One row per group (model × prior) × metric: ``family`` (realism, diversity, privacy, fairness),
``metric``, ``value``, ``spread`` (the std ``corpus.py`` reports: over k-means seeds, CV folds,
bootstrap draws or subsamples), ``low``/``high`` (a 95 % interval where the summary gives one
instead of a spread), ``ceiling`` and ``ceiling_spread`` (the real-vs-real value measured the same
way; for the attack AUC the no-memorisation value 0.5, for the closer-than-held-out share the
expected share), ``n`` (notes the metric used; for a fairness gap its smallest group), ``minimum``
(the documented minimum size, ``minimum_sizes`` of the summary) and ``below_minimum``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

FAMILIES = ("realism", "diversity", "privacy", "fairness")
COLUMNS = ("family", "metric", "value", "spread", "low", "high", "ceiling", "ceiling_spread", "n",
           "minimum", "below_minimum")
DEFAULT_GROUPS = ("generation_model", "prior")


def _row(family: str, metric: str, value: Any, *, n: Any, minimum: Any, spread: Any = None,
         interval: Any = None, ceiling: Any = None, ceiling_spread: Any = None) -> dict[str, Any]:
    low, high = (interval if interval else (None, None))
    return {"family": family, "metric": metric, "value": value, "spread": spread, "low": low,
            "high": high, "ceiling": ceiling, "ceiling_spread": ceiling_spread, "n": n,
            "minimum": minimum,
            "below_minimum": bool(n is not None and minimum is not None and n < minimum)}


def _from(family: str, metric: str, entry: dict[str, Any], n: Any, minimum: Any) -> dict[str, Any]:
    return _row(family, metric, entry.get("value"), n=n, minimum=minimum, spread=entry.get("spread"),
                ceiling=entry.get("ceiling"), ceiling_spread=entry.get("ceiling_spread"))


def _group_rows(group: dict[str, Any], sizes: dict[str, int]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    real = group.get("realism") or {}
    if real:
        n = real.get("n_synthetic")
        for name in ("mauve", "auc_embeddings", "auc_char_ngrams", "frechet"):
            if name in real:
                key = "two_sample" if name.startswith("auc") else "realism"
                rows.append(_from("realism", name, real[name], n, sizes.get(key)))
        for name, entry in (real.get("shape_js") or {}).items():
            rows.append(_from("realism", f"shape_js:{name}", entry, n, sizes.get("realism")))
    div = group.get("diversity") or {}
    for name, entry in div.items():
        if isinstance(entry, dict) and "value" in entry:
            rows.append(_from("diversity", name, entry, div.get("n"), sizes.get("diversity")))
    every = div.get("near_duplicates_all_notes")
    if every:
        for name in ("clusters", "share"):
            rows.append(_row("diversity", f"near_duplicate_{name}:all_notes", every.get(name),
                             n=every.get("n"), minimum=sizes.get("diversity")))
    priv = group.get("privacy") or {}
    n_priv, m_priv = group.get("n_notes"), sizes.get("privacy")
    dcr = priv.get("dcr") or {}
    if dcr:
        n_priv = dcr.get("n_synthetic", n_priv)
        rows.append(_row("privacy", "dcr_share_closer", dcr.get("share_closer"), n=n_priv, minimum=m_priv,
                         interval=dcr.get("share_closer_ci"), ceiling=dcr.get("expected_share")))
        rows.append(_row("privacy", "dcr_attack_auc", dcr.get("attack_auc"), n=n_priv, minimum=m_priv,
                         interval=dcr.get("attack_auc_ci"),
                         ceiling=0.5 if dcr.get("attack_auc") is not None else None))
        rows.append(_row("privacy", "dcr_median", dcr.get("median_dcr"), n=n_priv, minimum=m_priv,
                         ceiling=dcr.get("median_dcr_heldout")))
    for name, entry in priv.items():
        if isinstance(entry, dict) and "value" in entry:
            rows.append(_from("privacy", name, entry, n_priv, m_priv))
        elif name in ("copied_from_example_share", "max_copied_words"):
            rows.append(_row("privacy", name, entry, n=n_priv, minimum=m_priv))
    fair = group.get("fairness") or {}
    if fair.get("sex_consistency_rate") is not None:
        n_sex = round((group.get("n_notes") or 0) * (fair.get("sex_verdict_share") or 0))
        rows.append(_row("fairness", "sex_consistency_rate", fair["sex_consistency_rate"], n=n_sex,
                         minimum=None))
    for by, measures in (fair.get("by") or {}).items():
        for measure, result in measures.items():
            sizes_in = [g["n"] for g in (result.get("groups") or {}).values()]
            rows.append(_row("fairness", f"gap:{measure} by {by}", result.get("gap"),
                             n=min(sizes_in) if sizes_in else None, minimum=sizes.get("fairness_group"),
                             interval=result.get("gap_ci")))
    return [r for r in rows if _known(r["value"]) or _known(r["ceiling"])]


def corpus_table(corpus: dict[str, Any] | None) -> pd.DataFrame:
    """The tidy table of a corpus summary; empty (with its columns) when there is none or it was
    skipped. Rows are ordered by family, then group, then the summary's metric order."""
    groups = list(((corpus or {}).get("parameters") or {}).get("group_columns") or DEFAULT_GROUPS)
    rows = []
    if corpus and not corpus.get("skipped"):
        sizes = corpus.get("minimum_sizes") or {}
        for group in corpus.get("groups") or []:
            keys = {c: group.get(c) for c in groups}
            rows += [{**keys, **row} for row in _group_rows(group, sizes)]
    frame = pd.DataFrame(rows, columns=[*groups, *COLUMNS])
    if len(frame):
        order = {f: i for i, f in enumerate(FAMILIES)}
        frame = frame.sort_values("family", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    return frame


def _known(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and value != value)  # not None, not NaN


def _num(value: Any, count: bool = False) -> str:
    if value is None or pd.isna(value):
        return "—"
    value = float(value)
    if count and value.is_integer():
        return str(int(value))
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.4f}" if 0.9995 <= abs(value) < 1 else f"{value:.3f}"  # not a rounded 1.000


def _with_spread(value: Any, spread: Any = None, low: Any = None, high: Any = None,
                 count: bool = False) -> str:
    text = _num(value, count)
    if text == "—":
        return text
    if spread is not None and not pd.isna(spread):
        return f"{text} ± {_num(spread)}"
    if low is not None and not pd.isna(low):
        return f"{text} [{_num(low)}, {_num(high)}]"
    return text


def vectors_line(corpus: dict) -> str:
    """Which text vectors the metrics stand on, in a few words (``corpus["vectors"]``)."""
    record = corpus.get("vectors") or {}
    kind = record.get("kind") or corpus.get("embed", "?")
    if kind == "e5":
        return (f"`e5` ({record.get('encoder')}, layer {record.get('layer')}, "
                f"{record.get('precision')}; {record.get('from_cache', 0)} texts from the embedding "
                f"cache, {record.get('embedded', 0)} embedded)")
    if kind == "hashed":
        return "`hashed` (character 3-grams: surface similarity, not the encoder)"
    return f"`{kind}`"


def corpus_markdown(corpus: dict[str, Any] | None) -> str:
    """A markdown table per family (value ± spread or [95 % interval], the real-vs-real ceiling,
    n with ⚠ below the documented minimum), the reference sizes and the summary's warnings."""
    if corpus is None:
        return ""
    if corpus.get("skipped"):
        return f"Corpus metrics skipped: {corpus['skipped']}\n"
    table = corpus_table(corpus)
    groups = [c for c in table.columns if c not in COLUMNS]
    ref = corpus.get("reference") or {}
    lines = [f"Against real notes: {ref.get('n_train_reference', '?')} train notes as the reference "
             f"({ref.get('n_excluded_style_examples', 0)} style examples left out), "
             f"{ref.get('n_heldout', '?')} held-out notes for the real-vs-real ceiling; vectors: "
             f"{vectors_line(corpus)}. ⚠: fewer notes than the documented minimum "
             "(read as indicative). The full record is in evaluation.json.", ""]
    for family in FAMILIES:
        part = table[table["family"] == family]
        if not len(part):
            continue
        lines += [f"### {family.capitalize()}", "",
                  "| " + " | ".join([*groups, "metric", "value", "ceiling (real vs real)", "n"]) + " |",
                  "|" + "---|" * (len(groups) + 4)]
        for row in part.itertuples(index=False):
            cells = [str(getattr(row, c)) for c in groups]
            n = "—" if row.n is None or pd.isna(row.n) else str(int(row.n))
            if row.below_minimum:
                n += f" ⚠ < {int(row.minimum)}"
            count = "clusters" in row.metric or row.metric.startswith("max_")
            cells += [row.metric, _with_spread(row.value, row.spread, row.low, row.high, count),
                      _with_spread(row.ceiling, row.ceiling_spread, count=count), n]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if corpus.get("warnings"):
        lines += ["Warnings:", ""] + [f"- {w}" for w in corpus["warnings"]] + [""]
    return "\n".join(lines)
