"""Model files: the embedded default model and downloads from the Hugging Face Hub.

Only the standard-library-only locator is exported here; the download machinery lives in
`models.downloading` (it imports huggingface_hub) so `serve` does not pay for it.
"""

from __future__ import annotations

from sentiric_inference.models.embedded import (
    EMBEDDED_ALIAS,
    EMBEDDED_FILE,
    EmbeddedModelMissing,
    embedded_model_path,
)

__all__ = [
    "EMBEDDED_ALIAS",
    "EMBEDDED_FILE",
    "EmbeddedModelMissing",
    "embedded_model_path",
]
