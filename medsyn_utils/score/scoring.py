"""BERTScore filter of generated notes, in one pass, on any encoder; calibration; the scored dataset.

The MedSyn filter scores each note twice with BERTScore, the note always the candidate:
``symptoms_recall`` = R against the sampled symptoms joined by ", " (did the note cover them?)
and ``anamnesis_precision`` = P against the style example (is the note made of example-like
text?). The original called ``bert_score.score`` once per reference set, loading the model twice
and embedding every note twice. :class:`NoteScorer` is loaded once and, for a table, embeds every
distinct text (note, symptom string, example) once, then reads both numbers from
``bert_score.utils.greedy_cos_idf`` — the same arithmetic as ``bert_score.score``.

Texts longer than the encoder's limit are counted and reported: by default they are cut as
bert-score cuts them (and the report says how many); ``windowed=True`` scores them whole, each
token embedded in the overlapping window where it sits most centrally.

The paper's thresholds (recall ≥ 0.65, precision > 0.7) are on the scale of
``bert-base-multilingual-cased``; :func:`calibrate` maps them to the encoder at hand by
percentile on real notes (RuMedPrime mark-up, train visits only).
"""

from __future__ import annotations

import ast
import json
import math
import os
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from math import log
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from medsyn_utils.score import quality
from medsyn_utils.score.encoders import DEFAULT_LAYER, EMBEDDED_E5, PAPER_ENCODER, PAPER_LAYER, EncoderInfo, resolve_encoder
from medsyn_utils.core.errors import InputTableError, ModelError, ParameterError
from medsyn_utils.core.schema import PUBLISHED_COLUMNS, STORE_FIELDS, TASK_COLUMNS

PAPER_THRESHOLDS = {"symptoms_recall": 0.65, "anamnesis_precision": 0.7}
PRIVATE_MARK = "private_data"  # the published dataset's stand-in for private example notes
REQUIRED_TABLE_COLUMNS = ("response", "symptoms", "anamnesis")
# Kept from the task table / store next to the published columns: the diagnosis name (for the
# "diagnosis named" check), the category, the example's visit id (so later stages can keep
# dev/test visits out) and why generation stopped.
CONTEXT_COLUMNS = ("code_name_ru", "category", "example_visit_id", "finish_reason")
FLAG_COLUMNS = ("bertscore_hash", "empty_response", "missing_symptoms", "missing_example", "long_text")
SCORED_COLUMNS: tuple[str, ...] = (*PUBLISHED_COLUMNS, *CONTEXT_COLUMNS, *FLAG_COLUMNS,
                                   *quality.QUALITY_COLUMNS, "passed_filter")
STAND_IN_MODEL = "real-note stand-in (RuMedTop3 train, not generated)"


def _text(value: Any) -> str:
    """A cell as text: None/NaN → ""."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    return value if isinstance(value, str) else str(value)


def _reference(value: Any) -> str | None:
    """A reference cell, or None when it is missing (None, NaN, blank, ``private_data``)."""
    text = _text(value).strip()
    return None if not text or text == PRIVATE_MARK else text


@dataclass
class ScoreReport:
    """What one scoring pass saw: counts that belong next to the scores."""

    hash: str
    max_length: int
    windowed: bool
    rows: int = 0
    texts_embedded: int = 0       # distinct texts, each embedded once
    sequences_embedded: int = 0   # forward-pass rows (a windowed long text counts its windows)
    tokens_embedded: int = 0
    long_texts: int = 0           # distinct texts over the encoder limit
    truncated_texts: int = 0      # of those, cut to the limit (windowed=False)
    long_rows: int = 0
    empty_responses: int = 0
    missing_symptoms: int = 0
    missing_examples: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class NoteScorer:
    """BERTScore with one encoder, loaded once and reused (like ``bert_score.BERTScorer``).

    ``encoder``: ``"embedded:multilingual-e5-small"`` (default, offline), a local folder or a hub
    id; ``layer``: the hidden layer whose token states are compared (9 for both the embedded e5
    and the paper's ``bert-base-multilingual-cased``); ``idf``: bert-score's idf weighting, off
    as in the paper; ``windowed``: score texts over the encoder limit whole (overlapping windows)
    instead of cutting them.
    """

    def __init__(self, encoder: str = EMBEDDED_E5, layer: int = DEFAULT_LAYER, *, idf: bool = False,
                 device: str | None = None, batch_size: int = 64, max_batch_tokens: int = 8192,
                 windowed: bool = False, window_stride: int | None = None,
                 pair_batch_size: int = 256) -> None:
        import torch
        from bert_score.utils import get_model, get_tokenizer
        from transformers import AutoConfig

        if batch_size < 1 or max_batch_tokens < 1 or pair_batch_size < 1:
            raise ParameterError(f"batch sizes must be >= 1 (batch_size={batch_size}, "
                                 f"max_batch_tokens={max_batch_tokens}, pair_batch_size={pair_batch_size})")
        self.info: EncoderInfo = resolve_encoder(encoder)
        config = AutoConfig.from_pretrained(self.info.path)
        total = getattr(config, "num_hidden_layers", None)
        if not isinstance(layer, int) or layer < 1 or (total is not None and layer > total):
            raise ParameterError(f"layer={layer} is out of range for encoder {encoder!r}: use 1..{total}")
        try:
            self.tokenizer = get_tokenizer(self.info.path, use_fast=True)
            self.model = get_model(self.info.path, layer)
        except Exception as error:  # noqa: BLE001 - any loader failure is one line for the user
            raise ModelError(f"encoder {encoder!r} failed to load from {self.info.path}: "
                             f"{type(error).__name__}: {str(error).splitlines()[0][:200]}") from None
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        self.layer, self.idf, self.windowed = layer, bool(idf), bool(windowed)
        self.batch_size, self.max_batch_tokens, self.pair_batch_size = batch_size, max_batch_tokens, pair_batch_size
        limits = [v for v in (getattr(self.tokenizer, "model_max_length", None),
                              getattr(config, "max_position_embeddings", None)) if v and v < 1_000_000]
        self.max_length = int(min(limits)) if limits else 512
        content = self.max_length - 2
        self.window_stride = int(window_stride or max(1, content // 2))
        if not 1 <= self.window_stride <= content:
            raise ParameterError(f"window_stride={window_stride} must lie in 1..{content}")
        self.cls_id, self.sep_id = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.last_report: ScoreReport | None = None

    # ------------------------------------------------------------------ identity

    @property
    def hash(self) -> str:
        """bert-score's hash (model, layer, idf, versions), plus the windowing when on."""
        from bert_score.utils import get_hash

        text = get_hash(self.info.name, self.layer, self.idf, False, False, True)
        return text + (f"_windowed-{self.window_stride}" if self.windowed else "")

    def __repr__(self) -> str:
        return f"NoteScorer(hash={self.hash!r}, device={self.device!r})"

    # ---------------------------------------------------------------- tokens, embeddings

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Full token ids (with the encoder's special tokens, never cut) of stripped texts."""
        if not texts:
            return []
        return self.tokenizer([t.strip() for t in texts], add_special_tokens=True,
                              verbose=False)["input_ids"]

    def count_tokens(self, text: str) -> int:
        return len(self.token_ids([text])[0]) if _text(text).strip() else 0

    def _scoring_ids(self, ids: list[int]) -> list[int]:
        """What is compared: the full ids when windowed or short, else cut as bert-score cuts."""
        if self.windowed or len(ids) <= self.max_length:
            return ids
        return ids[:self.max_length - 1] + [ids[-1]]

    def _windows(self, ids: list[int]) -> list[tuple[int, list[int]]]:
        content, width = ids[1:-1], self.max_length - 2
        starts = list(range(0, max(len(content) - width, 0) + 1, self.window_stride))
        if starts[-1] + width < len(content):
            starts.append(len(content) - width)
        return [(s, [ids[0], *content[s:s + width], ids[-1]]) for s in starts]

    def _embed(self, ids_of: Mapping[str, list[int]], texts: Sequence[str], report: ScoreReport) -> dict:
        """Token embeddings of ``texts`` (one forward row per text, or per window), length-sorted."""
        import torch

        rows: list[tuple[str, int, list[int]]] = []  # (text, window start or -1, ids)
        for text in texts:
            ids = ids_of[text]
            if len(ids) > self.max_length and self.windowed:
                rows.extend((text, start, seq) for start, seq in self._windows(ids))
            else:
                rows.append((text, -1, self._scoring_ids(ids)))
        rows.sort(key=lambda r: -len(r[2]))
        states: dict[tuple[str, int], Any] = {}
        i = 0
        with torch.inference_mode():
            while i < len(rows):
                longest = len(rows[i][2])
                size = max(1, min(self.batch_size, self.max_batch_tokens // longest))
                batch = rows[i:i + size]
                x = torch.full((len(batch), longest), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), longest), dtype=torch.long)
                for j, (_, _, seq) in enumerate(batch):
                    x[j, :len(seq)] = torch.tensor(seq)
                    mask[j, :len(seq)] = 1
                out = self.model(x.to(self.device), attention_mask=mask.to(self.device))[0]
                for j, (text, start, seq) in enumerate(batch):
                    states[(text, start)] = out[j, :len(seq)].float()
                report.sequences_embedded += len(batch)
                report.tokens_embedded += int(mask.sum())
                i += size
        result = {}
        for text in texts:
            ids = ids_of[text]
            if len(ids) > self.max_length and self.windowed:
                result[text] = self._assemble(ids, [(s, states[(text, s)]) for s, _ in self._windows(ids)])
            else:
                result[text] = states[(text, -1)]
        report.texts_embedded += len(texts)
        return result

    def _assemble(self, ids: list[int], windows: list[tuple[int, Any]]):
        """One state per token of a long text: each from the window where it is most central."""
        import torch

        width = self.max_length - 2
        n_content = len(ids) - 2
        starts = np.array([s for s, _ in windows])
        centres = starts + (width - 1) / 2
        positions = np.arange(n_content)
        choice = np.abs(positions[:, None] - centres[None, :]).argmin(axis=1)
        pieces = [windows[0][1][:1]]
        for p, k in zip(positions, choice):
            pieces.append(windows[k][1][1 + p - starts[k]].unsqueeze(0))
        pieces.append(windows[-1][1][-1:])
        return torch.cat(pieces, dim=0)

    def _idf_dict(self, refs: Sequence[str], ids_of: Mapping[str, list[int]]) -> dict:
        """bert-score's weights: ones with [CLS]/[SEP] at 0, or idf over the references."""
        if not self.idf:
            weights: dict = defaultdict(lambda: 1.0)
        else:
            counts = Counter(i for ref in refs for i in set(self._scoring_ids(ids_of[ref])))
            n = len(refs)
            weights = defaultdict(lambda: log((n + 1) / 1))
            weights.update({i: log((n + 1) / (c + 1)) for i, c in counts.items()})
            return weights
        weights[self.sep_id] = 0
        weights[self.cls_id] = 0
        return weights

    def _greedy(self, cands: Sequence[str], refs: Sequence[str], states: Mapping[str, Any],
                ids_of: Mapping[str, list[int]], weights: Mapping[int, float]) -> np.ndarray:
        """P, R, F (n × 3) of candidate/reference pairs through ``bert_score.utils.greedy_cos_idf``."""
        import torch
        from bert_score.utils import greedy_cos_idf
        from torch.nn.utils.rnn import pad_sequence

        def stack(texts):
            embs = [states[t] for t in texts]
            idf = [torch.tensor([weights[i] for i in self._ids_used(ids_of[t])], dtype=torch.float)
                   for t in texts]
            lens = torch.tensor([e.shape[0] for e in embs])
            mask = torch.arange(int(lens.max()))[None, :] < lens[:, None]
            return (pad_sequence(embs, batch_first=True, padding_value=2.0),
                    mask.to(embs[0].device), pad_sequence(idf, batch_first=True).to(embs[0].device))

        out = np.zeros((len(cands), 3), dtype=np.float64)
        with torch.inference_mode():
            for b in range(0, len(cands), self.pair_batch_size):
                hyp = stack(cands[b:b + self.pair_batch_size])
                ref = stack(refs[b:b + self.pair_batch_size])
                p, r, f = greedy_cos_idf(*ref, *hyp)
                out[b:b + len(p)] = torch.stack([p, r, f], dim=-1).cpu().double().numpy()
        return out

    def _ids_used(self, ids: list[int]) -> list[int]:
        return ids if self.windowed else self._scoring_ids(ids)

    # -------------------------------------------------------------------- scoring API

    def score_pairs(self, cands: Sequence[str], refs: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """P, R, F of each candidate against its reference (as ``bert_score.score``; an empty
        text on either side scores 0, as bert-score does)."""
        if len(cands) != len(refs):
            raise ParameterError(f"score_pairs got {len(cands)} candidates and {len(refs)} "
                                 f"references: pass one reference per candidate")
        cands = [_text(c).strip() for c in cands]
        refs = [_text(r).strip() for r in refs]
        report = ScoreReport(hash=self.hash, max_length=self.max_length, windowed=self.windowed,
                             rows=len(cands))
        distinct = list(dict.fromkeys(t for t in (*cands, *refs) if t))
        ids_of = dict(zip(distinct, self.token_ids(distinct)))
        self._count_long(ids_of, report)
        states = self._embed(ids_of, distinct, report)
        keep = [i for i, (c, r) in enumerate(zip(cands, refs)) if c and r]
        out = np.zeros((len(cands), 3))
        if keep:
            weights = self._idf_dict([refs[i] for i in keep], ids_of)
            out[keep] = self._greedy([cands[i] for i in keep], [refs[i] for i in keep], states, ids_of, weights)
        self.last_report = report
        return out[:, 0], out[:, 1], out[:, 2]

    def _count_long(self, ids_of: Mapping[str, list[int]], report: ScoreReport) -> None:
        long = sum(len(ids) > self.max_length for ids in ids_of.values())
        report.long_texts += long
        if not self.windowed:
            report.truncated_texts += long
        if long:
            how = ("scored whole over overlapping windows" if self.windowed else
                   "cut to the limit as bert-score cuts them; pass windowed=True to score them whole")
            warnings.warn(f"{long} text(s) exceed the encoder limit of {self.max_length} tokens: {how}",
                          stacklevel=3)

    def iter_score(self, notes: Sequence[Any], symptoms: Sequence[Any], examples: Sequence[Any], *,
                   chunk_rows: int = 256, progress: bool = True) -> Iterator[tuple[int, pd.DataFrame]]:
        """Score rows chunk by chunk: yields ``(first_row, frame)`` so callers can keep what is done.

        Every distinct text is embedded once for the whole call: a text used again in a later
        chunk (a style example shared by many tasks) stays cached until its last use.
        Columns: ``symptoms_recall`` (NaN without symptoms), ``anamnesis_precision`` (NaN
        without an example), ``note_tokens``, ``empty_response`` (scored 0), ``missing_symptoms``,
        ``missing_example``, ``long_text``.
        """
        from tqdm.auto import tqdm

        n = len(notes)
        if len(symptoms) != n or len(examples) != n:
            raise ParameterError(f"got {n} notes, {len(symptoms)} symptom strings and "
                                 f"{len(examples)} examples: pass one of each per note")
        if chunk_rows < 1:
            raise ParameterError(f"chunk_rows={chunk_rows} must be >= 1")
        start_time = time.perf_counter()
        notes_t = [_text(x).strip() for x in notes]
        sym_t = [_reference(x) for x in symptoms]
        ex_t = [_reference(x) for x in examples]
        report = ScoreReport(hash=self.hash, max_length=self.max_length, windowed=self.windowed, rows=n)
        self.last_report = report
        distinct = list(dict.fromkeys(t for t in (*notes_t, *sym_t, *ex_t) if t))
        ids_of = dict(zip(distinct, self.token_ids(distinct)))
        self._count_long(ids_of, report)
        weights_r = self._idf_dict([s for s, c in zip(sym_t, notes_t) if s and c], ids_of)
        weights_p = self._idf_dict([e for e, c in zip(ex_t, notes_t) if e and c], ids_of)
        uses = Counter(t for t in (*notes_t, *sym_t, *ex_t) if t)
        cache: dict[str, Any] = {}
        bar = tqdm(total=n, desc="scoring notes", unit="note", disable=not progress)
        try:
            for first in range(0, n, chunk_rows):
                rows = range(first, min(n, first + chunk_rows))
                needed = list(dict.fromkeys(t for i in rows for t in (notes_t[i], sym_t[i], ex_t[i])
                                            if t and t not in cache))
                cache.update(self._embed(ids_of, needed, report))
                recall = np.full(len(rows), np.nan)
                precision = np.full(len(rows), np.nan)
                for values, refs, weights in ((recall, sym_t, weights_r), (precision, ex_t, weights_p)):
                    pairs = [k for k, i in enumerate(rows) if refs[i] and notes_t[i]]
                    if pairs:
                        scored = self._greedy([notes_t[rows[k]] for k in pairs],
                                              [refs[rows[k]] for k in pairs], cache, ids_of, weights)
                        values[pairs] = scored[:, 1] if refs is sym_t else scored[:, 0]
                    empty = [k for k, i in enumerate(rows) if refs[i] and not notes_t[i]]
                    values[empty] = 0.0
                frame = pd.DataFrame({
                    "symptoms_recall": recall,
                    "anamnesis_precision": precision,
                    "note_tokens": [len(ids_of[notes_t[i]]) if notes_t[i] else 0 for i in rows],
                    "empty_response": [not notes_t[i] for i in rows],
                    "missing_symptoms": [sym_t[i] is None for i in rows],
                    "missing_example": [ex_t[i] is None for i in rows],
                    "long_text": [any(t and len(ids_of[t]) > self.max_length
                                      for t in (notes_t[i], sym_t[i], ex_t[i])) for i in rows],
                }, index=pd.RangeIndex(rows.start, rows.stop))
                report.long_rows += int(frame["long_text"].sum())
                report.empty_responses += int(frame["empty_response"].sum())
                report.missing_symptoms += int(frame["missing_symptoms"].sum())
                report.missing_examples += int(frame["missing_example"].sum())
                for i in rows:
                    for t in (notes_t[i], sym_t[i], ex_t[i]):
                        if t:
                            uses[t] -= 1
                            if uses[t] == 0:
                                cache.pop(t, None)
                report.seconds = round(time.perf_counter() - start_time, 3)
                bar.update(len(rows))
                yield first, frame
        finally:
            bar.close()

    def score(self, notes: Sequence[Any], symptoms: Sequence[Any], examples: Sequence[Any], *,
              chunk_rows: int = 256, progress: bool = True) -> pd.DataFrame:
        """Both scores for every note in one pass (see :meth:`iter_score` for the columns)."""
        frames = [frame for _, frame in self.iter_score(notes, symptoms, examples,
                                                         chunk_rows=chunk_rows, progress=progress)]
        if not frames:
            return pd.DataFrame(columns=["symptoms_recall", "anamnesis_precision", "note_tokens",
                                         "empty_response", "missing_symptoms", "missing_example",
                                         "long_text"])
        return pd.concat(frames)


# ------------------------------------------------------------------------------ the filter


def passed_filter(recall: Sequence[float], precision: Sequence[float], recall_threshold: float,
                  precision_threshold: float, empty: Sequence[bool] | None = None) -> np.ndarray:
    """The paper's rule: recall ≥ its threshold and precision > its threshold.

    A criterion whose reference is missing (NaN score: no symptoms for prompt(code), no example
    for prompt(S)) does not apply; an empty response never passes.
    """
    recall = np.asarray(recall, dtype=float)
    precision = np.asarray(precision, dtype=float)
    with np.errstate(invalid="ignore"):
        ok = (np.isnan(recall) | (recall >= recall_threshold)) & \
             (np.isnan(precision) | (precision > precision_threshold))
    if empty is not None:
        ok &= ~np.asarray(empty, dtype=bool)
    return ok


def threshold_sweep(scored: pd.DataFrame, recall_grid: Sequence[float] | None = None,
                    precision_grid: Sequence[float] | None = None) -> pd.DataFrame:
    """Share of notes passing for every pair of thresholds on a grid (long format)."""
    recall_grid = np.round(np.linspace(0.5, 1.0, 11), 3) if recall_grid is None else recall_grid
    precision_grid = np.round(np.linspace(0.5, 1.0, 11), 3) if precision_grid is None else precision_grid
    empty = scored["empty_response"] if "empty_response" in scored else None
    rows = []
    for r in recall_grid:
        for p in precision_grid:
            ok = passed_filter(scored["symptoms_recall"], scored["anamnesis_precision"], r, p, empty)
            rows.append({"recall_threshold": float(r), "precision_threshold": float(p),
                         "share_passing": float(ok.mean()) if len(ok) else math.nan})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------- tables in, tables out


def _symptom_string(value: Any) -> str:
    """A task's symptoms as the paper joined them: ", ".join(list)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v).strip() for v in value if _text(v).strip())
    text = _text(value).strip()
    if text.startswith("["):
        for parse in (json.loads, ast.literal_eval):
            try:
                parsed = parse(text)
            except (ValueError, SyntaxError):
                continue
            if isinstance(parsed, list):
                return _symptom_string(parsed)
    return text


def load_store(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a generation store (``generations.jsonl``, fields ``schema.STORE_FIELDS``) with the
    store's own rules: a torn last line is ignored, a task's first record wins."""
    from medsyn_utils.generate.store import read_records

    path = Path(path)
    if not path.is_file():
        raise InputTableError(f"generation store {path} does not exist: run stage 03 or pass --in "
                              f"with an existing generations.jsonl or scored CSV")
    frame = pd.DataFrame.from_records(read_records(path))
    if frame.empty:
        raise InputTableError(f"generation store {path} is empty: generate notes first (stage 03)")
    missing = [c for c in ("task_id", "response") if c not in frame.columns]
    if missing:
        raise InputTableError(f"generation store {path} lacks field(s) {', '.join(missing)}: "
                              f"expected the fields {', '.join(STORE_FIELDS)}")
    for name in STORE_FIELDS:
        if name not in frame.columns:
            frame[name] = None
    frame["task_id"] = frame["task_id"].astype(str)
    return frame


def load_tasks(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a task table (``tasks.parquet`` or ``tasks.csv``, columns ``schema.TASK_COLUMNS``)."""
    from medsyn_utils.tasks.table import load_task_table

    frame = load_task_table(path)
    needed = ("task_id", "icd10", "prompt_kind", "symptoms", "example_text", "example_source")
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise InputTableError(f"task table {path} lacks column(s) {', '.join(missing)}: expected "
                              f"the columns of schema.TASK_COLUMNS ({len(TASK_COLUMNS)} of them)")
    frame["task_id"] = frame["task_id"].astype(str)
    return frame


def published_table(store: pd.DataFrame, tasks: pd.DataFrame) -> pd.DataFrame:
    """Store + task table → the published MedSyn columns, then :data:`CONTEXT_COLUMNS`.

    ``idx``=task_id, ``ICD-10``=icd10, ``generation_model``=model_id, ``prompt``=the prompt as
    sent, ``prior``=prompt_kind, ``example``=bool(example_text), ``example_source``,
    ``response``, ``symptoms``=", ".join(list), ``anamnesis``=example_text.
    """
    tasks = tasks.drop_duplicates("task_id").set_index("task_id")
    unknown = sorted(set(store["task_id"]) - set(tasks.index))
    if unknown:
        raise InputTableError(f"{len(unknown)} generation(s) name tasks missing from the task table "
                              f"(e.g. {unknown[:3]}): pass the task table the store was made from")
    t = tasks.loc[store["task_id"]]
    example_text = [None if not _text(v).strip() else _text(v) for v in t["example_text"]]
    table = pd.DataFrame({
        "idx": store["task_id"].to_numpy(),
        "ICD-10": t["icd10"].to_numpy(),
        "generation_model": store["model_id"].to_numpy(),
        "prompt": store["prompt"].to_numpy(),
        "prior": t["prompt_kind"].to_numpy(),
        "example": [v is not None for v in example_text],
        "example_source": t["example_source"].to_numpy(),
        "response": [_text(v) for v in store["response"]],
        "symptoms": [_symptom_string(v) for v in t["symptoms"]],
        "anamnesis": example_text,
        "code_name_ru": t["code_name_ru"].to_numpy() if "code_name_ru" in t else None,
        "category": t["category"].to_numpy() if "category" in t else None,
        "example_visit_id": t["example_visit_id"].to_numpy() if "example_visit_id" in t else None,
        "finish_reason": store["finish_reason"].to_numpy(),
    })
    return table


def _with_published_columns(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for name in (*PUBLISHED_COLUMNS, *CONTEXT_COLUMNS):
        if name not in frame.columns:
            frame[name] = range(len(frame)) if name == "idx" else None
    frame["symptoms"] = [_symptom_string(v) for v in frame["symptoms"]]
    return frame


def read_scoring_input(path: str | os.PathLike[str], tasks: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """A table to score, in the published layout.

    ``.jsonl``: a generation store, joined with its task table (``tasks``, else ``tasks.parquet``
    or ``tasks.csv`` next to it). ``.csv`` / ``.parquet``: any table with ``response``,
    ``symptoms`` and ``anamnesis`` columns (the published 41k dataset, a scored file).
    """
    path = Path(path)
    if not path.is_file():
        raise InputTableError(f"input {path} does not exist: pass --in with generations.jsonl or a "
                              f"CSV/Parquet table with response, symptoms and anamnesis columns")
    if path.suffix == ".jsonl":
        if tasks is None:
            for name in ("tasks.parquet", "tasks.csv"):
                if (path.parent / name).is_file():
                    tasks = path.parent / name
                    break
            else:
                raise InputTableError(f"generation store {path} needs its task table: pass --tasks "
                                      f"with the tasks.parquet of stage 02")
        return published_table(load_store(path), load_tasks(tasks))
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif path.suffix in {".csv", ".tsv"}:
        frame = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", dtype={"idx": str})
    else:
        raise InputTableError(f"input {path} has an unknown type {path.suffix!r}: use .jsonl "
                              f"(generation store), .csv or .parquet")
    return fill_diagnosis_names(check_table(frame, str(path)))


def check_table(frame: pd.DataFrame, name: str = "input table") -> pd.DataFrame:
    """Check a published-layout table and fill the optional published columns it lacks."""
    missing = [c for c in REQUIRED_TABLE_COLUMNS if c not in frame.columns]
    if missing:
        raise InputTableError(f"{name} lacks column(s) {', '.join(missing)}: a table to score needs "
                              f"{', '.join(REQUIRED_TABLE_COLUMNS)} (published MedSyn layout)")
    if frame.empty:
        raise InputTableError(f"{name} has no rows: nothing to score")
    return _with_published_columns(frame)


def fill_diagnosis_names(frame: pd.DataFrame) -> pd.DataFrame:
    """Fill missing ``code_name_ru`` from the ``ICD-10`` column with the official МКБ-10 name
    (through the knowledge graph), so the "diagnosis named" check also runs on published tables."""
    if "ICD-10" not in frame.columns:
        return frame
    missing = frame["code_name_ru"].isna() & frame["ICD-10"].notna() if "code_name_ru" in frame \
        else frame["ICD-10"].notna()
    if not missing.any():
        return frame
    from medsyn_utils.core.errors import MedsynError
    from medsyn_utils.kg.graph import load_graph

    try:
        graph = load_graph()
    except MedsynError:
        return frame  # no data mirror: the check is skipped (NaN), not the scoring

    def name(code: Any) -> str | None:
        try:
            return graph.name(str(code)) or None
        except MedsynError:
            return None

    frame = frame.copy()
    names = frame.get("code_name_ru", pd.Series([None] * len(frame), index=frame.index)).astype(object)
    names[missing] = [name(c) for c in frame.loc[missing, "ICD-10"]]
    frame["code_name_ru"] = names
    return frame


def write_table(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write CSV or Parquet by suffix, atomically (a reader never sees half a file)."""
    from medsyn_utils.core.provenance import write_atomic

    path = Path(path)
    if path.suffix == ".parquet":
        import io
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return write_atomic(path, buffer.getvalue())
    if path.suffix == ".csv":
        return write_atomic(path, frame.to_csv(index=False))
    raise ParameterError(f"output {path} must end in .csv or .parquet")


def read_scored(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a scored dataset back (CSV or Parquet) with the kit's column types."""
    path = Path(path)
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype={"idx": str})
    for name in ("example", "empty_response", "missing_symptoms", "missing_example", "long_text",
                 "memorised", "non_russian", "passed_filter"):
        if name in frame.columns and frame[name].dtype == object:
            frame[name] = frame[name].map({True: True, False: False, "True": True, "False": False})
    for name in ("response", "symptoms"):  # always text; CSV reads an empty string back as NaN
        if name in frame.columns:
            frame[name] = [_text(v) for v in frame[name]]
    return frame


def score_table(table: pd.DataFrame, scorer: NoteScorer, *, recall_threshold: float,
                precision_threshold: float, copy_threshold: float = quality.DEFAULT_COPY_THRESHOLD,
                chunk_rows: int = 256, out: str | os.PathLike[str] | None = None,
                progress: bool = True) -> pd.DataFrame:
    """Score a published-layout table: BERTScore, the per-note checks and ``passed_filter``.

    Returns the columns :data:`SCORED_COLUMNS`. If anything fails midway (or the run is
    interrupted), the rows scored so far are written to ``<out stem>.partial<suffix>`` (when
    ``out`` is given) before the error propagates, so finished work is never lost.
    """
    table = check_table(table).reset_index(drop=True)
    done: list[pd.DataFrame] = []
    try:
        for first, frame in scorer.iter_score(table["response"].tolist(), table["symptoms"].tolist(),
                                              table["anamnesis"].tolist(), chunk_rows=chunk_rows,
                                              progress=progress):
            part = table.iloc[first:first + len(frame)]
            checks = quality.quality_table(part["response"].tolist(), part["anamnesis"].tolist(),
                                           part["code_name_ru"].tolist(), copy_threshold=copy_threshold)
            checks.index = frame.index
            checks["note_tokens"] = frame["note_tokens"]
            merged = part.drop(columns=["symptoms_recall", "anamnesis_precision"], errors="ignore").copy()
            merged["symptoms_recall"] = frame["symptoms_recall"]
            merged["anamnesis_precision"] = frame["anamnesis_precision"]
            merged["bertscore_hash"] = scorer.hash
            for name in ("empty_response", "missing_symptoms", "missing_example", "long_text"):
                merged[name] = frame[name]
            for name in quality.QUALITY_COLUMNS:
                merged[name] = checks[name]
            merged["passed_filter"] = passed_filter(frame["symptoms_recall"], frame["anamnesis_precision"],
                                                    recall_threshold, precision_threshold,
                                                    frame["empty_response"])
            done.append(merged[list(SCORED_COLUMNS)])
    except BaseException:
        if out is not None and done:
            partial = Path(out).with_name(f"{Path(out).stem}.partial{Path(out).suffix}")
            write_table(pd.concat(done), partial)
            warnings.warn(f"scoring stopped after {sum(len(d) for d in done)} of {len(table)} rows; "
                          f"those are in {partial}", stacklevel=2)
        raise
    scored = pd.concat(done) if done else pd.DataFrame(columns=list(SCORED_COLUMNS))
    if out is not None:
        write_table(scored, out)
    return scored


def summary(scored: pd.DataFrame, report: ScoreReport | None = None) -> dict[str, Any]:
    """Key numbers of a scored table (for the stage record and the CLI)."""
    numbers: dict[str, Any] = {
        "rows": int(len(scored)),
        "passed": int(scored["passed_filter"].sum()),
        "share_passed": float(scored["passed_filter"].mean()) if len(scored) else math.nan,
        "symptoms_recall_mean": float(scored["symptoms_recall"].mean()),
        "anamnesis_precision_mean": float(scored["anamnesis_precision"].mean()),
        "empty_responses": int(scored["empty_response"].sum()),
        "long_texts_rows": int(scored["long_text"].sum()),
        "memorised": int(scored["memorised"].sum()),
        "names_diagnosis": int((scored["names_diagnosis"] == 1).sum()),
        "placeholders_copied_rows": int((scored["placeholders_copied"] > 0).sum()),
        "non_russian": int(scored["non_russian"].sum()),
        **quality.set_metrics(scored["response"].tolist()),
    }
    if report is not None:
        numbers.update({"bertscore_hash": report.hash, "texts_embedded": report.texts_embedded,
                        "long_texts": report.long_texts, "truncated_texts": report.truncated_texts,
                        "scoring_seconds": report.seconds})
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in numbers.items()}


def stage_metrics(scored: pd.DataFrame, report: ScoreReport | None, source: str,
                  thresholds: Mapping[str, float], calibration: "Calibration | None") -> dict[str, Any]:
    """The stage record's metrics: :func:`summary`, where the notes came from, the thresholds
    used and the calibration table."""
    return {**summary(scored, report), "input": source, "thresholds_used": dict(thresholds),
            "calibration": None if calibration is None else calibration.table.to_dict("records")}


# ------------------------------------------------------------------------------ calibration


def calibration_pairs(n: int, seed: int) -> pd.DataFrame:
    """Real train notes with their own marked-up symptom(s) and another real note of the same code.

    Only RuMedTop3 *train* visits are used (the downstream test must stay unseen). Columns:
    ``idx``, ``code``, ``note`` (the full note), ``symptoms`` (mark-up joined by ", "),
    ``other_idx``, ``other_note`` (None when the code has a single note).
    """
    from medsyn_utils.core.corpus import load_full_notes, load_markup

    if n < 1:
        raise ParameterError(f"calibration size n={n} must be >= 1")
    markup = load_markup()
    markup = markup[(markup["split"] == "train") & markup["symptom"].notna()]
    symptoms = markup.groupby("idx")["symptom"].agg(lambda s: ", ".join(dict.fromkeys(s.str.strip())))
    notes = load_full_notes("train")
    notes = notes[notes["full_text"].str.strip().astype(bool)]
    with_markup = notes[notes["idx"].isin(symptoms.index)].sort_values("idx").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    picked = with_markup.iloc[np.sort(rng.choice(len(with_markup), size=min(n, len(with_markup)),
                                                 replace=False))]
    by_code = {code: group for code, group in notes.sort_values("idx").groupby("code")}
    others_idx, others = [], []
    for idx, code in zip(picked["idx"], picked["code"]):
        pool = by_code[code][by_code[code]["idx"] != idx]
        if len(pool):
            row = pool.iloc[int(rng.integers(len(pool)))]
            others_idx.append(row["idx"])
            others.append(row["full_text"])
        else:
            others_idx.append(None)
            others.append(None)
    return pd.DataFrame({"idx": picked["idx"].to_numpy(), "code": picked["code"].to_numpy(),
                         "note": picked["full_text"].to_numpy(),
                         "symptoms": picked["idx"].map(symptoms).to_numpy(),
                         "other_idx": others_idx, "other_note": others})


@dataclass
class Calibration:
    """Thresholds mapped to an encoder by percentile on real notes."""

    table: pd.DataFrame                # one row per score: paper threshold, percentile, mapped threshold
    scores: pd.DataFrame               # per real note: its recall and precision (and the paper encoder's)
    thresholds: dict[str, float] = field(default_factory=dict)

    def threshold(self, score: str) -> float:
        return self.thresholds[score]


def map_threshold(threshold: float, target_scores: Sequence[float],
                  reference_scores: Sequence[float] | None = None, *, assumed_percentile: float = 10.0,
                  strict: bool = False) -> tuple[float, float]:
    """(mapped threshold, percentile): the score at the same percentile of real notes.

    The percentile is the share of real notes below ``threshold`` under the paper's encoder
    (``reference_scores``; ``strict`` counts ties as below, for a ">" rule), or
    ``assumed_percentile`` where that encoder cannot be run.
    """
    target = np.asarray(target_scores, dtype=float)
    target = target[~np.isnan(target)]
    if not len(target):
        return math.nan, math.nan
    if reference_scores is not None:
        ref = np.asarray(reference_scores, dtype=float)
        ref = ref[~np.isnan(ref)]
        percentile = 100.0 * float(np.mean(ref <= threshold if strict else ref < threshold))
    else:
        percentile = float(assumed_percentile)
    return float(np.percentile(target, percentile)), percentile


def calibrate(scorer: NoteScorer, n: int = 200, seed: int = 0, *,
              paper_thresholds: Mapping[str, float] = PAPER_THRESHOLDS,
              reference: NoteScorer | None = None, assumed_percentile: float = 10.0,
              pairs: pd.DataFrame | None = None, progress: bool = False) -> Calibration:
    """Score real notes against their own symptoms and a same-code note; map the paper's
    thresholds to ``scorer``'s scale by percentile.

    ``reference``: a scorer with the paper's encoder (``bert-base-multilingual-cased``, layer 9),
    when it can be loaded; without it the percentile is ``assumed_percentile`` (labelled so).
    """
    if not 0 <= assumed_percentile <= 100:
        raise ParameterError(f"assumed_percentile={assumed_percentile} must lie in 0..100")
    pairs = calibration_pairs(n, seed) if pairs is None else pairs
    own = scorer.score(pairs["note"].tolist(), pairs["symptoms"].tolist(), pairs["other_note"].tolist(),
                       progress=progress)
    scores = pairs[["idx", "code", "other_idx"]].copy()
    scores["symptoms_recall"] = own["symptoms_recall"].to_numpy()
    scores["anamnesis_precision"] = own["anamnesis_precision"].to_numpy()
    ref = None
    if reference is not None:
        ref = reference.score(pairs["note"].tolist(), pairs["symptoms"].tolist(),
                              pairs["other_note"].tolist(), progress=progress)
        scores["paper_symptoms_recall"] = ref["symptoms_recall"].to_numpy()
        scores["paper_anamnesis_precision"] = ref["anamnesis_precision"].to_numpy()
    rows, thresholds = [], {}
    for name, strict in (("symptoms_recall", False), ("anamnesis_precision", True)):
        paper = float(paper_thresholds[name])
        values = scores[name].to_numpy(dtype=float)
        mapped, percentile = map_threshold(paper, values, None if ref is None else ref[name],
                                           assumed_percentile=assumed_percentile, strict=strict)
        clean = values[~np.isnan(values)]
        thresholds[name] = mapped
        rows.append({
            "score": name, "rule": ">" if strict else ">=", "paper_threshold": paper,
            "percentile": percentile,
            "percentile_source": (f"measured with {reference.info.name} layer {reference.layer}"
                                  if ref is not None else "assumed (paper encoder not available here)"),
            "mapped_threshold": mapped, "encoder": scorer.info.name, "layer": scorer.layer,
            "real_notes": int(len(clean)),
            "real_mean": float(clean.mean()) if len(clean) else math.nan,
            **{f"real_p{q:02d}": float(np.percentile(clean, q)) if len(clean) else math.nan
               for q in (5, 10, 25, 50)},
            "real_passing_paper_number": float(np.mean(clean > paper if strict else clean >= paper))
            if len(clean) else math.nan,
            "real_passing_mapped": float(np.mean(clean > mapped if strict else clean >= mapped))
            if len(clean) else math.nan,
        })
    return Calibration(table=pd.DataFrame(rows), scores=scores, thresholds=thresholds)


def paper_reference_scorer(encoder: str = PAPER_ENCODER, layer: int = PAPER_LAYER,
                           **options) -> NoteScorer | None:
    """The paper's encoder where it can be loaded (cached or online), else None."""
    if not encoder:
        return None
    try:
        return NoteScorer(encoder, layer, **options)
    except ModelError:
        return None


def stage_data_files(uses_real_notes: bool) -> list[str]:
    """Registry names read when real notes are scored (calibration, stand-ins)."""
    from medsyn_utils.core.corpus import FULL_NOTE_FILES, MARKUP_FILE, RUMEDTOP3_FILES

    if not uses_real_notes:
        return []
    return [FULL_NOTE_FILES["train"], MARKUP_FILE, *RUMEDTOP3_FILES.values()]


def real_note_stand_ins(n: int, seed: int) -> pd.DataFrame:
    """A tiny published-layout table of REAL train notes standing in for generated ones.

    For trying the scoring stage before any generation: each response is a real note, its
    symptoms its own mark-up, its example another real note of the same code. The
    ``generation_model`` column says ``real-note stand-in``; never mix these with generated notes.
    """
    pairs = calibration_pairs(n, seed)
    return _with_published_columns(pd.DataFrame({
        "idx": [f"standin-{i}" for i in pairs["idx"]], "ICD-10": pairs["code"],
        "generation_model": STAND_IN_MODEL, "prompt": None, "prior": "symptoms+example",
        "example": pairs["other_note"].notna(), "example_source": "RuMedTop3-train",
        "response": pairs["note"], "symptoms": pairs["symptoms"], "anamnesis": pairs["other_note"],
        "category": pairs["code"], "example_visit_id": pairs["other_idx"],
    }))


# ------------------------------------------------------------------------- notebook helpers


def stage_input(run_dir: str | os.PathLike[str], input_path: str = "", *, fallback_size: int = 8,
                seed: int = 0) -> tuple[pd.DataFrame, str]:
    """The table stage 04 scores, and a label saying where it came from.

    ``input_path`` empty: ``<run_dir>/generations.jsonl`` with its task table. When the run
    folder has no store yet, ``fallback_size`` > 0 scores that many REAL train notes as
    stand-ins (label ``"stand-in: ..."``); 0 raises a clear error instead.
    """
    from medsyn_utils.core.paths import resolve

    run = resolve(run_dir)
    if input_path:
        return read_scoring_input(resolve(input_path)), f"input {input_path}"
    store = run / "generations.jsonl"
    if store.is_file():
        return read_scoring_input(store), f"generation store {store}"
    if fallback_size > 0:
        return (real_note_stand_ins(fallback_size, seed),
                f"stand-in: no {store} yet, so {fallback_size} REAL RuMedTop3 train notes are scored "
                f"in place of generated ones (run stage 03 first for real results)")
    raise InputTableError(f"no generation store at {store}: run stage 03 (notebooks/03_generation.ipynb) "
                          f"or set input_path to a CSV/Parquet in the published layout")


def best_and_worst(scored: pd.DataFrame, k: int = 3, by: str = "symptoms_recall") -> pd.DataFrame:
    """The k best and k worst scored notes side by side with their priors (symptoms, example)."""
    ranked = scored[scored[by].notna()].sort_values(by, ascending=False)
    keep = ["idx", "ICD-10", "prior", by, "anamnesis_precision" if by == "symptoms_recall" else
            "symptoms_recall", "passed_filter", "symptoms", "response", "anamnesis"]
    best = ranked.head(k)[keep].assign(rank="best")
    worst = ranked.tail(k)[keep].iloc[::-1].assign(rank="worst")
    return pd.concat([best, worst]).set_index(["rank", "idx"])


def plot_distributions(scored: pd.DataFrame, thresholds: Mapping[str, float],
                       calibration: Calibration | None = None):
    """Histograms of both scores (generated notes, and real notes when calibrated) with the
    thresholds the filter uses as vertical lines."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, name in zip(axes, ("symptoms_recall", "anamnesis_precision")):
        frames = [pd.DataFrame({"score": scored[name], "notes": "scored"})]
        if calibration is not None:
            frames.append(pd.DataFrame({"score": calibration.scores[name], "notes": "real (calibration)"}))
        data = pd.concat(frames).dropna()
        if len(data):
            sns.histplot(data=data, x="score", hue="notes", stat="density", common_norm=False,
                         element="step", ax=ax, bins=30)
        line = ax.axvline(thresholds[name], color="crimson", linestyle="--")
        legend = ax.get_legend()
        handles = list(legend.legend_handles) if legend is not None else []
        labels = [t.get_text() for t in legend.get_texts()] if legend is not None else []
        ax.legend(handles + [line], labels + [f"threshold {thresholds[name]:.3f}"], loc="upper left",
                  fontsize=8)
        ax.set_title(name)
    fig.tight_layout()
    return fig


def plot_sweep(sweep: pd.DataFrame, thresholds: Mapping[str, float] | None = None):
    """Heat map: share of notes passing for each (recall, precision) threshold pair."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    grid = sweep.pivot(index="precision_threshold", columns="recall_threshold", values="share_passing")
    fig, ax = plt.subplots(figsize=(7, 5))
    sns.heatmap(grid.iloc[::-1], annot=True, fmt=".2f", cmap="viridis", vmin=0, vmax=1, ax=ax,
                cbar_kws={"label": "share passing"})
    title = "share of notes passing"
    if thresholds:
        title += (f" (in use: recall ≥ {thresholds['symptoms_recall']:.3f}, "
                  f"precision > {thresholds['anamnesis_precision']:.3f})")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_copy_rate(scored: pd.DataFrame, copy_threshold: float):
    """Distribution of the share of 8-grams copied from the example, with the flag threshold."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(6, 3.5))
    values = scored["copied_8gram_share"].dropna()
    if len(values):
        sns.histplot(values, bins=20, ax=ax)
    ax.axvline(copy_threshold, color="crimson", linestyle="--", label=f"flag at {copy_threshold:.2f}")
    ax.set_xlabel("share of the note's word 8-grams found in its style example")
    ax.legend()
    fig.tight_layout()
    return fig
