"""settings: SENTIRIC_* environment variables, defaults, and errors naming the variable."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import pytest
from sentiric_operator.settings import DEFAULT_CUDA_IMAGE, DEFAULT_IMAGE, OperatorSettings

FromEnv = Callable[[Mapping[str, str]], OperatorSettings]


@pytest.fixture
def from_env(monkeypatch: pytest.MonkeyPatch) -> FromEnv:
    """Settings read from exactly `env` as the process environment (no other SENTIRIC_*)."""

    def read(env: Mapping[str, str]) -> OperatorSettings:
        for key in [k for k in os.environ if k.upper().startswith("SENTIRIC_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return OperatorSettings.from_env()

    return read


def test_defaults(from_env: FromEnv) -> None:
    s = from_env({})
    assert s.inference_image == DEFAULT_IMAGE
    assert s.inference_image_cuda == DEFAULT_CUDA_IMAGE
    assert s.namespaces == ()
    assert s.liveness_endpoint == "http://0.0.0.0:8080/healthz"
    assert (s.metrics_port, s.peering_name, s.log_format) == (8081, "", "text")


def test_values(from_env: FromEnv) -> None:
    s = from_env(
        {
            "SENTIRIC_INFERENCE_IMAGE": "img:2",
            "SENTIRIC_INFERENCE_IMAGE_CUDA": " img:2-cuda ",
            "SENTIRIC_WATCH_NAMESPACES": " ai, llm ,,",
            "SENTIRIC_STATUS_INTERVAL": "1.5",
            "SENTIRIC_RESYNC_INTERVAL": "30",
            "SENTIRIC_LOG_FORMAT": "json",
            "SENTIRIC_METRICS_PORT": "9100",
            "SENTIRIC_PEERING_NAME": "sentiric",
            "SENTIRIC_WORKERS": "4",
        }
    )
    assert (s.inference_image, s.inference_image_cuda) == ("img:2", "img:2-cuda")
    assert s.namespaces == ("ai", "llm")
    assert (s.status_interval_s, s.resync_interval_s) == (1.5, 30.0)
    assert (s.log_format, s.metrics_port, s.peering_name, s.workers) == (
        "json",
        9100,
        "sentiric",
        4,
    )


def test_default_images_follow_the_documented_tags() -> None:
    # docs/kubernetes.md pushes the CUDA build to the same repository as <tag>-cuda.
    assert DEFAULT_IMAGE == "ghcr.io/sentiric/sentiric-llm-inference:0.1.0"
    assert DEFAULT_CUDA_IMAGE == "ghcr.io/sentiric/sentiric-llm-inference:0.1.0-cuda"


@pytest.mark.parametrize("blank", ["", "  "])
def test_blank_images_mean_the_defaults(blank: str, from_env: FromEnv) -> None:
    s = from_env({"SENTIRIC_INFERENCE_IMAGE": blank, "SENTIRIC_INFERENCE_IMAGE_CUDA": blank})
    assert (s.inference_image, s.inference_image_cuda) == (DEFAULT_IMAGE, DEFAULT_CUDA_IMAGE)


def test_each_image_is_read_on_its_own(from_env: FromEnv) -> None:
    s = from_env({"SENTIRIC_INFERENCE_IMAGE_CUDA": "gpu:7"})
    assert (s.inference_image, s.inference_image_cuda) == (DEFAULT_IMAGE, "gpu:7")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("SENTIRIC_STATUS_INTERVAL", "soon"),
        ("SENTIRIC_RESYNC_INTERVAL", "0"),
        ("SENTIRIC_METRICS_PORT", "70000"),
        ("SENTIRIC_WORKERS", "-1"),
        ("SENTIRIC_LOG_FORMAT", "xml"),
    ],
)
def test_bad_values_name_the_variable(key: str, value: str, from_env: FromEnv) -> None:
    with pytest.raises(ValueError, match=key):
        from_env({key: value})
