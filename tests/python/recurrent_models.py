"""Recurrent models in every direction, with biases and initial states, for the engines'
parity test (tests/tests/parity.rs): tract 0.23 read `direction="reverse"` as forward.
(ONNX Runtime refuses the batch-first layout, so there is no reference for it.)

    recurrent_models.py ROOT   writes ROOT/<name>.onnx and ROOT/<name>.npz (the inputs), and
                               prints the names.
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def model(root, op, direction, batch_first, opset):
    rng = np.random.default_rng(len(op) * 7 + len(direction) + batch_first)
    directions = 2 if direction == "bidirectional" else 1
    hidden, features, steps, batch = 3, 2, 5, 2
    w = rng.standard_normal((directions, GATES[op] * hidden, features)).astype(np.float32)
    r = rng.standard_normal((directions, GATES[op] * hidden, hidden)).astype(np.float32)
    b = rng.standard_normal((directions, 2 * GATES[op] * hidden)).astype(np.float32)
    state = [directions, batch, hidden] if not batch_first else [batch, directions, hidden]
    x_shape = [steps, batch, features] if not batch_first else [batch, steps, features]
    y_shape = [steps, directions, batch, hidden] if not batch_first else [batch, steps, directions, hidden]
    inputs = ["x", "w", "r", "b", "", "h0"]
    outputs = ["y", "y_h"] + (["y_c"] if op == "LSTM" else [])
    attributes = {"hidden_size": hidden, "direction": direction}
    if batch_first:
        attributes["layout"] = 1
    graph = helper.make_graph(
        [helper.make_node(op, inputs, outputs, **attributes)],
        f"{op}_{direction}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape),
         helper.make_tensor_value_info("h0", TensorProto.FLOAT, state)],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, y_shape if o == "y" else state) for o in outputs],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(r, "r"), numpy_helper.from_array(b, "b")],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    name = f"{op.lower()}_{direction}_{'batch_first' if batch_first else 'time_first'}_opset{opset}"
    onnx.save(m, os.path.join(root, f"{name}.onnx"))
    np.savez(os.path.join(root, f"{name}.npz"),
             x=rng.standard_normal(x_shape).astype(np.float32),
             h0=rng.standard_normal(state).astype(np.float32))
    print(name)


if __name__ == "__main__":
    root = sys.argv[1]
    for op in GATES:
        for direction in ("forward", "reverse", "bidirectional"):
            model(root, op, direction, False, 9)
            model(root, op, direction, False, 14)
