"""/tokenize and /detokenize bodies, in llama-server's shapes (pydantic, no web framework).

Unknown fields are refused and types are strict, as for the OpenAI bodies: a misspelt
`with_piece` is a 400 naming it, `"tokens": ["1"]` a 400 naming `tokens[0]`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TokenizeRequest(_Body):
    content: str
    # Add the model's BOS (as /v1/completions does to its prompt); llama-server's default.
    add_special: bool = False
    # Read control-token text (`<|im_end|>`) as the control token. Off by default, unlike
    # llama-server: the count then matches what a chat message costs, since the server never
    # parses control tokens in caller text (docs/http-api.md, Tokenize).
    parse_special: bool = False
    # Answer each token as {"id", "piece"} instead of a bare id.
    with_pieces: bool = False


class TokenPiece(BaseModel):
    id: int
    # The token's text, or its bytes when they are not whole UTF-8 characters on their own.
    piece: str | list[int]


class TokenizeResponse(BaseModel):
    tokens: list[int] | list[TokenPiece]


class DetokenizeRequest(_Body):
    tokens: list[int]


class DetokenizeResponse(BaseModel):
    content: str
