"""End-to-end: KV-cache sessions on the real attnserve, from Python.

- docs/sessions.md's example runs as written (its address pointed at this test's server):
  prefill 1,000 tokens and decode 100, each step checked against stateless Attend (max
  difference printed and checked <= 1e-5);
- the Python client's sessions: fork, truncate, a batch of steps, maps and a sliding window,
  each against client.attend over the same keys and values; batches of sessions on one route
  (route_with) and on several; two decoder layers from embeddings (Session.layer_step) against
  multi_head_attend over the whole prefix;
- an idle session expires (--kv_idle_timeout_s) and says so; the pool and sessions show in
  /metrics and are back to zero once closed;
- bad --kv_* flags stop the server with exit code 2 and a message.
"""
import os
import re
import subprocess
import sys
import time
import unittest
import urllib.request

import numpy as np

from attnserve_process import SERVER, AttnServe

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "client", "python"))
from attnserve import AddNorm, AttentionClient, NotFoundError, Weights  # noqa: E402


def metric(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return float(re.search(rf"^{re.escape(name)} (\S+)$", reply.read().decode(),
                               re.M).group(1))


class SessionsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = AttnServe("--kv_page_tokens=64")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.server.__exit__(None, None, None)

    def test_docs_example_runs(self):
        with open(os.path.join(ROOT, "docs", "sessions.md")) as f:
            (code,) = re.findall(r"```python\n(.*?)```", f.read(), re.S)
        self.assertIn('"127.0.0.1:50051"', code)
        code = code.replace('"127.0.0.1:50051"', f'"{self.server.address}"')
        result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                                text=True, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)
        match = re.search(r"(\d+) tokens cached, (\d+) bytes per decode step sent; "
                          r"worst difference ([0-9.e+-]+)", result.stdout)
        self.assertIsNotNone(match, result.stdout)
        self.assertEqual(int(match.group(1)), 1100)
        self.assertLess(int(match.group(2)), 8 * 64 * 4 + 2 * 2 * 64 * 4 + 200)
        self.assertLessEqual(float(match.group(3)), 1e-5)

    def test_client_fork_truncate_batch_window(self):
        rng = np.random.default_rng(5)
        heads, kv_heads, dim = 4, 2, 32

        def tokens(n):
            return (rng.standard_normal((heads, n, dim), np.float32),
                    rng.standard_normal((kv_heads, n, dim), np.float32),
                    rng.standard_normal((kv_heads, n, dim), np.float32))

        def stateless(client, q, keys, values, **options):
            return client.attend(q[None], keys[None], values[None], causal="lower_right",
                                 **options)

        with AttentionClient(self.server.address) as client:
            with client.session(1, heads, dim, num_kv_heads=kv_heads) as a:
                q, k, v = tokens(150)
                step = a.step(0, q, k, v, maps="probabilities")
                keys, values = k, v
                want = stateless(client, q, keys, values)
                np.testing.assert_allclose(step.output, want.output[0], atol=1e-5)
                np.testing.assert_allclose(step.attention, want.attention[0], atol=1e-5)
                with a.fork(100) as b:
                    self.assertEqual(list(b.info.layer_tokens), [100])
                    q, k, v = tokens(1)
                    step = b.step(0, q, k, v)
                    want = stateless(client, q, np.concatenate([keys[:, :100], k], 1),
                                     np.concatenate([values[:, :100], v], 1), maps=None)
                    np.testing.assert_allclose(step.output, want.output[0], atol=1e-5)
                    self.assertEqual(step.position, 100)
                    # a batch: one step of each
                    qa, ka, va = tokens(1)
                    qb, kb, vb = tokens(1)
                    results = client.step_batch([(a, 0, qa, ka, va), (b, 0, qb, kb, vb)])
                    keys = np.concatenate([keys, ka], 1)
                    values = np.concatenate([values, va], 1)
                    want = stateless(client, qa, keys, values, maps=None)
                    np.testing.assert_allclose(results[0].output, want.output[0], atol=1e-5)
                    self.assertEqual([r.position for r in results], [150, 101])
                    self.assertEqual(len(client.sessions()), 2)
                a.truncate(120)
                keys, values = keys[:, :120], values[:, :120]
                # a sliding window of 50: each row sees its last 50 positions
                q, k, v = tokens(3)
                step = a.step(0, q, k, v, window_tokens=50, maps="probabilities")
                keys = np.concatenate([keys, k], 1)
                values = np.concatenate([values, v], 1)
                t = keys.shape[1]
                bias = np.zeros((3, t), np.float32)
                for i in range(3):
                    bias[i, : t - 3 + i - 50 + 1] = -np.inf
                want = stateless(client, q, keys, values, bias=bias[None, None])
                np.testing.assert_allclose(step.output, want.output[0], atol=1e-5)
                held = step.attention.shape[2]
                self.assertEqual(step.first_position, t - held)
                np.testing.assert_allclose(step.attention, want.attention[0][:, :, t - held:],
                                           atol=1e-5)
            self.assertEqual(client.sessions(), [])

    def test_batches_of_sessions_routed_together_or_not(self):
        """route_with puts a session on another's route (a batch group behind a load balancer);
        a batch of sessions with one route carries it in attn-session-id, one of several routes
        none. Both equal stateless Attend."""
        rng = np.random.default_rng(7)
        with AttentionClient(self.server.address) as client:
            first = client.session(1, 4, 16, num_kv_heads=2)
            grouped = client.session(1, 4, 16, num_kv_heads=2, route_with=first)
            alone = client.session(1, 4, 16, num_kv_heads=2)
            self.assertTrue(grouped.id.startswith(first.id + "-"))
            past = {}
            for group in ([first, grouped], [first, grouped, alone]):
                steps = []
                for session in group:
                    q = rng.standard_normal((4, 1, 16), np.float32)
                    k, v = (rng.standard_normal((2, 1, 16), np.float32) for _ in range(2))
                    steps.append((session, 0, q, k, v))
                for (session, _, q, k, v), result in zip(steps, client.step_batch(steps)):
                    keys, values = past.get(session.id, (k[:, :0], v[:, :0]))
                    keys, values = np.concatenate([keys, k], 1), np.concatenate([values, v], 1)
                    past[session.id] = keys, values
                    want = client.attend(q[None], keys[None], values[None],
                                         causal="lower_right", maps=None)
                    np.testing.assert_allclose(result.output, want.output[0], atol=1e-5)
            for session in (first, grouped, alone):
                session.close()

    def test_decoder_layers_from_embeddings(self):
        """Two decoder layers' attention on one session from embeddings alone (layer 1 takes
        layer 0's output): a prefill of 20 tokens, then 5 one-token steps, each layer's answer
        equal (1e-4) to multi_head_attend over the whole prefix (causal, last n rows); GQA with
        w_o and add&norm."""
        rng = np.random.default_rng(9)
        d_model, heads, kv_heads, dim = 32, 4, 2, 8

        def matrix(rows, cols):
            return (rng.standard_normal((rows, cols)) * 0.2).astype(np.float32)

        layers = [Weights(num_heads=heads, num_kv_heads=kv_heads, w_q=matrix(d_model, heads * dim),
                          w_k=matrix(d_model, kv_heads * dim), w_v=matrix(d_model, kv_heads * dim),
                          w_o=matrix(heads * dim, d_model),
                          add_norm=AddNorm(gamma=np.ones(d_model, np.float32),
                                           beta=np.zeros(d_model, np.float32)))
                  for _ in range(2)]
        with AttentionClient(self.server.address) as client, \
                client.session(2, heads, dim, num_kv_heads=kv_heads) as session:
            inputs = [np.zeros((1, 0, d_model), np.float32) for _ in layers]
            for n in [20] + [1] * 5:
                x = rng.standard_normal((1, n, d_model)).astype(np.float32)
                for index, weights in enumerate(layers):
                    inputs[index] = np.concatenate([inputs[index], x], 1)
                    y = session.layer_step(index, x, weights)
                    whole = client.multi_head_attend(inputs[index], weights, causal="upper_left",
                                                     maps=None)
                    np.testing.assert_allclose(y, whole.output[:, -n:], atol=1e-4)
                    x = y  # the next layer's input
            self.assertEqual(list(session.refresh().layer_tokens), [25, 25])

    def test_idle_session_expires_and_metrics_show_the_pool(self):
        with AttnServe("--kv_idle_timeout_s=1") as server:
            with AttentionClient(server.address) as client:
                session = client.session(2, 2, 16)
                q = np.ones((2, 70, 16), np.float32)
                session.step(1, q, q, q)
                self.assertEqual(metric(server.http_port, "attnserve_kv_sessions"), 1)
                self.assertEqual(metric(server.http_port, "attnserve_kv_pool_used_bytes"),
                                 2 * 2 * 128 * 16 * 4)  # one 128-position page of K and V
                time.sleep(2.5)
                with self.assertRaises(NotFoundError) as caught:
                    session.step(1, q[:, :1], q[:, :1], q[:, :1])
                self.assertIn("expired after 1 s idle", str(caught.exception))
                self.assertEqual(metric(server.http_port, "attnserve_kv_pool_used_bytes"), 0)
                self.assertEqual(metric(server.http_port,
                                        'attnserve_kv_sessions_dropped_total{reason="expired"}'),
                                 1)

    def test_bad_flags_stop_the_server(self):
        for flag, message in [("--kv_evict=sometimes", 'use lru or none'),
                              ("--kv_page_tokens=100", "a multiple of 64"),
                              ("--kv_idle_timeout_s=0", "--kv_idle_timeout_s in [1, 86400]")]:
            result = subprocess.run([SERVER, "--address=127.0.0.1:0", flag], capture_output=True,
                                    text=True, timeout=30)
            self.assertEqual(result.returncode, 2, flag)
            self.assertIn(message, result.stdout + result.stderr)


if __name__ == "__main__":
    unittest.main()
