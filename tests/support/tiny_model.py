"""A few-MB Qwen2-architecture GGUF with random weights, generated for tests
(docs/models.md, Test models).

The file has everything llama.cpp's qwen2 loader and BPE tokenizer need: hyper-parameters,
all tensors (attention biases included), a byte-level BPE vocabulary trained on a small fixed
corpus, the ChatML control tokens and Qwen2.5's chat template. Its text is noise; what tests
can rely on is structure, token counts and determinism (same seed -> byte-identical file,
same prompt + greedy sampling -> same tokens).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import itertools
import os
import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

ARCH = "qwen2"
ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)

# Qwen2.5-Instruct's chat template (ChatML with its default system prompt and tool calls).
QWEN25_CHAT_TEMPLATE = (
    "{%- if tools %}\n"
    "    {{- '<|im_start|>system\\n' }}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- messages[0]['content'] }}\n"
    "    {%- else %}\n"
    "        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}\n"
    "    {%- endif %}\n"
    '    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.'
    "\\n\\nYou are provided with function signatures within <tools></tools> XML tags:"
    '\\n<tools>" }}\n'
    "    {%- for tool in tools %}\n"
    '        {{- "\\n" }}\n'
    "        {{- tool | tojson }}\n"
    "    {%- endfor %}\n"
    '    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name'
    " and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n"
    '{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call>'
    '<|im_end|>\\n" }}\n'
    "{%- else %}\n"
    "    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "    {%- else %}\n"
    "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud."
    " You are a helpful assistant.<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    '    {%- if (message.role == "user") or (message.role == "system" and not loop.first)'
    ' or (message.role == "assistant" and not message.tool_calls) %}\n'
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n"
    '    {%- elif message.role == "assistant" %}\n'
    "        {{- '<|im_start|>' + message.role }}\n"
    "        {%- if message.content %}\n"
    "            {{- '\\n' + message.content }}\n"
    "        {%- endif %}\n"
    "        {%- for tool_call in message.tool_calls %}\n"
    "            {%- if tool_call.function is defined %}\n"
    "                {%- set tool_call = tool_call.function %}\n"
    "            {%- endif %}\n"
    '            {{- \'\\n<tool_call>\\n{"name": "\' }}\n'
    "            {{- tool_call.name }}\n"
    '            {{- \'", "arguments": \' }}\n'
    "            {{- tool_call.arguments | tojson }}\n"
    "            {{- '}\\n</tool_call>' }}\n"
    "        {%- endfor %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    '    {%- elif message.role == "tool" %}\n'
    '        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}\n'
    "            {{- '<|im_start|>user' }}\n"
    "        {%- endif %}\n"
    "        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- message.content }}\n"
    "        {{- '\\n</tool_response>' }}\n"
    '        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}\n'
    "            {{- '<|im_end|>\\n' }}\n"
    "        {%- endif %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n"
)

# The BPE merges are learned from this text, so common English and ChatML pieces become
# multi-byte tokens (as in a real vocabulary) while any input still tokenizes via bytes.
_CORPUS = """
system user assistant You are a helpful assistant. You are Qwen, created by Alibaba Cloud.
The quick brown fox jumps over the lazy dog. Hello, world! How are you today?
Answer using only the facts below. Question: what is the capital of France? Paris.
Kubernetes runs containers in pods; the operator reconciles the desired state.
The model streams tokens to the client while the scheduler batches every sequence.
Once upon a time there was a little language model that generated text one token at a time.
"""
# Same split as GPT-2/Qwen pre-tokenizers in spirit: optional leading space + word/number/punct.
_PRETOKENIZE = re.compile(r" ?[A-Za-z]+| ?[0-9]| ?[^\sA-Za-z0-9]+|\s+")


@dataclass(frozen=True)
class TinyDims:
    """Hyper-parameters of the generated model; small enough to load and decode in ms."""

    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_head_kv: int = 2
    n_ff: int = 128
    n_ctx_train: int = 4096
    n_merges: int = 200
    # Pad the vocabulary with unused tokens up to this size (0: no padding), for benches
    # whose per-token costs grow with it: sampling scans every logit. Qwen 2.5's is 151,936.
    n_vocab: int = 0
    rope_freq_base: float = 1_000_000.0
    rms_eps: float = 1e-6


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable unicode characters."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, codes, strict=True)}


def train_bpe(corpus: str, n_merges: int) -> list[tuple[str, str]]:
    """Learn `n_merges` byte-level BPE merges; ties break lexicographically for determinism."""
    byte_map = bytes_to_unicode()
    words = Counter(
        tuple(byte_map[b] for b in piece.encode("utf-8")) for piece in _PRETOKENIZE.findall(corpus)
    )
    merges: list[tuple[str, str]] = []
    for _ in range(n_merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for word, count in words.items():
            for pair in itertools.pairwise(word):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged: Counter[tuple[str, ...]] = Counter()
        for word, count in words.items():
            out: list[str] = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += count
        words = merged
    return merges


def _vocabulary(n_merges: int, n_vocab: int = 0) -> tuple[list[str], list[int], list[str]]:
    byte_tokens = list(bytes_to_unicode().values())
    merges = train_bpe(_CORPUS, n_merges)
    tokens = byte_tokens[:]
    seen = set(tokens)
    for left, right in merges:
        if left + right not in seen:
            seen.add(left + right)
            tokens.append(left + right)
    types = [int(gguf.TokenType.NORMAL)] * len(tokens)
    padding = max(0, n_vocab - len(tokens) - len(SPECIAL_TOKENS))
    tokens.extend(f"<|pad_{i}|>" for i in range(padding))
    types.extend([int(gguf.TokenType.UNUSED)] * padding)
    tokens.extend(SPECIAL_TOKENS)
    types.extend([int(gguf.TokenType.CONTROL)] * len(SPECIAL_TOKENS))
    return tokens, types, [f"{left} {right}" for left, right in merges]


def write_tiny_qwen2_gguf(path: Path, *, seed: int = 0, dims: TinyDims | None = None) -> Path:
    """Write the tiny model to `path` (parent created) and return `path`; same seed, same bytes."""
    dims = dims or TinyDims()
    tokens, token_types, merges = _vocabulary(dims.n_merges, dims.n_vocab)
    n_vocab = len(tokens)
    head_dim = dims.n_embd // dims.n_head
    n_embd_kv = head_dim * dims.n_head_kv
    rng = np.random.default_rng(seed)

    def matrix(rows: int, cols: int, std: float = 0.08) -> np.ndarray:
        # numpy shape is (rows, cols) = ggml ne (cols, rows): llama.cpp's {n_in, n_out}.
        return rng.normal(0.0, std, size=(rows, cols)).astype(np.float16)

    def vector(n: int, mean: float = 0.0, std: float = 0.02) -> np.ndarray:
        return (mean + rng.normal(0.0, std, size=n)).astype(np.float32)

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), ARCH)
    writer.add_name("sentiric tiny qwen2 (random weights, tests only)")
    writer.add_context_length(dims.n_ctx_train)
    writer.add_embedding_length(dims.n_embd)
    writer.add_block_count(dims.n_layer)
    writer.add_feed_forward_length(dims.n_ff)
    writer.add_head_count(dims.n_head)
    writer.add_head_count_kv(dims.n_head_kv)
    writer.add_rope_freq_base(dims.rope_freq_base)
    writer.add_layer_norm_rms_eps(dims.rms_eps)
    writer.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16))

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    writer.add_token_types(token_types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokens.index(ENDOFTEXT))
    writer.add_eos_token_id(tokens.index(IM_END))
    writer.add_pad_token_id(tokens.index(ENDOFTEXT))
    writer.add_add_bos_token(False)
    writer.add_chat_template(QWEN25_CHAT_TEMPLATE)

    embeddings = matrix(n_vocab, dims.n_embd, std=0.5)
    writer.add_tensor("token_embd.weight", embeddings)
    for i in range(dims.n_layer):
        p = f"blk.{i}"
        writer.add_tensor(f"{p}.attn_norm.weight", vector(dims.n_embd, mean=1.0))
        writer.add_tensor(f"{p}.attn_q.weight", matrix(dims.n_embd, dims.n_embd))
        writer.add_tensor(f"{p}.attn_q.bias", vector(dims.n_embd))
        writer.add_tensor(f"{p}.attn_k.weight", matrix(n_embd_kv, dims.n_embd))
        writer.add_tensor(f"{p}.attn_k.bias", vector(n_embd_kv))
        writer.add_tensor(f"{p}.attn_v.weight", matrix(n_embd_kv, dims.n_embd))
        writer.add_tensor(f"{p}.attn_v.bias", vector(n_embd_kv))
        writer.add_tensor(f"{p}.attn_output.weight", matrix(dims.n_embd, dims.n_embd))
        writer.add_tensor(f"{p}.ffn_norm.weight", vector(dims.n_embd, mean=1.0))
        writer.add_tensor(f"{p}.ffn_gate.weight", matrix(dims.n_ff, dims.n_embd))
        writer.add_tensor(f"{p}.ffn_up.weight", matrix(dims.n_ff, dims.n_embd))
        writer.add_tensor(f"{p}.ffn_down.weight", matrix(dims.n_embd, dims.n_ff))
    writer.add_tensor("output_norm.weight", vector(dims.n_embd, mean=1.0))
    output = matrix(n_vocab, dims.n_embd, std=0.5)
    # Control tokens get zero logits: with a random head they would otherwise end generations
    # at random; tests needing a stop use max_tokens or stop strings, or the real SmolLM2.
    output[n_vocab - len(SPECIAL_TOKENS) :] = 0
    writer.add_tensor("output.weight", output)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _cache_key() -> str:
    # Regenerate whenever this generator (or the gguf writer it relies on) changes.
    source = Path(__file__).read_bytes()
    try:
        version = importlib.metadata.version("gguf")
    except importlib.metadata.PackageNotFoundError:
        version = ""
    return hashlib.sha256(source + version.encode()).hexdigest()[:16]


def cached_tiny_qwen2_gguf(cache_dir: Path, *, seed: int = 0) -> Path:
    """The tiny model for `seed` under `cache_dir`, generated on first use (for tests and bench/)."""
    target = cache_dir / f"tiny-qwen2-{_cache_key()}-seed{seed}.gguf"
    if target.is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Several pytest processes may start at once: write aside, then rename atomically.
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".gguf.tmp")
    os.close(fd)
    try:
        write_tiny_qwen2_gguf(Path(tmp), seed=seed)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target
