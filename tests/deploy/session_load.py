"""Bounded decode load with KV-cache sessions for scripts/scale-test.sh (sessions mode): --sessions
sessions opened through --target (nginx, which routes them by their attn-session-id), each
prefilled with --prefill tokens then stepped --steps times, every answer checked against a
double-precision NumPy reference over the session's whole past. A session whose replica is gone
answers NOT_FOUND (a survivor does not hold it) or UNAVAILABLE: the session is created again,
prefilled again with its whole past in one step (checked too), and goes on. Prints one JSON line
of counts; exits 1 on any wrong answer or any other failure.
"""
import argparse
import json
import os
import sys
import threading

import numpy as np

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "client", "python"))

from attnserve import AttentionClient  # noqa: E402
from attnserve.errors import NotFoundError, UnavailableError  # noqa: E402

H, HKV, D = 4, 2, 32
TOLERANCE = 1e-4  # f32 compute against the double reference, values of order 1


def reference(q, keys, values):
    """Lower-right causal attention of q's n rows over every position, GQA, in double."""
    n, total = q.shape[1], keys.shape[1]
    group = H // HKV
    k = np.repeat(keys.astype(np.float64), group, axis=0)
    v = np.repeat(values.astype(np.float64), group, axis=0)
    scores = np.einsum("hnd,hkd->hnk", q.astype(np.float64), k) / np.sqrt(D)
    visible = np.arange(total)[None, :] <= (total - n + np.arange(n))[:, None]
    scores = np.where(visible[None], scores, -np.inf)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    return np.einsum("hnk,hkd->hnd", p / p.sum(-1, keepdims=True), v)


class Decoder:
    """One sequence: its past on the client (for the reference and a re-prefill), its session
    on whichever replica holds it."""

    def __init__(self, client, seed, counts, lock):
        self.client, self.counts, self.lock = client, counts, lock
        self.rng = np.random.default_rng(seed)
        self.keys = np.zeros((HKV, 0, D), np.float32)
        self.values = np.zeros((HKV, 0, D), np.float32)
        self.session = None
        self.ids = []  # every id this sequence's sessions had

    def count(self, name, by=1):
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + by

    def open(self):
        self.session = self.client.session(num_layers=1, num_heads=H, num_kv_heads=HKV,
                                           head_dim=D)
        self.ids.append(self.session.id)
        self.count("sessions_created")

    def step(self, q, k, v):
        """Sends one step; on a lost session, opens a new one and prefills the whole past with
        this step. Checks the answer."""
        while True:
            try:
                if self.session is None:
                    self.open()
                    if self.keys.shape[1]:
                        self.count("re_prefills")
                        past_q = self.rng.standard_normal((H, self.keys.shape[1], D), np.float32)
                        result = self.session.step(0, past_q, self.keys, self.values)
                        self.check(result.output, past_q, self.keys, self.values)
                result = self.session.step(0, q, k, v)
                break
            except (NotFoundError, UnavailableError) as error:
                self.count("not_found" if isinstance(error, NotFoundError) else "unavailable")
                with self.lock:
                    self.counts.setdefault("lost_ids", []).append(self.session.id
                                                                  if self.session else "")
                self.session = None
        self.keys = np.concatenate([self.keys, k], 1)
        self.values = np.concatenate([self.values, v], 1)
        self.check(result.output, q, self.keys, self.values)

    def check(self, output, q, keys, values):
        error = float(np.abs(output - reference(q, keys, values)).max())
        self.count("steps_checked")
        if not error <= TOLERANCE:
            self.count("wrong_answers")
        with self.lock:
            self.counts["worst_error"] = max(self.counts.get("worst_error", 0.0), error)

    def tokens(self, n):
        return (self.rng.standard_normal((H, n, D), np.float32),
                self.rng.standard_normal((HKV, n, D), np.float32),
                self.rng.standard_normal((HKV, n, D), np.float32))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True)
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--prefill", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=6)
    args = parser.parse_args()

    counts, lock, failures = {}, threading.Lock(), []
    decoders = []

    def run(first):
        """This thread's sessions, all open at once: each prefilled, then a decode step of
        each in turn."""
        with AttentionClient(args.target, timeout_s=30) as client:
            mine = [Decoder(client, index, counts, lock)
                    for index in range(first, args.sessions, args.threads)]
            decoders.extend(mine)
            try:
                for decoder in mine:
                    decoder.step(*decoder.tokens(args.prefill))
                for _ in range(args.steps):
                    for decoder in mine:
                        decoder.step(*decoder.tokens(1))
                for decoder in mine:
                    decoder.session.close()
            except Exception as error:  # noqa: BLE001 -- every other failure is counted
                failures.append(f"thread {first}: {type(error).__name__}: {error}")

    threads = [threading.Thread(target=run, args=(t,)) for t in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    summary = {"sessions": args.sessions, "steps_per_session": 1 + args.steps,
               "failures": len(failures), "failure_examples": failures[:3],
               "wrong_answers": counts.get("wrong_answers", 0), **counts,
               "ids": {d.ids[0]: d.ids[1:] for d in decoders}}
    print(json.dumps(summary))
    return 0 if not failures and summary["wrong_answers"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
