"""`sentiric-llm` command line: serve, download, generate, benchmark.

Each subcommand lives in `sentiric_inference.commands.<name>` and exposes
`register(subparsers)`; heavy imports (llama.cpp, grpc) stay inside the command's run
function so `sentiric-llm download` in an init container starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS = ("serve", "download", "generate", "benchmark")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sentiric-llm", description="Run and call the sentiric-llm inference server."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"sentiric_inference.commands.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
