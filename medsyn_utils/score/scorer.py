"""The one-pass BERTScore scorer: one encoder, loaded once; every distinct text embedded once.

Over 400 lines: the scorer class keeps embedding, batching and both scores in one place (one pass).

The MedSyn filter scores each note twice with BERTScore, the note always the candidate:
``symptoms_recall`` = R against the sampled symptoms joined by ", " (did the note cover them?)
and ``anamnesis_precision`` = P against the style example (is the note made of example-like
text?). The original called ``bert_score.score`` once per reference set, loading the model twice
and embedding every note twice. :class:`NoteScorer` is loaded once and, for a table, embeds every
distinct text (note, symptom string, example) once, in length-sorted batches cut by a token budget,
then reads both numbers from ``bert_score.utils.greedy_cos_idf`` — the same arithmetic as
``bert_score.score``.

Texts longer than the encoder's limit are counted and reported: by default they are cut as
bert-score cuts them (and the report says how many); ``windowed=True`` scores them whole, each
token embedded in the overlapping window where it sits most centrally.

``precision``: ``"fp32"`` (bert-score's own numbers), ``"int8"`` (CPU: the encoder's linear layers
dynamically quantized), ``"int8-attention"`` (CPU: only the attention projections quantized, the
feed-forward layers, whose activations 8 bits distort most, kept in fp32; see
``benchmarks/README.md`` for speed and agreement), ``"fp16"`` (CUDA only), ``"bf16"`` (CUDA, or
a CPU with AVX512-BF16/AMX: mixed precision — the linear layers' weights in bf16 and every matrix
product in bf16 with fp32 accumulation under ``torch.autocast``, while embeddings, layer norms and
the residual stream stay fp32, so rounding does not pile up layer after layer; a model cast wholly
to bf16 was faster but flipped twice as many filter decisions, see ``benchmarks/README.md``),
``"auto"`` (:func:`resolve_precision`: what
the measurement in ``benchmarks/README.md`` made the default). Anything but fp32 is part of
:attr:`NoteScorer.hash`, so tables of different precisions never share one.

Over 400 lines: the scorer is one class whose parts (tokens, windows, batches, greedy matching,
chunked iteration) share its state; splitting it would scatter that state.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from math import log
from typing import Any

import numpy as np
import pandas as pd

from medsyn_utils.core.errors import ModelError, ParameterError
from medsyn_utils.core.hardware import bf16_unsupported_message, cpu_bf16_supported
from medsyn_utils.score.embedding_cache import cache_for
from medsyn_utils.score.encoders import (
    DEFAULT_LAYER,
    EMBEDDED_E5,
    EncoderInfo,
    resolve_encoder,
)

PRIVATE_MARK = "private_data"  # the published dataset's stand-in for private example notes
PRECISIONS = ("fp32", "bf16", "int8", "int8-attention", "fp16", "auto")  # ScoringConfig.precision's choices
# What "auto" gives on a CPU with native bf16: "bf16" once it agrees with fp32 on >= 99.5 % of
# filter decisions at both thresholds. Measured for the mixed-precision bf16 (benchmarks/README.md,
# full-length notes): 99.67 % / 100 % (300 notes) and 100 % / 100 % (600 notes) at the calibrated
# thresholds / the median, so bf16; fp32 on CUDA and on CPUs without native bf16.
AUTO_CPU_BF16 = "bf16"
# Padded tokens per forward pass: CPU caches like small batches, a GPU wants them large.
# CPU: 2,048 measured fastest (fp32 on 150 full notes, one run: 8.32 pairs/s against 7.84 at 4,096
# and 6.91 at 8,192; the linear layers' GEMMs keep their speed at 2,048 rows and less is padded).
DEFAULT_BATCH_TOKENS = {"cpu": 2048, "cuda": 65536}
SCORE_COLUMNS = ("symptoms_recall", "anamnesis_precision", "note_tokens", "empty_response",
                 "missing_symptoms", "missing_example", "long_text")


def text_of(value: Any) -> str:
    """A cell as text: None/NaN → ""."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    return value if isinstance(value, str) else str(value)


def reference_of(value: Any) -> str | None:
    """A reference cell, or None when it is missing (None, NaN, blank, ``private_data``)."""
    text = text_of(value).strip()
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
    padded_tokens: int = 0        # forward-pass tokens with padding (the work actually done)
    attention_cells: int = 0      # sum over batches of rows x longest^2 (the attention's work)
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
    instead of cutting them; ``precision``: see the module doc; ``max_batch_tokens``: padded
    tokens per forward pass (default by device, :data:`DEFAULT_BATCH_TOKENS`);
    ``embedding_cache_dir``: where pooled vectors of embedded texts are kept (None: nowhere).
    """

    def __init__(self, encoder: str = EMBEDDED_E5, layer: int = DEFAULT_LAYER, *, idf: bool = False,
                 device: str | None = None, batch_size: int = 64, max_batch_tokens: int | None = None,
                 windowed: bool = False, window_stride: int | None = None,
                 pair_batch_size: int = 256, precision: str = "fp32",
                 embedding_cache_dir: Any = None) -> None:
        import torch
        from transformers import AutoConfig

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        precision = resolve_precision(precision, device)
        # What builds this scorer again elsewhere (a Ray actor): the same numbers from the same settings.
        self.settings: dict[str, Any] = dict(
            encoder=encoder, layer=layer, idf=idf, device=device, batch_size=batch_size,
            max_batch_tokens=max_batch_tokens, windowed=windowed, window_stride=window_stride,
            pair_batch_size=pair_batch_size, precision=precision)
        max_batch_tokens = max_batch_tokens or DEFAULT_BATCH_TOKENS.get(device.split(":")[0], DEFAULT_BATCH_TOKENS["cpu"])
        if batch_size < 1 or max_batch_tokens < 1 or pair_batch_size < 1:
            raise ParameterError(f"batch sizes must be >= 1 (batch_size={batch_size}, "
                                 f"max_batch_tokens={max_batch_tokens}, pair_batch_size={pair_batch_size})")
        check_precision(precision, device)
        with contextlib.redirect_stdout(sys.stderr):  # conversion/licence notices never reach stdout
            self.info: EncoderInfo = resolve_encoder(encoder)
            config = AutoConfig.from_pretrained(self.info.path)
        total = getattr(config, "num_hidden_layers", None)
        if not isinstance(layer, int) or layer < 1 or (total is not None and layer > total):
            raise ParameterError(f"layer={layer} is out of range for encoder {encoder!r}: use 1..{total}")
        self.tokenizer, self.model = _load(self.info, layer, encoder)
        self.device, self.precision = device, precision
        self.model = _with_precision(self.model, precision).to(self.device).eval()
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
        # embedding_cache_dir: every text embedded leaves its pooled vector there for the
        # evaluation stage (score.embeddings.embed_texts); "" = the user's cache.
        self.embedding_cache = None
        if embedding_cache_dir is not None:
            self.embedding_cache = cache_for(self, embedding_cache_dir or None)

    # ------------------------------------------------------------------ identity

    @property
    def hash(self) -> str:
        """bert-score's hash (model, layer, idf, versions), plus windowing and precision when used."""
        from bert_score.utils import get_hash

        text = get_hash(self.info.name, self.layer, self.idf, False, False, True)
        text += f"_windowed-{self.window_stride}" if self.windowed else ""
        # "-mixed": bf16 scores from before the mixed-precision scorer never join its tables
        tag = {"fp32": "", "bf16": "_bf16-mixed"}.get(self.precision, f"_{self.precision}")
        return text + tag

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
        return len(self.token_ids([text])[0]) if text_of(text).strip() else 0

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
                with self._mixed_precision():
                    out = self.model(x.to(self.device), attention_mask=mask.to(self.device))[0]
                for j, (text, start, seq) in enumerate(batch):
                    states[(text, start)] = out[j, :len(seq)].float()
                report.sequences_embedded += len(batch)
                report.tokens_embedded += int(mask.sum())
                report.padded_tokens += int(mask.numel())
                report.attention_cells += len(batch) * longest * longest
                i += size
        result = {}
        for text in texts:
            ids = ids_of[text]
            if len(ids) > self.max_length and self.windowed:
                result[text] = self._assemble(ids, [(s, states[(text, s)]) for s, _ in self._windows(ids)])
            else:
                result[text] = states[(text, -1)]
        report.texts_embedded += len(texts)
        if self.embedding_cache is not None and result:
            self.embedding_cache.put_states(result)
        return result

    def _mixed_precision(self):
        """bf16: matrix products in bf16 under autocast (see the module doc); else nothing."""
        import torch

        if self.precision != "bf16":
            return contextlib.nullcontext()
        return torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16)

    def embed(self, texts: Sequence[str]) -> dict[str, Any]:
        """fp32 token states (layer ``self.layer``) of each distinct non-empty stripped text."""
        distinct = list(dict.fromkeys(t for t in (text_of(x).strip() for x in texts) if t))
        report = ScoreReport(hash=self.hash, max_length=self.max_length, windowed=self.windowed,
                             rows=len(distinct))
        ids_of = dict(zip(distinct, self.token_ids(distinct)))
        return self._embed(ids_of, distinct, report)

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
        cands = [text_of(c).strip() for c in cands]
        refs = [text_of(r).strip() for r in refs]
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

    def prepare(self, notes: Sequence[Any], symptoms: Sequence[Any], examples: Sequence[Any]) -> Prepared:
        """Clean texts, token ids of every distinct text and the idf weights of a whole table."""
        n = len(notes)
        if len(symptoms) != n or len(examples) != n:
            raise ParameterError(f"got {n} notes, {len(symptoms)} symptom strings and "
                                 f"{len(examples)} examples: pass one of each per note")
        notes_t = [text_of(x).strip() for x in notes]
        sym_t = [reference_of(x) for x in symptoms]
        ex_t = [reference_of(x) for x in examples]
        distinct = list(dict.fromkeys(t for t in (*notes_t, *sym_t, *ex_t) if t))
        ids_of = dict(zip(distinct, self.token_ids(distinct)))
        weights_r = self._idf_dict([s for s, c in zip(sym_t, notes_t) if s and c], ids_of)
        weights_p = self._idf_dict([e for e, c in zip(ex_t, notes_t) if e and c], ids_of)
        return Prepared(notes_t, sym_t, ex_t, ids_of, weights_r, weights_p)

    def iter_score(self, notes: Sequence[Any], symptoms: Sequence[Any], examples: Sequence[Any], *,
                   chunk_rows: int = 256, progress: bool = True, only_chunks: Collection[int] | None = None,
                   cache_per_chunk: bool = False,
                   prepared: Prepared | None = None) -> Iterator[tuple[int, pd.DataFrame]]:
        """Score rows chunk by chunk: yields ``(first_row, frame)`` so callers can keep what is done.

        By default every distinct text is embedded once for the whole call: a text used again in
        a later chunk (a style example shared by many tasks) stays cached until its last use.
        ``cache_per_chunk``: each chunk embeds its own texts, so a chunk's numbers depend on
        nothing outside it (resumable scoring); ``only_chunks``: the chunk numbers to score (idf
        weights still come from the whole table). Columns: :data:`SCORE_COLUMNS` —
        ``symptoms_recall`` (NaN without symptoms), ``anamnesis_precision`` (NaN without an
        example), ``note_tokens``, ``empty_response`` (scored 0), ``missing_symptoms``,
        ``missing_example``, ``long_text``.
        """
        from tqdm.auto import tqdm

        if chunk_rows < 1:
            raise ParameterError(f"chunk_rows={chunk_rows} must be >= 1")
        start_time = time.perf_counter()
        prep = prepared or self.prepare(notes, symptoms, examples)  # given: the same table, reused
        n = len(prep.notes)
        chunks = [range(first, min(n, first + chunk_rows)) for first in range(0, n, chunk_rows)]
        if only_chunks is not None:
            chunks = [chunks[k] for k in sorted(set(only_chunks))]
        report = ScoreReport(hash=self.hash, max_length=self.max_length, windowed=self.windowed,
                             rows=sum(len(r) for r in chunks))
        self.last_report = report
        self._count_long({t: prep.ids_of[t] for r in chunks for i in r for t in prep.texts(i) if t},
                         report)
        uses = Counter(t for r in chunks for i in r for t in prep.texts(i) if t)
        cache: dict[str, Any] = {}
        bar = tqdm(total=report.rows, desc="scoring notes", unit="note", disable=not progress,
                   file=sys.stderr)
        try:
            for rows in chunks:
                if cache_per_chunk:
                    cache = {}
                needed = list(dict.fromkeys(t for i in rows for t in prep.texts(i)
                                            if t and t not in cache))
                cache.update(self._embed(prep.ids_of, needed, report))
                frame = self._chunk_frame(prep, rows, cache)
                for name, column in (("long_rows", "long_text"), ("empty_responses", "empty_response"),
                                     ("missing_symptoms", "missing_symptoms"),
                                     ("missing_examples", "missing_example")):
                    setattr(report, name, getattr(report, name) + int(frame[column].sum()))
                if not cache_per_chunk:
                    for t in (t for i in rows for t in prep.texts(i) if t):
                        uses[t] -= 1
                        if uses[t] == 0:
                            cache.pop(t, None)
                report.seconds = round(time.perf_counter() - start_time, 3)
                bar.update(len(rows))
                yield rows.start, frame
        finally:
            bar.close()

    def _chunk_frame(self, prep: Prepared, rows: range, cache: Mapping[str, Any]) -> pd.DataFrame:
        """Both scores and the flags of one chunk's rows (texts already embedded in ``cache``)."""
        recall = np.full(len(rows), np.nan)
        precision = np.full(len(rows), np.nan)
        notes_t = prep.notes
        for values, refs, weights, column in ((recall, prep.symptoms, prep.weights_r, 1),
                                              (precision, prep.examples, prep.weights_p, 0)):
            pairs = [k for k, i in enumerate(rows) if refs[i] and notes_t[i]]
            if pairs:
                scored = self._greedy([notes_t[rows[k]] for k in pairs],
                                      [refs[rows[k]] for k in pairs], cache, prep.ids_of, weights)
                values[pairs] = scored[:, column]
            values[[k for k, i in enumerate(rows) if refs[i] and not notes_t[i]]] = 0.0
        return pd.DataFrame({
            "symptoms_recall": recall,
            "anamnesis_precision": precision,
            "note_tokens": [len(prep.ids_of[notes_t[i]]) if notes_t[i] else 0 for i in rows],
            "empty_response": [not notes_t[i] for i in rows],
            "missing_symptoms": [prep.symptoms[i] is None for i in rows],
            "missing_example": [prep.examples[i] is None for i in rows],
            "long_text": [any(t and len(prep.ids_of[t]) > self.max_length for t in prep.texts(i))
                          for i in rows],
        }, index=pd.RangeIndex(rows.start, rows.stop))

    def score(self, notes: Sequence[Any], symptoms: Sequence[Any], examples: Sequence[Any], *,
              chunk_rows: int = 256, progress: bool = True) -> pd.DataFrame:
        """Both scores for every note in one pass (see :meth:`iter_score` for the columns)."""
        frames = [frame for _, frame in self.iter_score(notes, symptoms, examples,
                                                         chunk_rows=chunk_rows, progress=progress)]
        return pd.concat(frames) if frames else pd.DataFrame(columns=list(SCORE_COLUMNS))


@dataclass
class Prepared:
    """A table's cleaned texts (None: no reference), token ids and idf weights."""

    notes: list[str]
    symptoms: list[str | None]
    examples: list[str | None]
    ids_of: dict[str, list[int]]
    weights_r: Mapping[int, float]
    weights_p: Mapping[int, float]

    def texts(self, i: int) -> tuple[str, str | None, str | None]:
        return self.notes[i], self.symptoms[i], self.examples[i]


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` → :data:`AUTO_CPU_BF16` on a CPU with native bf16, fp32 elsewhere; others as given."""
    if precision != "auto":
        return precision
    if not device.startswith("cuda") and cpu_bf16_supported():
        return AUTO_CPU_BF16
    return "fp32"


def check_precision(precision: str, device: str) -> None:
    """int8 runs on CPU, fp16 on CUDA, bf16 on CUDA or a CPU with native bf16; else one line."""
    if precision not in PRECISIONS:
        raise ParameterError(f"precision={precision!r}: use one of {', '.join(PRECISIONS)}")
    on_cuda = device.startswith("cuda")
    if precision.startswith("int8") and on_cuda:
        raise ParameterError("precision='int8' is the CPU path: use fp16 or bf16 with --device cuda")
    if precision == "fp16" and not on_cuda:
        raise ParameterError("precision='fp16' needs --device cuda: on CPU use fp32, bf16 or int8")
    if precision == "bf16" and not on_cuda and not cpu_bf16_supported():
        raise ParameterError(bf16_unsupported_message("precision='bf16'"))


def _load(info: EncoderInfo, layer: int, asked: str):
    """bert-score's tokenizer and its layer-cut model; any loader failure is one line."""
    from bert_score.utils import get_model, get_tokenizer

    try:
        with contextlib.redirect_stdout(sys.stderr):
            return get_tokenizer(info.path, use_fast=True), get_model(info.path, layer)
    except Exception as error:  # noqa: BLE001 - any loader failure is one line for the user
        raise ModelError(f"encoder {asked!r} failed to load from {info.path}: "
                         f"{type(error).__name__}: {str(error).splitlines()[0][:200]}") from None


def _with_precision(model, precision: str):
    """The encoder in the asked precision: int8 = dynamic quantization of its linear layers,
    bf16 = its linear layers' weights in bf16 (the rest stays fp32; products run under autocast)."""
    import torch

    if precision.startswith("int8"):
        layers = {name for name, module in model.named_modules()
                  if isinstance(module, torch.nn.Linear)
                  and (precision == "int8" or ".attention." in f".{name}.")}
        with warnings.catch_warnings():  # torch.ao.quantization announces its future move
            warnings.simplefilter("ignore", (DeprecationWarning, UserWarning))
            return torch.ao.quantization.quantize_dynamic(model, layers, dtype=torch.qint8)
    if precision == "fp16":
        return model.half()
    if precision == "bf16":
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.to(torch.bfloat16)
    return model
