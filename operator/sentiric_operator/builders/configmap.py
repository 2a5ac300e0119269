"""The ConfigMap holding engine.yaml: the very file `sentiric-llm serve --config` reads."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentiric_inference.config import (
    AuthSettings,
    EngineConfig,
    EngineSettings,
    HuggingFaceSource,
    ModelConfig,
    PromptSettings,
    SamplingDefaults,
    ServerSettings,
    TLSSettings,
    dump_config,
)

from sentiric_operator.builders.labels import CONFIG, config_map_name, object_meta
from sentiric_operator.specs import Profile, ProfileSpec

CONFIG_DIR = Path("/etc/sentiric")
CONFIG_KEY = "engine.yaml"
CONFIG_PATH = CONFIG_DIR / CONFIG_KEY
MODEL_DIR = Path("/models")
# Outside CONFIG_DIR: a configMap volume is read-only, so mounts cannot nest inside it.
TLS_DIR = Path("/var/run/sentiric/tls")
CLIENT_CA_DIR = Path("/var/run/sentiric/client-ca")
# The whole Secret is mounted (no subPath), so the kubelet's updates reach the server, which
# reads the file again when it changes: rotating keys needs no restart.
API_KEYS_DIR = Path("/var/run/sentiric/api-keys")
CHECKSUM_ANNOTATION = "checksum/config"


def engine_config(spec: ProfileSpec) -> EngineConfig:
    """Map the profile's spec onto the engine.yaml contract (paths as mounted in the pod)."""
    hf = spec.model.hugging_face
    tls = None
    if spec.tls is not None:
        tls = TLSSettings(
            cert_file=TLS_DIR / "tls.crt",
            key_file=TLS_DIR / "tls.key",
            # The contract spells this key like the CRD (clientCAFile), so it is passed by alias.
            clientCAFile=(CLIENT_CA_DIR / "ca.crt") if spec.tls.client_ca_secret_name else None,
            https=spec.tls.https,
        )
    ref = spec.auth.api_key_secret_ref
    auth = AuthSettings(
        api_keys_file=(API_KEYS_DIR / ref.key) if ref is not None else None,
        per_key=spec.auth.per_key,
    )
    return EngineConfig(
        model=ModelConfig(
            hugging_face=HuggingFaceSource(repo=hf.repo, file=hf.file, revision=hf.revision),
            sha256=spec.model.sha256,
            cache_dir=MODEL_DIR,
            alias=spec.model.alias,
        ),
        engine=EngineSettings(**spec.engine.model_dump()),
        sampling=SamplingDefaults(**spec.sampling.model_dump()),
        prompt=PromptSettings(
            system=spec.prompt.system,
            rag_template=spec.prompt.rag_template,
            response_format=spec.prompt.response_format,
        ),
        # Containers log JSON so log pipelines can parse them.
        server=ServerSettings(tls=tls, log_format="json", limits=spec.server.limits, auth=auth),
    )


@dataclass(frozen=True)
class EngineYaml:
    """engine.yaml rendered once: the ConfigMap's data and the checksum the pods carry.

    Rendering validates the whole contract, so one reconcile renders it once and passes it
    to the ConfigMap, the Deployment's checksum annotation and the status.
    """

    data: dict[str, str]
    checksum: str

    @classmethod
    def of(cls, spec: ProfileSpec) -> EngineYaml:
        data = config_data(spec)
        return cls(data, config_checksum(data))


def config_data(spec: ProfileSpec) -> dict[str, str]:
    return {CONFIG_KEY: dump_config(engine_config(spec))}


def config_checksum(data: dict[str, str]) -> str:
    """Hash of the ConfigMap data, put on the pod template so a config change rolls the pods."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def configmap(profile: Profile, config: EngineYaml | None = None) -> dict[str, Any]:
    """The ConfigMap; `config` is engine.yaml when the caller rendered it already."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(profile, config_map_name(profile), CONFIG),
        "data": dict((config or EngineYaml.of(profile.spec)).data),
    }
