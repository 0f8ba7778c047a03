"""The downstream experiment: do synthetic notes help an ICD-code classifier on RuMedTop3?

The MedSyn paper's claim: adding synthetic notes to the real training notes raises acc@1/3/5 of a
code classifier, most on rare ("hard") codes. Settings are (share of real train, share of
synthetic) subsets stratified by code, the paper's grid included, plus the controls a reviewer
asks for:

* ``real_oversampled``: real notes drawn again (with replacement) up to the per-code counts of
  real + synthetic: is a gain new text, or re-weighting of rare codes?
* ``real_class_weighted``: real only, classes weighted inversely to their frequency;
* ``real_recombined`` (on by default, seeded): a cheap non-LLM augmentation with the synthetic
  set's per-code counts, each note recombined from sentences of real train notes of that code.

Real train notes train, dev and test evaluate (dev also chooses the classifier and defines one
kind of hard code); nothing else crosses. A deterministic classifier on a full set (shares 0 or
1, no random draw) is fitted once and reported as one fit; seeds vary only what is random.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from medsyn_utils.core.errors import InputTableError, ParameterError
from medsyn_utils.downstream.classifiers import CodeClassifier, TfidfLinear

KS = (1, 3, 5)
CONTROLS = ("oversampled", "class_weighted", "recombined")


@dataclass(frozen=True)
class Setting:
    """One training set: shares of real and synthetic notes, and the control it is (if any)."""

    name: str
    share_real: float
    share_synthetic: float
    control: str = ""  # "", or one of CONTROLS

    @property
    def seed_free(self) -> bool:
        """No random draw: the same training set for every seed."""
        return (self.share_real in (0.0, 1.0) and self.share_synthetic in (0.0, 1.0)
                and self.control in ("", "class_weighted"))

    @property
    def uses_synthetic(self) -> bool:
        """Its training set depends on the synthetic table (text or per-code counts)."""
        return self.share_synthetic > 0


def setting_name(share_real: float, share_synthetic: float) -> str:
    """``real_only`` / ``real_synthetic`` / ``synthetic_only`` or ``real0.5_syn0.25``."""
    aliases = {(1.0, 0.0): "real_only", (1.0, 1.0): "real_synthetic", (0.0, 1.0): "synthetic_only"}
    return aliases.get((float(share_real), float(share_synthetic)),
                       f"real{share_real:g}_syn{share_synthetic:g}")


# The paper's augmentation grid: (share of real train, share of synthetic).
PAPER_GRID: tuple[tuple[float, float], ...] = (
    (0.5, 0.0), (0.75, 0.0), (1.0, 0.0), (0.5, 0.5), (0.5, 1.0), (1.0, 0.25), (1.0, 0.5),
    (1.0, 1.0), (0.0, 1.0),
)
CORE_GRID: tuple[tuple[float, float], ...] = ((1.0, 0.0), (1.0, 1.0), (0.0, 1.0))
CONTROL_SETTINGS = {
    "oversampled": Setting("real_oversampled", 1.0, 1.0, "oversampled"),
    "class_weighted": Setting("real_class_weighted", 1.0, 0.0, "class_weighted"),
    "recombined": Setting("real_recombined", 1.0, 1.0, "recombined"),
}


def experiment_settings(grid: bool = False, controls: Sequence[str] = ("oversampled", "class_weighted")
                        ) -> list[Setting]:
    """The three core settings (or the paper's grid, which holds them) and the controls."""
    unknown = sorted(set(controls) - set(CONTROLS))
    if unknown:
        raise ParameterError(f"control(s) {', '.join(unknown)} unknown: use {', '.join(CONTROLS)}")
    shares = PAPER_GRID if grid else CORE_GRID
    return ([Setting(setting_name(r, s), float(r), float(s)) for r, s in shares]
            + [CONTROL_SETTINGS[c] for c in CONTROLS if c in controls])


# --------------------------------------------------------------------------------------------
# Metrics and training sets
# --------------------------------------------------------------------------------------------

def correct_at_k(scores: np.ndarray, y_true: Sequence[Any], classes: Sequence[Any], k: int) -> np.ndarray:
    """Per example: is the true label among the ``k`` highest-scoring classes?

    Ties are broken by class order (stable sort); a true label the model never saw counts as wrong.
    """
    scores = np.asarray(scores, dtype=float)
    classes = np.asarray(classes)
    y_true = np.asarray(y_true)
    if scores.ndim != 2 or scores.shape != (len(y_true), len(classes)):
        raise ParameterError(f"scores of shape {scores.shape} do not match {len(y_true)} examples "
                             f"× {len(classes)} classes: pass the classifier's scores and classes")
    if k < 1:
        raise ParameterError(f"k={k} must be at least 1")
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return (classes[top] == y_true[:, None]).any(axis=1)


def top_k_accuracy(scores: np.ndarray, y_true: Sequence[Any], classes: Sequence[Any],
                   ks: Sequence[int] = KS) -> dict[str, float]:
    """``{"acc@1": .., "acc@3": .., "acc@5": ..}``: share of examples with the true label in the top k."""
    if not len(y_true):
        return {f"acc@{k}": float("nan") for k in ks}
    return {f"acc@{k}": float(correct_at_k(scores, y_true, classes, k).mean()) for k in ks}


def stratified_subset(frame: pd.DataFrame, share: float, *, by: str = "code", seed: int = 0
                      ) -> pd.DataFrame:
    """A share of the rows drawn per code, keeping every code (at least one row each when share > 0).

    ``share`` 0 gives an empty table, 1 the table unchanged (same order).
    """
    if not 0.0 <= float(share) <= 1.0:
        raise ParameterError(f"share={share} must lie in [0, 1]: it is the fraction of rows kept per code")
    if share == 0 or frame.empty:
        return frame.iloc[0:0]
    if share == 1:
        return frame
    rng = np.random.default_rng(seed)
    key = pd.Series(rng.random(len(frame)), index=frame.index)
    rank = key.groupby(frame[by]).rank(method="first") - 1
    size = frame.groupby(by)[by].transform("size")
    quota = np.maximum(1, np.round(size * share)).astype(int)
    return frame[rank < quota]


def oversample_real(real: pd.DataFrame, synthetic: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Real rows plus, per code, as many real rows drawn again (with replacement) as that code
    has synthetic notes: the per-code counts of real + synthetic, without new text."""
    rng = np.random.default_rng(seed)
    extra = []
    wanted = synthetic["code"].value_counts()
    for code, n in sorted(wanted.items()):
        rows = real.index[real["code"] == code]
        if len(rows):
            extra.append(rng.choice(rows, size=int(n), replace=True))
    picked = np.concatenate(extra) if extra else np.array([], dtype=real.index.dtype)
    return pd.concat([real, real.loc[picked]])


def recombine_real(real: pd.DataFrame, synthetic: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """A non-LLM augmentation: per code, as many notes as the synthetic set has, each made of
    2–4 sentences drawn from real notes of that code, shuffled."""
    rng = np.random.default_rng(seed)
    rows = []
    for code, n in sorted(synthetic["code"].value_counts().items()):
        sentences = [s.strip() for text in real.loc[real["code"] == code, "text"]
                     for s in re.split(r"(?<=[.;!?])\s+|,\s+", str(text)) if s.strip()]
        if not sentences:
            continue
        for _ in range(int(n)):
            picked = rng.choice(len(sentences), size=min(len(sentences), int(rng.integers(2, 5))),
                                replace=False)
            rows.append({"text": ", ".join(sentences[i] for i in picked), "code": code})
    return pd.DataFrame(rows, columns=["text", "code"])


def rarest_codes(train_codes: Sequence[str], quantile: float = 0.25) -> list[str]:
    """Hard codes, form 1: count in real train at or below the ``quantile`` of code counts."""
    if not 0.0 < quantile <= 1.0:
        raise ParameterError(f"hard_quantile={quantile} must lie in (0, 1]")
    counts = pd.Series(list(train_codes)).value_counts()
    if counts.empty:
        return []
    cut = float(np.quantile(counts.to_numpy(), quantile))
    return sorted(counts[counts <= cut].index.tolist())


# --------------------------------------------------------------------------------------------
# Running the settings
# --------------------------------------------------------------------------------------------

@dataclass
class ExperimentResult:
    """Accuracies per setting, fit and split, and per-example correctness for paired intervals."""

    runs: pd.DataFrame  # one row per setting × fit × split
    correctness: dict[str, dict[str, dict[int, np.ndarray]]]  # setting → split → k → (fits, n)
    codes: dict[str, np.ndarray]  # split → true codes of the evaluation visits
    train_codes: np.ndarray
    classifier: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)  # setting → why it could not run

    @property
    def test_codes(self) -> np.ndarray:
        return self.codes["test"]

    def summary(self) -> pd.DataFrame:
        """Mean per setting and split; ``sd`` over fits only where a setting was fitted more than once."""
        metrics = [f"acc@{k}" for k in KS]
        grouped = self.runs.groupby(["setting", "split"], sort=False)
        table = grouped[metrics].mean().join(grouped[metrics].std(ddof=1).add_suffix(" sd"))
        table["fits"] = grouped.size()
        table["n_train"] = grouped["n_train"].mean()
        return table.reset_index()


class _Features:
    """Training and evaluation matrices of a linear classifier, transformed once."""

    def __init__(self, model: TfidfLinear, real: pd.DataFrame, synthetic: pd.DataFrame,
                 evaluation: dict[str, pd.DataFrame], earlier: "_Features | None" = None) -> None:
        if earlier is not None:  # the same real notes: only the synthetic ones are new
            self.features, self.real, self.evaluation = earlier.features, earlier.real, earlier.evaluation
        else:
            self.features = model.fit_features(real["text"]).features
            self.real = self.features.transform(real["text"])
            self.evaluation = {s: self.features.transform(t["text"]) for s, t in evaluation.items()}
        self.synthetic = self.features.transform(synthetic["text"]) if len(synthetic) else None


def _training_set(setting: Setting, real: pd.DataFrame, synthetic: pd.DataFrame, seed: int
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The real and the added rows of one setting and seed (added: synthetic or a control's)."""
    real_part = stratified_subset(real, setting.share_real, seed=seed)
    syn_part = stratified_subset(synthetic, setting.share_synthetic, seed=seed + 10_000)
    if setting.control == "oversampled":
        return oversample_real(real_part, syn_part, seed), synthetic.iloc[0:0]
    if setting.control == "recombined":
        return real_part, recombine_real(real, syn_part, seed)
    return real_part, syn_part


def _fit_and_score(model: CodeClassifier, setting: Setting, real_part: pd.DataFrame,
                   added: pd.DataFrame, matrices: _Features | None, real: pd.DataFrame,
                   synthetic: pd.DataFrame, evaluation: dict[str, pd.DataFrame]) -> dict[str, np.ndarray]:
    """Fit one model and return its scores per evaluation split."""
    import scipy.sparse as sparse

    labels = list(real_part["code"]) + list(added["code"])
    weight = "balanced" if setting.control == "class_weighted" else None
    if matrices is None:
        model.fit(list(real_part["text"]) + list(added["text"]), labels, class_weight=weight)
        return {s: model.scores(list(t["text"])) for s, t in evaluation.items()}
    assert isinstance(model, TfidfLinear)
    model.use_features(matrices.features)
    blocks = [matrices.real[real.index.get_indexer(real_part.index)]]
    if len(added) and setting.control == "recombined":
        blocks.append(matrices.features.transform(added["text"]))
    elif len(added):
        blocks.append(matrices.synthetic[synthetic.index.get_indexer(added.index)])
    model.fit_matrix(sparse.vstack(blocks).tocsr(), labels, class_weight=weight)
    return {s: model.scores_matrix(m) for s, m in matrices.evaluation.items()}


@dataclass
class _Context:
    """What every fit of one :func:`run_settings` call reads (never writes)."""

    real: pd.DataFrame
    synthetic: pd.DataFrame
    evaluation: dict[str, pd.DataFrame]
    matrices: _Features | None
    make_model: Callable[[int], CodeClassifier]
    reuse: dict


def _one_fit(setting: Setting, seed: int, context: _Context) -> tuple[dict[str, Any] | None, str]:
    """One fit (or a reused one): sizes and per-example correctness, or why it was skipped."""
    if not setting.uses_synthetic and (setting, seed) in context.reuse:
        return context.reuse[(setting, seed)], ""
    real_part, added = _training_set(setting, context.real, context.synthetic, seed)
    if pd.concat([real_part["code"], added["code"]]).nunique() < 2:
        return None, (f"{len(real_part) + len(added)} training notes of fewer than 2 codes: too "
                      f"few synthetic notes left after selection, mapping and filtering")
    model = context.make_model(seed)
    scores = _fit_and_score(model, setting, real_part, added, context.matrices, context.real,
                            context.synthetic, context.evaluation)
    return {"n": (len(real_part), len(added)), "describe": model.describe(),
            "correct": {s: {k: correct_at_k(scores[s], t["code"], model.classes_, k) for k in KS}
                        for s, t in context.evaluation.items()}}, ""


def _collect(jobs: list[tuple[Setting, int]], outcomes: list, evaluation: dict[str, pd.DataFrame],
             reuse: dict, description: dict[str, Any]) -> tuple[list, dict, dict, dict[str, Any]]:
    """Rows of accuracies, per-example correctness and skipped settings from the fits."""
    rows: list[dict[str, Any]] = []
    correctness: dict[str, dict[str, dict[int, list[np.ndarray]]]] = {}
    skipped: dict[str, str] = {}
    for (setting, seed), (done, why) in zip(jobs, outcomes):
        if done is None:
            skipped[setting.name] = why
            continue
        description = done["describe"]
        if not setting.uses_synthetic:
            reuse[(setting, seed)] = done
        for split in evaluation:
            rows.append({"setting": setting.name, "share_real": setting.share_real,
                         "share_synthetic": setting.share_synthetic, "control": setting.control,
                         "seed": seed, "split": split, "n_train_real": done["n"][0],
                         "n_train_added": done["n"][1], "n_train": sum(done["n"]),
                         **{f"acc@{k}": float(done["correct"][split][k].mean()) for k in KS}})
            for k in KS:
                correctness.setdefault(setting.name, {}).setdefault(split, {}).setdefault(
                    k, []).append(done["correct"][split][k])
    return rows, correctness, skipped, description


def run_settings(real_train: pd.DataFrame, dev: pd.DataFrame, test: pd.DataFrame,
                 synthetic: pd.DataFrame, *, settings: Sequence[Setting | tuple[float, float]],
                 seeds: int | Sequence[int], make_model: Callable[[int], CodeClassifier],
                 progress: bool = True, reuse: dict | None = None, n_jobs: int = 2) -> ExperimentResult:
    """Train one classifier per setting (and per seed where something is random); acc@1/3/5 on
    dev and test.

    Tables have ``text`` and ``code``. A linear TF-IDF classifier gets its vocabulary from the real
    training notes, transformed once for every setting. ``reuse`` (a dict kept by the caller)
    shares the fits of settings that do not depend on the synthetic table across calls (e.g. one
    call per model × prior); its ``feature_cache`` entry (a dict, may be shared by several
    classifiers' ``reuse``) holds the transformed real notes per TF-IDF option set. ``n_jobs``: fits of a deterministic classifier run side by side.
    """
    from tqdm.auto import tqdm

    seed_list = list(range(seeds)) if isinstance(seeds, (int, np.integer)) else list(seeds)
    if not seed_list:
        raise ParameterError("seeds must be at least 1: the experiment needs one run per setting")
    for name, table in (("real train", real_train), ("dev", dev), ("test", test), ("synthetic", synthetic)):
        missing = {"text", "code"} - set(table.columns)
        if missing:
            raise InputTableError(f"{name} table lacks column(s) {', '.join(sorted(missing))}: "
                                  f"pass tables with 'text' and 'code'")
    settings = [s if isinstance(s, Setting) else Setting(setting_name(*s), float(s[0]), float(s[1]))
                for s in settings]
    real_train, synthetic = real_train.reset_index(drop=True), synthetic.reset_index(drop=True)
    evaluation = {"dev": dev, "test": test}
    probe = make_model(seed_list[0])
    reuse = {} if reuse is None else reuse
    matrices = None
    if isinstance(probe, TfidfLinear):
        # Keyed by the TF-IDF options: classifiers of a panel that pass one ``feature_cache``
        # dict (study.py does) share the vocabulary and the transformed real/dev/test rows.
        cache = reuse.setdefault("feature_cache", {})
        key = repr(sorted(probe.features.describe().items()))
        matrices = _Features(probe, real_train, synthetic, evaluation, cache.get(key))
        cache[key] = matrices
    reuse["features"] = matrices
    description = probe.describe()
    jobs = [(s, seed) for s in settings
            for seed in (seed_list[:1] if s.seed_free and probe.deterministic else seed_list)]
    context = _Context(real_train, synthetic, evaluation, matrices, make_model, reuse)

    # liblinear releases the GIL: fits of different settings run side by side in threads.
    if n_jobs > 1 and len(jobs) > 1 and probe.deterministic:
        from joblib import Parallel, delayed

        outcomes = Parallel(n_jobs=n_jobs, prefer="threads")(
            delayed(_one_fit)(s, seed, context) for s, seed in jobs)
    else:
        outcomes = [_one_fit(s, seed, context)
                    for s, seed in tqdm(jobs, desc="downstream fits", disable=not progress)]
    rows, correctness, skipped, description = _collect(jobs, outcomes, evaluation, reuse, description)
    if not rows:
        raise ParameterError("no setting could be trained: " + "; ".join(
            f"{name}: {why}" for name, why in skipped.items()))
    stacked = {name: {split: {k: np.vstack(v) for k, v in per_k.items()}
                      for split, per_k in per_split.items()}
               for name, per_split in correctness.items()}
    return ExperimentResult(runs=pd.DataFrame(rows), correctness=stacked,
                            codes={s: np.asarray(t["code"]) for s, t in evaluation.items()},
                            train_codes=np.asarray(real_train["code"]), classifier=description,
                            skipped=skipped)


def lowest_dev_accuracy_codes(result: ExperimentResult, quantile: float = 0.25,
                              setting: str = "real_only") -> list[str]:
    """Hard codes, form 2: the quartile of codes with the lowest acc@1 of ``setting`` on **dev**
    (chosen without looking at test); codes without dev visits are left out."""
    if not 0.0 < quantile <= 1.0:
        raise ParameterError(f"hard_quantile={quantile} must lie in (0, 1]")
    if setting not in result.correctness:
        return []
    correct = result.correctness[setting]["dev"][1].mean(axis=0)
    per_code = pd.Series(correct).groupby(result.codes["dev"]).mean()
    cut = float(np.quantile(per_code.to_numpy(), quantile))
    return sorted(per_code[per_code <= cut].index.tolist())


def add_setting(result: ExperimentResult, other: ExperimentResult, source: str, name: str) -> None:
    """Copy setting ``source`` of ``other`` into ``result`` as ``name`` (fits stacked when ``name``
    is already there): how the selection controls (all notes, random same-size) join the table."""
    if source not in other.correctness:
        result.skipped[name] = other.skipped.get(source, f"{source} did not run")
        return
    runs = other.runs[other.runs["setting"] == source].assign(setting=name, control=name)
    result.runs = pd.concat([result.runs, runs], ignore_index=True)
    target = result.correctness.setdefault(name, {})
    for split, per_k in other.correctness[source].items():
        for k, values in per_k.items():
            earlier = target.setdefault(split, {}).get(k)
            target[split][k] = values if earlier is None else np.vstack([earlier, values])
