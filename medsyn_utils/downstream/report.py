"""Numbers of the downstream experiment: paired intervals, per-code changes, the reproduction table.

Every difference between two settings over all codes is a **paired bootstrap** over the test
visits (the same resampled visits for both). Over hard codes, where codes are the unit, it is a
paired **cluster bootstrap** that resamples codes (with all their visits), which is wider when
visits of one code succeed or fail together. ``n_bootstrap`` 0 means no intervals (``None``,
printed as "no interval"); 1–99 resamples are refused (:func:`check_bootstrap`). Per-code
changes carry a sign-test p-value and a Benjamini–Hochberg q-value across codes; with about
eight test visits per code they are exploratory and labelled so. No "± sd over seeds" for a
setting fitted once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from medsyn_utils.core.errors import ParameterError
from medsyn_utils.downstream.experiment import KS, ExperimentResult

METRICS_FILE = "downstream_metrics.json"
REPRODUCTION_FILES = ("reproduction.md", "reproduction.csv")
BASE = "real_only"
# (other, base): every difference reported where both settings ran.
COMPARISONS = (("real_synthetic", BASE), ("real_oversampled", BASE), ("real_class_weighted", BASE),
               ("real_recombined", BASE), ("synthetic_only", BASE),
               ("real_synthetic", "real_oversampled"), ("real_synthetic", "real_recombined"),
               ("real_synthetic", "real_class_weighted"),
               ("real_synthetic", "real_synthetic_unselected"),
               ("real_synthetic", "real_synthetic_random"))
# The differences that answer "do the notes help, and is it the text or the re-weighting?"
KEY_DIFFERENCES = (("real_synthetic", BASE), ("real_synthetic", "real_oversampled"),
                   ("real_synthetic", "real_recombined"), ("real_synthetic", "real_class_weighted"),
                   ("real_synthetic", "real_synthetic_unselected"),
                   ("real_synthetic", "real_synthetic_random"))
MIN_BOOTSTRAP = 100
HARD_FORMS = {"rarest_quartile": "rarest quartile of codes by real train frequency",
              "lowest_dev_accuracy": "quartile of codes with the lowest real-only acc@1 on dev"}


def check_bootstrap(n_bootstrap: int) -> int:
    """0 (no intervals) or at least :data:`MIN_BOOTSTRAP` resamples; anything else is refused."""
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) or (
            n_bootstrap != 0 and not MIN_BOOTSTRAP <= n_bootstrap <= 1_000_000):
        raise ParameterError(f"bootstrap={n_bootstrap!r}: use 0 for no intervals or an integer "
                             f"from {MIN_BOOTSTRAP} to 1000000 (fewer resamples give an unstable "
                             f"95 % interval)")
    return int(n_bootstrap)


def paired_bootstrap(base: np.ndarray, other: np.ndarray, n_bootstrap: int,
                     rng: np.random.Generator) -> tuple[float | None, float | None]:
    """95 % interval of mean(other − base) over examples resampled together; ``(None, None)``
    with ``n_bootstrap`` 0 (no intervals asked for) or no examples."""
    n = len(base)
    if n == 0 or n_bootstrap < 1:
        return None, None
    diff = np.asarray(other, dtype=float) - np.asarray(base, dtype=float)
    draws = diff[rng.integers(0, n, size=(n_bootstrap, n))].mean(axis=1)
    low, high = np.quantile(draws, [0.025, 0.975])
    return float(low), float(high)


def cluster_bootstrap(base: np.ndarray, other: np.ndarray, clusters: Sequence[Any], n_bootstrap: int,
                      rng: np.random.Generator) -> tuple[float | None, float | None]:
    """95 % interval of mean(other − base) over visits when **clusters** (codes) are resampled with
    replacement, each bringing all its visits: the interval for code-level claims."""
    clusters = np.asarray(clusters)
    if len(base) == 0 or n_bootstrap < 1:
        return None, None
    diff = np.asarray(other, dtype=float) - np.asarray(base, dtype=float)
    labels, inverse = np.unique(clusters, return_inverse=True)
    sums = np.bincount(inverse, weights=diff, minlength=len(labels))
    sizes = np.bincount(inverse, minlength=len(labels)).astype(float)
    draws = rng.integers(0, len(labels), size=(n_bootstrap, len(labels)))
    estimates = sums[draws].sum(axis=1) / sizes[draws].sum(axis=1)
    low, high = np.quantile(estimates, [0.025, 0.975])
    return float(low), float(high)


def verdict(intervals: Sequence[tuple[float | None, float | None]]) -> str:
    """"helps" when every interval lies above zero, "hurts" when every one lies below, else
    "not shown" (also without intervals: nothing is claimed without one)."""
    intervals = list(intervals)
    if not intervals or any(low is None or high is None for low, high in intervals):
        return "not shown (no intervals)" if intervals else "not shown (nothing ran)"
    if all(low > 0 for low, _ in intervals):
        return "helps"
    if all(high < 0 for _, high in intervals):
        return "hurts"
    return "not shown"


def sign_test(base: np.ndarray, other: np.ndarray) -> float:
    """Two-sided exact sign test of paired per-visit correctness (McNemar for 0/1 values)."""
    from scipy.stats import binomtest

    diff = np.asarray(other, dtype=float) - np.asarray(base, dtype=float)
    up, down = int((diff > 0).sum()), int((diff < 0).sum())
    return 1.0 if up + down == 0 else float(binomtest(up, up + down, 0.5).pvalue)


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini–Hochberg adjusted q-values (false discovery rate), in the input order."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * len(p) / np.arange(1, len(p) + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    out = np.empty_like(q)
    out[order] = q
    return out


def _mean_correct(result: ExperimentResult, setting: str, k: int, split: str = "test") -> np.ndarray:
    return result.correctness[setting][split][k].mean(axis=0)


def group_change(result: ExperimentResult, codes: Sequence[str] | None = None, *, base: str = BASE,
                 other: str = "real_synthetic", ks: Sequence[int] = KS, n_bootstrap: int = 1000,
                 seed: int = 0, unit: str | None = None) -> dict[str, Any]:
    """Test acc@k of two settings over the visits of ``codes`` (all when ``None``): the change in
    points of accuracy with its paired 95 % interval, and the relative change.

    ``unit``: what the bootstrap resamples, ``"visits"`` or ``"codes"`` (cluster bootstrap);
    by default visits over all codes and codes over a set of codes."""
    unit = unit or ("visits" if codes is None else "codes")
    if unit not in ("visits", "codes"):
        raise ParameterError(f"unit={unit!r}: use visits or codes")
    for name in (base, other):
        if name not in result.correctness:
            raise ParameterError(f"setting {name!r} was not run: compare settings among "
                                 f"{', '.join(result.correctness)}")
    rng = np.random.default_rng(seed)
    mask = (np.ones(len(result.test_codes), dtype=bool) if codes is None
            else np.isin(result.test_codes, list(codes)))
    out: dict[str, Any] = {"n_test": int(mask.sum()), "n_codes": int(len(set(result.test_codes[mask]))),
                           "resampled": unit}
    for k in ks:
        a, b = _mean_correct(result, base, k)[mask], _mean_correct(result, other, k)[mask]
        low, high = (paired_bootstrap(a, b, n_bootstrap, rng) if unit == "visits" else
                     cluster_bootstrap(a, b, result.test_codes[mask], n_bootstrap, rng))
        base_acc = float(a.mean()) if len(a) else float("nan")
        other_acc = float(b.mean()) if len(b) else float("nan")
        out[f"acc@{k}"] = {base: base_acc, other: other_acc, "change": other_acc - base_acc,
                           "ci_low": low, "ci_high": high,
                           "relative_change_pct": (100 * (other_acc - base_acc) / base_acc
                                                   if base_acc else None)}
    return out


def per_code_change(result: ExperimentResult, *, base: str = BASE, other: str = "real_synthetic",
                    k: int = 1, n_bootstrap: int = 1000, hard: dict[str, Sequence[str]] | None = None,
                    seed: int = 0) -> pd.DataFrame:
    """Per test code: acc@k of both settings, the change, its paired 95 % interval, a sign-test
    p-value and its Benjamini–Hochberg q-value across codes (exploratory: few visits per code)."""
    for name in (base, other):
        if name not in result.correctness:
            raise ParameterError(f"setting {name!r} was not run: compare settings among "
                                 f"{', '.join(result.correctness)}")
    rng = np.random.default_rng(seed)
    a, b = _mean_correct(result, base, k), _mean_correct(result, other, k)
    train_counts = pd.Series(result.train_codes).value_counts()
    rows = []
    for code in sorted(set(result.test_codes)):
        mask = result.test_codes == code
        low, high = paired_bootstrap(a[mask], b[mask], n_bootstrap, rng)
        rows.append({"code": code, "n_train": int(train_counts.get(code, 0)), "n_test": int(mask.sum()),
                     f"acc@{k} {base}": float(a[mask].mean()), f"acc@{k} {other}": float(b[mask].mean()),
                     "change": float(b[mask].mean() - a[mask].mean()), "ci_low": low, "ci_high": high,
                     "p_sign_test": sign_test(a[mask], b[mask]),
                     **{f"hard_{form}": code in set(codes) for form, codes in (hard or {}).items()}})
    table = pd.DataFrame(rows)
    table["q_bh"] = benjamini_hochberg(table["p_sign_test"])
    table["significant_bh_0.05"] = table["q_bh"] < 0.05
    return table.sort_values(["change", "code"], ascending=[False, True]).reset_index(drop=True)


def _settings(result: ExperimentResult) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    if result.runs.empty:
        return entries
    for name, group in result.runs.groupby("setting", sort=False):
        first = group.iloc[0]
        fits = int(group["seed"].nunique())
        entry: dict[str, Any] = {"setting": name, "share_real": float(first["share_real"]),
                                 "share_synthetic": float(first["share_synthetic"]),
                                 "control": first["control"], "fits": fits,
                                 "n_train_real": float(group["n_train_real"].mean()),
                                 "n_train_added": float(group["n_train_added"].mean())}
        for split, part in group.groupby("split"):
            entry[split] = {f"acc@{k}": float(part[f"acc@{k}"].mean()) for k in KS}
            if fits > 1:  # something random varied between fits: its spread means something
                entry[f"{split}_sd_over_seeds"] = {f"acc@{k}": float(part[f"acc@{k}"].std(ddof=1))
                                                   for k in KS}
        entries.append(entry)
    return entries


def build_metrics(result: ExperimentResult, counts: dict[str, Any], *, hard: dict[str, Sequence[str]],
                  n_bootstrap: int = 1000, seed: int = 0, per_code: pd.DataFrame | None = None
                  ) -> dict[str, Any]:
    """The content of ``downstream_metrics.json``: settings, paired comparisons, hard codes."""
    settings = _settings(result)
    metrics: dict[str, Any] = {
        "classifier": result.classifier, "synthetic": counts, "settings": settings,
        "n_test_visits": int(len(result.test_codes)),
        "skipped_settings": dict(result.skipped),
        "hard_codes": {form: {"definition": HARD_FORMS.get(form, form), "codes": list(codes)}
                       for form, codes in hard.items()},
        "intervals": (f"95 %, {n_bootstrap} resamples: paired bootstrap over test visits for all "
                      f"codes; paired cluster bootstrap over codes (each with all its visits) for "
                      f"hard codes; per code over that code's visits (exploratory)"
                      if n_bootstrap else "none (bootstrap 0: no intervals were computed)"),
        "summary": {f"{e['setting']}_{split}_acc@{k}": e[split][f"acc@{k}"]
                    for e in settings for split in ("dev", "test") for k in KS},
    }
    comparisons = []
    for other, base in COMPARISONS:
        if other in result.correctness and base in result.correctness:
            entry = {"other": other, "base": base,
                     "all_codes": group_change(result, None, base=base, other=other,
                                               n_bootstrap=n_bootstrap, seed=seed)}
            for form, codes in hard.items():
                entry[f"hard_{form}"] = group_change(result, codes, base=base, other=other,
                                                     n_bootstrap=n_bootstrap, seed=seed, unit="codes")
            comparisons.append(entry)
    metrics["comparisons"] = comparisons
    if per_code is None and {"real_synthetic", BASE} <= set(result.correctness):
        per_code = per_code_change(result, hard=hard, n_bootstrap=n_bootstrap, seed=seed)
    if per_code is not None:
        metrics["per_code"] = {"note": "exploratory: sign-test p with Benjamini–Hochberg q over codes",
                               "rows": per_code.to_dict(orient="records")}
    return metrics


def find_comparison(metrics: dict[str, Any], other: str, base: str = BASE) -> dict[str, Any] | None:
    return next((c for c in metrics.get("comparisons", [])
                 if c["other"] == other and c["base"] == base), None)


def stage_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Key numbers for the stage record: test acc@k of each setting, counts, the paired changes."""
    summary = metrics.get("summary", {})
    out: dict[str, Any] = {key: value for key, value in summary.items() if "_test_" in key}
    counts = metrics.get("synthetic", {})
    for key in ("input_rows", "rows_selected", "kept", "kept_codes", "outside_task_codes",
                "leaked_dev_test", "failed_filter", "filter_not_applicable", "empty_response"):
        if key in counts:
            out[f"synthetic_{key}"] = counts[key]
    for comparison in metrics.get("comparisons", []):
        name = f"{comparison['other']}_vs_{comparison['base']}"
        for group in [g for g in comparison if g == "all_codes" or g.startswith("hard_")]:
            for k in (1, 3):
                entry = comparison[group][f"acc@{k}"]
                out[f"{name}_{group}_change_acc@{k}"] = entry["change"]
                out[f"{name}_{group}_change_acc@{k}_ci"] = [entry["ci_low"], entry["ci_high"]]
    for label, entries in metrics.get("verdicts", {}).items():
        for entry in entries:
            if entry["codes"] == "all_codes":
                out[f"verdict [{label}] {entry['difference']}"] = entry["verdict"]
    out["settings_run"] = [entry["setting"] for entry in metrics.get("settings", [])]
    out["settings_skipped"] = metrics.get("skipped_settings", {})
    return out


def format_interval(low: Any, high: Any) -> str:
    """``[+0.0012, +0.0340]``, or ``no interval`` when none was computed (bootstrap 0)."""
    if low is None or high is None:
        return "no interval"
    return f"[{low:+.4f}, {high:+.4f}]"


def reproduction_row(metrics: dict[str, Any], group: dict[str, str]) -> dict[str, Any]:
    """One row of the reproduction table: a model × prior (or all notes) and one classifier."""
    row: dict[str, Any] = dict(group)
    row["classifier"] = metrics.get("classifier", {}).get("name")
    counts = metrics.get("synthetic", {})
    row["n_synthetic_used"] = counts.get("kept")
    row["n_synthetic_codes"] = counts.get("kept_codes")
    for entry in metrics.get("settings", []):
        for k in KS:
            row[f"{entry['setting']} acc@{k}"] = entry["test"][f"acc@{k}"]
            sd = entry.get("test_sd_over_seeds")
            if sd:
                row[f"{entry['setting']} acc@{k} sd over {entry['fits']} seeds"] = sd[f"acc@{k}"]
    for comparison in metrics.get("comparisons", []):
        name = f"{comparison['other']} − {comparison['base']}"
        for group_name in [g for g in comparison if g == "all_codes" or g.startswith("hard_")]:
            suffix = "" if group_name == "all_codes" else f" [{group_name}]"
            part = comparison[group_name]
            if group_name != "all_codes":
                row[f"{name}{suffix} n"] = (f"{part['n_codes']} codes / {part['n_test']} visits, "
                                            f"resampled by {part.get('resampled', 'visits')}")
            for k in KS if group_name == "all_codes" else (1,):
                entry = part[f"acc@{k}"]
                row[f"{name} acc@{k}{suffix}"] = entry["change"]
                row[f"{name} acc@{k}{suffix} ci"] = format_interval(entry["ci_low"], entry["ci_high"])
    return row


def _points(value: Any) -> str:
    return "—" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{100 * value:.1f}"


def _parse_interval(text: Any) -> tuple[float | None, float | None]:
    if not isinstance(text, str) or not text.startswith("["):
        return None, None
    low, high = (float(v) for v in text.strip("[]").split(","))
    return low, high


def _change(row: dict[str, Any], name: str) -> str:
    if name not in row or row[name] is None:
        return "—"
    low, high = _parse_interval(row.get(f"{name} ci"))
    interval = "no interval" if low is None else f"[{100 * low:+.1f}, {100 * high:+.1f}]"
    return f"{100 * row[name]:+.1f} {interval}"


SETTING_COLUMNS = (("real_only", "real only"), ("real_synthetic", "real + synthetic"),
                   ("real_synthetic_unselected", "real + all notes (no selection)"),
                   ("real_synthetic_random", "real + random same-size"),
                   ("real_oversampled", "oversampled real"), ("real_recombined", "recombined real"),
                   ("real_class_weighted", "class-weighted real"), ("synthetic_only", "synthetic only"))
DIFFERENCE_LABELS = {"real_only": "real only", "real_oversampled": "oversampled",
                     "real_recombined": "recombined", "real_class_weighted": "class-weighted",
                     "real_synthetic_unselected": "all notes (no selection)",
                     "real_synthetic_random": "random same-size selection"}


def _spread(row: dict[str, Any], setting: str) -> str:
    """`` · control acc@1 48.4 ± 0.2 over 3 seeds`` for a control fitted over several seeds (mean
    and sd over seeds beside the paired interval), else nothing."""
    key = next((c for c in row if c.startswith(f"{setting} acc@1 sd over ")), None)
    if key is None or row.get(key) is None or row.get(f"{setting} acc@1") is None:
        return ""
    seeds = key.split(" sd over ")[1].split()[0]
    return f" · control acc@1 {100 * row[f'{setting} acc@1']:.1f} ± {100 * row[key]:.1f} over {seeds} seeds"


def _group_label(row: dict[str, Any]) -> str:
    return " / ".join(str(row[k]) for k in ("group", "generation_model", "prior") if row.get(k))


def group_verdicts(rows: Sequence[dict[str, Any]], hard_forms: Sequence[str] = tuple(HARD_FORMS)
                   ) -> list[dict[str, Any]]:
    """Per key difference (and codes: all, each hard form): each classifier's change and interval,
    and the verdict across the panel (see :func:`verdict`)."""
    out = []
    for other, base in KEY_DIFFERENCES:
        name = f"{other} − {base}"
        for codes in ("all_codes", *(f"hard_{f}" for f in hard_forms)):
            key = f"{name} acc@1" + ("" if codes == "all_codes" else f" [{codes}]")
            present = [r for r in rows if r.get(key) is not None]
            if not present:
                continue
            intervals = [_parse_interval(r.get(f"{key} ci")) for r in present]
            out.append({"difference": name, "codes": codes, "key": key,
                        "n": present[0].get(f"{name} [{codes}] n", ""),
                        "per_classifier": {r["classifier"]: r[key] for r in present},
                        "verdict": verdict(intervals)})
    return out


def reproduction_markdown(rows: Sequence[dict[str, Any]], classifier: dict[str, Any],
                          notes: Sequence[str] = ()) -> str:
    """``reproduction.md``: per model × prior, test accuracy of every setting per classifier, the
    "synthetic − control" differences per classifier with intervals, and the verdict line."""
    lines = ["# Downstream reproduction: RuMedTop3 test accuracy (points)", "",
             f"Default classifier: {classifier.get('name')} "
             f"({', '.join(f'{k}={v}' for k, v in classifier.items() if k != 'name')}).",
             "Differences in acc@1 points with 95 % intervals: paired bootstrap over test visits "
             "for all codes; paired cluster bootstrap over codes (each code with all its visits) "
             "for hard codes, with n codes / n visits kept.",
             "Verdict per difference: **helps** only when the interval lies above zero for every "
             "classifier of the panel, **hurts** when below for every one, else **not shown**.",
             *notes, ""]
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(_group_label(row), []).append(row)
    for label, members in groups.items():
        first = members[0]
        lines += [f"## {label}", "",
                  f"{first.get('n_synthetic_used')} synthetic notes of {first.get('n_synthetic_codes')} codes; "
                  f"classifiers: {', '.join(str(r['classifier']) for r in members)}.", ""]
        shown = [(s, t) for s, t in SETTING_COLUMNS if any(f"{s} acc@1" in r for r in members)]
        lines += ["| classifier | " + " | ".join(f"{t} acc@1/3/5" for _, t in shown) + " |",
                  "|---" * (len(shown) + 1) + "|"]
        for row in members:
            cells = []
            for setting, _ in shown:
                text = "/".join(_points(row.get(f"{setting} acc@{k}")) for k in KS)
                sd = row.get(next((c for c in row if c.startswith(f"{setting} acc@1 sd over")), ""))
                cells.append(text + (f" (sd {100 * sd:.1f})" if sd is not None else ""))
            lines.append(f"| {row['classifier']} | " + " | ".join(cells) + " |")
        lines += ["", "| real + synthetic − … (acc@1) | codes | "
                  + " | ".join(str(r["classifier"]) for r in members) + " | verdict |",
                  "|---|---|" + "---|" * len(members) + "---|"]
        headline = None
        for entry in group_verdicts(members):
            base = entry["difference"].split(" − ")[1]
            codes = "all" if entry["codes"] == "all_codes" else (
                f"{entry['codes'][5:].replace('_', ' ')} ({entry['n'].split(', ')[0]})")
            cells = [_change(r, entry["key"]) + _spread(r, base) for r in members]
            lines.append(f"| {DIFFERENCE_LABELS.get(base, base)} | {codes} | " + " | ".join(cells)
                         + f" | {entry['verdict']} |")
            if headline is None and entry["codes"] == "all_codes":
                headline = entry
        if headline:
            lines += ["", f"**Verdict ({label}): adding the notes {headline['verdict']}** "
                          f"(real + synthetic − real only, acc@1, all codes, across "
                          f"{len(members)} classifier(s))."]
        lines.append("")
    return "\n".join(lines) + "\n"


def write_reproduction(rows: Sequence[dict[str, Any]], out_dir: str | Path, classifier: dict[str, Any],
                       notes: Sequence[str] = ()) -> dict[str, Path]:
    """Write ``reproduction.md`` and ``reproduction.csv`` (all columns) into ``out_dir``."""
    from medsyn_utils.core.artefacts import write_table
    from medsyn_utils.core.provenance import write_atomic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md, csv = REPRODUCTION_FILES
    return {md: write_atomic(out_dir / md, reproduction_markdown(rows, classifier, notes)),
            csv: write_table(pd.DataFrame(list(rows)), out_dir / csv)}
