"""Downstream experiment: do synthetic notes help an ICD-code classifier on RuMedTop3?

The MedSyn paper's claim is that adding synthetic notes to the real training data raises
acc@1/3/5 of a code classifier, most on rare ("hard") codes. This module reproduces the
experiment so the claim can be checked on any synthetic set in the published schema:

* real RuMedTop3 visits (train for training, dev and test for evaluation, never mixed);
* synthetic notes mapped to the 105 RuMedTop3 categories by the first three characters of their
  code; notes of other codes are left out and counted; notes whose style example is a dev/test
  visit are excluded and counted (leakage guard);
* settings given as (share of real train, share of synthetic), subsets stratified by code, the
  paper's grid included;
* two classifiers with one interface (``fit``, ``predict_proba``, ``top_k``): a fast CPU baseline
  (TF-IDF word + character n-grams, logistic regression) and a transformer encoder with a linear
  head (GPU when present);
* acc@k mean ± sd over seeds, per-code accuracy change with paired bootstrap intervals, and the
  same for the rarest quartile of codes by train frequency.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from medsyn_utils.core.codes import category_of
from medsyn_utils.core.errors import CodeError, InputTableError, ModelError, ParameterError

STAGE = "06_downstream_icd"
METRICS_FILE = "downstream_metrics.json"
KS = (1, 3, 5)
# The paper's augmentation grid: (share of real train, share of synthetic).
PAPER_GRID: tuple[tuple[float, float], ...] = (
    (0.5, 0.0), (0.75, 0.0), (1.0, 0.0), (0.5, 0.5), (0.5, 1.0), (1.0, 0.25), (1.0, 0.5),
    (1.0, 1.0), (0.0, 1.0),
)
CORE_SETTINGS: tuple[tuple[float, float], ...] = ((1.0, 0.0), (1.0, 1.0), (0.0, 1.0))
SETTING_ALIASES = {(1.0, 0.0): "real_only", (1.0, 1.0): "real_synthetic", (0.0, 1.0): "synthetic_only"}
CLASSIFIERS = ("tfidf-logreg", "transformer")
REAL_DATA_FILES = ["rumedbench/RuMedTop3/train_v1.jsonl", "rumedbench/RuMedTop3/dev_v1.jsonl",
                   "rumedbench/RuMedTop3/test_v1.jsonl", "medsyn/notes/dev_v1_symp_anam.jsonl"]
CODE_COLUMNS = ("ICD-10", "icd10", "category", "code")
FILTER_COLUMNS = ("passed_filter", "passed", "pass_filter")


# --------------------------------------------------------------------------------------------
# Codes and inputs
# --------------------------------------------------------------------------------------------

def to_category(code: Any) -> str | None:
    """Three-character ICD-10 category of a code (``"j06.9"`` → ``"J06"``), ``None`` if malformed.

    Uses :func:`medsyn_utils.codes.category_of`, so Cyrillic look-alike letters and marks are
    handled the same way as everywhere in the kit (``"М54.5"`` with a Cyrillic М → ``"M54"``).
    """
    if not isinstance(code, str):
        return None
    try:
        return category_of(code)
    except CodeError:
        return None


def load_table(path: str | Path) -> pd.DataFrame:
    """Read a scored dataset or task table: ``.parquet``, ``.csv`` or ``.jsonl``."""
    from medsyn_utils.core.paths import resolve

    path = resolve(path)
    if not path.is_file():
        raise InputTableError(f"input file {path} does not exist: give the path of a scored "
                              f"dataset (scored.parquet / .csv) or the published CSV")
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix in (".csv", ".csv.gz"):
        return pd.read_csv(path, low_memory=False)
    if suffix in (".jsonl", ".json"):
        return pd.read_json(path, lines=suffix == ".jsonl")
    raise InputTableError(f"input file {path} has an unknown type {suffix!r}: use .parquet, "
                          f".csv or .jsonl")


def load_real() -> dict[str, pd.DataFrame]:
    """RuMedTop3 visits per split: ``idx``, ``code``, ``text`` (the complaint text)."""
    from medsyn_utils.core.corpus import load_rumedtop3

    frame = load_rumedtop3()
    return {split: frame[frame["split"] == split][["idx", "code", "text"]].reset_index(drop=True)
            for split in ("train", "dev", "test")}


def _normalise_text(text: Any) -> str:
    if not isinstance(text, str):
        return ""
    return re.sub(r"\s+", " ", text).strip().lower()


@dataclass
class HeldOut:
    """Dev/test visits the synthetic training data must not draw on (ids and texts)."""

    ids: set[str]
    texts: set[str]
    prefixes: dict[str, list[str]] = field(default_factory=dict)  # first 5 words → long texts

    @classmethod
    def from_frames(cls, visits: pd.DataFrame, extra_texts: Iterable[str] = ()) -> "HeldOut":
        """Build from visits (``idx``, ``text``) and other held-out texts (e.g. full dev notes)."""
        texts = {_normalise_text(t) for t in list(visits["text"]) + list(extra_texts)}
        texts.discard("")
        prefixes: dict[str, list[str]] = {}
        for text in texts:
            words = text.split()
            if len(words) >= 5:  # short complaints ("жалоб нет") are too generic to match
                prefixes.setdefault(" ".join(words[:5]), []).append(text)
        return cls(ids={str(i) for i in visits["idx"]}, texts=texts, prefixes=prefixes)

    def matches(self, text: Any) -> bool:
        """Whether a style example equals a held-out text or starts with a long held-out text."""
        norm = _normalise_text(text)
        if not norm:
            return False
        if norm in self.texts:
            return True
        candidates = self.prefixes.get(" ".join(norm.split()[:5]), ())
        return any(norm.startswith(c) for c in candidates)


def held_out_visits() -> HeldOut:
    """Dev and test RuMedTop3 visits plus the full dev notes (complaints + anamnesis).

    Limitation of the text check: the mirror has no full notes for test visits, so a style
    example that holds only the anamnesis part of a *test* visit cannot be recognised by text;
    tables from this kit carry ``example_visit_id`` and are checked by id instead.
    """
    from medsyn_utils.core.corpus import load_full_notes, load_rumedtop3

    visits = load_rumedtop3(("dev", "test"))
    notes = load_full_notes("dev")
    extra = list(notes["full_text"]) + [a for a in notes["anamnesis"] if len(str(a).split()) >= 5]
    return HeldOut.from_frames(visits, extra)


def _find_column(frame: pd.DataFrame, names: Sequence[str]) -> str | None:
    return next((name for name in names if name in frame.columns), None)


def prepare_synthetic(frame: pd.DataFrame, *, categories: Iterable[str],
                      held_out: HeldOut | None = None, use_filter: bool = False,
                      recall_threshold: float = 0.65, precision_threshold: float = 0.7,
                      text_column: str = "response") -> tuple[pd.DataFrame, dict[str, Any]]:
    """Synthetic notes ready for training (``text``, ``code``) and counts of what was left out.

    Steps, each counted: empty responses dropped; with ``use_filter`` notes failing the filter
    dropped (``passed_filter`` when present, else ``symptoms_recall ≥ recall_threshold`` and
    ``anamnesis_precision > precision_threshold`` where a precision exists); codes mapped to their
    three-character category and those outside ``categories`` dropped; notes whose style example is
    a dev/test visit dropped (by ``example_visit_id`` when the table has it, and by comparing the
    ``anamnesis`` text with the held-out texts), as are notes whose text equals a held-out text.
    """
    if text_column not in frame.columns:
        raise InputTableError(f"synthetic table lacks the column {text_column!r}: give a scored "
                              f"dataset in the published schema (columns: response, ICD-10, ...)")
    code_column = _find_column(frame, CODE_COLUMNS)
    if code_column is None:
        raise InputTableError(f"synthetic table lacks a code column (one of {', '.join(CODE_COLUMNS)}):"
                              f" give a scored dataset in the published schema")
    categories = set(categories)
    held_out = held_out if held_out is not None else held_out_visits()
    counts: dict[str, Any] = {"input_rows": int(len(frame))}
    work = frame.copy()
    work["text"] = work[text_column].where(work[text_column].map(lambda t: isinstance(t, str)), "")
    empty = work["text"].str.strip() == ""
    counts["empty_response"] = int(empty.sum())
    work = work[~empty]

    counts["filter"] = "off"
    counts["failed_filter"] = 0
    if use_filter:
        filter_column = _find_column(work, FILTER_COLUMNS)
        if filter_column is not None:
            passed = work[filter_column].astype("boolean").fillna(False).astype(bool)
            counts["filter"] = f"column {filter_column}"
        elif "symptoms_recall" in work.columns or "anamnesis_precision" in work.columns:
            from medsyn_utils.score.scoring import passed_filter

            scores = {c: pd.to_numeric(work[c], errors="coerce") if c in work.columns else
                      pd.Series(np.nan, index=work.index)
                      for c in ("symptoms_recall", "anamnesis_precision")}
            passed = pd.Series(passed_filter(scores["symptoms_recall"], scores["anamnesis_precision"],
                                             recall_threshold, precision_threshold), index=work.index)
            counts["filter"] = (f"symptoms_recall >= {recall_threshold} and "
                                f"anamnesis_precision > {precision_threshold}")
        else:
            raise InputTableError("use_filter is on but the synthetic table has neither "
                                  "passed_filter nor symptoms_recall/anamnesis_precision: score it "
                                  "first (medsyn score) or turn use_filter off")
        counts["failed_filter"] = int((~passed).sum())
        work = work[passed]

    work["code"] = work[code_column].map(to_category)
    outside = ~work["code"].isin(categories)
    counts["outside_task_codes"] = int(outside.sum())
    counts["outside_task_code_examples"] = {
        str(k): int(v) for k, v in work.loc[outside, code_column].astype(str).value_counts().head(10).items()}
    work = work[~outside]

    # By id where the table has it, and by text where it has the example: a train note can start
    # with a dev/test complaint verbatim (repeat visits of one patient), which ids do not show.
    leaked = pd.Series(False, index=work.index)
    checks = []
    if "example_visit_id" in work.columns:
        leaked |= work["example_visit_id"].map(
            lambda v: v is not None and not (isinstance(v, float) and math.isnan(v))
            and str(v) in held_out.ids).astype(bool)
        checks.append("example_visit_id")
    if "anamnesis" in work.columns:
        leaked |= work["anamnesis"].map(held_out.matches).astype(bool)
        checks.append("anamnesis text")
    counts["leakage_check"] = (" and ".join(checks) if checks
                               else "none possible (no example_visit_id or anamnesis column)")
    counts["style_example_is_dev_test"] = int(leaked.sum())
    copied = work["text"].map(lambda t: _normalise_text(t) in held_out.texts)
    counts["text_equals_dev_test"] = int((copied & ~leaked).sum())
    work = work[~(leaked | copied)]
    counts["kept"] = int(len(work))
    counts["kept_codes"] = int(work["code"].nunique())
    keep = ["text", "code"] + [c for c in ("generation_model", "prior", "idx") if c in work.columns]
    return work[keep].reset_index(drop=True), counts


# --------------------------------------------------------------------------------------------
# Metrics and subsets
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
                             f"× {len(classes)} classes: pass predict_proba output and its classes")
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

    ``share`` 0 gives an empty table, 1 the table unchanged (same order, so a deterministic
    classifier fits the same model for every seed).
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


def setting_name(share_real: float, share_synthetic: float) -> str:
    """``real_only`` / ``real_synthetic`` / ``synthetic_only`` or ``real0.5_syn0.25``."""
    key = (float(share_real), float(share_synthetic))
    return SETTING_ALIASES.get(key, f"real{share_real:g}_syn{share_synthetic:g}")


def experiment_settings(grid: bool) -> list[tuple[float, float]]:
    """The settings to run: the three core ones, or the paper's grid (which contains them)."""
    return list(PAPER_GRID) if grid else list(CORE_SETTINGS)


def hard_codes(train_codes: Sequence[str], quantile: float = 0.25) -> list[str]:
    """The rarest codes by train frequency: count at or below the ``quantile`` of code counts."""
    if not 0.0 < quantile <= 1.0:
        raise ParameterError(f"hard_quantile={quantile} must lie in (0, 1]")
    counts = pd.Series(list(train_codes)).value_counts()
    if counts.empty:
        return []
    cut = float(np.quantile(counts.to_numpy(), quantile))
    return sorted(counts[counts <= cut].index.tolist())


# --------------------------------------------------------------------------------------------
# Classifiers: one interface
# --------------------------------------------------------------------------------------------

class CodeClassifier:
    """Interface of the classifiers: ``fit(texts, labels)``, ``predict_proba(texts)``, ``top_k``."""

    name = "base"
    deterministic = False  # True: the same training set always gives the same model
    classes_: np.ndarray

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> "CodeClassifier":
        raise NotImplementedError

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def top_k(self, texts: Sequence[str], k: int = 3) -> list[list[str]]:
        """The ``k`` most likely codes per text, best first."""
        proba = self.predict_proba(texts)
        top = np.argsort(-proba, axis=1, kind="stable")[:, :k]
        return [[str(c) for c in self.classes_[row]] for row in top]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


def _check_training_labels(texts: Sequence[str], labels: Sequence[str]) -> None:
    if len(texts) != len(labels):
        raise ParameterError(f"{len(texts)} texts but {len(labels)} labels: pass one label per text")
    if len(set(labels)) < 2:
        raise ParameterError(f"training set has {len(set(labels))} distinct code(s): a classifier "
                             f"needs at least 2; use larger shares of real or synthetic notes")


class TfidfLogReg(CodeClassifier):
    """TF-IDF over word and character n-grams, multinomial logistic regression (scikit-learn).

    The fast CPU baseline: on RuMedTop3 test about 48 / 72 acc@1 / acc@3 with the defaults
    (RuMedBench's own baseline: 39.5 / 62.3), about 10 s per fit on 2 cores; deterministic (lbfgs),
    so repeated seeds only matter where the training subset changes.
    """

    name = "tfidf-logreg"
    deterministic = True

    def __init__(self, *, C: float = 10.0, word_ngrams: tuple[int, int] = (1, 2),
                 char_ngrams: tuple[int, int] | None = (2, 4), max_features: int = 20000,
                 max_iter: int = 100, tol: float = 1e-3, seed: int = 0) -> None:
        if max_features < 2:
            raise ParameterError(f"max_features={max_features} must be at least 2")
        self.C, self.word_ngrams, self.char_ngrams = C, tuple(word_ngrams), char_ngrams
        self.max_features, self.max_iter, self.tol, self.seed = max_features, max_iter, tol, seed

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> "TfidfLogReg":
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import FeatureUnion

        _check_training_labels(texts, labels)
        # The solver's cost grows with features × codes: the vocabulary is capped (half words,
        # half character n-grams), dropping n-grams seen in one note only.
        min_df = 2 if len(texts) >= 50 else 1
        per_part = self.max_features // 2 if self.char_ngrams else self.max_features
        parts = [("word", TfidfVectorizer(analyzer="word", ngram_range=self.word_ngrams,
                                          sublinear_tf=True, min_df=min_df, max_features=per_part,
                                          dtype=np.float32))]
        if self.char_ngrams:
            parts.append(("char", TfidfVectorizer(
                analyzer="char_wb", ngram_range=tuple(self.char_ngrams), sublinear_tf=True,
                min_df=min_df, max_features=per_part, dtype=np.float32)))
        self.vectorizer_ = FeatureUnion(parts)
        features = self.vectorizer_.fit_transform(list(texts))
        self.model_ = LogisticRegression(C=self.C, max_iter=self.max_iter, tol=self.tol,
                                         random_state=self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            # small synthetic-only sets have about one note per code: expected, not a mistake
            warnings.filterwarnings("ignore", message="The number of unique classes is greater")
            self.model_.fit(features, np.asarray(labels))
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if not hasattr(self, "model_"):
            raise ModelError("TfidfLogReg is not fitted: call fit(texts, labels) first")
        return self.model_.predict_proba(self.vectorizer_.transform(list(texts)))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "C": self.C, "word_ngrams": list(self.word_ngrams),
                "char_ngrams": list(self.char_ngrams) if self.char_ngrams else None,
                "max_features": self.max_features, "max_iter": self.max_iter,
                "tol": self.tol}


class TransformerClassifier(CodeClassifier):
    """An encoder (any hub id or local path) with a linear head over the first token, fine-tuned.

    The paper's classifier is ``DeepPavlov/rubert-base-cased`` with a linear head. Runs on a GPU
    when one is present (bf16 autocast), otherwise on the CPU (slow for base-size encoders).
    ``max_steps`` > 0 caps the optimisation steps (tests and smoke runs).
    """

    name = "transformer"
    deterministic = False

    def __init__(self, encoder: str = "DeepPavlov/rubert-base-cased", *, max_length: int = 128,
                 batch_size: int = 16, epochs: int = 3, learning_rate: float = 2e-5,
                 head_learning_rate: float = 1e-3, weight_decay: float = 0.01,
                 warmup_ratio: float = 0.1, max_steps: int = 0, seed: int = 0,
                 device: str | None = None) -> None:
        self.encoder, self.max_length, self.batch_size, self.epochs = encoder, max_length, batch_size, epochs
        self.learning_rate, self.head_learning_rate = learning_rate, head_learning_rate
        self.weight_decay, self.warmup_ratio, self.max_steps = weight_decay, warmup_ratio, max_steps
        self.seed, self.device = seed, device

    def _load(self) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        try:
            self.tokenizer_ = AutoTokenizer.from_pretrained(self.encoder)
            self.encoder_ = AutoModel.from_pretrained(self.encoder)
        except (OSError, ValueError) as error:
            raise ModelError(f"encoder {self.encoder!r} cannot be loaded ({type(error).__name__}): "
                             f"give a local model folder, or a hub id on a machine with internet "
                             f"(HF_HUB_OFFLINE unset)") from error
        self.device_ = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    def _batches(self, texts: list[str]):
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start:start + self.batch_size]
            yield self.tokenizer_(chunk, padding=True, truncation=True, max_length=self.max_length,
                                  return_tensors="pt")

    def _logits(self, batch) -> "Any":
        import torch

        batch = {k: v.to(self.device_) for k, v in batch.items()
                 if k in ("input_ids", "attention_mask", "token_type_ids")}
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.device_.type == "cuda"
                    else torch.autocast("cpu", enabled=False))
        with autocast:
            hidden = self.encoder_(**batch).last_hidden_state[:, 0]
            return self.head_(self.dropout_(hidden)).float()

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> "TransformerClassifier":
        import torch
        from tqdm.auto import tqdm
        from transformers import get_linear_schedule_with_warmup

        _check_training_labels(texts, labels)
        torch.manual_seed(self.seed)
        self._load()
        self.classes_ = np.array(sorted(set(labels)))
        index = {c: i for i, c in enumerate(self.classes_)}
        targets = torch.tensor([index[c] for c in labels])
        hidden = self.encoder_.config.hidden_size
        self.head_ = torch.nn.Linear(hidden, len(self.classes_))
        self.dropout_ = torch.nn.Dropout(0.1)
        self.encoder_.to(self.device_)
        self.head_.to(self.device_)
        texts = list(texts)
        per_epoch = math.ceil(len(texts) / self.batch_size)
        total = per_epoch * self.epochs
        if self.max_steps > 0:
            total = min(total, self.max_steps)
        optimiser = torch.optim.AdamW([
            {"params": self.encoder_.parameters(), "lr": self.learning_rate},
            {"params": self.head_.parameters(), "lr": self.head_learning_rate},
        ], weight_decay=self.weight_decay)
        schedule = get_linear_schedule_with_warmup(optimiser, int(self.warmup_ratio * total), total)
        generator = torch.Generator().manual_seed(self.seed)
        self.encoder_.train()
        self.dropout_.train()
        step = 0
        with tqdm(total=total, desc=f"fine-tuning {Path(str(self.encoder)).name}", leave=False) as bar:
            while step < total:
                order = torch.randperm(len(texts), generator=generator).tolist()
                for start in range(0, len(order), self.batch_size):
                    if step >= total:
                        break
                    ids = order[start:start + self.batch_size]
                    batch = self.tokenizer_([texts[i] for i in ids], padding=True, truncation=True,
                                            max_length=self.max_length, return_tensors="pt")
                    loss = torch.nn.functional.cross_entropy(self._logits(batch),
                                                             targets[ids].to(self.device_))
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(
                        list(self.encoder_.parameters()) + list(self.head_.parameters()), 1.0)
                    optimiser.step()
                    schedule.step()
                    optimiser.zero_grad(set_to_none=True)
                    step += 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss.item():.3f}")
        self.encoder_.eval()
        self.dropout_.eval()
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        if not hasattr(self, "head_"):
            raise ModelError("TransformerClassifier is not fitted: call fit(texts, labels) first")
        out = []
        with torch.no_grad():
            for batch in self._batches(list(texts)):
                out.append(torch.softmax(self._logits(batch), dim=-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.classes_)))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "encoder": str(self.encoder), "max_length": self.max_length,
                "batch_size": self.batch_size, "epochs": self.epochs,
                "learning_rate": self.learning_rate, "head_learning_rate": self.head_learning_rate,
                "max_steps": self.max_steps,
                "device": str(getattr(self, "device_", self.device or "auto"))}


def make_classifier(kind: str = "tfidf-logreg", *, seed: int = 0, **options: Any) -> CodeClassifier:
    """A fresh classifier of ``kind`` (``tfidf-logreg`` or ``transformer``) with ``options``."""
    if kind == "tfidf-logreg":
        allowed = {"C", "word_ngrams", "char_ngrams", "max_features", "max_iter", "tol"}
        cls: type[CodeClassifier] = TfidfLogReg
    elif kind == "transformer":
        allowed = {"encoder", "max_length", "batch_size", "epochs", "learning_rate",
                   "head_learning_rate", "weight_decay", "warmup_ratio", "max_steps", "device"}
        cls = TransformerClassifier
    else:
        raise ParameterError(f"classifier={kind!r} is unknown: use one of {', '.join(CLASSIFIERS)}")
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ParameterError(f"option(s) {', '.join(unknown)} do not apply to classifier {kind!r}: "
                             f"valid ones are {', '.join(sorted(allowed))}")
    return cls(seed=seed, **options)


# --------------------------------------------------------------------------------------------
# The experiment
# --------------------------------------------------------------------------------------------

@dataclass
class ExperimentResult:
    """Accuracies per setting, seed and split, and per-example test correctness for the deltas."""

    runs: pd.DataFrame                      # one row per setting × seed × split
    correctness: dict[str, dict[int, np.ndarray]]  # setting → k → (seeds, n_test) booleans
    test_codes: np.ndarray
    train_codes: np.ndarray
    classifier: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)  # setting → why it could not run

    def summary(self) -> pd.DataFrame:
        """Mean ± sd over seeds per setting and split (rows) and k (columns)."""
        metrics = [f"acc@{k}" for k in KS]
        grouped = self.runs.groupby(["setting", "share_real", "share_synthetic", "split"], sort=False)
        mean = grouped[metrics].mean()
        sd = grouped[metrics].std(ddof=1).fillna(0.0)
        table = mean.join(sd.add_suffix(" sd"))
        table["seeds"] = grouped.size()
        table["n_train"] = grouped["n_train"].mean()
        return table.reset_index()


def run_settings(real_train: pd.DataFrame, dev: pd.DataFrame, test: pd.DataFrame,
                 synthetic: pd.DataFrame, *, settings: Sequence[tuple[float, float]],
                 seeds: int | Sequence[int], make_model: Callable[[int], CodeClassifier],
                 progress: bool = True) -> ExperimentResult:
    """Train one classifier per setting and seed, evaluate acc@1/3/5 on dev and test.

    Tables have columns ``text`` and ``code``. Real and synthetic subsets are stratified by code
    with the seed. A deterministic classifier whose training set does not depend on the seed
    (shares 0 or 1 only) is fitted once and its scores reused for every seed.
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
    rows: list[dict[str, Any]] = []
    correctness: dict[str, dict[int, list[np.ndarray]]] = {}
    cache: dict[tuple[float, float], tuple[dict, dict, np.ndarray, dict]] = {}
    description: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    jobs = [(float(r), float(s), seed) for r, s in settings for seed in seed_list]
    for share_real, share_syn, seed in tqdm(jobs, desc="downstream fits", disable=not progress):
        name = setting_name(share_real, share_syn)
        real_part = stratified_subset(real_train, share_real, seed=seed)
        syn_part = stratified_subset(synthetic, share_syn, seed=seed + 10_000)
        fixed = share_real in (0.0, 1.0) and share_syn in (0.0, 1.0)
        key = (share_real, share_syn)
        model = make_model(seed)
        if fixed and model.deterministic and key in cache:
            scores, correct, n_train, description = cache[key]
        else:
            texts = list(real_part["text"]) + list(syn_part["text"])
            labels = list(real_part["code"]) + list(syn_part["code"])
            if len(set(labels)) < 2:
                skipped[name] = (f"{len(texts)} training notes of {len(set(labels))} code(s): "
                                 f"too few synthetic notes left after mapping and filtering")
                continue
            model.fit(texts, labels)
            description = model.describe()
            scores, correct = {}, {}
            for split, table in (("dev", dev), ("test", test)):
                proba = model.predict_proba(list(table["text"]))
                scores[split] = top_k_accuracy(proba, table["code"], model.classes_)
                if split == "test":
                    correct = {k: correct_at_k(proba, table["code"], model.classes_, k) for k in KS}
            n_train = np.array([len(real_part), len(syn_part)])
            if fixed and model.deterministic:
                cache[key] = (scores, correct, n_train, description)
        for split in ("dev", "test"):
            rows.append({"setting": name, "share_real": share_real, "share_synthetic": share_syn,
                         "seed": seed, "split": split, "n_train_real": int(n_train[0]),
                         "n_train_synthetic": int(n_train[1]), "n_train": int(n_train.sum()),
                         **scores[split]})
        for k in KS:
            correctness.setdefault(name, {}).setdefault(k, []).append(correct[k])
    stacked = {name: {k: np.vstack(v) for k, v in per_k.items()} for name, per_k in correctness.items()}
    if not rows:
        raise ParameterError("no setting could be trained: " + "; ".join(
            f"{name}: {why}" for name, why in skipped.items()))
    return ExperimentResult(runs=pd.DataFrame(rows), correctness=stacked,
                            test_codes=np.asarray(test["code"]), train_codes=np.asarray(real_train["code"]),
                            classifier=description, skipped=skipped)


def _bootstrap_diff(base: np.ndarray, other: np.ndarray, n_boot: int,
                    rng: np.random.Generator) -> tuple[float, float]:
    """Paired bootstrap 95 % interval of mean(other − base) over examples."""
    n = len(base)
    if n == 0 or n_boot < 1:
        return float("nan"), float("nan")
    diff = other - base
    draws = diff[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    low, high = np.quantile(draws, [0.025, 0.975])
    return float(low), float(high)


def per_code_change(result: ExperimentResult, *, base: str = "real_only",
                    other: str = "real_synthetic", k: int = 1, n_bootstrap: int = 1000,
                    hard: Sequence[str] = (), seed: int = 0) -> pd.DataFrame:
    """Per test code: acc@k of ``base`` and ``other`` (mean over seeds), the change and its 95 % CI.

    The interval is a paired bootstrap over the code's test visits (the same resampled visits for
    both settings), so it reflects test-set size, not seed noise.
    """
    for name in (base, other):
        if name not in result.correctness:
            raise ParameterError(f"setting {name!r} was not run: run it (e.g. settings include "
                                 f"{name}) or compare settings among {', '.join(result.correctness)}")
    rng = np.random.default_rng(seed)
    a = result.correctness[base][k].mean(axis=0)
    b = result.correctness[other][k].mean(axis=0)
    train_counts = pd.Series(result.train_codes).value_counts()
    hard_set = set(hard)
    rows = []
    for code in sorted(set(result.test_codes)):
        mask = result.test_codes == code
        low, high = _bootstrap_diff(a[mask], b[mask], n_bootstrap, rng)
        rows.append({"code": code, "n_train": int(train_counts.get(code, 0)), "n_test": int(mask.sum()),
                     f"acc@{k} {base}": float(a[mask].mean()), f"acc@{k} {other}": float(b[mask].mean()),
                     "change": float(b[mask].mean() - a[mask].mean()), "ci_low": low, "ci_high": high,
                     "hard": code in hard_set})
    return pd.DataFrame(rows).sort_values(["change", "code"], ascending=[False, True]).reset_index(drop=True)


def group_change(result: ExperimentResult, codes: Iterable[str] | None = None, *,
                 base: str = "real_only", other: str = "real_synthetic", ks: Sequence[int] = (1, 3),
                 n_bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """acc@k of two settings over the test visits of ``codes`` (all codes when ``None``), with CIs.

    Reports the absolute change (points of accuracy) and the relative change (% of the base).
    """
    rng = np.random.default_rng(seed)
    mask = (np.ones(len(result.test_codes), dtype=bool) if codes is None
            else np.isin(result.test_codes, list(codes)))
    out: dict[str, Any] = {"n_test": int(mask.sum()),
                           "n_codes": int(len(set(result.test_codes[mask])))}
    for k in ks:
        a = result.correctness[base][k].mean(axis=0)[mask]
        b = result.correctness[other][k].mean(axis=0)[mask]
        low, high = _bootstrap_diff(a, b, n_bootstrap, rng)
        base_acc = float(a.mean()) if len(a) else float("nan")
        other_acc = float(b.mean()) if len(b) else float("nan")
        out[f"acc@{k}"] = {
            base: base_acc, other: other_acc, "change": other_acc - base_acc, "ci_low": low,
            "ci_high": high,
            "relative_change_pct": (100 * (other_acc - base_acc) / base_acc) if base_acc else float("nan"),
        }
    return out


def _stat(values: pd.Series) -> dict[str, Any]:
    values = values.astype(float)
    return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "values": [float(v) for v in values]}


def build_metrics(result: ExperimentResult, counts: dict[str, Any], *, hard: Sequence[str],
                  n_bootstrap: int = 1000, base: str = "real_only", other: str = "real_synthetic",
                  per_code: pd.DataFrame | None = None, seed: int = 0) -> dict[str, Any]:
    """The content of ``downstream_metrics.json``: settings, comparison, hard codes, per code."""
    settings = []
    for (name, share_real, share_syn), group in result.runs.groupby(
            ["setting", "share_real", "share_synthetic"], sort=False):
        entry: dict[str, Any] = {"setting": name, "share_real": share_real, "share_synthetic": share_syn,
                                 "n_train_real": float(group["n_train_real"].mean()),
                                 "n_train_synthetic": float(group["n_train_synthetic"].mean()),
                                 "seeds": int(group["seed"].nunique())}
        for split, part in group.groupby("split"):
            entry[split] = {f"acc@{k}": _stat(part[f"acc@{k}"]) for k in KS}
        settings.append(entry)
    metrics: dict[str, Any] = {"classifier": result.classifier, "synthetic": counts,
                               "settings": settings, "skipped_settings": dict(result.skipped),
                               "hard_codes": list(hard)}
    summary: dict[str, float] = {}
    for entry in settings:
        for split in ("dev", "test"):
            for k in KS:
                summary[f"{entry['setting']}_{split}_acc@{k}"] = entry[split][f"acc@{k}"]["mean"]
    metrics["summary"] = summary
    if base in result.correctness and other in result.correctness:
        metrics["comparison"] = {
            "base": base, "other": other,
            "all_codes": group_change(result, None, base=base, other=other,
                                      n_bootstrap=n_bootstrap, seed=seed),
            "hard_codes": group_change(result, hard, base=base, other=other,
                                       n_bootstrap=n_bootstrap, seed=seed),
        }
        if per_code is None:
            per_code = per_code_change(result, base=base, other=other, hard=hard,
                                       n_bootstrap=n_bootstrap, seed=seed)
    if per_code is not None:
        metrics["per_code"] = per_code.to_dict(orient="records")
    return metrics


def write_outputs(metrics: dict[str, Any], result: ExperimentResult, out_dir: str | Path,
                  per_code: pd.DataFrame | None = None, *, figures: bool = True) -> dict[str, Path]:
    """Write ``downstream_metrics.json`` and the figures (accuracy per setting, per-code change)."""
    from medsyn_utils.core.provenance import write_json_atomic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": write_json_atomic(out_dir / METRICS_FILE, metrics)}
    if figures:
        from medsyn_utils.analysis import plots
        folder = out_dir / "figures" / "downstream"
        records = [plots.save_figure(plots.plot_accuracy_per_setting(result.summary()), folder,
                                     "accuracy_per_setting",
                                     "acc@1/3/5 on dev and test per setting (mean ± sd over seeds)")]
        if per_code is not None and not per_code.empty:
            records.append(plots.save_figure(plots.plot_per_code_change(per_code), folder,
                                             "per_code_change",
                                             "per-code change in acc@1 with 95 % paired bootstrap "
                                             "intervals; hard (rarest-quartile) codes marked"))
        paths["index"] = plots.write_index(records, folder, title="Downstream ICD experiment")
        for record in records:
            paths[record.name] = Path(record.files[0])
    return paths


def stage_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """Key numbers for the stage record: test acc@1/3 of the core settings, counts, the deltas."""
    summary = metrics.get("summary", {})
    out: dict[str, Any] = {}
    for name in ("real_only", "real_synthetic", "synthetic_only"):
        for k in (1, 3, 5):
            key = f"{name}_test_acc@{k}"
            if key in summary:
                out[key] = summary[key]
    counts = metrics.get("synthetic", {})
    for key in ("input_rows", "kept", "kept_codes", "outside_task_codes", "style_example_is_dev_test",
                "text_equals_dev_test", "failed_filter", "empty_response"):
        if key in counts:
            out[f"synthetic_{key}"] = counts[key]
    comparison = metrics.get("comparison")
    if comparison:
        for group in ("all_codes", "hard_codes"):
            for k in (1, 3):
                entry = comparison[group].get(f"acc@{k}", {})
                out[f"{group}_change_acc@{k}"] = entry.get("change")
                out[f"{group}_change_acc@{k}_ci"] = [entry.get("ci_low"), entry.get("ci_high")]
        out["hard_codes_n_test"] = comparison["hard_codes"]["n_test"]
    out["settings_run"] = [entry["setting"] for entry in metrics.get("settings", [])]
    out["settings_skipped"] = metrics.get("skipped_settings", {})
    return out


def classifier_factory(kind: str, *, char_ngrams: bool = True, max_features: int = 20000,
                       max_iter: int = 100,
                       encoder: str = "DeepPavlov/rubert-base-cased", epochs: int = 3,
                       batch_size: int = 16, learning_rate: float = 2e-5, max_length: int = 128,
                       max_steps: int = 0) -> Callable[[int], CodeClassifier]:
    """``seed → classifier`` from the notebook's flat parameters (each kind takes its own)."""
    if kind == "tfidf-logreg":
        options: dict[str, Any] = {"char_ngrams": (2, 4) if char_ngrams else None,
                                   "max_features": max_features, "max_iter": max_iter}
    elif kind == "transformer":
        options = {"encoder": encoder, "epochs": epochs, "batch_size": batch_size,
                   "learning_rate": learning_rate, "max_length": max_length, "max_steps": max_steps}
    else:
        raise ParameterError(f"classifier={kind!r} is unknown: use one of {', '.join(CLASSIFIERS)}")
    make_classifier(kind, seed=0, **options)  # validates the options now, not after the first fit
    return lambda seed: make_classifier(kind, seed=seed, **options)


def run_downstream(synthetic: pd.DataFrame | str | Path, out_dir: str | Path, *,
                   classifier: str = "tfidf-logreg", seeds: int = 3, grid: bool = False,
                   use_filter: bool = False, recall_threshold: float = 0.65,
                   precision_threshold: float = 0.7, n_bootstrap: int = 1000,
                   hard_quantile: float = 0.25, classifier_options: dict[str, Any] | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """The whole experiment in one call (the CLI and scripts): prepare, run, compare, write."""
    frame = synthetic if isinstance(synthetic, pd.DataFrame) else load_table(synthetic)
    real = load_real()
    categories = sorted(real["train"]["code"].unique())
    prepared, counts = prepare_synthetic(frame, categories=categories, use_filter=use_filter,
                                         recall_threshold=recall_threshold,
                                         precision_threshold=precision_threshold)
    options = dict(classifier_options or {})
    result = run_settings(real["train"], real["dev"], real["test"], prepared,
                          settings=experiment_settings(grid), seeds=seeds,
                          make_model=lambda s: make_classifier(classifier, seed=s, **options),
                          progress=progress)
    hard = hard_codes(real["train"]["code"], hard_quantile)
    per_code = per_code_change(result, hard=hard, n_bootstrap=n_bootstrap)
    metrics = build_metrics(result, counts, hard=hard, n_bootstrap=n_bootstrap, per_code=per_code)
    write_outputs(metrics, result, out_dir, per_code)
    return metrics


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
