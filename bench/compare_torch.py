#!/usr/bin/python3
"""Engine vs PyTorch eager attention on the same shapes and thread count, in one run.

    /usr/bin/python3 bench/compare_torch.py [--attn-bench build/attn-bench] [--threads 2]
        [--repetitions 7] [--min-time 0.2] [--filter REGEX]

The cases are attn-bench's attention benchmarks (--filter narrows them). For each case in turn,
PyTorch and then the engine run, so both sides of a row see the same load on a shared machine;
the engine through `attn-bench --benchmark_format=json`, both as medians of --repetitions, each
repetition at least --min-time seconds. attn-bench's gemm/f32/2048, gemm/bf16/2048 and memory/read,
run first, give the peaks and the bandwidth the percentages refer to.

PyTorch 1.13 has no fused scaled_dot_product_attention, so the peer is the eager math (matmul,
masked_fill, softmax, matmul), written as well as eager allows: the scale on Q, the G query heads
of a KV head stacked so K and V are never copied, the mask filled in place.

An honest peer: Debian's torch calls whatever libblas.so.3 is selected, the slow reference BLAS
unless libopenblas0-pthread is installed, so the script prints the BLAS library the torch process
mapped. Torch runs in two worker processes without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (set on
these machines, they slow OpenBLAS down), one with OPENBLAS_NUM_THREADS=1 and one with 2, both
with torch.set_num_threads(--threads); each case keeps torch's faster median.

Prints a Markdown table: shape, causal, maps, the engine's compute type, torch ms (always f32),
engine ms, ratio (torch / engine), for bf16 rows the speedup over the same case in f32, engine
GFLOP/s and its % of the GEMM peak of its compute type, and for decode (Sq = 1) the K+V bytes read
per second and their % of the read bandwidth. Torch (f32 only) runs once per case; a bf16 row
shows the torch time of its f32 row.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

from attn_bench_runs import attn_bench, engine_medians

NAME = re.compile(
    r"^attn/(\d+)x(\d+)x(\d+)x(\d+)x(\d+)/kv(\d+)/causal=(\w+)/maps=([01])/(f32|bf16)$")


def parse_case(name):
    """attn/BxHxSqxSkxD/kvHkv/causal=C/maps=M/T -> dict."""
    m = NAME.match(name)
    b, h, sq, sk, d, hkv = (int(x) for x in m.groups()[:6])
    return {"name": name, "B": b, "H": h, "Sq": sq, "Sk": sk, "D": d, "Hkv": hkv,
            "causal": m.group(7), "maps": m.group(8) == "1", "compute": m.group(9)}


def torch_worker(threads, repetitions, min_time):
    """In a worker process: prints the BLAS libraries mapped, then answers each case (a JSON line
    on stdin) with the median ms of torch's eager attention (a line on stdout)."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    with open("/proc/self/maps") as maps:
        blas = sorted({os.path.realpath(line.split()[-1]) for line in maps
                       if "blas" in os.path.basename(line.split()[-1])})
    print(json.dumps({"blas": blas, "torch": torch.__version__}), flush=True)
    with torch.inference_mode():
        for line in sys.stdin:
            print(json.dumps(time_case(torch, json.loads(line), repetitions, min_time)),
                  flush=True)


def time_case(torch, case, repetitions, min_time):
    """Median over `repetitions` of the mean ms per call, each repetition >= min_time seconds."""
    b, h, hkv, sq, sk, d = (case[k] for k in ("B", "H", "Hkv", "Sq", "Sk", "D"))
    g = h // hkv
    q = torch.randn(b, h, sq, d)
    k = torch.randn(b, hkv, sk, d)
    v = torch.randn(b, hkv, sk, d)
    scale = d ** -0.5
    # True = blocked: key j is hidden from query i when j > i + offset.
    offset = {"none": None, "upper_left": 0, "lower_right": sk - sq}[case["causal"]]
    blocked = None if offset is None else torch.ones(sq, sk, dtype=torch.bool).triu(offset + 1)

    def attention():
        # P = softmax(scale * Q K^T, masked), O = P V: the G heads of each KV head as one matrix.
        s = torch.matmul((q * scale).view(b, hkv, g * sq, d), k.transpose(-2, -1))
        s = s.view(b, h, sq, sk)
        if blocked is not None:
            s.masked_fill_(blocked, float("-inf"))
        p = torch.softmax(s, dim=-1)
        o = torch.matmul(p.view(b, hkv, g * sq, sk), v).view(b, h, sq, d)
        return o, p  # the maps variant keeps p; eager computes it either way

    attention()
    start = time.perf_counter()
    attention()
    calls = max(1, int(min_time / max(time.perf_counter() - start, 1e-6)))
    samples = []
    for _ in range(repetitions):
        start = time.perf_counter()
        for _ in range(calls):
            attention()
        samples.append((time.perf_counter() - start) * 1e3 / calls)
    return sorted(samples)[len(samples) // 2]


class TorchWorker:
    """A worker process with OPENBLAS_NUM_THREADS=blas_threads and no OpenBLAS core overrides."""

    def __init__(self, args, blas_threads):
        env = {k: v for k, v in os.environ.items()
               if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
        env["OPENBLAS_NUM_THREADS"] = str(blas_threads)
        self.blas_threads = blas_threads
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--torch-worker", str(args.threads),
             str(args.repetitions), str(args.min_time)],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = json.loads(self.process.stdout.readline())

    def median_ms(self, case):
        self.process.stdin.write(json.dumps(case) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self):
        self.process.stdin.close()
        self.process.wait()


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--torch-worker":
        torch_worker(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
        return 0
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attn-bench", default=os.path.join(root, "build", "attn-bench"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repetitions", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=0.2)
    parser.add_argument("--filter", default=".",
                        help="regex on the attention benchmark names (default: all)")
    args = parser.parse_args()

    names = attn_bench(args, "--benchmark_list_tests",
                       f"--benchmark_filter=^attn/.*({args.filter})").split()
    cases = [parse_case(n.removesuffix("/real_time")) for n in names]
    ceilings, context = engine_medians(args, "^(gemm|memory)/")
    peak = ceilings["gemm/f32/2048"]["GFLOP/s"]
    peaks = {"f32": peak, "bf16": ceilings["gemm/bf16/2048"]["GFLOP/s"]}
    bandwidth = ceilings["memory/read"]["GB/s"]
    workers = [TorchWorker(args, n) for n in (1, 2)]
    print(f"threads={args.threads}, medians of {args.repetitions} repetitions; "
          f"oneDNN {context['onednn']}; torch {workers[0].info['torch']}, "
          f"BLAS {', '.join(workers[0].info['blas']) or '(none mapped)'}, "
          "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for torch")
    print(f"oneDNN 2048^3 matmul: f32 {peak:.0f} GFLOP/s (the f32 peak below), bf16 "
          f"{peaks['bf16']:.0f} GFLOP/s (the bf16 peak); memory: read {bandwidth:.1f} "
          f"GB/s (the bandwidth below), triad {ceilings['memory/triad']['GB/s']:.1f} GB/s")
    print()
    print("| shape (B,H,Sq,Sk,D) | KV heads | causal | maps | compute | torch ms (BLAS threads) "
          "| engine ms | torch / engine | bf16 / f32 speedup | engine GFLOP/s | % of peak "
          "| K+V GB/s (% of read bw) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    f32_engine_ms = {}  # case name without the compute type -> the f32 engine's ms
    torch_runs = {}  # case name without the compute type -> (torch ms, BLAS threads)
    for c in cases:
        base = c["name"].rsplit("/", 1)[0]
        if base not in torch_runs:
            torch_runs[base] = min((w.median_ms(c), w.blas_threads) for w in workers)
        torch_ms, blas_threads = torch_runs[base]
        e = engine_medians(args, f"^{c['name']}/")[0][c["name"]]
        engine_ms = e["real_time"]  # attn-bench reports milliseconds
        speedup = ""
        if c["compute"] == "f32":
            f32_engine_ms[base] = engine_ms
        elif base in f32_engine_ms:
            speedup = f"{f32_engine_ms[base] / engine_ms:.2f}"
        kv = ""
        if "KV_GB/s" in e:
            kv = f"{e['KV_GB/s']:.1f} ({100 * e['KV_GB/s'] / bandwidth:.0f}%)"
        print(f"| ({c['B']},{c['H']},{c['Sq']},{c['Sk']},{c['D']}) | {c['Hkv']} | {c['causal']} "
              f"| {'yes' if c['maps'] else 'no'} | {c['compute']} | {torch_ms:.2f} ({blas_threads}) "
              f"| {engine_ms:.2f} | {torch_ms / engine_ms:.2f} | {speedup} | {e['GFLOP/s']:.1f} "
              f"| {100 * e['GFLOP/s'] / peaks[c['compute']]:.0f} | {kv} |", flush=True)
    for w in workers:
        w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
