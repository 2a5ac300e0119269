"""The real `sentiric-llm download` command in a subprocess, against the fake Hub via HF_ENDPOINT."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from sentiric_inference.models.downloading import partial_path

from tests.integration.models.samples import FILE, REPO, TOKEN
from tests.support.fake_hub import FakeHub
from tests.support.tiny_model import write_tiny_qwen2_gguf


def _command() -> list[str]:
    script = Path(sys.executable).with_name("sentiric-llm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "sentiric_inference"]


def _env(hub: FakeHub, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update({"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_TELEMETRY": "1"})
    env.update(extra)
    return env


FAST = ["--timeout", "1", "--retries", "2", "--backoff", "0.05", "--progress-interval", "0.2"]


def _download(
    hub: FakeHub, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_command(), "download", *args, *FAST],
        env=env or _env(hub),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _engine_yaml(tmp_path: Path, **model: object) -> Path:
    path = tmp_path / "engine.yaml"
    spec: dict[str, object] = {"huggingFace": {"repo": REPO, "file": FILE, "revision": "main"}}
    spec.update(model)
    path.write_text(yaml.safe_dump({"model": spec}))
    return path


def test_config_file_download_then_skip(hub: FakeHub, model_bytes: bytes, tmp_path: Path) -> None:
    cache = tmp_path / "models"
    config = _engine_yaml(tmp_path, cacheDir=str(cache))
    first = _download(hub, "--config", str(config))
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == str(cache / FILE)
    assert (cache / FILE).read_bytes() == model_bytes
    assert "downloading" in first.stderr
    assert "%)" in first.stderr  # a progress line with a percentage
    second = _download(hub, "--config", str(config))
    assert second.returncode == 0, second.stderr
    assert "already present" in second.stderr


def test_success_leaves_size_and_sha256_as_termination_message(
    hub: FakeHub, model_bytes: bytes, tmp_path: Path
) -> None:
    # The kubelet creates /dev/termination-log; the operator copies it into status.model.
    message = tmp_path / "termination-log"
    message.write_text("")
    config = _engine_yaml(tmp_path, cacheDir=str(tmp_path / "models"))
    done = _download(hub, "--config", str(config), "--termination-log", str(message))
    assert done.returncode == 0, done.stderr
    assert json.loads(message.read_text()) == {
        "sizeBytes": len(model_bytes),
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
    }
    absent = tmp_path / "not-in-a-pod"
    again = _download(hub, "--config", str(config), "--termination-log", str(absent))
    assert again.returncode == 0, again.stderr
    assert not absent.exists()


def test_flags_and_token_from_env(hub: FakeHub, model_bytes: bytes, tmp_path: Path) -> None:
    done = _download(
        hub,
        "--repo",
        "acme/private-GGUF",
        "--file",
        FILE,
        "--cache-dir",
        str(tmp_path),
        env=_env(hub, HF_TOKEN=TOKEN),
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / FILE).read_bytes() == model_bytes


def test_token_file_wins_over_env(hub: FakeHub, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    done = _download(
        hub,
        "--repo",
        "acme/private-GGUF",
        "--file",
        FILE,
        "--cache-dir",
        str(tmp_path / "c"),
        "--token-file",
        str(token_file),
        env=_env(hub, HF_TOKEN="hf_wrong"),
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("args", "env_token", "code", "message"),
    [
        (["--repo", "acme/private-GGUF"], None, 3, "tokenSecretRef"),
        (["--repo", "acme/private-GGUF"], "hf_not_granted", 3, "HTTP 403"),
        (["--repo", "Qwen/Missing-GGUF"], None, 4, "repository 'Qwen/Missing-GGUF' not found"),
        (["--revision", "v9"], None, 4, "revision 'v9' not found"),
        (["--sha256", "0" * 64], None, 5, "does not match the Hub's sha256"),
    ],
)
def test_failures_exit_with_their_code_and_one_line(
    hub: FakeHub,
    tmp_path: Path,
    args: list[str],
    env_token: str | None,
    code: int,
    message: str,
) -> None:
    base = {"--repo": REPO, "--file": FILE, "--cache-dir": str(tmp_path)}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    flat = [item for pair in base.items() for item in pair]
    env = _env(hub, **({"HF_TOKEN": env_token} if env_token else {}))
    done = _download(hub, *flat, env=env)
    assert done.returncode == code, done.stderr
    errors = [line for line in done.stderr.splitlines() if "download failed" in line]
    assert len(errors) == 1
    assert message in errors[0]
    assert not (tmp_path / FILE).exists()


def test_network_failure_after_retries_exits_7(hub: FakeHub, tmp_path: Path) -> None:
    hub.faults.stall_times = 100
    done = _download(hub, "--repo", REPO, "--file", FILE, "--cache-dir", str(tmp_path))
    assert done.returncode == 7, done.stderr
    assert "still failing after 2 attempts" in done.stderr


def test_corrupt_bytes_exit_5_and_leave_nothing(hub: FakeHub, tmp_path: Path) -> None:
    hub.faults.corrupt = True
    done = _download(hub, "--repo", REPO, "--file", FILE, "--cache-dir", str(tmp_path))
    assert done.returncode == 5, done.stderr
    assert not (tmp_path / FILE).exists()
    assert not partial_path(tmp_path / FILE).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--file", FILE], "give --config with model.huggingFace, or both --repo and --file"),
        (["--repo", REPO, "--file", FILE, "--sha256", "xyz"], "must be 64 hex digits"),
        (["--config", "/nonexistent/engine.yaml"], "cannot read --config"),
    ],
)
def test_usage_errors_exit_2(hub: FakeHub, args: list[str], message: str) -> None:
    done = _download(hub, *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert hub.requests == []


def test_killed_mid_download_resumes_on_the_next_run(
    hub: FakeHub, model_bytes: bytes, tmp_path: Path
) -> None:
    # The first run receives 1.5 MB, then the server goes silent and the pod is killed.
    hub.faults.stall_times = 1
    hub.faults.stall_after = 1_500_000
    hub.faults.stall_seconds = 60
    partial = partial_path(tmp_path / FILE)
    proc = subprocess.Popen(
        [
            *_command(),
            "download",
            "--repo",
            REPO,
            "--file",
            FILE,
            "--cache-dir",
            str(tmp_path),
            "--timeout",
            "60",
        ],
        env=_env(hub),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if partial.exists() and partial.stat().st_size >= 1_500_000:
                break
            time.sleep(0.1)
        assert partial.stat().st_size == 1_500_000
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    done = _download(hub, "--repo", REPO, "--file", FILE, "--cache-dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / FILE).read_bytes() == model_bytes
    assert hub.content_gets()[-1].range == "bytes=1500000-"
    assert "resuming" in done.stderr


def test_a_hub_draft_model_is_downloaded_beside_the_model(
    hub: FakeHub, model_bytes: bytes, tmp_path: Path
) -> None:
    draft_repo, draft_file = "Qwen/Qwen2.5-0.5B-Instruct-GGUF", "draft-q4_k_m.gguf"
    # A real GGUF, so the termination message carries its shape for the operator's sizing.
    draft_bytes = write_tiny_qwen2_gguf(tmp_path / "draft.gguf").read_bytes()
    hub.add_file(draft_repo, draft_file, draft_bytes)
    message = tmp_path / "termination-log"
    message.write_text("")
    cache = tmp_path / "models"
    config = tmp_path / "engine.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": {"huggingFace": {"repo": REPO, "file": FILE}, "cacheDir": str(cache)},
                "engine": {
                    "draftTokens": 4,
                    "draftModel": {
                        "huggingFace": {"repo": draft_repo, "file": draft_file},
                        "sha256": hashlib.sha256(draft_bytes).hexdigest(),
                    },
                },
            }
        )
    )
    done = _download(hub, "--config", str(config), "--termination-log", str(message))
    assert done.returncode == 0, done.stderr
    # The model's path is still the one line on stdout (the init container's contract).
    assert done.stdout.strip() == str(cache / FILE)
    assert (cache / FILE).read_bytes() == model_bytes
    assert (cache / draft_file).read_bytes() == draft_bytes
    assert "draft model ready" in done.stderr
    # The operator sizes the pod with the draft's weights and KV cells too.
    reported = json.loads(message.read_text())
    assert reported["sizeBytes"] == len(model_bytes)
    draft = reported["draft"]
    assert {k: draft[k] for k in ("repo", "file", "revision", "sizeBytes", "sha256")} == {
        "repo": draft_repo,
        "file": draft_file,
        "revision": "main",
        "sizeBytes": len(draft_bytes),
        "sha256": hashlib.sha256(draft_bytes).hexdigest(),
    }
    assert draft["shape"]["nLayer"] > 0 and draft["shape"]["nVocab"] > 0

    # A draft whose bytes do not match its pin fails the download with the pin's exit code.
    config.write_text(config.read_text().replace(hashlib.sha256(draft_bytes).hexdigest(), "a" * 64))
    (cache / draft_file).unlink()
    bad = _download(hub, "--config", str(config))
    assert bad.returncode == 5, bad.stderr
    assert "draft model download failed" in bad.stderr
    assert not (cache / draft_file).exists()
