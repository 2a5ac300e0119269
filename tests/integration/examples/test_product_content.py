"""examples/product_content.py against a real server on SmolLM2 with the product-content
profile's system prompt, sampling and default output schema (profiles/product-content.yaml)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.support.certificates import make_ca, make_leaf
from tests.support.server import ServerHandle, running_server

pytestmark = pytest.mark.model

REPO_ROOT = Path(__file__).resolve().parents[3]
SCRIPT = REPO_ROOT / "examples" / "product_content.py"
PROFILE = yaml.safe_load((REPO_ROOT / "profiles" / "product-content.yaml").read_text())["spec"]
KEYS = {"title", "features_formatted", "description", "seo_keywords"}
CSV = """name,features,category
Aurora Desk Lamp,LED; dimmable in 5 steps; USB-C charging port,Home & Living
TrailRunner 2 Shoes,waterproof membrane; 280 g per shoe; recycled laces,Sports
Kettle One,1.7 l; stainless steel; keeps water warm for 30 minutes,Kitchen
"""
RUN_TIMEOUT_S = 300
# The official clients the script can drive: OpenAI's API, or Ollama's (--client ollama).
CLIENTS = ["openai", "ollama"]


def _content_server(smollm2_path: Path) -> contextlib.AbstractContextManager[ServerHandle]:
    """The profile's prompt and sampling on the embedded model instead of Qwen 2.5 3B."""
    return running_server(
        smollm2_path,
        parallel=3,
        context_size=2048,
        extra_config={
            "model": {"alias": "product-content"},
            "prompt": PROFILE["prompt"],
            "sampling": PROFILE["sampling"],
        },
    )


@pytest.fixture(scope="module")
def content_server(smollm2_path: Path) -> Iterator[ServerHandle]:
    with _content_server(smollm2_path) as handle:
        yield handle


def _run(server: ServerHandle, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    products = tmp_path / "products.csv"
    products.write_text(CSV)
    return subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            str(products),
            "--base-url",
            server.openai_base_url,
            "--out",
            str(tmp_path / "out.jsonl"),
            "--concurrency",
            "3",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("client", CLIENTS)
def test_every_product_gets_schema_valid_copy_and_a_finetuning_pair(
    content_server: ServerHandle, tmp_path: Path, client: str
) -> None:
    proc = _run(
        content_server, tmp_path, "--client", client, "--finetune", str(tmp_path / "pairs.jsonl")
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "3/3 products" in proc.stderr
    records = _lines(tmp_path / "out.jsonl")
    assert [r["input"]["name"] for r in records] == [
        "Aurora Desk Lamp",
        "TrailRunner 2 Shoes",
        "Kettle One",
    ]
    assert records[0]["input"]["features"] == [
        "LED",
        "dimmable in 5 steps",
        "USB-C charging port",
    ]
    for record in records:
        assert record["ok"], record
        # Valid JSON of the profile's schema, although the script sent no schema at all.
        jsonschema.validate(record["output"], PROFILE["prompt"]["responseFormat"])
        assert set(record["output"]) == KEYS
        assert record["finish_reason"] == "stop"
        assert record["usage"]["completion_tokens"] > 10
        timing = record["timing"]
        assert 0 < timing["ttft_s"] <= timing["total_s"]
    pairs = _lines(tmp_path / "pairs.jsonl")
    assert len(pairs) == 3
    for pair, record in zip(pairs, records, strict=True):
        roles = [m["role"] for m in pair["messages"]]
        assert roles == ["system", "user", "assistant"]
        assert record["input"]["name"] in pair["messages"][1]["content"]
        assert json.loads(pair["messages"][2]["content"]) == record["output"]


@pytest.mark.parametrize("client", CLIENTS)
def test_a_row_that_fails_is_recorded_and_the_exit_status_says_so(
    content_server: ServerHandle, tmp_path: Path, client: str
) -> None:
    # 1 token cannot hold the JSON object: every row fails to parse, none crashes the run.
    proc = _run(content_server, tmp_path, "--client", client, "--max-tokens", "1", "--quiet")
    assert proc.returncode == 1
    records = _lines(tmp_path / "out.jsonl")
    assert len(records) == 3
    assert all(not r["ok"] and "JSONDecodeError" in r["error"] for r in records), records
    assert all(r["finish_reason"] == "length" for r in records)


def test_both_clients_write_the_same_copy(smollm2_path: Path, tmp_path: Path) -> None:
    """Greedy, one request at a time, each on a fresh server: the same prompt through either
    API gives the same tokens, so the same records (timings aside). A fresh server each, as
    prompt cells reused from an earlier run change the decode's shapes, and with them the
    last bits of the logits, enough to tip a greedy choice between near-equal tokens."""
    runs = {}
    for client in CLIENTS:
        out = tmp_path / client
        out.mkdir()
        with _content_server(smollm2_path) as server:
            proc = _run(
                server,
                out,
                "--client",
                client,
                "--temperature",
                "0",
                "--concurrency",
                "1",
                "--quiet",
            )
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[client] = _lines(out / "out.jsonl")
    for openai_record, ollama_record in zip(runs["openai"], runs["ollama"], strict=True):
        for field in ("input", "raw", "output", "ok", "finish_reason"):
            assert openai_record[field] == ollama_record[field], field
        for field in ("prompt_tokens", "completion_tokens", "total_tokens"):
            assert openai_record["usage"][field] == ollama_record["usage"][field], field


@pytest.mark.parametrize("client", CLIENTS)
def test_the_script_reaches_an_https_server_with_its_ca(
    tiny_model_path: Path, tmp_path: Path, client: str
) -> None:
    """Transport only: the tiny model writes no JSON, so 4 tokens a row show the calls went
    through (the copy itself is tested above)."""
    ca = make_ca(tmp_path, "ca")
    cert, key = make_leaf(tmp_path, "server", ca, ExtendedKeyUsageOID.SERVER_AUTH)
    tls: dict[str, str | Path | bool] = {"certFile": cert, "keyFile": key, "https": True}
    with running_server(tiny_model_path, context_size=1024, tls=tls, ca_file=ca[2]) as server:
        assert server.openai_base_url.startswith("https://")
        refused = _run(server, tmp_path, "--client", client, "--max-tokens", "4", "--quiet")
        # Without the CA the certificate is not trusted: not even the model list is read.
        assert refused.returncode != 0
        assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr, refused.stderr[-3000:]
        assert not (tmp_path / "out.jsonl").exists()
        proc = _run(
            server,
            tmp_path,
            "--client",
            client,
            "--max-tokens",
            "4",
            "--quiet",
            "--ca-file",
            str(ca[2]),
        )
    # Exit 1: four tokens hold no JSON object, as in the test above.
    assert proc.returncode == 1, proc.stderr[-3000:]
    records = _lines(tmp_path / "out.jsonl")
    assert len(records) == 3
    for record in records:
        assert record["finish_reason"] == "length", record
        assert record["usage"]["completion_tokens"] == 4, record
