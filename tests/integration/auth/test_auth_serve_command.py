"""`serve --api-key-file` and server.auth at start: an unusable key file never starts an
open server; limits without keys are a configuration error naming the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sentiric_inference.cli import build_parser
from sentiric_inference.commands.serve import load_effective_config

from tests.integration.auth.conftest import KEYS


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sentiric_inference", "serve", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_missing_or_invalid_key_file_stops_the_server(
    tmp_path: Path, tiny_model_path: Path
) -> None:
    missing = serve("--model", str(tiny_model_path), "--api-key-file", str(tmp_path / "absent"))
    assert missing.returncode == 2, missing.stderr
    assert "cannot read the API key file" in missing.stderr
    bad = tmp_path / "keys"
    bad.write_text(f"billing:{KEYS['billing']}\nshort\n")
    invalid = serve("--model", str(tiny_model_path), "--api-key-file", str(bad))
    assert invalid.returncode == 2, invalid.stderr
    assert "line 2" in invalid.stderr and KEYS["billing"] not in invalid.stderr


def test_limits_without_keys_are_refused(tmp_path: Path, tiny_model_path: Path) -> None:
    config = tmp_path / "engine.yaml"
    config.write_text("server:\n  auth:\n    perKey:\n      maxConcurrent: 2\n")
    result = serve("--config", str(config), "--model", str(tiny_model_path))
    assert result.returncode == 2
    assert "server.auth" in result.stderr and "apiKeysFile" in result.stderr


def test_the_flag_gives_the_configs_limits_their_keys(
    tmp_path: Path, tiny_model_path: Path
) -> None:
    config = tmp_path / "engine.yaml"
    config.write_text("server:\n  auth:\n    perKey:\n      maxConcurrent: 2\n")
    keys = tmp_path / "keys"
    keys.write_text(f"billing:{KEYS['billing']}\n")
    args = build_parser().parse_args(
        [
            "serve",
            "--config",
            str(config),
            "--model",
            str(tiny_model_path),
            "--api-key-file",
            str(keys),
        ]
    )
    loaded, _ = load_effective_config(args)
    assert loaded.server.auth.api_keys_file == keys
    assert loaded.server.auth.per_key.max_concurrent == 2
