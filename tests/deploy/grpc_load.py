"""Bounded gRPC load for scripts/scale-test.sh: --requests small Attend calls from --threads
threads over one channel, with a retry policy for UNAVAILABLE in the channel's service config
(and round_robin over a list of addresses with --round-robin). Prints one JSON summary line;
exits 1 if any call failed or returned a wrong shape.
"""
import argparse
import collections
import json
import os
import random
import sys
import threading
import time

BUILD_DIR = os.environ.get("ATTN_BUILD_DIR",
                           os.path.join(os.path.dirname(__file__), "..", "..", "build"))
sys.path.insert(0, os.path.join(BUILD_DIR, "python"))

import grpc  # noqa: E402  (Debian's python3-grpcio)
from attention.v1 import attention_pb2 as pb  # noqa: E402
from attention.v1 import attention_pb2_grpc as rpc  # noqa: E402

SERVICE = "attention.v1.AttentionService"
B, H, S, D = 1, 2, 16, 16


def service_config(round_robin):
    config = {"methodConfig": [{
        "name": [{"service": SERVICE}],
        "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.05s", "maxBackoff": "1s",
                        "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]},
    }]}
    if round_robin:
        config["loadBalancingConfig"] = [{"round_robin": {}}]
    return json.dumps(config)


def request(seed):
    rng = random.Random(seed)

    def tensor():
        return pb.Tensor(shape=[B, H, S, D], values=[rng.gauss(0, 1) for _ in range(B * H * S * D)])
    return pb.AttendRequest(query=tensor(), key=tensor(), value=tensor(),
                            attention_maps=pb.ATTENTION_MAPS_NONE)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True,
                        help="host:port, or ipv4:127.0.0.1:p1,127.0.0.1:p2,... with --round-robin")
    parser.add_argument("--round-robin", action="store_true")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=6)
    parser.add_argument("--timeout-s", type=float, default=30)
    args = parser.parse_args()

    channel = grpc.insecure_channel(args.target, options=[
        ("grpc.service_config", service_config(args.round_robin)), ("grpc.enable_retries", 1)])
    stub = rpc.AttentionServiceStub(channel)
    requests = [request(seed) for seed in range(8)]
    lock = threading.Lock()
    next_index = 0
    errors = collections.Counter()
    ok = 0

    def worker():
        nonlocal next_index, ok
        while True:
            with lock:
                if next_index >= args.requests:
                    return
                index = next_index
                next_index += 1
            try:
                reply = stub.Attend(requests[index % len(requests)], timeout=args.timeout_s)
                good = list(reply.output.shape) == [B, H, S, D] and len(reply.output.values) == B * H * S * D
                outcome = None if good else "WRONG_OUTPUT"
            except grpc.RpcError as error:
                outcome = f"{error.code().name}: {error.details()}"
            with lock:
                if outcome is None:
                    ok += 1
                else:
                    errors[outcome] += 1

    start = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - start
    channel.close()
    print(json.dumps({"requests": args.requests, "ok": ok, "errors": sum(errors.values()),
                      "error_kinds": dict(errors), "seconds": round(seconds, 2),
                      "calls_per_s": round(args.requests / seconds, 1)}))
    return 0 if ok == args.requests else 1


if __name__ == "__main__":
    sys.exit(main())
