"""The serving layer: requests in protocol-neutral form -> prompts -> engine generations."""

from sentiric_inference.serving.service import Generation, Serving
from sentiric_inference.serving.types import ChatInput, ChatTurn, RequestParams, ResponseFormat

__all__ = ["ChatInput", "ChatTurn", "Generation", "RequestParams", "ResponseFormat", "Serving"]
