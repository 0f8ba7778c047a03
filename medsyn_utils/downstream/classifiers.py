"""ICD-code classifiers with one interface: ``fit``, ``scores`` (higher = more likely), ``top_k``.

The panel (:data:`PANEL`) runs every setting: ``tfidf-logreg`` (the default: the panel's dev
winner; the dev numbers of the panel are :data:`medsyn_utils.downstream.tuning.PANEL_DEV`),
``tfidf-svm`` and ``e5-logreg`` (:mod:`medsyn_utils.downstream.embedding`). The TF-IDF pair is
built for the downstream question, not for a leaderboard:

* its TF-IDF vocabulary and IDF are fitted on the **real training notes only** (all 4,690), once,
  and kept for every setting. Synthetic notes are about ten times longer than a real complaint; a
  vocabulary fitted on real + synthetic text (and capped) is filled by their words and crowds out
  the real notes' words, which flipped the sign of the paper's result in an earlier version of
  this kit. With a fixed real vocabulary, adding synthetic notes changes only the training rows;
* ``tfidf-logreg``: L2 logistic regression, by default fitted by SGD (``solver: sgd``, one-vs-rest
  log loss, ``alpha = 1 / (C × n_train)``: the objective of ``LogisticRegression(C)``), C 10,
  chosen on dev; a fit takes about as long as two SVM fits, where the multinomial lbfgs solver
  (``solver: lbfgs``, same dev acc@1) takes 5–10 times longer (``medsyn bench downstream``);
* ``tfidf-svm``: a linear SVM (liblinear, one-vs-rest) ranking codes by its decision function;
* their settings (n-gram ranges, ``min_df``, ``C``) were chosen on RuMedTop3 **dev**
  (:mod:`medsyn_utils.downstream.tuning`, results in ``benchmarks/README.md``), never on test.

``transformer`` (an encoder with a linear head, the paper's kind) lives in
:mod:`medsyn_utils.downstream.transformer`.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import numpy as np

from medsyn_utils.core.errors import ModelError, ParameterError
from medsyn_utils.downstream import embedding, transformer
from medsyn_utils.downstream.base import CodeClassifier, balanced_weights, check_training_labels

__all__ = ["CodeClassifier", "balanced_weights", "check_training_labels", "make_classifier",
           "classifier_factory", "TfidfLinear", "TfidfFeatures", "CLASSIFIERS", "PANEL"]

# Chosen on dev (see tuning.DEV_SEARCH_RESULT and benchmarks/README.md).
DEFAULT_TFIDF = {"word_ngrams": (1, 2), "char_ngrams": (2, 4), "min_df": 2, "max_features": None}
DEFAULT_C = 0.3
LINEAR_KINDS = ("tfidf-svm", "tfidf-logreg")
DEFAULT_LOGREG_C = 10.0  # chosen on dev (tuning.PANEL_DEV, sgd solver)
CLASSIFIERS = (*LINEAR_KINDS, "e5-logreg", "transformer")
# The panel every setting runs with (each tuned on dev only); the verdict needs all of them.
# The first is the default classifier: the dev winner (tuning.PANEL_DEV).
PANEL = ("tfidf-logreg", "tfidf-svm", "e5-logreg")
DEFAULT_LOGREG_MAX_ITER = 300  # lbfgs iterations of tfidf-logreg (its dev numbers used 300)
LOGREG_SOLVERS = ("sgd", "lbfgs")  # tfidf-logreg: one-vs-rest SGD (fast), or multinomial lbfgs
DEFAULT_LOGREG_SOLVER = "sgd"
SGD_TOL, SGD_SEED = 1e-4, 0


class TfidfFeatures:
    """Word and character n-gram TF-IDF, fitted once (on the real training notes)."""

    def __init__(self, *, word_ngrams: Sequence[int] = (1, 2), char_ngrams: Sequence[int] | None = (2, 4),
                 min_df: int = 2, max_features: int | None = None) -> None:
        if max_features is not None and max_features < 2:
            raise ParameterError(f"max_features={max_features} must be at least 2, or None for no cap")
        if min_df < 1:
            raise ParameterError(f"min_df={min_df} must be at least 1")
        self.word_ngrams = tuple(word_ngrams)
        self.char_ngrams = tuple(char_ngrams) if char_ngrams else None
        self.min_df, self.max_features = int(min_df), max_features

    def fit(self, texts: Sequence[str]) -> "TfidfFeatures":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import FeatureUnion

        texts = list(texts)
        min_df = self.min_df if len(texts) >= 50 else 1  # tiny sets: keep every n-gram
        per_part = (self.max_features // 2 if self.char_ngrams and self.max_features
                    else self.max_features)
        parts = [("word", TfidfVectorizer(analyzer="word", ngram_range=self.word_ngrams,
                                          sublinear_tf=True, min_df=min_df, max_features=per_part,
                                          dtype=np.float32))]
        if self.char_ngrams:
            parts.append(("char", TfidfVectorizer(analyzer="char_wb", ngram_range=self.char_ngrams,
                                                  sublinear_tf=True, min_df=min_df,
                                                  max_features=per_part, dtype=np.float32)))
        self.union_ = FeatureUnion(parts).fit(texts)
        self.n_fitted_on_ = len(texts)
        return self

    def transform(self, texts: Sequence[str]) -> Any:
        if not hasattr(self, "union_"):
            raise ModelError("TfidfFeatures is not fitted: call fit(real train texts) first")
        return self.union_.transform(list(texts)).tocsr()

    def vocabulary(self) -> set[str]:
        """Every feature name (``word__…``, ``char__…``)."""
        return set(self.union_.get_feature_names_out())

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"word_ngrams": list(self.word_ngrams),
                               "char_ngrams": list(self.char_ngrams) if self.char_ngrams else None,
                               "min_df": self.min_df, "max_features": self.max_features,
                               "vocabulary_fitted_on": "real training notes only"}
        if hasattr(self, "union_"):
            out["n_features"] = int(len(self.union_.get_feature_names_out()))
            out["n_vocabulary_notes"] = int(self.n_fitted_on_)
        return out


class TfidfLinear(CodeClassifier):
    """TF-IDF features fitted on real notes + a linear SVM (``svm``) or logistic regression.

    Call :meth:`fit_features` with the real training notes first (the experiment does, once,
    and shares the features between settings); without it :meth:`fit` fits them on its own
    texts, for standalone use.
    """

    deterministic = True

    def __init__(self, estimator: str = "svm", *, C: float = DEFAULT_C,
                 word_ngrams: Sequence[int] = DEFAULT_TFIDF["word_ngrams"],
                 char_ngrams: Sequence[int] | None = DEFAULT_TFIDF["char_ngrams"],
                 min_df: int = DEFAULT_TFIDF["min_df"], max_features: int | None = None,
                 max_iter: int = 1000, solver: str = DEFAULT_LOGREG_SOLVER, seed: int = 0) -> None:
        if estimator not in ("svm", "logreg"):
            raise ParameterError(f"estimator={estimator!r} is unknown: use svm or logreg")
        if not (isinstance(C, (int, float)) and math.isfinite(C) and C > 0):
            raise ParameterError(f"C={C} must be a finite positive number")
        if solver not in LOGREG_SOLVERS:
            raise ParameterError(f"solver={solver!r} is unknown: use {' or '.join(LOGREG_SOLVERS)}")
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise ParameterError(f"max_iter={max_iter} must be a positive integer")
        self.estimator, self.C, self.max_iter, self.seed = estimator, float(C), int(max_iter), seed
        self.solver = solver if estimator == "logreg" else "liblinear"
        self.name = f"tfidf-{estimator}"
        self.features = TfidfFeatures(word_ngrams=word_ngrams, char_ngrams=char_ngrams,
                                      min_df=min_df, max_features=max_features)

    def fit_features(self, real_texts: Sequence[str]) -> "TfidfLinear":
        self.features.fit(real_texts)
        return self

    def use_features(self, features: TfidfFeatures) -> "TfidfLinear":
        """Share already fitted features (the experiment fits them once for every setting)."""
        self.features = features
        return self

    def fit(self, texts: Sequence[str], labels: Sequence[str],
            class_weight: str | None = None) -> "TfidfLinear":
        check_training_labels(texts, labels)
        if not hasattr(self.features, "union_"):
            self.features.fit(texts)
        return self.fit_matrix(self.features.transform(texts), labels, class_weight)

    def fit_matrix(self, matrix: Any, labels: Sequence[str],
                   class_weight: str | None = None) -> "TfidfLinear":
        """Fit on rows already transformed by :attr:`features`."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from sklearn.svm import LinearSVC

        check_training_labels(range(matrix.shape[0]), labels)
        if self.estimator == "svm":
            model: Any = LinearSVC(C=self.C, class_weight=class_weight, max_iter=self.max_iter,
                                   random_state=self.seed)
        elif self.solver == "sgd":
            model = sgd_logreg(self.C, matrix.shape[0], class_weight, self.max_iter)
        else:
            model = LogisticRegression(C=self.C, class_weight=class_weight, max_iter=self.max_iter,
                                       random_state=self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.filterwarnings("ignore", message="The number of unique classes is greater")
            model.fit(matrix, np.asarray(labels))
        self.model_, self.classes_ = model, model.classes_
        return self

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        return self.scores_matrix(self.features.transform(texts))

    def scores_matrix(self, matrix: Any) -> np.ndarray:
        if not hasattr(self, "model_"):
            raise ModelError(f"{self.name} is not fitted: call fit(texts, labels) first")
        values = self.model_.decision_function(matrix)
        if values.ndim == 1:  # two classes: one column for the second
            values = np.stack([-values, values], axis=1)
        return values

    def describe(self) -> dict[str, Any]:
        solver = {"liblinear": "liblinear (one-vs-rest)", "lbfgs": "lbfgs (multinomial)",
                  "sgd": f"sgd (one-vs-rest log loss, alpha = 1 / (C × n_train), tol {SGD_TOL}, "
                         f"shuffle seed {SGD_SEED})"}[self.solver]
        return {"name": self.name, "C": self.C, "max_iter": self.max_iter, "solver": solver,
                "ranking": "decision function", **self.features.describe()}


def sgd_logreg(C: float, n_train: int, class_weight: str | None, max_iter: int) -> Any:
    """L2 logistic regression (log loss, one-vs-rest) fitted by stochastic gradient descent.

    ``alpha = 1 / (C × n_train)`` makes its objective the one ``LogisticRegression(C=C)``
    minimises (mean instead of summed loss), so ``C`` means the same for both solvers. The
    shuffle seed is fixed (:data:`SGD_SEED`): the same training set gives the same model, as
    with the deterministic solvers, and the experiment fits a full set once.
    """
    from sklearn.linear_model import SGDClassifier

    return SGDClassifier(loss="log_loss", alpha=1.0 / (C * n_train), max_iter=max_iter,
                         tol=SGD_TOL, class_weight=class_weight, random_state=SGD_SEED)


def make_classifier(kind: str = "tfidf-svm", *, seed: int = 0, **options: Any) -> CodeClassifier:
    """A fresh classifier of ``kind`` (see :data:`CLASSIFIERS`) with ``options``."""
    if kind in LINEAR_KINDS:
        allowed = {"C", "word_ngrams", "char_ngrams", "min_df", "max_features", "max_iter"}
        if kind == "tfidf-logreg":
            allowed.add("solver")
    elif kind == "transformer":
        allowed = set(transformer.OPTIONS)
    elif kind == "e5-logreg":
        allowed = set(embedding.OPTIONS)
    else:
        raise ParameterError(f"classifier={kind!r} is unknown: use one of {', '.join(CLASSIFIERS)}")
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ParameterError(f"option(s) {', '.join(unknown)} do not apply to classifier {kind!r}: "
                             f"valid ones are {', '.join(sorted(allowed))}")
    if kind == "transformer":
        return transformer.TransformerClassifier(seed=seed, **options)
    if kind == "e5-logreg":
        return embedding.EmbeddingLogreg(seed=seed, **options)
    if kind == "tfidf-logreg":
        options = {"C": DEFAULT_LOGREG_C, "max_iter": DEFAULT_LOGREG_MAX_ITER,
                   "solver": DEFAULT_LOGREG_SOLVER, **options}
    return TfidfLinear(kind.split("-", 1)[1], seed=seed, **options)


def classifier_factory(kind: str, **options: Any):
    """``seed → classifier``; the options are checked now, not after the first fit."""
    make_classifier(kind, seed=0, **options)
    return lambda seed: make_classifier(kind, seed=seed, **options)
