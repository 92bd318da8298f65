#!/usr/bin/python3
"""Fails when any oneDNN primitive attn-bench runs dispatches to a `ref:` (reference) kernel.

oneDNN silently falls back to its reference kernels (hundreds of times slower) for layouts or
post-ops its optimised kernels do not take, so a benchmark number alone does not show it. This
runs attn-bench once per selected benchmark with ONEDNN_VERBOSE=1 and reads the
`onednn_verbose,exec,<engine>,<primitive>,<implementation>,...` lines:

    bench/check_kernels.py build/attn-bench [--filter=REGEX] [--tier=avx2]

--tier runs attn-bench capped at that CPU tier (ATTN_MAX_CPU_ISA, which caps oneDNN too); at
the bf16 tiers (avx512_bf16, amx) with native bf16 matmuls (ATTN_BF16_MATMUL=native), which
the uncapped run may not use (src/engine/bf16_matmuls.h).

Exit status 0: every implementation seen is optimised (brg:, jit:, ...); 1: some `ref:` kernel
ran (each is listed) or no primitive ran at all; 77 (a skip): --tier is one this host cannot
run, or its own below the bf16 tiers (the uncapped run checks it); attn-bench's own failure is
passed on.
"""
import argparse
import collections
import os
import subprocess
import sys


SKIP = 77


def tier_of(attn_bench, env):
    """The CPU tier attn-bench runs at in `env` (`attn-bench --cpu_tier`)."""
    run = subprocess.run([attn_bench, "--cpu_tier"], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, check=True)
    for line in run.stdout.splitlines():
        if line.startswith("cpu_tier:"):
            return line.split(":", 1)[1].strip()
    raise RuntimeError("attn-bench printed no cpu_tier")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("attn_bench", help="path of the attn-bench binary")
    parser.add_argument("--filter", default="^(attn|gemm)/",
                        help="Google Benchmark filter (default: every attention shape and GEMM)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tier", help="CPU tier to cap attn-bench at (scalar ... amx)")
    args = parser.parse_args()

    env = dict(os.environ, ONEDNN_VERBOSE="1")
    if args.tier:
        env["ATTN_MAX_CPU_ISA"] = args.tier
        bf16_tier = args.tier in ("avx512_bf16", "amx")
        if bf16_tier:
            env["ATTN_BF16_MATMUL"] = "native"
        host = tier_of(args.attn_bench, dict(os.environ, ATTN_MAX_CPU_ISA=""))
        capped = tier_of(args.attn_bench, env)
        if capped != args.tier or (host == args.tier and not bf16_tier):
            print(f"skipped: CPU tier {args.tier} " +
                  ("is this host's own" if host == args.tier else f"is past this host's ({host})"))
            return SKIP
    run = subprocess.run(
        [args.attn_bench, f"--threads={args.threads}", f"--benchmark_filter={args.filter}",
         "--benchmark_min_time=0.001"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if run.returncode != 0:
        sys.stdout.write(run.stdout)
        print(f"attn-bench exited with {run.returncode}", file=sys.stderr)
        return run.returncode

    # (primitive, implementation) -> executions
    kernels = collections.Counter()
    for line in run.stdout.splitlines():
        fields = line.split(",")
        if len(fields) > 4 and fields[0] == "onednn_verbose" and fields[1] == "exec":
            kernels[(fields[3], fields[4])] += 1
    for (primitive, impl), count in sorted(kernels.items()):
        print(f"{primitive:10} {impl:28} {count:8} executions")
    reference = [k for k in kernels if k[1].startswith("ref")]
    if not kernels:
        print("no oneDNN primitive ran (is the filter right?)", file=sys.stderr)
        return 1
    if reference:
        print("reference kernels ran: " + ", ".join(f"{p} {i}" for p, i in reference),
              file=sys.stderr)
        return 1
    print("ok: no ref: kernels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
