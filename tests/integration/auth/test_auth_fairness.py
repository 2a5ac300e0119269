"""Round-robin admission across API keys, end to end: one key's burst does not make another
key's request wait for all of it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import openai
import pytest

from tests.integration.auth.conftest import KEYS, TINY, write_keys
from tests.support.server import running_server

pytestmark = pytest.mark.model

# The tiny model never samples an end token, so every request runs exactly this long.
TOKENS = 1500


def test_a_later_key_is_served_between_anothers_burst(
    tiny_model_path: Path, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    write_keys(keys, ["burst", "calm"])
    with running_server(
        tiny_model_path,
        parallel=1,
        context_size=2048,
        extra_config={
            "model": {"alias": TINY},
            "sampling": {"maxTokens": TOKENS},
            "server": {"auth": {"apiKeysFile": str(keys)}},
        },
    ) as server:
        finished: list[str] = []

        async def one(client: openai.AsyncOpenAI, label: str) -> None:
            reply = await client.completions.create(
                model=TINY, prompt="tell", max_tokens=TOKENS, temperature=0
            )
            assert reply.choices[0].finish_reason == "length"
            finished.append(label)

        async def run() -> None:
            # Clients made up front, so each request leaves when its task starts.
            burst, calm = (
                openai.AsyncOpenAI(
                    base_url=server.openai_base_url, api_key=KEYS[name], max_retries=0, timeout=120
                )
                for name in ("burst", "calm")
            )
            async with burst, calm:
                tasks = []
                # Arrival order: the burst's five, then the calm key's one.
                for label in ("a1", "a2", "a3", "a4", "a5"):
                    tasks.append(asyncio.create_task(one(burst, label)))
                    await asyncio.sleep(0.03)
                tasks.append(asyncio.create_task(one(calm, "b1")))
                await asyncio.gather(*tasks)

        started = time.monotonic()
        asyncio.run(asyncio.wait_for(run(), 300))
        elapsed = time.monotonic() - started
    # First come, first served would finish b1 last; round robin admits it after at most
    # the burst's running request and the head of its line.
    assert finished.index("b1") <= 2, (finished, elapsed)
    assert [label for label in finished if label != "b1"] == ["a1", "a2", "a3", "a4", "a5"]
