"""Figures of a bench_server run: per-round lines, medians, ratios against the targets, tables."""

from __future__ import annotations

import statistics
from typing import Any

# Servers compared with ours; llama_server (llama.cpp's C++ server) only when it was built.
OTHERS = ("llama_cpp", "llama_server")
# Targets from issue 2.
TARGET_TPS_RATIO = 0.85
TARGET_TTFT_RATIO = 0.05
# Issue 16: tokens/s against llama-server at every N (TTFT p95 no worse).
TARGET_OVER_LLAMA_SERVER = 1.05
TARGET_HIT_MISS = 1 / 3
# Per-wave figures; prompt/cached only where the server reports usage, decode phase only
# for our server (llama_cpp.server runs one stream after another, so it has none).
FIGURES = (
    "tokens_per_s",
    "ttft_p50_s",
    "ttft_p95_s",
    "tokens",
    "full_streams",
    "prompt_tokens",
    "cached_tokens",
    "decode_tokens_per_s",
    "stream_tokens_per_s",
    "prefill_tokens_per_s",
    "decode_share",
    "sampling_share",
)


def describe(result: dict[str, float], tokens: int) -> str:
    line = f"{result['tokens_per_s']:7.1f} tok/s"
    if "prefill_tokens_per_s" in result:
        line += f"  (prefill {result['prefill_tokens_per_s']:.1f} tok/s)"
    if "ttft_p50_s" in result:
        line += (
            f"  TTFT p50 {result['ttft_p50_s'] * 1000:7.0f} ms  p95 "
            f"{result['ttft_p95_s'] * 1000:7.0f} ms  ({result['tokens']:.0f} tokens, "
            f"{result['full_streams']:.0f} streams reached {tokens}"
        )
        if "prompt_tokens" in result:
            line += f", prompts {result['prompt_tokens']:.0f}"
        if "cached_tokens" in result:
            line += f" ({result['cached_tokens']:.0f} cached)"
        if "decode_tokens_per_s" in result:
            line += f", decode phase {result['decode_tokens_per_s']:.1f} tok/s"
        if "decode_share" in result:
            line += (
                f", in llama_decode {result['decode_share']:.0%} and sampling "
                f"{result['sampling_share']:.1%} of the wave"
            )
        line += ")"
    return line


def workload_bound(tokens: float, prefill_s: float, decode_tokens_per_s: float) -> float:
    """Tokens/s of a bare loop doing a wave's work: its uncached prompt tokens (prefill_s at
    the prefill ceiling's rate), then its generated tokens at the decode ceiling's rate."""
    return tokens / (prefill_s + tokens / decode_tokens_per_s)


def median_of(rounds: list[dict[str, float]], key: str) -> float | None:
    values = [r[key] for r in rounds if key in r]
    return statistics.median(values) if values else None


def _ratio(
    top: list[dict[str, float]], top_key: str, bottom: list[dict[str, float]], bottom_key: str
) -> float | None:
    """Median of the per-round ratios, over the rounds where both figures exist."""
    ratios = [
        t[top_key] / b[bottom_key]
        for t, b in zip(top, bottom, strict=True)
        if top_key in t and bottom_key in b
    ]
    return statistics.median(ratios) if ratios else None


def summarise(
    figures: dict[int, dict[str, list[dict[str, float]]]],
    prefix_rounds: list[dict[str, float]],
    meta: dict[str, Any],
    *,
    burst: dict[str, list[dict[str, float]]] | None = None,
) -> dict[str, Any]:
    """Medians per N and system, and the ratios against the issue's targets.

    `figures` maps N -> system -> one dict per round; `meta` describes the run (model,
    threads, rounds, loads...) and is copied into the summary as it is.
    """
    per_n: dict[str, Any] = {}
    for n, systems in figures.items():
        per_n[str(n)] = {
            system: {key: median_of(rounds, key) for key in FIGURES}
            for system, rounds in systems.items()
        }
        pairs = zip(systems["sentiric"], systems["ceiling"], strict=True)
        per_n[str(n)]["sentiric_over_ceiling"] = statistics.median(
            ours["tokens_per_s"] / ceiling["tokens_per_s"] for ours, ceiling in pairs
        )
        per_n[str(n)]["sentiric_decode_over_ceiling"] = _ratio(
            systems["sentiric"], "decode_tokens_per_s", systems["ceiling"], "tokens_per_s"
        )
        # Stricter still: against the best ceiling seen in the whole run, in case load sank
        # a round's ceiling below what the servers reached in theirs.
        per_n[str(n)]["sentiric_over_best_ceiling"] = statistics.median(
            ours["tokens_per_s"] for ours in systems["sentiric"]
        ) / max(ceiling["tokens_per_s"] for ceiling in systems["ceiling"])
        # The fastest any server could answer the wave's first tokens: its uncached prompt
        # tokens run through a bare prefill loop.
        floors = [
            (ours["prompt_tokens"] - ours["cached_tokens"]) / ceiling["prefill_tokens_per_s"]
            for ours, ceiling in zip(systems["sentiric"], systems["ceiling"], strict=True)
        ]
        per_n[str(n)]["sentiric_ttft_floor_s"] = statistics.median(floors)
        per_n[str(n)]["sentiric_over_workload_bound"] = statistics.median(
            ours["tokens_per_s"] / workload_bound(ours["tokens"], floor, ceiling["tokens_per_s"])
            for ours, ceiling, floor in zip(
                systems["sentiric"], systems["ceiling"], floors, strict=True
            )
        )
        for other in OTHERS:
            if other in systems:
                pairs = zip(systems[other], systems["ceiling"], strict=True)
                per_n[str(n)][f"{other}_over_ceiling"] = statistics.median(
                    theirs["tokens_per_s"] / ceiling["tokens_per_s"] for theirs, ceiling in pairs
                )
    top = max(figures)
    ours_top, theirs_top = figures[top]["sentiric"], figures[top]["llama_cpp"]
    ttft_ratio = statistics.median(
        o["ttft_p95_s"] / t["ttft_p95_s"] for o, t in zip(ours_top, theirs_top, strict=True)
    )
    targets: dict[str, Any] = {
        f"tokens_per_s_over_ceiling_at_{top}": {
            "value": per_n[str(top)]["sentiric_over_ceiling"],
            "target": f">= {TARGET_TPS_RATIO}",
            "met": per_n[str(top)]["sentiric_over_ceiling"] >= TARGET_TPS_RATIO,
        },
        f"ttft_p95_over_llama_cpp_at_{top}": {
            "value": ttft_ratio,
            "target": f"<= {TARGET_TTFT_RATIO}",
            "met": ttft_ratio <= TARGET_TTFT_RATIO,
        },
    }
    # Issue 16: ours against llama.cpp's own C++ server at every N, medians of per-round ratios.
    for n, systems in figures.items():
        if "llama_server" not in systems:
            continue
        versus = list(zip(systems["sentiric"], systems["llama_server"], strict=True))
        tps = statistics.median(o["tokens_per_s"] / t["tokens_per_s"] for o, t in versus)
        ttft = statistics.median(o["ttft_p95_s"] / t["ttft_p95_s"] for o, t in versus)
        targets[f"tokens_per_s_over_llama_server_at_{n}"] = {
            "value": tps,
            "target": f">= {TARGET_OVER_LLAMA_SERVER}",
            "met": tps >= TARGET_OVER_LLAMA_SERVER,
        }
        targets[f"ttft_p95_over_llama_server_at_{n}"] = {
            "value": ttft,
            "target": "<= 1 (no worse)",
            "met": ttft <= 1.0,
        }
    prefix: dict[str, Any] | None = None
    if prefix_rounds:
        prefix = {key: median_of(prefix_rounds, key) for key in prefix_rounds[0]}
        targets["prefix_hit_over_miss"] = {
            "value": prefix["hit_over_miss"],
            "target": f"<= {TARGET_HIT_MISS:.3f}",
            "met": prefix["hit_over_miss"] <= TARGET_HIT_MISS,
        }
    bursts = {
        system: {key: median_of(rounds, key) for key in rounds[0]}
        for system, rounds in (burst or {}).items()
        if rounds
    }
    return {
        **meta,
        "per_n": per_n,
        "prefix": prefix,
        "burst": bursts,
        "targets": targets,
        "raw": {"per_n": figures, "prefix": prefix_rounds, "burst": burst or {}},
    }


def _ms(value: float | None) -> str:
    return f"{value * 1000:8.0f}" if value is not None else f"{'-':>8}"


def _num(value: float | None, width: int, digits: int = 0) -> str:
    return f"{value:{width}.{digits}f}" if value is not None else f"{'-':>{width}}"


def _ceiling_sampling(reps: int) -> str:
    return "one ceiling run per round" if reps == 1 else f"ceilings: best of {reps} per round"


def print_report(summary: dict[str, Any]) -> None:
    loads = ", ".join(f"{x:.2f}" for x in summary["load_average_per_round"])
    print(
        f"\n{summary['model']}, {summary['threads']} threads on {summary['cpus']} CPUs, "
        f"{summary['tokens_per_stream']} tokens/stream at temperature {summary['temperature']}, "
        f"{summary['workload']} messages, "
        f"medians of {summary['rounds']} rounds ({_ceiling_sampling(summary['ceiling_reps'])}), "
        f"{summary['date']}\n"
        f"load average (1 min) at each round start and at the end: {loads}"
    )
    for n, figures in summary["per_n"].items():
        print(
            f"\nN={n:<3} {'tok/s':>9} {'TTFT p50':>10} {'TTFT p95':>10} {'full':>6} "
            f"{'prompt':>7} {'cached':>7} {'decode tok/s':>13} {'tok/s/stream':>13}"
        )
        for system in ("ceiling", "sentiric", *OTHERS):
            if system not in figures:
                continue
            f = figures[system]
            full = "-" if f["full_streams"] is None else f"{f['full_streams']:.0f}/{n}"
            print(
                f"  {system:12} {f['tokens_per_s']:7.1f} {_ms(f['ttft_p50_s'])} ms"
                f"{_ms(f['ttft_p95_s'])} ms {full:>5} {_num(f['prompt_tokens'], 7)} "
                f"{_num(f['cached_tokens'], 7)} {_num(f['decode_tokens_per_s'], 13, 1)} "
                f"{_num(f['stream_tokens_per_s'], 13, 1)}"
            )
        print(
            f"  prefill ceiling {figures['ceiling']['prefill_tokens_per_s']:.1f} tok/s: "
            f"sentiric's uncached prompt tokens need {figures['sentiric_ttft_floor_s'] * 1000:.0f}"
            " ms at best (its TTFT floor)"
        )
        decode = figures["sentiric_decode_over_ceiling"]
        print(
            f"  ratio to ceiling: sentiric {figures['sentiric_over_ceiling']:.3f}"
            + (f" (decode phase {decode:.3f})" if decode is not None else "")
            + "".join(
                f", {other} {figures[f'{other}_over_ceiling']:.3f}"
                for other in OTHERS
                if f"{other}_over_ceiling" in figures
            )
            + f"; sentiric against the run's best ceiling "
            f"{figures['sentiric_over_best_ceiling']:.3f}, against the workload bound "
            f"(bare prefill of its uncached prompt tokens, then bare decode) "
            f"{figures['sentiric_over_workload_bound']:.3f}"
        )
        ours = figures["sentiric"]
        if ours.get("decode_share") is not None:
            print(
                f"  sentiric's scheduler: {ours['decode_share']:.0%} of each wave in llama_decode, "
                f"{ours['sampling_share']:.1%} sampling (medians)"
            )
    prefix = summary["prefix"]
    if prefix:
        print(
            f"\nprefix ({prefix['system_tokens']:.0f}-token system prompt): miss "
            f"{prefix['miss_ttft_s'] * 1000:.0f} ms, hit {prefix['hit_ttft_s'] * 1000:.0f} ms; "
            f"hit reused {prefix['hit_cached_tokens']:.0f} cached tokens "
            f"(metric +{prefix['hit_prefix_cache_tokens_metric']:.0f}), miss "
            f"{prefix['miss_cached_tokens']:.0f}"
        )
    for system, b in summary["burst"].items():
        cached = (
            f", {b['cached_tokens']:.0f} of {b['prompt_tokens']:.0f} prompt tokens cached"
            if b.get("cached_tokens") is not None
            else ""
        )
        print(
            f"burst of {b['streams']:.0f} sharing a new {b['system_tokens']:.0f}-token system "
            f"prompt, {system:12}: TTFT p50 {b['ttft_p50_s'] * 1000:6.0f} ms, p95 "
            f"{b['ttft_p95_s'] * 1000:6.0f} ms{cached}"
        )
    print("\ntargets (medians of per-round ratios):")
    for name, target in summary["targets"].items():
        verdict = {True: "met", False: "NOT met", None: "(reference)"}[target["met"]]
        print(f"  {name:48} {target['value']:7.3f}  target {target['target']:8}  {verdict}")
