#!/usr/bin/env python3
"""Writes the seed corpus under fuzz/corpus/ (needs numpy, pillow and onnx).

Run from the repository root: python3 fuzz/make_seed_corpus.py
"""

import io
import json
import pathlib
import shutil
import struct

import numpy as np
import onnx
from onnx import TensorProto, helper
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def write(target, name, data):
    path = CORPUS / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def js(value):
    return json.dumps(value, separators=(",", ":"))


def v2_json():
    inp = lambda name, dtype, shape, data, **kw: dict(name=name, datatype=dtype, shape=shape, data=data, **kw)
    write("v2_json", "fp32_nested", js({"id": "1", "inputs": [inp("x", "FP32", [2, 3], [[1.5, 2, 3], [4, 5, -6e-3]])]}))
    write("v2_json", "int64_flat", js({"inputs": [inp("ids", "INT64", [1, 4], [1, -2, 9007199254740993, 0])]}))
    write("v2_json", "bytes", js({"inputs": [inp("text", "BYTES", [2], ["héllo", ""])]}))
    write("v2_json", "bool_uint8_fp16", js({
        "inputs": [inp("m", "BOOL", [2], [True, False]), inp("p", "UINT8", [1, 2], [[0, 255]]),
                   inp("h", "FP16", [1], [0.5])],
        "outputs": [{"name": "y", "parameters": {"classification": 3}}, {"name": "z", "parameters": {"binary_data": False}}],
        "parameters": {"binary_data_output": True}}))
    write("v2_json", "empty_and_scalar", js({"inputs": [inp("e", "FP64", [0, 3], []), inp("s", "INT8", [], [-7])]}))
    write("v2_json", "wrong_count", js({"inputs": [inp("x", "UINT16", [3], [1, 2])]}))
    write("v2_json", "all_ints", js({"inputs": [inp(t, t, [2], [1, 2]) for t in
                                                ["UINT32", "UINT64", "INT16", "INT32"]]}))


def v2_binary():
    def body(header, data, escape=False):
        header = js(header).encode()
        prefix = (b"\xff\xff" + struct.pack("<I", len(header))) if escape else struct.pack("<H", len(header))
        return prefix + header + data

    f32 = np.arange(6, dtype="<f4").tobytes()
    write("v2_binary", "fp32", body({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 3],
                                                 "parameters": {"binary_data_size": len(f32)}}]}, f32))
    strings = b"".join(struct.pack("<I", len(s)) + s for s in [b"hi", b"", "é".encode()])
    write("v2_binary", "bytes", body({"inputs": [{"name": "t", "datatype": "BYTES", "shape": [3],
                                                  "parameters": {"binary_data_size": len(strings)}}],
                                      "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}, strings))
    i64 = np.array([1, -1], dtype="<i8").tobytes()
    write("v2_binary", "mixed", body({"id": "m", "inputs": [
        {"name": "a", "datatype": "INT64", "shape": [2], "parameters": {"binary_data_size": 16}},
        {"name": "b", "datatype": "BOOL", "shape": [1], "data": [True]},
        {"name": "c", "datatype": "FP16", "shape": [2], "parameters": {"binary_data_size": 4}}]},
        i64 + np.array([1, -2], dtype="<f2").tobytes(), escape=True))
    write("v2_binary", "header_only", body({"inputs": []}, b""))
    write("v2_binary", "leftover", body({"inputs": [{"name": "u", "datatype": "UINT8", "shape": [2],
                                                     "parameters": {"binary_data_size": 2}}]}, b"\x01\x02\x03"))


def azure_score():
    write("azure_score", "data_nested", js({"data": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]}))
    write("azure_score", "data_flat", js({"data": [1, 2, 3]}))
    write("azure_score", "named_x", js({"x": [[0.5, -1, 2]]}))
    write("azure_score", "multi", js({"ids": [[1, 2, 3]], "mask": [[True, False, True]], "text": ["a", "bé"],
                                      "scale": 0.5, "pixels": [[1, 2], [3, 4]]}))
    write("azure_score", "ragged", js({"data": [[1, 2], [3]]}))
    write("azure_score", "empty", js({"data": [[]]}))
    write("azure_score", "unknown", js({"nope": [1]}))


def npz():
    def npz_bytes(compressed=False, **arrays):
        buf = io.BytesIO()
        (np.savez_compressed if compressed else np.savez)(buf, **arrays)
        return buf.getvalue()

    def npy_bytes(array, version=None):
        buf = io.BytesIO()
        np.lib.format.write_array(buf, array, version=version)
        return buf.getvalue()

    write("npz", "dtypes.npz", npz_bytes(
        f32=np.arange(6, dtype="<f4").reshape(2, 3), i64=np.array([1, -2], dtype="<i8"),
        u8=np.array([[255]], dtype="u1"), b=np.array([True, False]), f16=np.array([0.5], dtype="<f2"),
        s=np.array(["héllo", ""]), scalar=np.float64(2.5)))
    write("npz", "compressed.npz", npz_bytes(True, **{"in/put:0": np.zeros((2, 2), dtype="<i4"),
                                                       "bytes": np.array([b"ab", b"c"])}))
    write("npz", "f32.npy", npy_bytes(np.arange(4, dtype="<f4")))
    write("npz", "u16_be.npy", npy_bytes(np.array([1, 2], dtype=">u2")))
    write("npz", "fortran.npy", npy_bytes(np.asfortranarray(np.arange(4, dtype="<i2").reshape(2, 2))))
    write("npz", "str_v2.npy", npy_bytes(np.array(["ab", "c"]), version=(2, 0)))
    write("npz", "bytes_v3.npy", npy_bytes(np.array([b"xyz"]), version=(3, 0)))


def image():
    def encode(img, fmt, **kw):
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        return buf.getvalue()

    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), "RGB")
    write("image", "rgb.png", encode(rgb, "PNG"))
    write("image", "gray.png", encode(rgb.convert("L"), "PNG"))
    write("image", "rgba_interlaced.png", encode(rgb.convert("RGBA"), "PNG", interlace=1))
    write("image", "palette.png", encode(rgb.convert("P"), "PNG"))
    write("image", "gray16.png", encode(Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000), "PNG"))
    write("image", "tall.png", encode(rgb.resize((2, 40)), "PNG"))
    # Decodes within any pixel limit, but a shorter side of 256 would make it 256×16777216.
    write("image", "thin_1x65536.png", encode(Image.new("RGB", (1, 65536)), "PNG"))
    write("image", "baseline.jpg", encode(rgb, "JPEG", quality=80))
    write("image", "progressive.jpg", encode(rgb, "JPEG", progressive=True, quality=60))
    write("image", "gray_420.jpg", encode(rgb.resize((9, 7)).convert("L"), "JPEG"))
    write("image", "cmyk.jpg", encode(rgb.convert("CMYK"), "JPEG"))


def model_toml():
    shutil.copy(ROOT / "models" / "efficientnet_lite0" / "model.toml", CORPUS / "model_toml" / "efficientnet_lite0.toml")
    write("model_toml", "ocr.toml", """max_batch_size = 0
max_queue_delay_us = 500
max_queue_size = 64
instances = 2

[inputs.x.image]
resize = { fit_height = { height = 48, max_width = 192 } }
pad = [48, 192]
channel_order = "bgr"
filter = "lanczos3"
scale = 0.00392156862745098
layout = "nhwc"
""")
    write("model_toml", "exact.toml", """[inputs.input.image]
resize = { exact = [224, 224] }
filter = "nearest"
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]

[inputs.ids]

[outputs.logits]
activation = "sigmoid"
top_k = 10
""")
    write("model_toml", "unknown_output.toml", '[outputs.probs]\nactivation = "softmax"\n')


def onnx_model():
    for name in ["all_dtypes.onnx", "digits_zipmap.onnx"]:
        shutil.copy(ROOT / "tests" / "fixtures" / name, CORPUS / "onnx_model" / name)
    f32 = lambda name, shape: helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
    branch = lambda op: helper.make_graph([helper.make_node(op, ["x"], ["y"])], op, [], [f32("y", ["N"])])
    weights = helper.make_tensor("w", TensorProto.FLOAT, [1], b"\0\0\0\0", raw=True)
    onnx.external_data_helper.set_external_data(weights, location="data/weights.bin")
    weights.ClearField("raw_data")
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=branch("Relu"), else_branch=branch("Neg")),
         helper.make_node("Custom", ["y", "w"], ["z"], domain="com.example")],
        "subgraphs", [helper.make_tensor_value_info("c", TensorProto.BOOL, []), f32("x", ["N", "?", 3])],
        [f32("z", None)], initializer=[weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                     helper.make_opsetid("com.example", 1)],
                              producer_name="seed", ir_version=8)
    write("onnx_model", "subgraphs_external.onnx", model.SerializeToString())


if __name__ == "__main__":
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    for make in [v2_json, v2_binary, azure_score, npz, image, model_toml, onnx_model]:
        (CORPUS / make.__name__).mkdir(parents=True, exist_ok=True)
        make()
