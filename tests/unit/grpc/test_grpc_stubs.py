"""The committed gRPC stubs are exactly what hack/gen-proto.sh generates from llama.proto."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
GEN = REPO / "inference" / "sentiric_inference" / "grpc_api" / "gen"
STUBS = ("llama_pb2.py", "llama_pb2.pyi", "llama_pb2_grpc.py", "llama_pb2_grpc.pyi")


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    subprocess.run(
        ["bash", str(REPO / "hack" / "gen-proto.sh"), str(tmp_path)],
        check=True,
        timeout=120,
        env={**os.environ, "PYTHON": sys.executable},
    )
    stale = [name for name in STUBS if (tmp_path / name).read_text() != (GEN / name).read_text()]
    assert not stale, f"run hack/gen-proto.sh: {', '.join(stale)} differ from llama.proto"


def test_stubs_keep_the_sentiric_wire_names() -> None:
    from sentiric_inference.grpc_api.gen import llama_pb2

    service = llama_pb2.DESCRIPTOR.services_by_name["LlamaService"]
    assert service.full_name == "sentiric.llm.v1.LlamaService"
    method = service.methods_by_name["GenerateStream"]
    assert method.server_streaming and not method.client_streaming
    fields = {f.name: (f.number, f.type) for f in llama_pb2.GenerateStreamRequest.DESCRIPTOR.fields}
    assert {name: number for name, (number, _) in fields.items()} == {
        "system_prompt": 1,
        "user_prompt": 2,
        "rag_context": 3,
        "history": 4,
        "params": 5,
        "lora_adapter_id": 6,
    }
    params = {f.name: f.number for f in llama_pb2.GenerationParams.DESCRIPTOR.fields}
    assert params == {
        "max_new_tokens": 1,
        "temperature": 2,
        "top_k": 3,
        "top_p": 4,
        "repetition_penalty": 5,
        "stop_sequences": 6,
        "seed": 7,
        "engine_specific_params": 20,
    }
    response = llama_pb2.GenerateStreamResponse.DESCRIPTOR
    token = response.fields_by_name["token"]
    assert token.number == 1 and token.type == token.TYPE_BYTES
    assert response.fields_by_name["finish_details"].number == 2
    assert [f.name for f in response.oneofs_by_name["type"].fields] == ["token", "finish_details"]
    finish = {f.name: f.number for f in llama_pb2.FinishDetails.DESCRIPTOR.fields}
    assert finish == {"finish_reason": 1, "prompt_tokens": 2, "completion_tokens": 3}
