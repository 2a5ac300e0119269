"""Operator settings from SENTIRIC_* environment variables (the Helm chart sets these).

Each setting is declared once here, with its default and bounds; pydantic-settings reads the
environment. The chart's values.yaml and values.schema.json restate the defaults and bounds
the chart passes, and tests/unit/chart/test_chart_settings.py holds them equal to these.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_IMAGE = "ghcr.io/sentiric/sentiric-llm-inference:0.1.0"
# inference/Dockerfile.cuda, pushed to the same repository with the tag suffixed "-cuda"
# (docs/kubernetes.md, "Build and push the images").
DEFAULT_CUDA_IMAGE = f"{DEFAULT_IMAGE}-cuda"
ENV_PREFIX = "SENTIRIC_"


def _env(name: str) -> Any:
    """A field read from SENTIRIC_`name` (where it differs from the field's own name); the
    field's name is accepted too, so code and tests can build settings directly."""
    return AliasChoices(f"{ENV_PREFIX}{name}", name.lower())


class OperatorSettings(BaseSettings):
    """Everything configurable about the operator process."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        frozen=True,
        extra="ignore",
        populate_by_name=True,
        str_strip_whitespace=True,
    )

    # Image of the inference pods when a profile names none and asks for no GPU.
    inference_image: str = DEFAULT_IMAGE
    # The same when the profile asks for a GPU (resources.gpu > 0): llama.cpp built with CUDA.
    inference_image_cuda: str = DEFAULT_CUDA_IMAGE
    # Comma-separated in the environment; empty: watch every namespace (cluster-wide).
    namespaces: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), validation_alias=_env("WATCH_NAMESPACES")
    )
    # How often status is recomputed from the indexed children (in memory, no API call
    # unless it changed).
    status_interval_s: float = Field(default=5.0, ge=0.5, validation_alias=_env("STATUS_INTERVAL"))
    # How often every child is re-applied, repairing drift such as a hand-edited Service.
    resync_interval_s: float = Field(default=60.0, ge=1.0, validation_alias=_env("RESYNC_INTERVAL"))
    # Retry delay after a failed API call.
    retry_delay_s: float = Field(default=10.0, ge=0.5, validation_alias=_env("RETRY_DELAY"))
    log_format: Literal["text", "json"] = "text"
    liveness_endpoint: str = "http://0.0.0.0:8080/healthz"
    # 0 disables the metrics endpoint.
    metrics_port: int = Field(default=8081, ge=0, le=65535)
    # Empty: standalone (no peering); set when running several operator replicas.
    peering_name: str = ""
    workers: int = Field(default=16, ge=1, le=256)

    @model_validator(mode="before")
    @classmethod
    def _blank_means_default(cls, data: Any) -> Any:
        # The chart renders every variable, an unset value as "" (an image, a peering name).
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(v, str) and not v.strip())}
        return data

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split_namespaces(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(ns.strip() for ns in value.split(",") if ns.strip())
        return value

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable a field is read from."""
        alias = cls.model_fields[field].validation_alias
        if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
            return alias.choices[0]
        return f"{ENV_PREFIX}{field.upper()}"

    @classmethod
    def from_env(cls) -> OperatorSettings:
        """Read the environment; a bad value raises ValueError naming the variable."""
        try:
            return cls()
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                field = str(error["loc"][0]) if error["loc"] else ""
                name = cls.env_name(field) if field in cls.model_fields else field
                problems.append(f"{name}: {error['msg']} (got {error.get('input')!r})")
            raise ValueError("; ".join(problems)) from None
