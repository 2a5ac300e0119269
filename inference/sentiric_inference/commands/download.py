"""`sentiric-llm download`: fetch the profile's GGUF from the Hugging Face Hub (init container).

    sentiric-llm download --config /etc/sentiric/engine.yaml
    sentiric-llm download --repo Qwen/Qwen2.5-3B-Instruct-GGUF \\
        --file qwen2.5-3b-instruct-q4_k_m.gguf --cache-dir /models [--sha256 HEX]

Flags override the config file. The token comes from --token-file, else HF_TOKEN (the
operator injects it from spec.model.huggingFace.tokenSecretRef). Exit codes are listed in
`sentiric_inference.models.errors` and docs/models.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

logger = logging.getLogger("sentiric_inference.download")

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "download",
        help="download the model GGUF from the Hugging Face Hub into the cache",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", type=Path, help="engine.yaml (model.huggingFace, sha256, cacheDir)"
    )
    parser.add_argument("--repo", help="Hub repository, e.g. Qwen/Qwen2.5-3B-Instruct-GGUF")
    parser.add_argument(
        "--file", help="file in the repository, e.g. qwen2.5-3b-instruct-q4_k_m.gguf"
    )
    parser.add_argument("--revision", help="branch, tag or commit (default: main)")
    parser.add_argument(
        "--cache-dir", type=Path, help="folder the file is placed in (default /models)"
    )
    parser.add_argument("--sha256", help="expected sha256 of the file (64 hex digits)")
    parser.add_argument(
        "--token-file", type=Path, help="file holding the Hub token (else $HF_TOKEN)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds to connect / without receiving a byte (default 30)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=6,
        help="consecutive attempts without progress before giving up (default 6)",
    )
    parser.add_argument(
        "--backoff",
        type=float,
        default=1.0,
        help="first retry delay in seconds, doubled each time (default 1)",
    )
    parser.add_argument(
        "--backoff-max",
        type=float,
        default=60.0,
        help="longest retry delay in seconds (default 60)",
    )
    parser.add_argument(
        "--progress-interval",
        type=float,
        default=10.0,
        help="seconds between progress log lines (default 10)",
    )
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument(
        "--termination-log",
        type=Path,
        default=Path("/dev/termination-log"),
        help="where to write the file's size, sha256 and shape (layers, KV heads...) as JSON "
        "on success, for the operator to copy into LLMProfile.status.model (default "
        "/dev/termination-log, which the kubelet creates in every container; skipped when the "
        "file does not exist)",
    )
    parser.set_defaults(run=run)


class _UsageError(Exception):
    pass


def _resolve(args: argparse.Namespace) -> tuple[Any, Path, str | None]:
    """(HubFile, cache dir, sha256 pin) from the config file overlaid with flags."""
    import yaml

    from sentiric_inference.config import load_config
    from sentiric_inference.models.hub import HubFile

    repo = file = revision = sha = None
    cache_dir: Path | None = None
    if args.config is not None:
        try:
            model = load_config(args.config).model
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise _UsageError(f"cannot read --config {args.config}: {exc}") from exc
        if model.hugging_face is not None:
            repo, file = model.hugging_face.repo, model.hugging_face.file
            revision = model.hugging_face.revision
        elif args.repo is None:
            raise _UsageError(f"{args.config}: model.huggingFace is not set, nothing to download")
        sha, cache_dir = model.sha256, model.cache_dir
    repo, file = args.repo or repo, args.file or file
    revision = args.revision or revision or "main"
    sha = args.sha256 or sha
    cache_dir = args.cache_dir or cache_dir or Path("/models")
    if not repo or not file:
        raise _UsageError("give --config with model.huggingFace, or both --repo and --file")
    if sha is not None and not _SHA256.fullmatch(sha):
        raise _UsageError(f"--sha256 / model.sha256 must be 64 hex digits, got {sha!r}")
    return HubFile(repo=repo, file=file, revision=revision), cache_dir, sha


def _token(args: argparse.Namespace) -> str | None:
    if args.token_file is not None:
        try:
            return args.token_file.read_text().strip() or None
        except OSError as exc:
            raise _UsageError(f"cannot read --token-file {args.token_file}: {exc}") from exc
    return os.environ.get("HF_TOKEN", "").strip() or None


def run(args: argparse.Namespace) -> int:
    from sentiric_inference.logging_setup import configure_logging
    from sentiric_inference.models.errors import EXIT_OK, EXIT_USAGE, DownloadError

    configure_logging(args.log_format, "INFO")
    # One line per HTTP request (every retry and resume) drowns the progress lines.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    try:
        source, cache_dir, pin = _resolve(args)
        token = _token(args)
    except _UsageError as exc:
        print(f"sentiric-llm download: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.retries < 1 or args.timeout <= 0 or args.backoff < 0:
        print(
            "sentiric-llm download: error: --retries >= 1, --timeout > 0, --backoff >= 0",
            file=sys.stderr,
        )
        return EXIT_USAGE

    # huggingface_hub's own tqdm bars are noise in `kubectl logs`; progress is logged instead.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from sentiric_inference.models.downloading import DownloadOptions, download_model

    options = DownloadOptions(
        timeout=args.timeout,
        attempts=args.retries,
        backoff_initial=args.backoff,
        backoff_max=args.backoff_max,
        progress_interval=args.progress_interval,
    )
    try:
        result = download_model(source, cache_dir, sha256=pin, token=token, options=options)
    except DownloadError as exc:
        logger.error("download failed (exit %d): %s", exc.exit_code, exc.message)
        return exc.exit_code
    logger.info(
        "model ready: %s (%d bytes, sha256 %s, %s)",
        result.path,
        result.size,
        result.sha256,
        "downloaded" if result.downloaded else "already present",
    )
    draft = _draft_source(args)
    draft_facts: dict[str, Any] | None = None
    if draft is not None:
        source, pin = draft
        try:
            extra = download_model(source, cache_dir, sha256=pin, token=token, options=options)
        except DownloadError as exc:
            logger.error("draft model download failed (exit %d): %s", exc.exit_code, exc.message)
            return exc.exit_code
        logger.info("draft model ready: %s (%d bytes)", extra.path, extra.size)
        draft_facts = {
            "repo": source.repo,
            "file": source.file,
            "revision": source.revision,
            **termination_facts(extra.path, extra.size, extra.sha256),
        }
    if args.termination_log.is_file():
        facts = termination_facts(result.path, result.size, result.sha256)
        if draft_facts is not None:
            # The operator sizes the pod's memory request with the draft model's too.
            facts["draft"] = draft_facts
        _write_termination_log(args.termination_log, facts)
    print(result.path)
    return EXIT_OK


def _draft_source(args: argparse.Namespace) -> tuple[Any, str | None] | None:
    """(HubFile, sha256 pin) of engine.draftModel when --config names one on the Hub."""
    if args.config is None:
        return None
    from sentiric_inference.config import load_config
    from sentiric_inference.models.hub import HubFile

    draft = load_config(args.config).engine.draft_model  # read once already by _resolve
    if draft is None or draft.hugging_face is None:
        return None
    hub = draft.hugging_face
    return HubFile(repo=hub.repo, file=hub.file, revision=hub.revision), draft.sha256


def model_shape_facts(path: Path) -> dict[str, int] | None:
    """The GGUF's shape as the operator sizes pods from it; None (logged) when unreadable.

    The download itself succeeded, so a file this reader cannot parse (a new GGUF version, an
    architecture missing a key) only costs the operator's automatic memory request.
    """
    from sentiric_inference.models.gguf_metadata import read_model_shape

    try:
        shape = read_model_shape(path)
    except (OSError, ValueError) as exc:
        logger.warning("could not read the model's shape from %s: %s", path, exc)
        return None
    return {
        "nLayer": shape.n_layer,
        "nHeadKv": shape.n_head_kv,
        "keyLength": shape.key_length,
        "valueLength": shape.value_length,
        "nEmbd": shape.n_embd,
        "nVocab": shape.n_vocab,
        "nCtxTrain": shape.n_ctx_train,
    }


def termination_facts(path: Path, size: int, sha256: str) -> dict[str, Any]:
    """{"sizeBytes", "sha256", "shape"?}: what the operator copies into status.model.

    A few hundred bytes (twice that with a draft model's), far below the kubelet's 4096-byte
    cap on termination messages.
    """
    facts: dict[str, Any] = {"sizeBytes": size, "sha256": sha256}
    shape = model_shape_facts(path)
    if shape is not None:
        facts["shape"] = shape
    return facts


def _write_termination_log(path: Path, facts: dict[str, Any]) -> None:
    """Leave `facts` as JSON where Kubernetes reads a container's termination message.

    Only an existing file is written (the kubelet mounts it), so running the command outside
    a pod never creates one; the download itself succeeded, so a failure here is only logged.
    """
    if not path.is_file():
        return
    try:
        path.write_text(json.dumps(facts, separators=(",", ":")))
    except OSError as exc:
        logger.warning("could not write the termination message to %s: %s", path, exc)
