"""Thin routes for POST /tokenize and POST /detokenize (llama-server's shapes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request

from sentiric_inference.protocol.tokens import (
    DetokenizeRequest,
    DetokenizeResponse,
    TokenizeRequest,
    TokenizeResponse,
    TokenPiece,
)
from sentiric_inference.serving.keys import ANONYMOUS, Caller

if TYPE_CHECKING:
    from sentiric_inference.serving.tokenizing import Tokenizing

router = APIRouter()


def _tokenizing(request: Request) -> Tokenizing:
    tokenizing: Tokenizing = request.app.state.tokenizing
    return tokenizing


def _caller(request: Request) -> Caller:
    caller: Caller = getattr(request.state, "caller", ANONYMOUS)
    return caller


def _piece(data: bytes) -> str | list[int]:
    # A token can be part of a UTF-8 character; llama-server then sends its bytes.
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return list(data)


@router.post("/tokenize")
async def tokenize(body: TokenizeRequest, request: Request) -> TokenizeResponse:
    result = await _tokenizing(request).tokenize(
        body.content,
        add_special=body.add_special,
        parse_special=body.parse_special,
        with_pieces=body.with_pieces,
        caller=_caller(request),
    )
    if result.pieces is None:
        return TokenizeResponse(tokens=result.tokens)
    pieces = [
        TokenPiece(id=token, piece=_piece(piece))
        for token, piece in zip(result.tokens, result.pieces, strict=True)
    ]
    return TokenizeResponse(tokens=pieces)


@router.post("/detokenize")
async def detokenize(body: DetokenizeRequest, request: Request) -> DetokenizeResponse:
    content = await _tokenizing(request).detokenize(body.tokens, caller=_caller(request))
    return DetokenizeResponse(content=content)
