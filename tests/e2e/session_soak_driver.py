"""Session soak driver (run by scripts/session_soak.sh): KV-cache sessions churned on a real
attnserve on loopback for SECONDS.

Starts build/attnserve with a small --kv_cache_bytes (so that sessions are evicted under
memory pressure) and an HTTP metrics port, then from several threads, each with its own
sessions: opens a session (f32 or bf16 pages, GQA or not), prefills 20-300 tokens, decodes a
few steps (alone, or a batch of a step each of its open sessions), forks it at a random
position and steps the fork, truncates, and closes both -- leaving some open to be evicted.
Checks, and exits 1 if one fails:
  - every call ends OK, or NOT_FOUND saying "was evicted under memory pressure" (the thread
    then forgets that session), or RESOURCE_EXHAUSTED from the pool; every OK step answers at
    the position the thread expects, and every fifth is checked against a NumPy float64
    reference over the keys and values the thread sent (bf16 pages: rounded first) within
    1e-4;
  - at the end, once the threads have closed what they hold: no session open, and every page
    back in the pool (attnserve_kv_pool_used_bytes and attnserve_kv_pool_pages 0), the open fd
    count not grown, and the server exits 0 on SIGTERM.
Prints steps, forks, evictions and the pool figures.
"""
import argparse
import collections
import os
import random
import re
import sys
import threading
import time
import urllib.request

import grpc
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attnserve_process import BUILD_DIR, AttnServe  # noqa: E402

sys.path.insert(0, os.path.join(BUILD_DIR, "python"))
from attention.v1 import attention_pb2 as pb  # noqa: E402
from attention.v1 import attention_pb2_grpc as rpc  # noqa: E402

C = grpc.StatusCode
CONFIGS = [  # (heads, kv_heads, head_dim, kv_dtype)
    (8, 2, 32, pb.DATA_TYPE_FLOAT32),
    (4, 4, 16, pb.DATA_TYPE_BFLOAT16),
]
TOLERANCE = 1e-4


def to_tensor(array):
    array = np.ascontiguousarray(array, dtype="<f4")
    return pb.Tensor(shape=array.shape, dtype=pb.DATA_TYPE_FLOAT32, data=array.tobytes())


def bf16(x):
    bits = np.ascontiguousarray(x, np.float32).view(np.uint32)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return rounded.astype(np.uint32).view(np.float32)


def reference(q, k, v):
    """Lower-right causal attention of q [H,n,D] over k, v [Hkv,T,D] in float64."""
    heads, n, dim = q.shape
    group = heads // k.shape[0]
    t = k.shape[1]
    out = np.empty((heads, n, v.shape[2]))
    for h in range(heads):
        s = q[h].astype(np.float64) @ k[h // group].T.astype(np.float64) / np.sqrt(dim)
        s[np.arange(t)[None, :] > (np.arange(n)[:, None] + t - n)] = -np.inf
        p = np.exp(s - s.max(1, keepdims=True))
        out[h] = (p / p.sum(1, keepdims=True)) @ v[h // group].astype(np.float64)
    return out


class Tracked:
    """A session this thread opened, with what it sent (as the pages hold it)."""

    def __init__(self, info, config):
        self.id = info.session_id
        self.config = config
        heads, kv_heads, dim, _ = config
        self.keys = np.zeros((kv_heads, 0, dim), np.float32)
        self.values = np.zeros((kv_heads, 0, dim), np.float32)


class Soak:
    def __init__(self, stub, seconds, seed):
        self.stub = stub
        self.deadline = time.monotonic() + seconds
        self.rng = random.Random(seed)
        self.counts = collections.Counter()
        self.failures = []
        self.open = []

    def fail(self, message):
        self.failures.append(message)

    def call(self, method, request):
        try:
            return getattr(self.stub, method)(request, timeout=30), None
        except grpc.RpcError as error:
            return None, error

    def forget_if_evicted(self, error, session):
        if error.code() == C.NOT_FOUND and "was evicted under memory pressure" in error.details():
            self.counts["evicted"] += 1
            if session in self.open:
                self.open.remove(session)
            return True
        if error.code() == C.RESOURCE_EXHAUSTED and "KV cache pool" in error.details():
            self.counts["pool_full"] += 1
            return True
        self.fail(f"{error.code().name}: {error.details()}")
        return False

    def make_step(self, s, n):
        heads, kv_heads, dim, dtype = s.config
        q = np.random.standard_normal((heads, n, dim)).astype(np.float32)
        k = np.random.standard_normal((kv_heads, n, dim)).astype(np.float32)
        v = np.random.standard_normal((kv_heads, n, dim)).astype(np.float32)
        request = pb.SessionAttendRequest(session_id=s.id, layer=0, query=to_tensor(q),
                                          key=to_tensor(k), value=to_tensor(v))
        if dtype == pb.DATA_TYPE_BFLOAT16:
            k, v = bf16(k), bf16(v)
        return request, (q, k, v)

    def check(self, s, sent, response):
        q, k, v = sent
        expected_position = s.keys.shape[1]
        s.keys = np.concatenate([s.keys, k], 1)
        s.values = np.concatenate([s.values, v], 1)
        if response.position != expected_position:
            self.fail(f"position {response.position}, expected {expected_position}")
        self.counts["steps"] += 1
        if self.counts["steps"] % 5 == 0:
            got = np.frombuffer(response.output.data, "<f4").reshape(q.shape[0], q.shape[1], -1)
            error = np.abs(got - reference(q, s.keys, s.values)).max()
            self.counts["checked"] += 1
            if not error <= TOLERANCE:
                self.fail(f"step at {expected_position} off by {error}")

    def step(self, s, n):
        request, sent = self.make_step(s, n)
        response, error = self.call("SessionAttend", request)
        if error is not None:
            return self.forget_if_evicted(error, s) and False
        self.check(s, sent, response)
        return True

    def create(self):
        config = self.rng.choice(CONFIGS)
        heads, kv_heads, dim, dtype = config
        info, error = self.call("CreateSession", pb.CreateSessionRequest(
            num_layers=1, num_heads=heads, num_kv_heads=kv_heads, head_dim=dim,
            kv_dtype=dtype))
        if error is not None:
            self.fail(f"CreateSession: {error.code().name}: {error.details()}")
            return None
        s = Tracked(info, config)
        self.open.append(s)
        self.counts["sessions"] += 1
        return s

    def close(self, s):
        _, error = self.call("CloseSession", pb.CloseSessionRequest(session_id=s.id))
        if error is not None:
            self.forget_if_evicted(error, s)
        elif s in self.open:
            self.open.remove(s)

    def batch(self):
        members = self.open[:4]
        if not members:
            return
        made = [self.make_step(s, 1) for s in members]
        response, error = self.call("SessionAttendBatch", pb.SessionAttendBatchRequest(
            steps=[request for request, _ in made]))
        if error is not None:
            if error.code() == C.NOT_FOUND:
                evicted = re.search(r"steps\[(\d+)\]", error.details())
                if evicted and "evicted" in error.details():
                    self.counts["evicted"] += 1
                    self.open.remove(members[int(evicted.group(1))])
                    return
            self.forget_if_evicted(error, None)
            return
        self.counts["batches"] += 1
        for s, (_, sent), result in zip(members, made, response.results):
            self.check(s, sent, result)

    def run(self):
        while time.monotonic() < self.deadline:
            s = self.create()
            if s is None or not self.step(s, self.rng.randint(20, 300)):
                continue
            for _ in range(self.rng.randint(1, 6)):
                if not self.step(s, 1):
                    break
            else:
                self.batch()
                if s not in self.open:
                    continue
                tokens = self.rng.randint(0, s.keys.shape[1])
                fork_info, error = self.call("ForkSession", pb.ForkSessionRequest(
                    session_id=s.id, tokens=tokens))
                if error is not None:
                    self.forget_if_evicted(error, s)
                    continue
                fork = Tracked(fork_info, s.config)
                fork.keys, fork.values = s.keys[:, :tokens], s.values[:, :tokens]
                self.open.append(fork)
                self.counts["forks"] += 1
                self.step(fork, self.rng.randint(1, 3))
                if s in self.open:
                    cut = self.rng.randint(0, s.keys.shape[1])
                    info, error = self.call("TruncateSession", pb.TruncateSessionRequest(
                        session_id=s.id, tokens=cut))
                    if error is None:
                        s.keys, s.values = s.keys[:, :cut], s.values[:, :cut]
                        self.counts["truncations"] += 1
                        self.step(s, 1)
                    else:
                        self.forget_if_evicted(error, s)
                if self.rng.random() < 0.7 and fork in self.open:
                    self.close(fork)
            if self.rng.random() < 0.6 and s in self.open:
                self.close(s)
            while len(self.open) > 10:  # the rest stay open, for eviction to take
                self.close(self.open[0])
        for s in list(self.open):
            self.close(s)


def metric(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    with AttnServe("--workers=2", "--intra_op_threads=1", "--kv_page_tokens=64",
                   f"--kv_cache_bytes={1 << 20}", "--log_level=warn") as server:
        channel = grpc.insecure_channel(server.address)
        stub = rpc.AttentionServiceStub(channel)
        fds_before = len(os.listdir(f"/proc/{server.process.pid}/fd"))
        soaks = [Soak(stub, args.seconds, seed) for seed in range(args.threads)]
        threads = [threading.Thread(target=s.run) for s in soaks]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=args.seconds + 120)
        counts = sum((s.counts for s in soaks), collections.Counter())
        failures = [f for s in soaks for f in s.failures]
        sessions = metric(server.http_port, "attnserve_kv_sessions")
        used = metric(server.http_port, "attnserve_kv_pool_used_bytes")
        pages = metric(server.http_port, "attnserve_kv_pool_pages")
        fds_after = len(os.listdir(f"/proc/{server.process.pid}/fd"))
        channel.close()
        exit_code = server.stop()
    print(f"sessions {counts['sessions']}, steps {counts['steps']} "
          f"({counts['checked']} checked), batches {counts['batches']}, forks {counts['forks']}, "
          f"truncations {counts['truncations']}, evicted {counts['evicted']}, "
          f"pool full {counts['pool_full']}")
    print(f"at the end: {sessions:.0f} sessions open, pool {used:.0f} bytes in "
          f"{pages:.0f} pages; fds {fds_before} -> {fds_after}; exit code {exit_code}")
    if any(t.is_alive() for t in threads):
        failures.append("a soak thread did not finish")
    if counts["steps"] < 100 or counts["forks"] < 5:
        failures.append("too little traffic to mean anything")
    if sessions != 0 or used != 0 or pages != 0:
        failures.append("sessions or pages left at the end")
    if fds_after > fds_before + 4:
        failures.append("open fds grew")
    if exit_code != 0:
        failures.append(f"attnserve exited {exit_code}")
    for failure in failures[:20]:
        print("FAIL:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
