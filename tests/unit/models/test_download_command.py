"""`sentiric-llm download` argument handling: config file, flag overrides, token sources."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from sentiric_inference.commands import download
from sentiric_inference.models.hub import HubFile

SHA = "a" * 64


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    download.register(parser.add_subparsers())
    return parser.parse_args(["download", *argv])


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "engine.yaml"
    path.write_text(body)
    return path


def test_config_supplies_everything(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        "model:\n  huggingFace: {repo: Qwen/A-GGUF, file: a.gguf, revision: v1}\n"
        f"  sha256: {SHA}\n  cacheDir: /data/models\n",
    )
    source, cache, pin = download._resolve(_args("--config", str(config)))
    assert source == HubFile("Qwen/A-GGUF", "a.gguf", "v1")
    assert cache == Path("/data/models")
    assert pin == SHA


def test_flags_override_the_config(tmp_path: Path) -> None:
    config = _config(tmp_path, "model:\n  huggingFace: {repo: Qwen/A-GGUF, file: a.gguf}\n")
    source, cache, pin = download._resolve(
        _args("--config", str(config), "--file", "b.gguf", "--cache-dir", "/x", "--sha256", SHA)
    )
    assert source == HubFile("Qwen/A-GGUF", "b.gguf", "main")
    assert cache == Path("/x")
    assert pin == SHA


def test_defaults_without_config() -> None:
    source, cache, pin = download._resolve(_args("--repo", "r/x", "--file", "f.gguf"))
    assert source == HubFile("r/x", "f.gguf", "main")
    assert cache == Path("/models")
    assert pin is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("model:\n  path: /models/x.gguf\n", "model.huggingFace is not set"),
        ("model:\n  huggingFace: {repo: r/x}\n", "cannot read --config"),
        ("model: [unclosed\n", "cannot read --config"),
        ("model:\n  huggingFace: {repo: r/x, file: f}\n  colour: blue\n", "colour"),
    ],
)
def test_bad_config_is_a_usage_error(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(download._UsageError, match=message):
        download._resolve(_args("--config", str(_config(tmp_path, body))))


def test_token_file_then_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", " hf_env \n")
    assert download._token(_args("--repo", "r/x", "--file", "f")) == "hf_env"
    token_file = tmp_path / "token"
    token_file.write_text("hf_file\n")
    assert download._token(_args("--token-file", str(token_file))) == "hf_file"
    monkeypatch.delenv("HF_TOKEN")
    assert download._token(_args()) is None
    with pytest.raises(download._UsageError, match="cannot read --token-file"):
        download._token(_args("--token-file", str(tmp_path / "missing")))
