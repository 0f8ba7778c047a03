"""Does a note say what it was asked to? Each sampled symptom affirmed, negated or missing.

Under 500 lines: the matcher and the training of its learned detector share the pair
features (training runs the rule matcher), so apart they would import each other.

A symptom name is matched by its content words (pymorphy3 lemmas cut to a stem, spelling variants
by rapidfuzz) standing close together in one sentence of the note; a Russian negation cue
(``negation.yaml``) before or after the match marks it negated. Names with commas are either
synonyms ("тошнота, рвота": either matches) or one inverted phrase ("кожа, сухая": both words).
Whether a symptom is there at all is decided by the learned detector (``evaluate.detector``:
match features combined by a model fit on RuMedSymptomRec gold pairs of RuMedTop3 *train*
visits, trained on first use and cached) or, with ``detector="rule"``, by the share of the name's
words found together. Held-out numbers: ``medsyn bench matcher`` and ``benchmarks/README.md``.
"""

from __future__ import annotations

import ast
import json
import pickle
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable, Sequence

import numpy as np

from medsyn_utils.core.errors import ParameterError
from medsyn_utils.evaluate.detector import LEARNED_FEATURES, Detector, FoldEnsemble, \
    association_features, cache_key, features, idf_table, key_association, variant_features, variant_table
from medsyn_utils.evaluate.lexicon import SPELLING_RATIO, Token, content_words, is_adjective, \
    is_word, lexicon, normal, similar_stem, tokens

STATUSES = ("affirmed", "negated", "missing")
DETECTORS = ("learned", "rule")  # learned: evaluate.detector on the match features; rule: share only
DEFAULT_THRESHOLD = 0.75  # share of a name's content words found together (tuned on train pairs)
DEFAULT_SLACK = 3  # extra tokens a match may span beyond the name's own words
DEFAULT_FUZZY = SPELLING_RATIO  # the matcher's windows; the detector's features keep the lexicon's


@dataclass(frozen=True)
class SymptomMatch:
    """One sampled symptom in one note."""

    symptom: str
    status: str  # affirmed | negated | missing
    score: float  # share of its content words found together [0..1]
    start: int | None = None  # character span of the match in the note
    stop: int | None = None

    def span_text(self, note: str) -> str:
        return "" if self.start is None else note[self.start:self.stop]


@dataclass
class NoteMatch:
    """All sampled symptoms of one note, and the knowledge-graph findings nobody asked for."""

    symptoms: list[SymptomMatch]
    unrequested: list[SymptomMatch] = field(default_factory=list)

    @property
    def coverage(self) -> float | None:
        """Affirmed share of the sampled symptoms; None when there were none."""
        if not self.symptoms:
            return None
        return sum(m.status == "affirmed" for m in self.symptoms) / len(self.symptoms)

    def names(self, status: str) -> list[str]:
        return [m.symptom for m in self.symptoms if m.status == status]


# --------------------------------------------------------------------------- symptom lists


def variants(name: str) -> tuple[tuple[str, ...], ...]:
    """Content-word stems of each way a symptom name may stand in a note.

    "тошнота, рвота" → two synonyms; "кожа, сухая" (single words, one of them an adjective) → one
    phrase of both words; names without a comma → themselves.
    """
    parts = [p.strip() for p in name.split(",") if p.strip()]
    if len(parts) == 2 and all(len(p.split()) == 1 for p in parts) and \
            is_adjective(parts[1]) and not is_adjective(parts[0]):
        parts = [" ".join(parts)]
    found = [content_words(p) for p in parts]
    found = [v for v in dict.fromkeys(found) if v]
    return tuple(found) or (tuple(normal(name).split()),)


def parse_symptoms(value: Any, vocabulary: Iterable[str] | None = None) -> list[str]:
    """The symptom names of a table cell: a list, a JSON/Python list, or the paper's ", "-join.

    A joined string is split at ", " and pieces are put back together where they form a name of
    ``vocabulary`` (default: the knowledge graph's names), longest first, or where a single word
    is followed by a single adjective ("кожа, сухая").
    """
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v).strip() for v in value if str(v).strip()]
    text = str(value).strip()
    if not text:
        return []
    if text.startswith("["):
        for loader in (json.loads, ast.literal_eval):
            try:
                parsed = loader(text)
            except (ValueError, SyntaxError):
                continue
            if isinstance(parsed, list):
                return [str(v).strip() for v in parsed if str(v).strip()]
    pieces = [p.strip() for p in text.split(",") if p.strip()]
    known = _vocabulary() if vocabulary is None else frozenset(normal(v) for v in vocabulary)
    names, i = [], 0
    while i < len(pieces):
        step = 1
        for j in range(min(len(pieces), i + 6), i + 1, -1):
            if normal(", ".join(pieces[i:j])) in known:
                step = j - i
                break
        else:
            if i + 1 < len(pieces) and len(pieces[i].split()) == 1 and \
                    len(pieces[i + 1].split()) == 1 and is_adjective(pieces[i + 1]) and \
                    not is_adjective(pieces[i]):
                step = 2
        names.append(", ".join(pieces[i:i + step]))
        i += step
    return names


@lru_cache(maxsize=1)
def _vocabulary() -> frozenset[str]:
    return frozenset(normal(n) for n in kg_symptom_names())


@lru_cache(maxsize=1)
def kg_symptom_names() -> tuple[str, ...]:
    """The knowledge graph's Russian symptom names (empty when the graph cannot be loaded)."""
    try:
        from medsyn_utils.kg.graph import load_graph
        graph = load_graph().graph
    except Exception:  # noqa: BLE001 - no mirror: names are parsed without the vocabulary
        return ()
    return tuple(sorted(node[1] for node in graph if node[0] == "symptom"))


# --------------------------------------------------------------------------- matching


def _cue_at(words: list[Token], position: int, cues: tuple[tuple[str, ...], ...]) -> bool:
    for cue in cues:
        chunk = words[position:position + len(cue)]
        if len(chunk) == len(cue) and all(c in (t.text, t.lemma) for c, t in zip(cue, chunk)):
            return True
    return False


def negated(note_tokens: list[Token], first: int, last: int) -> bool:
    """Whether a Russian negation cue has the tokens ``first..last`` in its scope."""
    lex = lexicon()
    sentence = note_tokens[first].sentence
    seen = 0
    for q in range(first - 1, -1, -1):
        token = note_tokens[q]
        if token.sentence != sentence or token.text in lex.terminators:
            break
        if _cue_at(note_tokens, q, lex.pre_cues):
            return True
        seen += is_word(token)
        if seen >= lex.pre_scope:
            break
    seen = 0
    for q in range(last + 1, len(note_tokens)):
        token = note_tokens[q]
        if token.sentence != sentence or token.text in lex.terminators or \
                token.text in lex.post_terminators:
            break
        if _cue_at(note_tokens, q, lex.post_cues):
            return True
        seen += is_word(token)
        if seen >= lex.post_scope:
            break
    return False


@dataclass(frozen=True)
class _Hit:
    score: float
    first: int
    last: int
    found: frozenset[int] = frozenset()


def _hits(keys: tuple[str, ...], note_tokens: list[Token], slack: int, fuzzy: float) -> list[_Hit]:
    """Windows of one sentence holding the most of ``keys`` (one per anchor word)."""
    where: list[tuple[int, int]] = []  # (token position, key number)
    for p, token in enumerate(note_tokens):
        if not is_word(token):
            continue
        for k, key in enumerate(keys):
            if similar_stem(key, token.stem, fuzzy):
                where.append((p, k))
    if not where:
        return []
    width = len(keys) + slack
    hits = []
    for i, (p, _) in enumerate(where):
        sentence = note_tokens[p].sentence
        found, last = set(), p
        for q, k in where[i:]:
            if q - p >= width or note_tokens[q].sentence != sentence:
                break
            found.add(k)
            last = q
        hits.append(_Hit(len(found) / len(keys), p, last, frozenset(found)))
    return hits


class SymptomMatcher:
    """Affirmed / negated / missing for each symptom of a note, with the matched span."""

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, slack: int = DEFAULT_SLACK,
                 fuzzy: float = DEFAULT_FUZZY, unrequested: bool = True,
                 detector: str = "learned") -> None:
        for name, value, lo, hi in (("threshold", threshold, 0.0, 1.0), ("slack", slack, 0, 50),
                                    ("fuzzy", fuzzy, 50.0, 100.0)):
            if not isinstance(value, (int, float)) or not np.isfinite(value) or not lo <= value <= hi:
                raise ParameterError(f"matcher {name}={value!r} is out of range: use {lo}..{hi}")
        self.threshold, self.slack, self.fuzzy = float(threshold), int(slack), float(fuzzy)
        if detector not in DETECTORS:
            raise ParameterError(f"matcher detector={detector!r} is unknown: use one of "
                                 f"{', '.join(DETECTORS)}")
        self.find_unrequested = unrequested
        self.detector = detector
        self._index: dict[str, list[tuple[str, tuple[str, ...]]]] | None = None

    def match_symptom(self, name: str, note_tokens: list[Token]) -> SymptomMatch:
        best: tuple[float, bool, _Hit] | None = None  # (score, affirmed, hit)
        for keys in variants(name):
            for hit in _hits(keys, note_tokens, self.slack, self.fuzzy):
                if hit.score >= self.threshold:
                    affirmed = not negated(note_tokens, hit.first, hit.last)
                    candidate = (hit.score, affirmed, hit)
                    if best is None or (affirmed, hit.score) > (best[1], best[0]):
                        best = candidate
                elif best is None or (best[0] < self.threshold and hit.score > best[0]):
                    best = (hit.score, False, hit)
        if best is None:
            return SymptomMatch(name, "missing", 0.0)
        score, affirmed, hit = best
        if score < self.threshold:
            return SymptomMatch(name, "missing", score)
        return SymptomMatch(name, "affirmed" if affirmed else "negated", score,
                            note_tokens[hit.first].start, note_tokens[hit.last].stop)

    def pair_features(self, name: str, note: str, note_tokens: list[Token], detector,
                      graph_windows: list | None = None) -> tuple[np.ndarray, list[_Hit]]:
        """The detector's features of one (note, symptom) pair, and every window found.
        ``graph_windows``: :meth:`_graph_windows` of the note, when the caller has them."""

        keys_list = variants(name)
        hits = [_hits(keys, note_tokens, self.slack, self.fuzzy) for keys in keys_list]
        stems = {t.stem for t in note_tokens if is_word(t)}
        if graph_windows is None:
            graph_windows = self._graph_windows(note_tokens)
        row = np.concatenate([
            features(name, keys_list, note, note_tokens, hits, detector.weight),
            [explained_elsewhere(keys_list, hits, graph_windows)],
            association_features(getattr(detector, "association", {}), keys_list, stems),
            variant_features(getattr(detector, "variants", {}), name, stems)])
        return row, [hit for windows in hits for hit in windows]

    def _decide(self, name: str, hits: list[_Hit], chance: float, threshold: float,
                note_tokens: list[Token]) -> SymptomMatch:
        """The learned detector's call for one symptom: missing, else negated or affirmed at the
        best window (affirmed wins where one of the best windows is not negated)."""
        if chance < threshold:
            return SymptomMatch(name, "missing", float(chance))
        if not hits:
            return SymptomMatch(name, "affirmed", float(chance))
        top = max(h.score for h in hits)
        best = [h for h in hits if h.score == top]
        hit = next((h for h in best if not negated(note_tokens, h.first, h.last)), None)
        status = "negated" if hit is None else "affirmed"
        hit = hit or best[0]
        return SymptomMatch(name, status, float(chance), note_tokens[hit.first].start,
                            note_tokens[hit.last].stop)

    def match_many(self, notes: Sequence[str], symptom_lists: Sequence[Sequence[str]],
                   examples: Sequence[str | None] | None = None) -> list[NoteMatch]:
        """:meth:`match` for many notes, the learned detector called once for all their pairs."""

        examples = list(examples) if examples is not None else [None] * len(notes)
        texts = [str(n or "") for n in notes]
        all_tokens = [tokens(t) for t in texts]
        # the graph names stated in each note: a feature of the learned detector, and the
        # unrequested findings; found once per note for both
        with_graph = self.detector == "learned" or self.find_unrequested
        all_windows = [self._graph_windows(t) if with_graph else [] for t in all_tokens]
        if self.detector == "rule":
            per_note = [[self.match_symptom(s, toks) for s in names]
                        for names, toks in zip(symptom_lists, all_tokens)]
        else:
            detector = load_detector()
            pairs = [[self.pair_features(s, text, toks, detector, windows) for s in names]
                     for text, names, toks, windows in zip(texts, symptom_lists, all_tokens,
                                                           all_windows)]
            rows = [f for note_pairs in pairs for f, _ in note_pairs]
            chances = iter(detector.model.predict_proba(np.vstack(rows))[:, 1] if rows else [])
            per_note = [[self._decide(name, hits, next(chances), detector.threshold, toks)
                         for name, (_, hits) in zip(names, note_pairs)]
                        for names, note_pairs, toks in zip(symptom_lists, pairs, all_tokens)]
        return [NoteMatch(matches, self._unrequested(toks, windows, matches, names, example)
                          if self.find_unrequested else [])
                for matches, toks, windows, names, example
                in zip(per_note, all_tokens, all_windows, symptom_lists, examples)]

    def match(self, note: str, symptoms: Sequence[str], example: str | None = None) -> NoteMatch:
        """Every sampled symptom of ``note``; with the graph, the findings nobody asked for."""
        return self.match_many([note], [list(symptoms)], [example])[0]

    # ------------------------------------------------------------------ unrequested findings

    def _kg_index(self) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
        if self._index is None:
            self._index = build_index(kg_symptom_names())
        return self._index

    def _graph_windows(self, note_tokens: list[Token]) -> list[tuple[str, tuple[str, ...], _Hit]]:
        """Every knowledge-graph name (variant) whose words all stand in one window of the note."""
        stems = {t.stem for t in note_tokens if is_word(t)}
        seen, found = set(), []
        for stem_ in stems:
            for name, keys in self._kg_index().get(stem_, ()):
                if (name, keys) in seen or not set(keys) <= stems:
                    continue
                seen.add((name, keys))
                found += [(name, keys, hit) for hit in _hits(keys, note_tokens, self.slack, 100.0)
                          if hit.score == 1.0]
        return found

    def _graph_mentions(self, note_tokens: list[Token], windows: list | None = None
                        ) -> list[SymptomMatch]:
        """The graph names stated in the note, affirmed or negated (``windows``: its
        :meth:`_graph_windows`, when the caller has them)."""
        windows = self._graph_windows(note_tokens) if windows is None else windows
        return [SymptomMatch(name, "negated" if negated(note_tokens, hit.first, hit.last)
                             else "affirmed", 1.0, note_tokens[hit.first].start,
                             note_tokens[hit.last].stop)
                for name, _, hit in windows]

    def _unrequested(self, note_tokens: list[Token], windows: list, matches: list[SymptomMatch],
                     symptoms: Sequence[str], example: str | None) -> list[SymptomMatch]:
        asked = {normal(s) for s in symptoms}
        covered = [(m.start, m.stop) for m in matches if m.start is not None]
        in_example = {m.symptom for m in self._graph_mentions(tokens(example))} if example else set()
        candidates = [m for m in self._graph_mentions(note_tokens, windows)
                      if m.status == "affirmed" and normal(m.symptom) not in asked
                      and m.symptom not in in_example
                      and not any(a < m.stop and m.start < b for a, b in covered)]
        # one finding per place: the longest span, then the first name
        candidates.sort(key=lambda m: (-(m.stop - m.start), m.start, m.symptom))
        kept: list[SymptomMatch] = []
        for m in candidates:
            if not any(k.start <= m.start and m.stop <= k.stop for k in kept):
                kept.append(m)
        return sorted(kept, key=lambda m: m.start)


def explained_elsewhere(keys_list: Sequence[tuple[str, ...]], hits: Sequence[Sequence[_Hit]],
                        graph_windows: Sequence[tuple[str, tuple[str, ...], _Hit]]) -> float:
    """1.0 when the name is found only in part and each of its best windows lies in another
    graph name stated whole, with words the name lacks: "сух" of "Кашель сухой." is "сухой
    кашель", not "кожа, сухая"; "кашель" alone is part of "сухой кашель" and explains nothing."""
    found = [hit for windows in hits for hit in windows]
    top = max((h.score for h in found), default=1.0)
    if top >= 1.0:  # nothing of the name found, or all of it
        return 0.0
    own = {k for keys in keys_list for k in keys}
    return float(all(any(not set(keys) <= own and w.first <= h.last and h.first <= w.last
                         for _, keys, w in graph_windows)
                     for h in found if h.score == top))


def build_index(names: Iterable[str]) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """Each symptom name's variants, filed under every content-word stem."""
    index: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for name in names:
        for keys in variants(name):
            for key in set(keys):
                index.setdefault(key, []).append((name, keys))
    return index


@lru_cache(maxsize=4)
def default_matcher(unrequested: bool = False) -> SymptomMatcher:
    """The stage's matcher (learned detector) with or without unrequested findings."""
    return SymptomMatcher(unrequested=unrequested)


def match_note(note: str, symptoms: Sequence[str], example: str | None = None) -> NoteMatch:
    """Affirmed / negated / missing for each symptom, and unrequested graph findings."""
    return default_matcher(True).match(note, symptoms, example)


def symptom_coverage(note: str, symptoms: list[str]) -> float:
    """Share of ``symptoms`` the note affirms (a negated or absent symptom does not count).

    ``symptoms`` is a list of names (a name may contain a comma, "кожа, сухая"); to read a cell
    of a table such as "кашель, кожа, сухая" use :func:`parse_symptoms` first. Uses the learned
    detector: the first call on a machine trains it from the data mirror (about 20 s on 2 cores).
    """
    if isinstance(symptoms, str):
        symptoms = parse_symptoms(symptoms)
    if not symptoms:
        raise ParameterError("symptom_coverage: no symptoms given: pass a non-empty list of names")
    coverage = default_matcher(False).match(note, list(symptoms)).coverage
    return float(coverage)  # never None here: the list is not empty


# ------------------------------------------------------------------ the learned detector

def train_detector(seed: int = 0, folds: int = 5, repeats: int = 4) -> Detector:
    """Fit the detector on gold pairs of train visits: one model per fold of visits, for
    ``repeats`` assignments of the visits to folds, all averaged (:class:`FoldEnsemble`). The
    association and variant-table features of a train pair come from the other folds' visits (a
    pair never sees its own span); the cut is the middle of the F1 plateau of the out-of-fold
    chances (averaged over the assignments); the kept tables are all of train."""
    from collections import Counter

    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import GroupKFold

    from medsyn_utils.evaluate.gold import detection, gold_pairs, plateau_threshold

    idf, n = idf_table()
    detector = Detector(None, 0.5, idf, n, {})
    pairs = gold_pairs()
    pairs = pairs[pairs["split"] == "train"].reset_index(drop=True)
    matcher = SymptomMatcher(detector="rule", unrequested=False)
    texts, names = list(pairs["text"]), list(pairs["symptom"])
    keys = [variants(s) for s in names]
    toks = [tokens(t) for t in texts]
    base = [matcher.pair_features(s, t, k, detector)[0][:-len(LEARNED_FEATURES)]
            for t, s, k in zip(texts, names, toks)]
    stems = [Counter(t.stem for t in k if is_word(t)) for k in toks]
    # gold_pairs writes each visit's positive, then its negative: the span is what was removed
    removed = [frozenset((stems[i] - stems[i + 1]) if pairs["label"][i] == 1 else ())
               for i in range(len(pairs) - 1)] + [frozenset()]
    y, groups = pairs["label"].to_numpy(), pairs["idx"].to_numpy()

    def tables(which) -> tuple[dict, dict]:
        positive = [i for i in which if y[i] == 1]
        return (key_association([keys[i] for i in positive], [removed[i] for i in positive],
                                [stems[i] for i in positive]),
                variant_table([names[i] for i in which], [removed[i] for i in which]))

    def rows(associated, table, which) -> np.ndarray:
        return np.array([np.concatenate([base[i],
                                         association_features(associated, keys[i], stems[i]),
                                         variant_features(table, names[i], set(stems[i]))])
                         for i in which])

    def fit(x, labels):
        return HistGradientBoostingClassifier(max_iter=300, learning_rate=0.05,
                                              random_state=seed).fit(x, labels)

    def assignments():
        yield list(GroupKFold(folds).split(base, y, groups))
        visits = np.unique(groups)
        for repeat in range(1, repeats):
            fold_of = dict(zip(visits, np.random.default_rng(seed + repeat).permutation(
                len(visits)) % folds))
            fold = np.array([fold_of[g] for g in groups])
            yield [(np.flatnonzero(fold != k), np.flatnonzero(fold == k)) for k in range(folds)]

    chances = np.zeros((repeats, len(pairs)))
    unseen_chances = np.zeros((repeats, len(pairs)))
    models = []
    for repeat, split in enumerate(assignments()):
        x = np.zeros((len(pairs), len(base[0]) + len(LEARNED_FEATURES)))
        for fit_rows, out in split:
            x[out] = rows(*tables(fit_rows), out)
        # every pair also once with the learned tables' features zeroed, so a name the mark-up
        # never states (most of the graph's) is judged by the match features too
        unseen = x.copy()
        unseen[:, -len(LEARNED_FEATURES):] = 0.0
        for fit_rows, out in split:
            models.append(fit(np.vstack([x[fit_rows], unseen[fit_rows]]),
                              np.tile(y[fit_rows], 2)))
            chances[repeat, out] = models[-1].predict_proba(x[out])[:, 1]
            unseen_chances[repeat, out] = models[-1].predict_proba(unseen[out])[:, 1]
    chances, unseen_chances = chances.mean(axis=0), unseen_chances.mean(axis=0)
    chosen = plateau_threshold(chances, y)
    detector.model = FoldEnsemble(models)
    detector.threshold = float(chosen.threshold)
    detector.association, detector.variants = tables(range(len(pairs)))
    detector.train_report = chosen.as_dict() | {
        "pairs": int(len(y)), "out_of_fold": folds, "fold_assignments": repeats,
        "unseen_names_f1": round(float(detection(unseen_chances, y, chosen.threshold).f1), 4)}
    return detector


@lru_cache(maxsize=1)
def load_detector() -> Detector:
    """The trained detector from the user cache, else trained now and cached."""
    from medsyn_utils.core.paths import cache_dir
    from medsyn_utils.core.provenance import write_atomic

    path = cache_dir("evaluate") / f"detector-{cache_key()}.pickle"
    if path.is_file():
        try:
            with path.open("rb") as handle:
                return pickle.load(handle)
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            pass  # a damaged or stale cache is retrained
    detector = train_detector()
    write_atomic(path, pickle.dumps(detector, protocol=pickle.HIGHEST_PROTOCOL))
    return detector
