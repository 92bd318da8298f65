#!/usr/bin/python3
"""Engine vs ONNX Runtime (CPU) attention on the same shapes and thread count, in one run.

    /usr/bin/python3 bench/compare_ort.py [--attn-bench build/attn-bench] [--threads 2]
        [--repetitions 7] [--min-time 0.2] [--filter REGEX] [--keep DIR]

Needs bench/ort/node_modules (`cd bench/ort && npm install --ignore-scripts`: the package's
install script fetches a CUDA provider, the CPU library ships in the package) and Debian's
python3-onnx (`apt-get install -y python3-onnx`).

The cases are attn-bench's attention benchmarks, attn/BxHxSqxSkxD/kvHkv/causal=C/maps=M/T,
whose names --filter (a Python regex, searched) selects; by default the f32 cases of
(4,16,1024,1024,64), (1,8,4096,4096,64), (8,12,128,128,64), (1,32,2048,2048,128) and the decode
shape (16,32,1,4096,128) with 8 KV heads, each without and with its causal mask, without and with
maps. For each case in turn ONNX Runtime and then the engine run, so both sides of a row see the
same load on a shared machine; both as medians of --repetitions, each repetition at least
--min-time seconds; the engine through `attn-bench --benchmark_format=json`.

The peer is ONNX Runtime's CPU execution provider (onnxruntime-node, bench/ort/run_ort.js:
intraOpNumThreads = --threads, interOpNumThreads 1, graph optimization 'all', outputs
preallocated), in four variants, of which each case keeps the fastest that computed the right
answer:
  fused       the ONNX Attention operator (opset 23): ORT's own attention kernel
  plain       the graph a PyTorch export gives: MatMul, Add(mask), Softmax, MatMul (ORT folds
              the scale and the transpose of K into a FusedMatMul)
  +daz        either one with the session config entry session.set_denormal_as_zero = 1
(bench/ort/make_models.py writes the models and documents them.) A wrong peer is no peer: each
variant's first call runs on inputs this script wrote (standard normal, seed 0) and its Y, and
for maps cases its probabilities, must match a float64 numpy reference within 1e-4 (max abs
error), or the variant is left out of the best.

Prints a Markdown table: shape, KV heads, causal, maps, the engine's compute type, ORT's best ms
and its variant, the four variants' ms, the best variant's max abs error, engine ms and the
engine's speed-up over ORT (ORT ms / engine ms). ORT always computes in f32; a bf16 row (only
when --filter selects one) shows the ORT time of its f32 row.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORT_DIR = os.path.join(ROOT, "bench", "ort")
sys.path.insert(0, ORT_DIR)
sys.dont_write_bytecode = True  # no __pycache__ in bench/ort
import make_models  # noqa: E402  (bench/ort/make_models.py)

from attn_bench_runs import attn_bench, engine_medians  # noqa: E402

DEFAULT_FILTER = (r"^attn/(4x16x1024x1024x64|1x8x4096x4096x64|8x12x128x128x64|"
                  r"1x32x2048x2048x128|16x32x1x4096x128)/.*/f32$")
VARIANTS = (("fused", False), ("fused", True), ("plain", False), ("plain", True))
TOLERANCE = 1e-4


def variant_name(graph, daz):
    return graph + ("+daz" if daz else "")


def write_f32(path, array):
    np.ascontiguousarray(array, dtype=np.float32).tofile(path)


def write_inputs_and_reference(c, directory):
    """Q, K, V (standard normal, seed 0) and the float64 reference Y and P, as raw f32 files
    named after the models' inputs and outputs."""
    b, h, hkv, sq, sk, d = (c[k] for k in ("B", "H", "Hkv", "Sq", "Sk", "D"))
    g = h // hkv
    rng = np.random.default_rng(0)
    q = rng.standard_normal((b, h, sq, d), dtype=np.float32)
    k = rng.standard_normal((b, hkv, sk, d), dtype=np.float32)
    v = rng.standard_normal((b, hkv, sk, d), dtype=np.float32)
    os.makedirs(directory, exist_ok=True)
    for name, x in (("Q", q), ("K", k), ("V", v)):
        write_f32(os.path.join(directory, f"{name}.bin"), x)
    blocked = make_models.blocked_mask(c)
    y = np.empty((b, h, sq, d), dtype=np.float32)
    p = np.empty((b, h, sq, sk), dtype=np.float32) if c["maps"] else None
    scale = d ** -0.5
    for bi in range(b):
        for kh in range(hkv):  # one KV head and its G query heads at a time
            heads = slice(kh * g, (kh + 1) * g)
            s = np.matmul(q[bi, heads].astype(np.float64) * scale,
                          k[bi, kh].astype(np.float64).T)  # [G, Sq, Sk]
            if blocked is not None:
                s[:, blocked] = -np.inf
            s -= s.max(axis=-1, keepdims=True)
            np.exp(s, out=s)
            s /= s.sum(axis=-1, keepdims=True)
            y[bi, heads] = np.matmul(s, v[bi, kh].astype(np.float64))
            if p is not None:
                p[bi, heads] = s
    write_f32(os.path.join(directory, "Y.bin"), y)
    if p is not None:
        write_f32(os.path.join(directory, "P.bin"), p)


def run_ort(args, model, inputs, daz):
    """run_ort.js on one model: its JSON result, or {'error': message}."""
    command = [args.node, os.path.join(ORT_DIR, "run_ort.js"), "--model", model,
               "--inputs", inputs, "--threads", str(args.threads),
               "--repetitions", str(args.repetitions), "--min-time", str(args.min_time)]
    if daz:
        command.append("--daz")
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        return {"error": lines[-1] if lines else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def ort_case(args, c, work):
    """Runs the four ORT variants of a case: {variant: result}, each result with 'ok' (right
    answer) and 'max_err' (largest max abs error over the outputs)."""
    directory = os.path.join(work, make_models.case_tag(c))
    models = make_models.write_models(c, work)
    write_inputs_and_reference(c, directory)
    expected = ["Y", "P"] if c["maps"] else ["Y"]
    results = {}
    for graph, daz in VARIANTS:
        r = run_ort(args, models[graph], directory, daz)
        if "error" not in r:
            errs = r["max_abs_err"]
            missing = [o for o in expected if o not in errs]
            worst = max(float(errs[o]) for o in expected if o in errs) if errs else float("inf")
            r["max_err"] = worst
            r["ok"] = not missing and worst <= TOLERANCE
            if not r["ok"]:
                r["error"] = (f"outputs {missing} not checked" if missing
                              else f"max abs error {worst:.2g} > {TOLERANCE:g}")
        else:
            r["ok"] = False
        results[variant_name(graph, daz)] = r
        if not r["ok"]:
            print(f"<!-- {c['name']}: ORT {variant_name(graph, daz)}: {r['error']} -->",
                  flush=True)
    if not args.keep:
        shutil.rmtree(directory, ignore_errors=True)
    return results


def ort_version(args):
    done = subprocess.run(
        [args.node, "-p", "require('onnxruntime-node').env.versions.node"], cwd=ORT_DIR,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"onnxruntime-node does not load ({done.stderr.strip().splitlines()[-1:]}): "
                 f"run `npm install --ignore-scripts` in {ORT_DIR}")
    return done.stdout.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attn-bench", default=os.path.join(ROOT, "build", "attn-bench"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repetitions", type=int, default=7)
    parser.add_argument("--min-time", type=float, default=0.2)
    parser.add_argument("--filter", default=DEFAULT_FILTER,
                        help="regex searched in the attention benchmark names (default: the f32 "
                             "cases of the five shapes above)")
    parser.add_argument("--node", default="node", help="the Node.js binary")
    parser.add_argument("--keep", metavar="DIR",
                        help="write the models, inputs and references to DIR and keep them "
                             "(default: a temporary directory, removed)")
    args = parser.parse_args()

    version = ort_version(args)
    names = attn_bench(args, "--benchmark_list_tests", "--benchmark_filter=^attn/").split()
    cases = [make_models.parse_case(n.removesuffix("/real_time")) for n in names
             if re.search(args.filter, n.removesuffix("/real_time"))]
    if not cases:
        sys.exit(f"no attn-bench case matches {args.filter!r}")
    load_start = open("/proc/loadavg").read().split()[:3]
    work = args.keep or tempfile.mkdtemp(prefix="compare_ort-")
    os.makedirs(work, exist_ok=True)
    print(f"threads={args.threads}, medians of {args.repetitions} repetitions (each >= "
          f"{args.min_time} s); ONNX Runtime {version} (onnxruntime-node, CPU EP, "
          f"intra-op threads {args.threads}, inter-op 1, graph optimization all); ORT outputs "
          f"checked against a float64 numpy reference (max abs error <= {TOLERANCE:g})")
    print()
    print("| shape (B,H,Sq,Sk,D) | KV heads | causal | maps | compute | ORT best ms (variant) "
          "| ORT fused / fused+daz / plain / plain+daz ms | ORT max abs err | engine ms "
          "| engine speed-up (ORT / engine) |")
    print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
    ort_runs = {}  # case name without the compute type -> {variant: result}
    context = None
    try:
        for c in cases:
            base = c["name"].rsplit("/", 1)[0]
            if base not in ort_runs:
                ort_runs[base] = ort_case(args, c, work)
            runs = ort_runs[base]
            good = {v: r for v, r in runs.items() if r["ok"]}
            medians, context = engine_medians(args, f"^{c['name']}/")
            engine_ms = medians[c["name"]]["real_time"]  # attn-bench reports milliseconds
            cells = " / ".join(
                (f"{r['median_ms']:.2f}" if r["ok"] else
                 ("wrong" if "median_ms" in r else "failed")) for r in runs.values())
            if good:
                best_variant = min(good, key=lambda v: good[v]["median_ms"])
                best = good[best_variant]
                ort_cell = f"{best['median_ms']:.2f} ({best_variant})"
                err_cell = f"{best['max_err']:.1e}"
                speedup = f"{best['median_ms'] / engine_ms:.2f}"
            else:
                ort_cell, err_cell, speedup = "no correct variant", "", ""
            print(f"| ({c['B']},{c['H']},{c['Sq']},{c['Sk']},{c['D']}) | {c['Hkv']} "
                  f"| {c['causal']} | {'yes' if c['maps'] else 'no'} | {c['compute']} "
                  f"| {ort_cell} | {cells} | {err_cell} | {engine_ms:.2f} | {speedup} |",
                  flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if context is not None:
        print()
        print(f"engine: attn-bench, oneDNN {context.get('onednn', '?')}, "
              f"{context.get('num_cpus', '?')} CPUs at {context.get('mhz_per_cpu', '?')} MHz")
    # Anything else running skews both sides: the load averages tell whether the machine was idle.
    print(f"load average (1, 5, 15 min): {' '.join(load_start)} at the start, "
          f"{' '.join(open('/proc/loadavg').read().split()[:3])} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
