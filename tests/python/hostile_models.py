"""Writes hostile ONNX files, one model repository folder each: DIR/<name>/model.onnx.

    python tests/python/hostile_models.py DIR

Every model is small and well-formed enough to reach the runtimes; each carries one attack:
external data outside its folder or past the end of its file, tensors whose declared size and
bytes disagree, absurd shapes, unknown operators and opsets, dangling edges, and graphs nested
deeper than a parser's stack. DIR/secret.bin (outside every model folder) holds bytes no model
may read. tests/tests/hostile_models.rs loads each with both engines and through the server.
"""

import os
import sys

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper

OPSET = [helper.make_opsetid("", 17)]
IR_VERSION = 8  # what opset 17 needs; the onnx package's default may be newer than the runtimes


def model(graph, opsets=OPSET):
    return helper.make_model(graph, opset_imports=opsets, ir_version=IR_VERSION)


def identity_plus(weight, name="w"):
    """y = x + w, with w an initializer: the smallest graph that reads a weight."""
    node = helper.make_node("Add", ["x", name], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [weight],
    )
    return model(graph)


def external(location, offset=None, length=None):
    weight = TensorProto()
    weight.name = "w"
    weight.data_type = TensorProto.FLOAT
    weight.dims.append(4)
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", offset), ("length", length)):
        if value is not None:
            entry = weight.external_data.add()
            entry.key, entry.value = key, str(value)
    return identity_plus(weight)


def raw(dims, data, data_type=TensorProto.FLOAT):
    weight = TensorProto()
    weight.name = "w"
    weight.data_type = data_type
    weight.dims.extend(dims)
    weight.raw_data = data
    return identity_plus(weight)


def varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number, payload):
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def nested(depth):
    """`If` nodes nested `depth` deep, written as raw protobuf (the onnx package refuses to
    build what it could not parse back): one branch goes deeper, the other is a leaf."""

    def value_info(name):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [4]).SerializeToString()

    def leaf(out):
        return helper.make_graph(
            [helper.make_node("Identity", ["x"], [out])], "leaf", [], [helper.make_tensor_value_info(out, TensorProto.FLOAT, [4])]
        ).SerializeToString()

    def graph_attribute(name, graph):
        return field(1, name.encode()) + field(6, graph) + varint(20 << 3) + varint(AttributeProto.GRAPH)

    graph = leaf("y0")
    for level in range(depth):
        out = f"y{level + 1}".encode()
        node = field(1, b"c") + field(2, out) + field(4, b"If")
        node += field(5, graph_attribute("then_branch", graph)) + field(5, graph_attribute("else_branch", leaf(out.decode())))
        graph = field(1, node) + field(2, f"level{level}".encode()) + field(12, value_info(out.decode()))
    inputs = field(11, value_info("x")) + field(11, helper.make_tensor_value_info("c", TensorProto.BOOL, []).SerializeToString())
    shell = model(helper.make_graph([], "g", [], []))
    shell.ClearField("graph")
    return RawModel(shell.SerializeToString() + field(7, graph + inputs))


class RawModel:
    """Bytes that are already a serialized model."""

    def __init__(self, data):
        self.data = data

    def SerializeToString(self):
        return self.data


def unknown_op():
    node = helper.make_node("DefinitelyNotAnOperator", ["x"], ["y"], domain="evil.domain")
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])]
    )
    return model(graph, OPSET + [helper.make_opsetid("evil.domain", 1)])


def future_opset():
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])]
    )
    return model(graph, [helper.make_opsetid("", 9999)])


def dangling():
    node = helper.make_node("Add", ["x", "nowhere"], ["y"])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])]
    )
    return model(graph)


def main():
    root = sys.argv[1]
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "secret.bin"), "wb") as f:
        f.write(np.full(4, 1234.5, dtype=np.float32).tobytes())
    models = {
        "external_parent_dir": external("../secret.bin"),
        "external_absolute": external(os.path.abspath(os.path.join(root, "secret.bin"))),
        "external_nested_parent": external("sub/../../secret.bin"),
        "external_missing_file": external("weights.bin"),
        "external_past_the_end": external("weights.bin", offset=1 << 40, length=16),
        "external_length_lies": external("weights.bin", offset=0, length=1 << 40),
        "raw_data_too_short": raw([4], np.ones(2, np.float32).tobytes()),
        "raw_data_too_long": raw([4], np.ones(64, np.float32).tobytes()),
        "dims_huge_without_data": raw([1 << 40], b""),
        "dims_negative": raw([-4], np.ones(4, np.float32).tobytes()),
        "dims_overflowing": raw([1 << 31, 1 << 31, 1 << 31], b""),
        "unknown_operator": unknown_op(),
        "opset_from_the_future": future_opset(),
        "dangling_input": dangling(),
        "nested_subgraphs": nested(200),
    }
    for name, hostile in models.items():
        folder = os.path.join(root, name)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "model.onnx"), "wb") as f:
            f.write(hostile.SerializeToString())
    # Inside-folder data for the *_past_the_end / *_length_lies models: 16 real bytes.
    for name in ("external_past_the_end", "external_length_lies"):
        with open(os.path.join(root, name, "weights.bin"), "wb") as f:
            f.write(np.ones(4, np.float32).tobytes())
    print("\n".join(models))


if __name__ == "__main__":
    main()
