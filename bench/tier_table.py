#!/usr/bin/python3
"""The engine at every CPU tier this host runs, against that tier's own ceilings, in one run.

    /usr/bin/python3 bench/tier_table.py [--attn-bench build/attn-bench] [--threads 2]
        [--repetitions 5] [--min-time 0.2] [--tiers scalar,avx2,avx512,avx512_bf16,amx]

ATTN_BF16_MATMUL=native (or emulated) in the environment forces the bf16 matmuls of the bf16
tiers (by default they are measured: src/engine/bf16_matmuls.h).

For each tier (tiers past the host's are left out), attn-bench runs capped at it
(ATTN_MAX_CPU_ISA, which caps oneDNN too), so its GEMM peaks and read bandwidth, measured at its
start, are that tier's. The cases: f32 and bf16 compute without maps at (4,16,1024,1024,64),
(1,8,4096,4096,64) and (8,12,128,128,64), and decode (16,32,1,4096,128) with 8 KV heads (f32
inputs, and bf16 inputs: `bf16in/`). Prints one Markdown table: tier, shape, f32 ms and its %
of the tier's f32 GEMM peak, bf16 ms and its speed over f32 (emulated, or native and its % of
the bf16 GEMM peak), and for decode the K+V bytes read per second as % of the bandwidth.
"""
import argparse
import os
import subprocess
import sys

from attn_bench_runs import engine_medians

TIERS = ["scalar", "avx2", "avx512", "avx512_bf16", "amx"]
SHAPES = ["4x16x1024x1024x64/kv16", "1x8x4096x4096x64/kv8", "8x12x128x128x64/kv12",
          "16x32x1x4096x128/kv8"]
FILTER = ("^(attn/(" + "|".join(SHAPES) + ")/causal=none/maps=0/"
          "|bf16in/16x32x1x4096x128/kv8/causal=none/maps=0/)")


def run_tier(args, tier):
    """attn-bench's medians {name: benchmark} and context at `tier`, or None past the host."""
    env = dict(os.environ, ATTN_MAX_CPU_ISA=tier)
    ran_at = subprocess.run([args.attn_bench, "--cpu_tier"], env=env, check=True,
                            stdout=subprocess.PIPE, text=True).stdout.split(":")[1].strip()
    if ran_at != tier:
        return None
    return engine_medians(args, FILTER, env=env)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attn-bench", default="build/attn-bench")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=0.2)
    parser.add_argument("--tiers", default=",".join(TIERS))
    args = parser.parse_args()

    print("| tier | shape (B,H,Sq,Sk,D)/kv | f32 ms | f32 % of f32 peak | bf16 ms | bf16 / f32 "
          "speed | decode % of read bandwidth (f32 / bf16 inputs) |")
    print("|---|---|---|---|---|---|---|")
    contexts = []
    for tier in args.tiers.split(","):
        result = run_tier(args, tier)
        if result is None:
            print(f"| {tier} | (this host cannot run it) | | | | | |")
            continue
        medians, context = result
        contexts.append((tier, context))
        native_bf16 = context.get("bf16_matmuls") == "native"
        for shape in SHAPES:
            f32 = medians[f"attn/{shape}/causal=none/maps=0/f32"]
            bf16 = medians[f"attn/{shape}/causal=none/maps=0/bf16"]
            speed = f32["real_time"] / bf16["real_time"]
            bf16_cell = f"{speed:.2f}x " + (f"(native, {bf16['peak%']:.0f}% of bf16 peak)"
                                            if native_bf16 else "(emulated)")
            decode = ""
            if "x1x" in shape:
                bf16in = medians[f"bf16in/{shape}/causal=none/maps=0/bf16"]
                decode = f"{f32['bw%']:.0f}% / {bf16in['bw%']:.0f}%"
            print(f"| {tier} | {shape} | {f32['real_time']:.3f} | {f32['peak%']:.0f}% | "
                  f"{bf16['real_time']:.3f} | {bf16_cell} | {decode} |")
    print()
    for tier, context in contexts:
        print(f"- {tier}: oneDNN {context['onednn']}, f32 GEMM peak "
              f"{float(context['f32_gemm_peak_gflops']):.0f} GFLOP/s, bf16 GEMM peak "
              f"{float(context.get('bf16_gemm_peak_gflops', '0')):.0f} GFLOP/s (0: no bf16 matmuls), "
              f"bf16 matmuls {context['bf16_matmuls']}, "
              f"read bandwidth {float(context['read_bandwidth_gbs']):.1f} GB/s, "
              f"threads {context['threads']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
