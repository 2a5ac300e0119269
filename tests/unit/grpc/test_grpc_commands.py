"""`generate` and `benchmark` argument handling (no server needed)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from sentiric_inference.commands import benchmark, generate


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    generate.register(sub)
    benchmark.register(sub)
    return parser.parse_args(argv)


def test_generate_options() -> None:
    args = _parse(
        "generate",
        "What is RAG?",
        "--rag-context",
        "facts",
        "--system",
        "Be brief.",
        "--turn",
        "user",
        "Hello",
        "--max-tokens",
        "16",
        "--temperature",
        "0",
        "--stop",
        "END",
        "--stop",
        "\n\n",
        "--seed",
        "7",
        "--engine-param",
        "min_p=0.1",
        "--engine-param",
        'response_format={"type": "json_object"}',
    )
    options = generate.options_from_args(args)
    assert args.turn == [["user", "Hello"]]
    assert options.max_new_tokens == 16 and options.temperature == 0.0 and options.seed == 7
    assert tuple(options.stop_sequences) == ("END", "\n\n")
    assert options.engine_params == {"min_p": 0.1, "response_format": {"type": "json_object"}}
    assert options.top_p is None
    assert generate.tls_from_args(args) is None


@pytest.mark.parametrize(
    ("item", "message"), [("min_p", "expected KEY=JSON"), ("min_p=high", "is not JSON")]
)
def test_bad_engine_param(item: str, message: str) -> None:
    args = _parse("generate", "Hi", "--engine-param", item)
    with pytest.raises(ValueError, match=message):
        generate.options_from_args(args)


def test_tls_flags(tmp_path: Path) -> None:
    args = _parse(
        "generate",
        "Hi",
        "--tls-ca",
        str(tmp_path / "ca.crt"),
        "--tls-cert",
        str(tmp_path / "c.crt"),
        "--tls-key",
        str(tmp_path / "c.key"),
    )
    tls = generate.tls_from_args(args)
    assert tls is not None and tls.ca_file == tmp_path / "ca.crt"
    with pytest.raises(ValueError, match="cannot read"):
        tls.credentials()


def test_benchmark_defaults_and_limits() -> None:
    args = _parse("benchmark", "--concurrent", "8", "--requests", "40", "--json")
    assert (args.concurrent, args.requests, args.json, args.max_tokens) == (8, 40, True, 128)
    with pytest.raises(SystemExit):
        _parse("benchmark", "--concurrent", "0")


def test_generate_reports_an_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    # Port 1 on loopback refuses connections: the command must fail cleanly, not hang.
    args = _parse("generate", "Hi", "--target", "127.0.0.1:1", "--timeout", "5")
    assert generate.run(args) == 1
    assert "UNAVAILABLE" in capsys.readouterr().err


def test_api_key_from_the_flag_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENTIRIC_API_KEY", raising=False)
    assert _parse("generate", "Hi").api_key is None
    assert _parse("benchmark", "--api-key", "from-flag").api_key == "from-flag"
    monkeypatch.setenv("SENTIRIC_API_KEY", "from-env")
    assert _parse("generate", "Hi").api_key == "from-env"
    assert _parse("benchmark", "--api-key", "from-flag").api_key == "from-flag"
    monkeypatch.setenv("SENTIRIC_API_KEY", "")
    assert _parse("generate", "Hi").api_key is None
