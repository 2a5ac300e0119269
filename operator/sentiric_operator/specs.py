"""The LLMProfile spec as a typed value, with every default resolved once before building.

The CRD's OpenAPI schema and CEL rules are the first line of defence; this model repeats the
rules that matter to the builders so a profile that slipped past (an old CRD, a unit test)
still fails with a message naming the field instead of producing a broken Deployment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel
from sentiric_inference.config import (
    EngineSettings,
    LimitsSettings,
    PerKeyLimits,
    PromptSettings,
    SamplingDefaults,
    check_response_format,
)

from sentiric_operator.errors import InvalidProfileError

GROUP = "llm.sentiric.ai"
VERSION = "v1alpha1"
KIND = "LLMProfile"
PLURAL = "llmprofiles"
API_VERSION = f"{GROUP}/{VERSION}"

Quantity = int | str


class _Spec(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class SecretKeyRef(_Spec):
    name: str = Field(min_length=1)
    key: str = "token"


class HuggingFace(_Spec):
    repo: str = Field(pattern=r"^[A-Za-z0-9][-A-Za-z0-9_.]*/[-A-Za-z0-9_.]+$")
    file: str = Field(min_length=1)
    revision: str = "main"
    token_secret_ref: SecretKeyRef | None = None

    @field_validator("file")
    @classmethod
    def _gguf(cls, value: str) -> str:
        if not value.endswith(".gguf") or ".." in value:
            raise ValueError("must name a .gguf file")
        return value


class Cache(_Spec):
    size: Quantity = "20Gi"
    storage_class_name: str | None = None
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany", "ReadWriteOncePod"] = (
        "ReadWriteOnce"
    )


class ModelSpec(_Spec):
    hugging_face: HuggingFace
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    alias: str | None = None
    cache: Cache = Cache()


# The engine, sampling and prompt sections are rendered verbatim into engine.yaml, so they
# are the config contract's own models: one definition of each field, default and bound.
EngineSpec = EngineSettings
SamplingSpec = SamplingDefaults
PromptSpec = PromptSettings
LimitsSpec = LimitsSettings


GPU_RESOURCE = "nvidia.com/gpu"


class ResourcesSpec(_Spec):
    gpu: int = Field(default=0, ge=0, le=16)
    requests: dict[str, Quantity] = Field(default_factory=dict)
    limits: dict[str, Quantity] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _gpu_via_field(self) -> ResourcesSpec:
        if GPU_RESOURCE in self.requests or GPU_RESOURCE in self.limits:
            raise ValueError(f"set GPUs with resources.gpu, not {GPU_RESOURCE} in requests/limits")
        return self


class Toleration(_Spec):
    key: str | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class EnvVar(_Spec):
    name: str = Field(min_length=1)
    value: str | None = None
    value_from: dict[str, Any] | None = None


class ServiceMonitorSpec(_Spec):
    enabled: bool = False
    interval: str = Field(default="15s", pattern=r"^[0-9]+(ms|s|m|h)$")
    labels: dict[str, str] = Field(default_factory=dict)


class MonitoringSpec(_Spec):
    service_monitor: ServiceMonitorSpec = ServiceMonitorSpec()


class EndpointPickerSpec(_Spec):
    """The Service of an endpoint picker (the Inference Extension's EPP) for this pool."""

    name: str = Field(min_length=1, max_length=253)
    port: int = Field(default=9002, ge=1, le=65535)
    failure_mode: Literal["FailOpen", "FailClose"] = "FailClose"


class InferencePoolSpec(_Spec):
    # On by default: the pool is only created where the Inference Extension's CRDs are.
    enabled: bool = True
    endpoint_picker: EndpointPickerSpec | None = None


class ServerSpec(_Spec):
    # What one request may cost a pod (engine.yaml's server.limits, verbatim).
    limits: LimitsSpec = LimitsSpec()


class ApiKeySecretRef(_Spec):
    """The Secret holding the API key file (one key per line, `name:key` or a bare key)."""

    name: str = Field(min_length=1)
    key: str = Field(default="keys", pattern=r"^[-._a-zA-Z0-9]+$")


# Rendered verbatim into engine.yaml's server.auth.perKey.
PerKeySpec = PerKeyLimits


class AuthSpec(_Spec):
    # With a Secret, every API call needs one of its keys; probes and /metrics stay open.
    api_key_secret_ref: ApiKeySecretRef | None = None
    per_key: PerKeySpec = PerKeySpec()

    @model_validator(mode="after")
    def _limits_need_keys(self) -> AuthSpec:
        if self.per_key != PerKeySpec() and self.api_key_secret_ref is None:
            raise ValueError("auth.perKey limits apply to API keys: set auth.apiKeySecretRef")
        return self


class TLSSpec(_Spec):
    secret_name: str = Field(min_length=1)
    # gRPC only: the HTTP port's callers (browsers, the openai client, probes, Prometheus)
    # show no client certificates; they authenticate with API keys (spec.auth).
    client_ca_secret_name: str | None = Field(default=None, alias="clientCASecretName")
    # The HTTP port (16070) serves HTTPS only, with the same certificate.
    https: bool = False


# A default autoscaling target when engine.parallel is automatic (0): the plan's
# sequences are only known in the pod, and four is what small CPU profiles run.
DEFAULT_AUTOSCALING_TARGET = 4


class AutoscalingSpec(_Spec):
    """A HorizontalPodAutoscaler on requests in flight per pod (running plus waiting)."""

    min_replicas: int = Field(default=1, ge=1, le=1000)
    max_replicas: int = Field(ge=1, le=1000)
    # Requests in flight per replica to aim at; unset: engine.parallel (every sequence busy).
    target: int | None = Field(default=None, ge=1, le=100000)
    # How long load must stay low before replicas are removed (a replica is slow to come back).
    scale_down_delay: str = Field(default="5m", pattern=r"^[0-9]+(s|m|h)$")

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingSpec:
        if self.max_replicas < self.min_replicas:
            raise ValueError("autoscaling.maxReplicas must be at least minReplicas")
        if self.scale_down_seconds > 3600:
            raise ValueError("autoscaling.scaleDownDelay must be at most 1h")
        return self

    @property
    def scale_down_seconds(self) -> int:
        number, unit = int(self.scale_down_delay[:-1]), self.scale_down_delay[-1]
        return number * {"s": 1, "m": 60, "h": 3600}[unit]


# Seconds the serve container keeps delivering its last bytes after its grace
# (sentiric_inference.app._CONNECTION_DRAIN_S), plus a margin for the process to exit.
SHUTDOWN_TAIL_S = 10


class ShutdownSpec(_Spec):
    """How a pod leaves: drain (not ready, still serving), then finish in-flight requests."""

    # preStop: seconds between turning unready and SIGTERM, so every endpoint list (kube-proxy,
    # gateways, DNS of the headless Service, balanced clients) drops the pod first.
    drain_delay_seconds: int = Field(default=5, ge=0, le=300)
    # The server's --shutdown-grace: how long in-flight requests may run after SIGTERM.
    grace_seconds: int = Field(default=25, ge=1, le=3600)
    # Unset: drainDelaySeconds + graceSeconds + 10 (the pod is never killed mid-drain).
    termination_grace_period_seconds: int | None = Field(default=None, ge=1, le=7200)

    @model_validator(mode="after")
    def _room(self) -> ShutdownSpec:
        needed = self.drain_delay_seconds + self.grace_seconds
        if (
            self.termination_grace_period_seconds is not None
            and self.termination_grace_period_seconds < needed
        ):
            raise ValueError(
                f"terminationGracePeriodSeconds must be at least drainDelaySeconds + "
                f"graceSeconds ({needed}), or in-flight requests are killed mid-drain"
            )
        return self

    @property
    def termination_grace(self) -> int:
        if self.termination_grace_period_seconds is not None:
            return self.termination_grace_period_seconds
        return self.drain_delay_seconds + self.grace_seconds + SHUTDOWN_TAIL_S


class ProfileSpec(_Spec):
    model: ModelSpec
    engine: EngineSpec = EngineSpec()
    sampling: SamplingSpec = SamplingSpec()
    prompt: PromptSpec = PromptSpec()
    replicas: int = Field(default=1, ge=0, le=1000)
    resources: ResourcesSpec = ResourcesSpec()
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()
    affinity: dict[str, Any] | None = None
    runtime_class_name: str | None = None
    priority_class_name: str | None = None
    image: str | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    env: tuple[EnvVar, ...] = ()
    monitoring: MonitoringSpec = MonitoringSpec()
    server: ServerSpec = ServerSpec()
    tls: TLSSpec | None = None
    auth: AuthSpec = AuthSpec()
    shutdown: ShutdownSpec = ShutdownSpec()
    autoscaling: AutoscalingSpec | None = None
    inference_pool: InferencePoolSpec = InferencePoolSpec()

    @model_validator(mode="after")
    def _cross_field(self) -> ProfileSpec:
        if self.resources.gpu > 0 and self.engine.gpu_layers == 0:
            raise ValueError("resources.gpu > 0 but engine.gpuLayers is 0: the GPU would sit idle")
        if self.engine.gpu_layers > 0 and self.resources.gpu == 0:
            raise ValueError("engine.gpuLayers > 0 but resources.gpu is 0: request a GPU")
        # contextSize 0 is automatic: the engine keeps room for maxTokens plus a prompt.
        if 0 < self.engine.context_size <= self.sampling.max_tokens:
            raise ValueError("sampling.maxTokens must be smaller than engine.contextSize")
        # The CRD can only see the schema's root; its bounds and metaschema are checked here.
        check_response_format(self.prompt, self.server.limits)
        return self

    @property
    def https(self) -> bool:
        """Whether the HTTP port serves HTTPS (tls.https)."""
        return self.tls is not None and self.tls.https


def autoscaling_target(spec: ProfileSpec) -> int:
    """Requests in flight per replica the autoscaler aims at (its own, else parallel)."""
    own = spec.autoscaling.target if spec.autoscaling is not None else None
    return own or spec.engine.parallel or DEFAULT_AUTOSCALING_TARGET


@dataclass(frozen=True)
class Profile:
    """One LLMProfile: identity from metadata plus the resolved spec."""

    name: str
    namespace: str
    uid: str
    generation: int
    spec: ProfileSpec

    def owner_reference(self) -> dict[str, Any]:
        """Makes children garbage-collected with the profile and watched as its own."""
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def parse_spec(spec: Mapping[str, Any]) -> ProfileSpec:
    """Validate a CR's spec; InvalidProfileError names every offending field."""
    try:
        return ProfileSpec.model_validate(dict(spec))
    except ValidationError as exc:
        problems = "; ".join(
            f"spec.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            if err["loc"]
            else f"spec: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidProfileError(problems) from exc


def parse_profile(body: Mapping[str, Any]) -> Profile:
    """Turn a whole LLMProfile object (as kopf or the API returns it) into a Profile."""
    meta = body.get("metadata") or {}
    return Profile(
        name=str(meta["name"]),
        namespace=str(meta["namespace"]),
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation", 0)),
        spec=parse_spec(body.get("spec") or {}),
    )
