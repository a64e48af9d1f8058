"""Models that tract 0.23.9 panicked on, for the regression tests in tests/tests/tract_panics.rs.

    small_input_models.py ROOT   writes ROOT/<name>.onnx and prints the names.

- face_detector: a fully convolutional detector (free height and width) whose 2×2 max pools
  have auto_pad=VALID, so an image smaller than a window pools to an empty plane: tract's
  multithreaded pooling kernel divided by the plane's size (zero).
- gather_runtime_indices: a Gather whose indices are an input, as in silero VAD's opset-15
  export: an index out of range was read past the table's end.
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def face_detector(root):
    rng = np.random.default_rng(5)
    w1 = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((2, 8, 1, 1)).astype(np.float32), "w2")
    nodes = [
        helper.make_node("Conv", ["image", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], auto_pad="VALID"),
        helper.make_node("Conv", ["p1", "w2"], ["c2"]),
        helper.make_node("MaxPool", ["c2"], ["scores"], kernel_shape=[2, 2], strides=[2, 2], auto_pad="VALID"),
    ]
    graph = helper.make_graph(
        nodes,
        "face_detector",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "height", "width"])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 2, "rows", "cols"])],
        [w1, w2],
    )
    save(root, "face_detector", graph)


def gather_runtime_indices(root):
    table = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3), "table")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "indices"], ["rows"], axis=0)],
        "gather_runtime_indices",
        [helper.make_tensor_value_info("indices", TensorProto.INT64, ["n"])],
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, ["n", 3])],
        [table],
    )
    save(root, "gather_runtime_indices", graph)


def save(root, name, graph):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, os.path.join(root, f"{name}.onnx"))
    print(name)


if __name__ == "__main__":
    face_detector(sys.argv[1])
    gather_runtime_indices(sys.argv[1])
