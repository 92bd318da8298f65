#!/usr/bin/python3
"""ONNX models of one attention case, for ONNX Runtime to run against the engine.

    /usr/bin/python3 bench/ort/make_models.py --out DIR CASE...

CASE is an attn-bench name, attn/BxHxSqxSkxD/kvHkv/causal=C/maps=M/T (T is ignored: the models
are f32). For each case, DIR/<B>x<H>x<Sq>x<Sk>x<D>_kv<Hkv>_<causal>_maps<M>/ gets

  fused.onnx  the ONNX Attention operator (opset 23, IR version 10): one node
              Attention(Q, K, V[, attn_mask]) -> Y[, , , qk_matmul_output], Q [B,H,Sq,D] and K, V
              [B,Hkv,Sk,D] given as 4-D tensors, so q_num_heads and kv_num_heads are left out (the
              spec: "Must be used with 3D inputs"); GQA comes from the head counts of the shapes.
              scale = 1/sqrt(D). The maps variant asks for output 3 with qk_matmul_output_mode = 3
              (the probabilities after the softmax).
  plain.onnx  the graph a PyTorch export of eager attention gives (opset 17): MatMul(Q * scale,
              Transpose(K)) -> Add(causal mask, an additive constant of 0 and -inf) ->
              Softmax(axis=-1) -> MatMul with V; GQA by viewing the G = H / Hkv query heads of a KV
              head as one [G*Sq, D] matrix (Reshape, no copy of K or V); the maps variant has the
              softmax output as a second graph output, P.

Causal masks: upper_left hides key j from query i when j > i, lower_right when j > i + Sk - Sq
(the engine's CausalKind). The Attention operator's is_causal is upper-left aligned (ONNX spec;
ONNX Runtime's CPU kernel masks t > past + s), so it serves upper_left, and lower_right when
Sq == Sk; any other lower_right mask that hides something goes in as attn_mask, a float
[Sq, Sk] constant. A lower_right mask that hides nothing (decode, Sq = 1) is left out of both
models: it is no mask.

ONNX 1.12 (Debian's python3-onnx) knows opset 17 at most, so the Attention node is made with
onnx.helper without any schema check; the plain model is checked with onnx.checker.
"""
import argparse
import os
import re
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

NAME = re.compile(
    r"^attn/(\d+)x(\d+)x(\d+)x(\d+)x(\d+)/kv(\d+)/causal=(\w+)/maps=([01])/(f32|bf16)$")


def parse_case(name):
    """attn/BxHxSqxSkxD/kvHkv/causal=C/maps=M/T -> dict (as bench/compare_torch.py)."""
    m = NAME.match(name.removesuffix("/real_time"))
    if m is None:
        raise ValueError(f"not an attn-bench attention case: {name}")
    b, h, sq, sk, d, hkv = (int(x) for x in m.groups()[:6])
    return {"name": name, "B": b, "H": h, "Sq": sq, "Sk": sk, "D": d, "Hkv": hkv,
            "causal": m.group(7), "maps": m.group(8) == "1", "compute": m.group(9)}


def case_tag(c):
    """The directory name of a case's models (the compute type does not change them)."""
    return (f"{c['B']}x{c['H']}x{c['Sq']}x{c['Sk']}x{c['D']}_kv{c['Hkv']}_{c['causal']}"
            f"_maps{int(c['maps'])}")


def blocked_mask(c):
    """[Sq, Sk] bool, True where the key is hidden from the query; None when nothing is hidden."""
    sq, sk = c["Sq"], c["Sk"]
    offset = {"none": None, "upper_left": 0, "lower_right": sk - sq}[c["causal"]]
    if offset is None:
        return None
    blocked = np.triu(np.ones((sq, sk), dtype=bool), offset + 1)
    return blocked if blocked.any() else None


def additive_mask(blocked):
    return np.where(blocked, np.float32(-np.inf), np.float32(0)).astype(np.float32)


def io_infos(c):
    b, h, hkv, sq, sk, d = (c[k] for k in ("B", "H", "Hkv", "Sq", "Sk", "D"))
    inputs = [helper.make_tensor_value_info("Q", TensorProto.FLOAT, [b, h, sq, d]),
              helper.make_tensor_value_info("K", TensorProto.FLOAT, [b, hkv, sk, d]),
              helper.make_tensor_value_info("V", TensorProto.FLOAT, [b, hkv, sk, d])]
    outputs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [b, h, sq, d])]
    if c["maps"]:
        outputs.append(helper.make_tensor_value_info("P", TensorProto.FLOAT, [b, h, sq, sk]))
    return inputs, outputs


def fused_model(c):
    """One ONNX Attention node (opset 23)."""
    inputs, outputs = io_infos(c)
    blocked = blocked_mask(c)
    # is_causal is upper-left aligned: right for upper_left, and for lower_right when Sq == Sk.
    use_is_causal = blocked is not None and (c["causal"] == "upper_left" or c["Sq"] == c["Sk"])
    initializers = []
    node_inputs = ["Q", "K", "V"]
    if blocked is not None and not use_is_causal:
        initializers.append(numpy_helper.from_array(additive_mask(blocked), "attn_mask"))
        node_inputs.append("attn_mask")
    attributes = {"is_causal": int(use_is_causal), "scale": float(c["D"] ** -0.5)}
    node_outputs = ["Y"]
    if c["maps"]:
        node_outputs += ["", "", "P"]  # present_key, present_value absent; 3 = qk_matmul_output
        attributes["qk_matmul_output_mode"] = 3  # after the softmax: the probabilities
    node = helper.make_node("Attention", node_inputs, node_outputs, name="attention", **attributes)
    graph = helper.make_graph([node], "attention_fused", inputs, outputs, initializers)
    model = helper.make_model(graph, producer_name="attnserve-bench",
                              opset_imports=[helper.make_opsetid("", 23)])
    model.ir_version = 10  # opset 23 needs IR 10; onnx 1.12 would write 8
    return model


def plain_model(c):
    """MatMul -> (Add mask) -> Softmax -> MatMul, as exported from eager PyTorch."""
    b, h, hkv, sq, sk, d = (c[k] for k in ("B", "H", "Hkv", "Sq", "Sk", "D"))
    g = h // hkv
    inputs, outputs = io_infos(c)
    initializers = [numpy_helper.from_array(np.array(d ** -0.5, dtype=np.float32), "scale")]
    nodes = [helper.make_node("Transpose", ["K"], ["Kt"], perm=[0, 1, 3, 2])]

    def shape_const(name, dims):
        initializers.append(numpy_helper.from_array(np.array(dims, dtype=np.int64), name))
        return name

    # The scale multiplies the MatMul's own input, so ORT folds it and the Transpose into one
    # FusedMatMul (alpha = scale, transB).
    if g > 1:  # the G query heads of a KV head as one [G*Sq, D] matrix
        nodes.append(helper.make_node(
            "Reshape", ["Q", shape_const("grouped_q", [b, hkv, g * sq, d])], ["Qg"]))
        nodes.append(helper.make_node("Mul", ["Qg", "scale"], ["Qs"]))
        nodes.append(helper.make_node("MatMul", ["Qs", "Kt"], ["Sg"]))
        nodes.append(helper.make_node(
            "Reshape", ["Sg", shape_const("score_shape", [b, h, sq, sk])], ["S"]))
    else:
        nodes.append(helper.make_node("Mul", ["Q", "scale"], ["Qs"]))
        nodes.append(helper.make_node("MatMul", ["Qs", "Kt"], ["S"]))
    scores = "S"
    blocked = blocked_mask(c)
    if blocked is not None:
        initializers.append(numpy_helper.from_array(additive_mask(blocked), "mask"))
        nodes.append(helper.make_node("Add", ["S", "mask"], ["Sm"]))
        scores = "Sm"
    probs = "P" if c["maps"] else "probs"
    nodes.append(helper.make_node("Softmax", [scores], [probs], axis=-1))
    if g > 1:
        nodes.append(helper.make_node(
            "Reshape", [probs, shape_const("grouped_p", [b, hkv, g * sq, sk])], ["Pg"]))
        nodes.append(helper.make_node("MatMul", ["Pg", "V"], ["Yg"]))
        nodes.append(helper.make_node(
            "Reshape", ["Yg", shape_const("output_shape", [b, h, sq, d])], ["Y"]))
    else:
        nodes.append(helper.make_node("MatMul", [probs, "V"], ["Y"]))
    graph = helper.make_graph(nodes, "attention_plain", inputs, outputs, initializers)
    model = helper.make_model(graph, producer_name="attnserve-bench",
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_models(c, out_dir):
    """Writes fused.onnx and plain.onnx of case c; returns {variant: path}."""
    directory = os.path.join(out_dir, case_tag(c))
    os.makedirs(directory, exist_ok=True)
    paths = {}
    for variant, make in (("fused", fused_model), ("plain", plain_model)):
        paths[variant] = os.path.join(directory, f"{variant}.onnx")
        onnx.save(make(c), paths[variant])
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="directory for the models")
    parser.add_argument("cases", nargs="+", help="attn-bench case names")
    args = parser.parse_args()
    for name in args.cases:
        for variant, path in write_models(parse_case(name), args.out).items():
            print(f"{variant}\t{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
