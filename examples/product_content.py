"""Shop-ready product copy from a CSV, with the product-content profile (docs/product-content.md).

Reads products (`name`, `features`, `category`; features separated by `;` or `|`), asks the
server for each concurrently with the official `openai` client (or, with `--client ollama`,
the official `ollama` client on the server's Ollama API), shows a progress bar, and
writes one JSON line per product: the input, the parsed output (`title`, `features_formatted`,
`description`, `seo_keywords`), timings and token usage. `--finetune` also writes the
successful pairs as chat fine-tuning data ({"messages": [system, user, assistant]}).

The schema comes from the server: the profile's prompt.responseFormat constrains every
answer, so this script sends none (pass --schema FILE to send one of your own instead).

    python examples/product_content.py products.csv --base-url http://127.0.0.1:16070/v1 \
        --out content.jsonl --finetune pairs.jsonl --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import ssl
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
from tqdm import tqdm

# What the product-content profile's schema requires; checked here too, so a server started
# without that profile (or a --schema of another shape) shows up as failed rows.
REQUIRED_KEYS = ("title", "features_formatted", "description", "seo_keywords")
# Used only for the fine-tuning file: what the profile's own system prompt says, in short,
# so the pairs train a model to answer without the profile around it.
FINETUNE_SYSTEM = (
    "You are an e-commerce copywriter. Answer with one JSON object with the keys title, "
    "features_formatted, description and seo_keywords."
)


@dataclass(frozen=True, slots=True)
class Product:
    name: str
    features: tuple[str, ...]
    category: str

    def as_input(self) -> dict[str, Any]:
        return {"name": self.name, "features": list(self.features), "category": self.category}

    def prompt(self) -> str:
        features = "\n".join(f"- {feature}" for feature in self.features)
        return f"Product: {self.name}\nCategory: {self.category}\nFeatures:\n{features}"


def read_products(path: Path) -> list[Product]:
    """Rows of a CSV with the columns name, features, category (any order, more allowed)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"name", "features", "category"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        products = []
        for line, row in enumerate(reader, start=2):
            name = (row["name"] or "").strip()
            if not name:
                raise ValueError(f"{path}:{line}: empty name")
            raw = (row["features"] or "").replace("|", ";")
            features = tuple(f.strip() for f in raw.split(";") if f.strip())
            products.append(Product(name, features, (row["category"] or "").strip()))
    return products


def check_output(text: str) -> dict[str, Any]:
    """The reply as a JSON object with the four keys; ValueError says what is wrong."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"the reply is a JSON {type(value).__name__}, not an object")
    missing = [key for key in REQUIRED_KEYS if key not in value]
    if missing:
        raise ValueError(f"the reply lacks {', '.join(missing)}")
    return value


class Reply:
    """What one streamed answer brought: its text, when it began, how it ended, its usage."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.first: float | None = None
        self.finish: str | None = None
        self.usage: dict[str, Any] | None = None

    def add(self, text: str) -> None:
        if text:
            if self.first is None:
                self.first = time.perf_counter()
            self.parts.append(text)


class OpenAIBackend:
    """The server's OpenAI API (/v1) through the official `openai` client."""

    errors: tuple[type[Exception], ...] = (openai.OpenAIError,)

    def __init__(self, args: argparse.Namespace, verify: ssl.SSLContext | None) -> None:
        self.args = args
        self.client = openai.AsyncOpenAI(
            base_url=args.base_url,
            api_key=args.api_key,
            timeout=args.timeout,
            max_retries=1,
            # An https:// server whose certificate a private CA signed (server.tls.https).
            http_client=openai.DefaultAsyncHttpxClient(verify=verify) if verify else None,
        )

    async def model(self) -> str:
        return (await self.client.models.list()).data[0].id

    async def stream(self, prompt: str, schema: dict[str, Any] | None, reply: Reply) -> None:
        args = self.args
        extra: dict[str, Any] = {}
        if schema is not None:
            extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "product_content", "schema": schema},
            }
        if args.temperature is not None:
            extra["temperature"] = args.temperature
        if args.max_tokens is not None:
            extra["max_tokens"] = args.max_tokens
        stream = await self.client.chat.completions.create(
            model=args.model,
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            stream_options={"include_usage": True},
            **extra,
        )
        async for chunk in stream:
            if chunk.usage is not None:
                reply.usage = chunk.usage.model_dump()
            for choice in chunk.choices:
                reply.add(choice.delta.content or "")
                if choice.finish_reason:
                    reply.finish = choice.finish_reason

    async def close(self) -> None:
        await self.client.close()


class OllamaBackend:
    """The server's Ollama API (/api) through the official `ollama` client, as the content
    generator this example comes from called Ollama itself."""

    errors: tuple[type[Exception], ...] = (ollama.ResponseError, httpx.HTTPError, ConnectionError)

    def __init__(self, args: argparse.Namespace, verify: ssl.SSLContext | None) -> None:
        self.args = args
        # The same --base-url as for openai works: Ollama's routes live under the root.
        host = self.host = args.base_url.rstrip("/").removesuffix("/v1")
        headers = {"Authorization": f"Bearer {args.api_key}"}
        extra: dict[str, Any] = {"verify": verify} if verify else {}
        self.client = ollama.AsyncClient(host=host, headers=headers, timeout=args.timeout, **extra)

    async def model(self) -> str:
        try:
            return str((await self.client.list()).models[0].model)
        except ConnectionError as exc:
            # The ollama client replaces the transport's reason (an untrusted certificate,
            # a refused connection) with a generic message; say what it was.
            cause = exc.__context__
            raise ConnectionError(f"cannot reach {self.host}: {cause or exc}") from cause

    async def stream(self, prompt: str, schema: dict[str, Any] | None, reply: Reply) -> None:
        args = self.args
        options: dict[str, Any] = {}
        if args.temperature is not None:
            options["temperature"] = args.temperature
        if args.max_tokens is not None:
            options["num_predict"] = args.max_tokens
        stream = await self.client.chat(
            model=args.model,
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            format=schema,
            options=options or None,
        )
        async for chunk in stream:
            reply.add(chunk.message.content or "")
            if chunk.done:
                reply.finish = chunk.done_reason
                prompt_tokens, completion_tokens = chunk.prompt_eval_count, chunk.eval_count
                reply.usage = {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": (prompt_tokens or 0) + (completion_tokens or 0),
                }

    async def close(self) -> None:
        await self.client.close()  # type: ignore[no-untyped-call]  # untyped in ollama


Backend = OpenAIBackend | OllamaBackend


async def generate(
    backend: Backend, product: Product, schema: dict[str, Any] | None
) -> dict[str, Any]:
    """One product: stream the answer (for the time to first token) and parse it."""
    started = time.perf_counter()
    reply = Reply()
    record: dict[str, Any] = {"input": product.as_input()}
    expected: tuple[type[Exception], ...] = (*backend.errors, ValueError)
    try:
        await backend.stream(product.prompt(), schema, reply)
        text = "".join(reply.parts)
        record["raw"] = text
        record["output"] = check_output(text)
        record["ok"] = True
    except expected as exc:
        # One product's failure is recorded, not fatal: the others are still worth having.
        record["ok"] = False
        record["error"] = f"{type(exc).__name__}: {exc}"
    ended = time.perf_counter()
    record["finish_reason"] = reply.finish
    record["usage"] = reply.usage
    record["timing"] = {
        "ttft_s": None if reply.first is None else round(reply.first - started, 4),
        "total_s": round(ended - started, 4),
    }
    return record


async def run(args: argparse.Namespace) -> int:
    products = read_products(args.csv)
    schema = json.loads(args.schema.read_text()) if args.schema is not None else None
    verify = ssl.create_default_context(cafile=args.ca_file) if args.ca_file else None
    backend: Backend = (
        OllamaBackend(args, verify) if args.client == "ollama" else OpenAIBackend(args, verify)
    )
    if args.model is None:
        # The server serves one model: ask it which, so no name has to be typed.
        args.model = await backend.model()
    limit = asyncio.Semaphore(args.concurrency)

    async def bounded(index: int, product: Product) -> tuple[int, dict[str, Any]]:
        async with limit:
            return index, await generate(backend, product, schema)

    records: list[dict[str, Any] | None] = [None] * len(products)
    started = time.perf_counter()
    tasks = [asyncio.ensure_future(bounded(i, p)) for i, p in enumerate(products)]
    try:
        with tqdm(total=len(tasks), unit="product", disable=args.quiet) as bar:
            for next_done in asyncio.as_completed(tasks):
                index, record = await next_done
                records[index] = record
                bar.update(1)
    finally:
        for task in tasks:
            task.cancel()
        await backend.close()
    elapsed = time.perf_counter() - started
    done = [r for r in records if r is not None]
    write_jsonl(args.out, done)
    ok = [r for r in done if r["ok"]]
    if args.finetune is not None:
        write_jsonl(args.finetune, [finetune_pair(r) for r in ok])
    tokens = sum((r["usage"] or {}).get("completion_tokens", 0) for r in done)
    print(
        f"{len(ok)}/{len(done)} products in {elapsed:.1f}s "
        f"({tokens / elapsed if elapsed else 0:.1f} generated tokens/s overall) -> {args.out}",
        file=sys.stderr,
    )
    return 0 if len(ok) == len(done) else 1


def finetune_pair(record: dict[str, Any]) -> dict[str, Any]:
    """A chat fine-tuning example (OpenAI's format): the question and the accepted answer."""
    product = Product(
        record["input"]["name"], tuple(record["input"]["features"]), record["input"]["category"]
    )
    return {
        "messages": [
            {"role": "system", "content": FINETUNE_SYSTEM},
            {"role": "user", "content": product.prompt()},
            {"role": "assistant", "content": json.dumps(record["output"], ensure_ascii=False)},
        ]
    }


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("csv", type=Path, help="products: columns name, features, category")
    parser.add_argument(
        "--client",
        choices=("openai", "ollama"),
        default="openai",
        help="the official client and API to call: OpenAI's (/v1) or Ollama's (/api)",
    )
    parser.add_argument(
        "--base-url",
        default="http://127.0.0.1:16070/v1",
        help="the server's OpenAI base URL (for ollama, its root; a trailing /v1 is dropped)",
    )
    parser.add_argument("--api-key", default="unused", help="sent as a Bearer token")
    parser.add_argument(
        "--ca-file", type=Path, help="CA that signed an https:// server's certificate"
    )
    parser.add_argument("--model", help="default: the one model the server reports")
    parser.add_argument("--out", type=Path, default=Path("product_content.jsonl"))
    parser.add_argument("--finetune", type=Path, help="also write chat fine-tuning JSONL here")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--max-tokens", type=int, help="default: the profile's maxTokens")
    parser.add_argument("--temperature", type=float, help="default: the profile's")
    parser.add_argument(
        "--schema", type=Path, help="a JSON schema file to send instead of the profile's default"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
