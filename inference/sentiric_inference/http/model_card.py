"""The one model GET /v1/models describes, with the engine and sampling settings it runs with."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sentiric_inference.protocol.responses import (
    EmbeddingDetails,
    EngineDetails,
    ModelCard,
    SamplingDetails,
)

if TYPE_CHECKING:
    from sentiric_inference.serving.service import Serving


def model_card(serving: Serving, created: int) -> ModelCard:
    """The card; `engine` stays None until the model is loaded (the plan is known then)."""
    config = serving.config
    sampling = config.sampling
    embedding = embedding_details(serving)
    return ModelCard(
        id=serving.model_name,
        created=created,
        ready=serving.ready,
        max_tokens=sampling.max_tokens,
        context_length=serving.context_size,
        engine=_engine_details(serving),
        sampling=SamplingDetails(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            min_p=sampling.min_p,
            repeat_penalty=sampling.repeat_penalty,
            max_tokens=sampling.max_tokens,
        ),
        response_format=config.prompt.response_format,
        embeddings_enabled=embedding is not None,
        embeddings=embedding,
    )


def embedding_details(serving: Serving) -> EmbeddingDetails | None:
    """The embedding vectors' shape, None while embeddings are not served."""
    info = serving.engine.embedding_info
    if info is None:
        return None
    return EmbeddingDetails(
        dimensions=info.dimensions, pooling=info.pooling, max_input_tokens=info.max_input_tokens
    )


def _engine_details(serving: Serving) -> EngineDetails | None:
    engine = serving.engine
    plan = engine.plan
    if plan is None:
        return None
    settings = serving.config.engine
    backends = engine.backends
    return EngineDetails(
        # The file name only: where the model lives on the node is nobody's business.
        file=Path(engine.info.path).name,
        parallel=plan.parallel,
        context_size=plan.context_size,
        batch_size=plan.batch_size,
        kv_cache_type=plan.kv_cache_type,
        flash_attention=settings.flash_attention,
        gpu_layers=settings.gpu_layers,
        cpu_variant=backends.cpu_variant if backends is not None else None,
        gpu=backends.gpu if backends is not None else None,
    )
