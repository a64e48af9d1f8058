"""Good models that a guessed warm-up input or a too-strict loader breaks: each runs on real
inputs (or none) but not on the smallest shape or a made-up value. destino must serve them
(tests/tests/http_serving.rs).

    warmup_models.py ROOT   writes ROOT/<name>/model.onnx and ROOT/<name>.case.json (an input
                            and the output numpy computes for it), and prints the names.

- conv_needs_12: a 12×12 convolution over an image of free height and width (a face detector's
  first layer needs H, W >= its kernel; a guess of 1×1 fails: "Invalid input shape").
- reflect_pad_needs_2: reflect padding over a free-length signal (silero VAD's opset-15
  export pads by reflection, which needs at least 2 samples; a guess of 1 fails).
- string_to_int: strings cast to int64 (any non-numeric made-up string fails the cast).
- no_inputs: a graph with no inputs at all (a constant table; ONNX Runtime runs it, and a V2
  request with `"inputs": []` asks for it).
"""

import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def save(root, name, graph, opset, case):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    os.makedirs(os.path.join(root, name), exist_ok=True)
    onnx.save(model, os.path.join(root, name, "model.onnx"))
    with open(os.path.join(root, f"{name}.case.json"), "w") as f:
        json.dump(case, f)
    print(name)


def conv_needs_12(root):
    rng = np.random.default_rng(7)
    weight = rng.standard_normal((2, 1, 12, 12)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "weight"], ["features"])],
        "conv_needs_12",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 1, "h", "w"])],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["n", 2, "oh", "ow"])],
        [numpy_helper.from_array(weight, "weight")],
    )
    image = rng.standard_normal((1, 1, 16, 20)).astype(np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(image[0, 0], (12, 12))
    features = np.einsum("ijkl,okl->oij", windows, weight[:, 0])[None]
    save(root, "conv_needs_12", graph, 13, {
        "inputs": {"image": {"datatype": "FP32", "shape": list(image.shape), "data": image.ravel().tolist()}},
        "outputs": {"features": {"shape": list(features.shape), "data": features.ravel().tolist()}},
    })


def reflect_pad_needs_2(root):
    pads = numpy_helper.from_array(np.array([0, 1, 0, 1], dtype=np.int64), "pads")
    graph = helper.make_graph(
        [helper.make_node("Pad", ["signal", "pads"], ["padded"], mode="reflect")],
        "reflect_pad_needs_2",
        [helper.make_tensor_value_info("signal", TensorProto.FLOAT, ["n", "samples"])],
        [helper.make_tensor_value_info("padded", TensorProto.FLOAT, ["n", "padded_samples"])],
        [pads],
    )
    signal = np.array([[0.5, -1.0, 2.0, 4.0]], dtype=np.float32)
    padded = np.pad(signal, ((0, 0), (1, 1)), mode="reflect")
    save(root, "reflect_pad_needs_2", graph, 15, {
        "inputs": {"signal": {"datatype": "FP32", "shape": list(signal.shape), "data": signal.ravel().tolist()}},
        "outputs": {"padded": {"shape": list(padded.shape), "data": padded.ravel().tolist()}},
    })


def string_to_int(root):
    graph = helper.make_graph(
        [helper.make_node("Cast", ["text"], ["number"], to=TensorProto.INT64)],
        "string_to_int",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["n"])],
        [helper.make_tensor_value_info("number", TensorProto.INT64, ["n"])],
    )
    text = ["12", "-7", "40000000000"]
    save(root, "string_to_int", graph, 13, {
        "inputs": {"text": {"datatype": "BYTES", "shape": [3], "data": text}},
        "outputs": {"number": {"shape": [3], "data": [int(t) for t in text]}},
    })


def no_inputs(root):
    table = np.array([[1.5, -2.0], [0.25, 8.0]], dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["table"], value=numpy_helper.from_array(table)),
            helper.make_node("Mul", ["table", "scale"], ["scaled"]),
        ],
        "no_inputs",
        [],
        [helper.make_tensor_value_info("scaled", TensorProto.FLOAT, [2, 2])],
        [numpy_helper.from_array(np.array(3.0, dtype=np.float32), "scale")],
    )
    scaled = table * 3.0
    save(root, "no_inputs", graph, 13, {
        "inputs": {},
        "outputs": {"scaled": {"shape": list(scaled.shape), "data": scaled.ravel().tolist()}},
    })


if __name__ == "__main__":
    root = sys.argv[1]
    for make in (conv_needs_12, reflect_pad_needs_2, string_to_int, no_inputs):
        make(root)
