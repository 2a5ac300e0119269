"""The generated tiny GGUF: deterministic, and carrying every key the qwen2 loader reads."""

from __future__ import annotations

import hashlib
from pathlib import Path

import gguf
import numpy as np

from tests.support.tiny_model import (
    IM_END,
    QWEN25_CHAT_TEMPLATE,
    SPECIAL_TOKENS,
    TinyDims,
    bytes_to_unicode,
    cached_tiny_qwen2_gguf,
    train_bpe,
    write_tiny_qwen2_gguf,
)


def _field(reader: gguf.GGUFReader, key: str) -> object:
    field = reader.get_field(key)
    assert field is not None, f"missing GGUF key {key}"
    return field.contents()


def test_same_seed_same_bytes_other_seed_other_weights(tmp_path: Path) -> None:
    a = write_tiny_qwen2_gguf(tmp_path / "a.gguf", seed=0)
    b = write_tiny_qwen2_gguf(tmp_path / "b.gguf", seed=0)
    c = write_tiny_qwen2_gguf(tmp_path / "c.gguf", seed=1)
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (a, b, c)]
    assert digest[0] == digest[1]
    assert digest[0] != digest[2]
    assert 100_000 < a.stat().st_size < 8_000_000


def test_hyper_parameters_and_tokenizer_keys(tmp_path: Path) -> None:
    dims = TinyDims()
    reader = gguf.GGUFReader(write_tiny_qwen2_gguf(tmp_path / "m.gguf"))
    assert _field(reader, "general.architecture") == "qwen2"
    assert _field(reader, "qwen2.embedding_length") == dims.n_embd
    assert _field(reader, "qwen2.block_count") == dims.n_layer
    assert _field(reader, "qwen2.attention.head_count") == dims.n_head
    assert _field(reader, "qwen2.attention.head_count_kv") == dims.n_head_kv
    assert _field(reader, "qwen2.feed_forward_length") == dims.n_ff
    assert _field(reader, "qwen2.context_length") == dims.n_ctx_train
    assert _field(reader, "tokenizer.ggml.model") == "gpt2"
    assert _field(reader, "tokenizer.ggml.pre") == "qwen2"
    assert _field(reader, "tokenizer.chat_template") == QWEN25_CHAT_TEMPLATE
    tokens = _field(reader, "tokenizer.ggml.tokens")
    types = _field(reader, "tokenizer.ggml.token_type")
    assert isinstance(tokens, list)
    assert isinstance(types, list)
    assert tokens[:256] == list(bytes_to_unicode().values())
    for special in SPECIAL_TOKENS:
        assert types[tokens.index(special)] == gguf.TokenType.CONTROL
    assert _field(reader, "tokenizer.ggml.eos_token_id") == tokens.index(IM_END)


def test_all_qwen2_tensors_with_attention_biases(tmp_path: Path) -> None:
    dims = TinyDims()
    reader = gguf.GGUFReader(write_tiny_qwen2_gguf(tmp_path / "m.gguf"))
    shapes = {t.name: tuple(int(n) for n in t.shape) for t in reader.tensors}
    kv = dims.n_embd // dims.n_head * dims.n_head_kv
    assert {"token_embd.weight", "output_norm.weight", "output.weight"} <= shapes.keys()
    for i in range(dims.n_layer):
        # GGUFReader reports ggml's ne order: (n_in, n_out).
        assert shapes[f"blk.{i}.attn_q.weight"] == (dims.n_embd, dims.n_embd)
        assert shapes[f"blk.{i}.attn_k.weight"] == (dims.n_embd, kv)
        assert shapes[f"blk.{i}.attn_v.bias"] == (kv,)
        assert shapes[f"blk.{i}.attn_q.bias"] == (dims.n_embd,)
        assert shapes[f"blk.{i}.ffn_gate.weight"] == (dims.n_embd, dims.n_ff)
        assert shapes[f"blk.{i}.ffn_down.weight"] == (dims.n_ff, dims.n_embd)
    assert len(shapes) == 3 + 12 * dims.n_layer


def test_bpe_training_is_deterministic_and_merges_common_pairs() -> None:
    text = "the the the then there other"
    merges = train_bpe(text, 5)
    assert merges == train_bpe(text, 5)
    assert merges[0] in {("t", "h"), ("h", "e")}
    assert len(merges) == 5
    assert np.unique([f"{a} {b}" for a, b in merges]).size == 5


def test_cache_generates_once_per_seed(tmp_path: Path) -> None:
    first = cached_tiny_qwen2_gguf(tmp_path, seed=3)
    mtime = first.stat().st_mtime_ns
    again = cached_tiny_qwen2_gguf(tmp_path, seed=3)
    assert again == first
    assert again.stat().st_mtime_ns == mtime
    assert cached_tiny_qwen2_gguf(tmp_path, seed=4) != first
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".gguf", ".gguf"]
