"""Runs build/attn-bench for the comparison scripts (compare_torch.py, compare_ort.py,
tier_table.py): its output, and the medians of the benchmarks a filter selects.

`args` is the scripts' parsed arguments: attn_bench (the binary), threads, repetitions and
min_time; `env`, when given, is attn-bench's whole environment (e.g. with ATTN_MAX_CPU_ISA).
"""
import json
import subprocess


def attn_bench(args, *flags, env=None):
    """attn-bench's standard output for `flags`, at --threads=args.threads."""
    command = [args.attn_bench, f"--threads={args.threads}", *flags]
    return subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True,
                          env=env).stdout


def engine_medians(args, benchmark_filter, env=None):
    """{name: median benchmark} of the benchmarks the filter selects, and attn-bench's context."""
    report = json.loads(attn_bench(
        args, f"--benchmark_filter={benchmark_filter}",
        f"--benchmark_repetitions={args.repetitions}", f"--benchmark_min_time={args.min_time}",
        "--benchmark_report_aggregates_only=true", "--benchmark_format=json", env=env))
    medians = {b["run_name"].removesuffix("/real_time"): b for b in report["benchmarks"]
               if b.get("aggregate_name") == "median"}
    return medians, report["context"]
