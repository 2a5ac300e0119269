"""Names the fake Hub serves in the download tests (shared by conftest and the test modules)."""

from __future__ import annotations

REPO = "Qwen/Tiny-GGUF"
FILE = "tiny-q4_k_m.gguf"
PRIVATE_REPO = "acme/private-GGUF"
TOKEN = "hf_test_token"
# Authenticates, but is not granted the (gated) private repository: 403.
NOT_GRANTED_TOKEN = "hf_not_granted"
