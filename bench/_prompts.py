"""Prompts the benches share: a long system prompt of a chosen size, new to each caller."""

from __future__ import annotations

from pathlib import Path

from sentiric_inference.engine.native import Model


def system_prompt(model_path: Path, tag: str, n_tokens: int) -> tuple[str, int]:
    """A system prompt of about n_tokens tokens, unique to `tag` from its first words."""
    model = Model(model_path, gpu_layers=0)
    try:
        text, rule = f"Session {tag}. You are the support assistant of Acme Tools.", 0
        while True:
            count = len(model.tokenize(text, add_special=False, parse_special=False))
            if count >= n_tokens:
                return text, count
            rule += 1
            text += (
                f" Rule {rule}: when a customer asks about product line {rule}, answer "
                f"politely, cite section {rule}.{rule % 7} of the manual and keep it brief."
            )
    finally:
        model.close()
