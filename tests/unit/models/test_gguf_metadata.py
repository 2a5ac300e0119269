"""gguf_metadata: the pure-Python header reader, checked against the `gguf` package's reader,
and the facts `sentiric-llm download` leaves for the operator (shape included)."""

from __future__ import annotations

import json
import logging
import struct
from pathlib import Path

import gguf
import pytest
from sentiric_inference.commands import download
from sentiric_inference.engine.sizing import ModelShape
from sentiric_inference.models.gguf_metadata import (
    GgufError,
    read_metadata,
    read_model_shape,
)

from tests.support.tiny_model import TinyDims

# Kubernetes truncates a termination message beyond this many bytes.
TERMINATION_MESSAGE_LIMIT = 4096


def test_scalars_and_array_lengths_match_the_gguf_package(tiny_model_path: Path) -> None:
    meta = read_metadata(tiny_model_path)
    reader = gguf.GGUFReader(tiny_model_path)
    scalars = {
        name: field
        for name, field in reader.fields.items()
        if not name.startswith("GGUF.") and field.types[0] != gguf.GGUFValueType.ARRAY
    }
    assert set(meta.values) == set(scalars)
    for name, field in scalars.items():
        value = field.contents()
        if isinstance(value, bool):
            assert meta.values[name] == str(value).lower(), name
        elif isinstance(value, float):
            assert float(meta.values[name]) == pytest.approx(value), name
        else:
            assert meta.values[name] == str(value), name
    arrays = {
        name: len(field.data)
        for name, field in reader.fields.items()
        if field.types and field.types[0] == gguf.GGUFValueType.ARRAY
    }
    assert meta.array_lengths == arrays
    assert meta.version == 3


def test_model_shape_of_the_tiny_model(tiny_model_path: Path) -> None:
    dims = TinyDims()
    tokens = len(gguf.GGUFReader(tiny_model_path).fields["tokenizer.ggml.tokens"].data)
    head_dim = dims.n_embd // dims.n_head
    assert read_model_shape(tiny_model_path) == ModelShape(
        n_layer=dims.n_layer,
        n_head_kv=dims.n_head_kv,
        key_length=head_dim,
        value_length=head_dim,
        n_embd=dims.n_embd,
        n_vocab=tokens,
        n_ctx_train=dims.n_ctx_train,
        weights_bytes=tiny_model_path.stat().st_size,
    )


def _header(version: int = 3, keys: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, 0, keys)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00" * 64, "no GGUF magic"),
        (_header(version=1), "unsupported GGUF version 1"),
        (_header(keys=1) + struct.pack("<Q", 5) + b"ab", "ends inside its metadata"),
        (_header(keys=1) + struct.pack("<Q", 1 << 40), "claims"),
        (_header(keys=1) + struct.pack("<Q", 1) + b"k" + struct.pack("<I", 99), "value type 99"),
        (_header(keys=0), "no tokenizer.ggml.tokens"),
    ],
    ids=["not gguf", "version 1", "truncated", "huge string", "unknown type", "no vocabulary"],
)
def test_unreadable_files_raise_gguf_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)
    with pytest.raises(GgufError, match=message):
        read_model_shape(path)


def test_termination_facts_carry_the_shape(tiny_model_path: Path) -> None:
    facts = download.termination_facts(tiny_model_path, 123, "ab" * 32)
    shape = read_model_shape(tiny_model_path)
    assert facts == {
        "sizeBytes": 123,
        "sha256": "ab" * 32,
        "shape": {
            "nLayer": shape.n_layer,
            "nHeadKv": shape.n_head_kv,
            "keyLength": shape.key_length,
            "valueLength": shape.value_length,
            "nEmbd": shape.n_embd,
            "nVocab": shape.n_vocab,
            "nCtxTrain": shape.n_ctx_train,
        },
    }


def test_termination_message_fits_kubernetes_limit(tiny_model_path: Path, tmp_path: Path) -> None:
    message = tmp_path / "termination-log"
    message.write_text("")
    facts = download.termination_facts(tiny_model_path, 10**12, "f" * 64)
    # The largest numbers a real model could report, to bound the message from above.
    facts["shape"] = {key: 2**63 - 1 for key in facts["shape"]}
    download._write_termination_log(message, facts)
    assert json.loads(message.read_text()) == facts
    assert len(message.read_bytes()) < TERMINATION_MESSAGE_LIMIT


def test_unreadable_shape_is_left_out_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"not a gguf at all")
    with caplog.at_level(logging.WARNING, logger="sentiric_inference.download"):
        facts = download.termination_facts(path, 17, "cd" * 32)
    assert facts == {"sizeBytes": 17, "sha256": "cd" * 32}
    assert "could not read the model's shape" in caplog.text
