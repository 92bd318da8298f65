#!/usr/bin/python3
"""Fails when any oneDNN primitive attn-bench runs dispatches to a `ref:` (reference) kernel.

oneDNN silently falls back to its reference kernels (hundreds of times slower) for layouts or
post-ops its optimised kernels do not take, so a benchmark number alone does not show it. This
runs attn-bench once per selected benchmark with ONEDNN_VERBOSE=1 and reads the
`onednn_verbose,exec,<engine>,<primitive>,<implementation>,...` lines:

    bench/check_kernels.py build/attn-bench [--filter=REGEX]

Exit status 0: every implementation seen is optimised (brg:, jit:, ...); 1: some `ref:` kernel
ran (each is listed) or no primitive ran at all; attn-bench's own failure is passed on.
"""
import argparse
import collections
import os
import subprocess
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("attn_bench", help="path of the attn-bench binary")
    parser.add_argument("--filter", default="^(attn|gemm)/",
                        help="Google Benchmark filter (default: every attention shape and GEMM)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    env = dict(os.environ, ONEDNN_VERBOSE="1")
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
