#!/usr/bin/python3
"""The decode benchmark of KV-cache sessions (docs/performance.md, docs/sessions.md).

Runs build/session-bench in process (--mode=engine) and through a real build/attnserve on a free
loopback port (--mode=server; the server with its defaults, --kv_page_tokens as given), and
build/engine-load for the in-process stateless step of the issue's baseline, then prints one
Markdown table: per case (KV dtype, sessions B, context S) the steps/s and median step ms in
process and through the server, the bytes on the wire per step (session, and stateless Attend
resending K and V where that fits the 64 MiB message limit), and the K+V read rate in process
as % of the read bandwidth measured in the same run.

  bench/decode_bench.py [--sessions 1,8,64] [--contexts 1024,4096,16384,32768]
                        [--kv_dtypes float32,bfloat16] [--seconds 2] [--page_tokens 128]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.environ.get("BUILD_DIR", os.path.join(ROOT, "build"))


def run_bench(*flags):
    result = subprocess.run([os.path.join(BUILD, "session-bench"), *flags], capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise RuntimeError(f"session-bench {' '.join(flags)} failed: {result.stderr}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def start_server(page_tokens, directory):
    port_file = os.path.join(directory, "port")
    log = open(os.path.join(directory, "server.log"), "wb")
    server = subprocess.Popen([os.path.join(BUILD, "attnserve"), "--address=127.0.0.1:0",
                               f"--port_file={port_file}", "--metrics_address=",
                               f"--kv_page_tokens={page_tokens}", "--log_level=warn"],
                              stdout=log, stderr=subprocess.STDOUT)
    for _ in range(300):
        if os.path.exists(port_file):
            with open(port_file) as f:
                return server, f"127.0.0.1:{int(f.read())}"
        time.sleep(0.1)
    server.kill()
    raise RuntimeError("attnserve did not start")


def engine_load_ms(seconds):
    """The stateless in-process step of the baseline: (1,32,1,4096,128), 8 KV heads, f32."""
    result = subprocess.run(
        [os.path.join(BUILD, "engine-load"), "--shape=1,32,1,4096,128", "--kv_heads=8",
         "--maps=none", "--causal=lower_right", "--concurrency=1", f"--duration={seconds}s",
         "--warmup=1s", "--json"], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)["mean_ms"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", default="1,8,64")
    parser.add_argument("--contexts", default="1024,4096,16384,32768")
    parser.add_argument("--kv_dtypes", default="float32,bfloat16")
    parser.add_argument("--seconds", default="2")
    parser.add_argument("--page_tokens", default="128")
    parser.add_argument("--json_out", help="also write every raw result here (JSON lines)")
    args = parser.parse_args()
    common = [f"--sessions={args.sessions}", f"--contexts={args.contexts}",
              f"--kv_dtypes={args.kv_dtypes}", f"--seconds={args.seconds}"]
    engine = run_bench("--mode=engine", f"--page_tokens={args.page_tokens}", *common)
    with tempfile.TemporaryDirectory() as directory:
        server, address = start_server(args.page_tokens, directory)
        try:
            served = run_bench("--mode=server", f"--address={address}", *common)
        finally:
            server.terminate()
            server.wait(timeout=30)
    baseline_ms = engine_load_ms(args.seconds)
    if args.json_out:
        with open(args.json_out, "w") as f:
            for result in engine + served + [{"engine_load_ms": baseline_ms}]:
                f.write(json.dumps(result) + "\n")
    by_case = {(e["kv_dtype"], e["sessions"], e["context"]): e for e in engine}
    read_gbs = next((e["read_gbs"] for e in engine if "read_gbs" in e), 0)
    print(f"One decode step of one layer, (H, Hkv, D) = (32, 8, 128), pages of "
          f"{args.page_tokens} positions; read bandwidth {read_gbs:.1f} GB/s (1 GiB array); "
          f"engine-load (stateless, in process) (1,32,1,4096,128)/8 f32: {baseline_ms:.2f} ms\n")
    print("| KV | B | S | in process steps/s (ms) | K+V read, % of bandwidth | through the server "
          "steps/s (ms) | wire bytes/step | stateless Attend steps/s (ms), wire bytes/step |")
    print("|---|---|---|---|---|---|---|---|")
    for s in served:
        key = (s["kv_dtype"], s["sessions"], s["context"])
        e = by_case.get(key, {})
        kv = "f32" if s["kv_dtype"] == "float32" else "bf16"
        local = (f"{e['steps_per_s']:.0f} ({e['step_ms']:.2f})" if "steps_per_s" in e
                 else "(over the memory cap)")
        bw = f"{e['kv_gbs']:.1f} GB/s, {e['bw_pct']:.0f}%" if "kv_gbs" in e else "-"
        stateless = (f"{s['stateless_steps_per_s']:.0f} ({s['stateless_ms']:.2f}), "
                     f"{s['stateless_wire_bytes_per_step'] / 2**20:.1f} MiB"
                     if "stateless_steps_per_s" in s else
                     ("over the message limit" if s["sessions"] == 1 else "-"))
        print(f"| {kv} | {s['sessions']} | {s['context']} | {local} | {bw} | "
              f"{s['steps_per_s']:.0f} ({s['step_ms']:.2f}) | {s['wire_bytes_per_step']:.0f} | "
              f"{stateless} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
