#!/usr/bin/env python3
"""Conformance tests: the real `tritonclient[http]` package against a running destino server.

    python tests/python/test_tritonclient.py --url 127.0.0.1:PORT --shared DIR [unittest args]

DIR holds the reference files (<model>.input[.<name>].npy, <model>.output[.<name>].npy, images/).
Exits non-zero when any test fails.
"""

import argparse
import asyncio
import os
import sys
import unittest

import numpy as np
import tritonclient.http as httpclient
import tritonclient.http.aio as aiohttpclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

import references
from references import CASES, TIGER_CAT, assert_close

URL = ""  # host:port, set by main()
SHARED = ""  # reference directory, set by main()


def load(file):
    return references.load(SHARED, file)


def reference(model):
    """The reference ({input: array}, {output: array}) of a model."""
    return references.reference(SHARED, model)


def make_inputs(arrays, binary):
    inputs = []
    for name, array in arrays.items():
        tensor = httpclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return inputs


def requested(names, binary):
    return [httpclient.InferRequestedOutput(name, binary_data=binary) for name in names]


class TritonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = httpclient.InferenceServerClient(URL, network_timeout=120.0)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()

    def assert_outputs(self, result, expected, binary=None):
        """Every expected output is in `result`, equal to the reference within tolerance;
        with `binary` set, also checks the output came as binary data (True) or JSON (False)."""
        for name, want in expected.items():
            output = result.get_output(name)
            self.assertIsNotNone(output, f"output {name!r} missing from the response")
            if binary is not None:
                params = output.get("parameters") or {}
                self.assertEqual("binary_data_size" in params, binary, f"{name}: {output}")
                self.assertEqual("data" in output, not binary, f"{name}: {output}")
            assert_close(self, result.as_numpy(name), want, name)

    def assert_rejected(self, call):
        """`call` raises InferenceServerException carrying the server's 4xx JSON error."""
        with self.assertRaises(InferenceServerException) as caught:
            call()
        error = caught.exception
        self.assertTrue(error.message(), "empty error message")
        # tritonclient falls back to this text when the body is not {"error": "..."}.
        self.assertNotIn("exception occurred in the client", error.message())
        self.assertTrue(400 <= int(error.status()) < 500, f"status {error.status()}")

    # --- health and metadata ---

    def test_server_live_and_ready(self):
        self.assertTrue(self.client.is_server_live())
        self.assertTrue(self.client.is_server_ready())

    def test_server_metadata(self):
        meta = self.client.get_server_metadata()
        self.assertIsInstance(meta.get("name"), str)
        self.assertTrue(meta["name"])
        self.assertIsInstance(meta.get("version"), str)
        self.assertIsInstance(meta.get("extensions"), list)

    def test_models_ready(self):
        for model in CASES:
            with self.subTest(model=model):
                self.assertTrue(self.client.is_model_ready(model))
        self.assertFalse(self.client.is_model_ready("no_such_model"))

    def test_model_metadata(self):
        meta = self.client.get_model_metadata("sklearn_digits_rf")
        self.assertEqual(meta["name"], "sklearn_digits_rf")
        self.assertEqual(meta["platform"], "onnx_onnxv1")
        tensors = lambda key: {t["name"]: (t["datatype"], t["shape"]) for t in meta[key]}
        self.assertEqual(tensors("inputs"), {"X": ("FP32", [-1, 64])})
        self.assertEqual(
            tensors("outputs"),
            {"label": ("INT64", [-1]), "probabilities": ("FP32", [-1, 10])},
        )

    # --- inference against the references ---

    def check_infer(self, binary, explicit_outputs=True):
        for model in CASES:
            with self.subTest(model=model):
                inputs, expected = reference(model)
                outputs = requested(expected, binary) if explicit_outputs else None
                result = self.client.infer(model, make_inputs(inputs, binary), outputs=outputs)
                self.assertEqual(result.get_response().get("model_name"), model)
                self.assert_outputs(result, expected, binary=binary)

    def test_infer_binary(self):
        self.check_infer(binary=True)

    def test_infer_json(self):
        self.check_infer(binary=False)

    def test_infer_default_outputs_are_binary(self):
        # No outputs requested: the client asks for all of them, as binary data.
        self.check_infer(binary=True, explicit_outputs=False)

    def test_requested_output_only(self):
        inputs, expected = reference("sklearn_digits_rf")
        result = self.client.infer(
            "sklearn_digits_rf", make_inputs(inputs, True), outputs=requested(["probabilities"], True)
        )
        self.assert_outputs(result, {"probabilities": expected["probabilities"]})
        self.assertIsNone(result.get_output("label"))
        self.assertIsNone(result.as_numpy("label"))

    def test_compressed_request_and_response(self):
        for algorithm in ("gzip", "deflate"):
            inputs, expected = reference("efficientnet_lite0")
            result = self.client.infer(
                "efficientnet_lite0",
                make_inputs(inputs, True),
                outputs=requested(["logits"], True),
                request_compression_algorithm=algorithm,
                response_compression_algorithm=algorithm,
            )
            self.assert_outputs(result, expected)

    def test_request_id_echoed(self):
        inputs, expected = reference("sklearn_digits_rf")
        result = self.client.infer("sklearn_digits_rf", make_inputs(inputs, True), request_id="abc")
        self.assertEqual(result.get_response()["id"], "abc")
        self.assert_outputs(result, expected)

    def test_model_version(self):
        self.assertTrue(self.client.is_model_ready("sklearn_digits_rf", model_version="1"))
        inputs, expected = reference("sklearn_digits_rf")
        result = self.client.infer(
            "sklearn_digits_rf", make_inputs(inputs, False), model_version="1"
        )
        self.assert_outputs(result, expected)

    # --- classification extension and encoded images ---

    def test_classification(self):
        inputs, expected = reference("efficientnet_lite0")
        top3 = [int(i) for i in np.argsort(-expected["logits"][0])[:3]]
        self.assertEqual(top3[0], TIGER_CAT)
        result = self.client.infer(
            "efficientnet_lite0",
            make_inputs(inputs, True),
            outputs=[httpclient.InferRequestedOutput("logits", class_count=3)],
        )
        self.assertEqual(result.get_output("logits")["datatype"], "BYTES")
        entries = result.as_numpy("logits").ravel()
        self.assertEqual(len(entries), 3, entries)
        parsed = [entry.split(b":", 2) for entry in entries]  # b"<score>:<index>:<label>"
        self.assertEqual([int(p[1]) for p in parsed], top3, entries)
        self.assertEqual(parsed[0][2], b"tiger cat")
        scores = [float(p[0]) for p in parsed]
        self.assertEqual(scores, sorted(scores, reverse=True))

    def test_png_as_bytes(self):
        with open(os.path.join(SHARED, "images", "chelsea.png"), "rb") as f:
            png = f.read()
        image = httpclient.InferInput("input", [1], "BYTES")
        image.set_data_from_numpy(np.array([png], dtype=np.object_), binary_data=True)
        result = self.client.infer(
            "efficientnet_lite0", [image], outputs=requested(["logits"], True)
        )
        logits = result.as_numpy("logits")
        self.assertEqual(logits.shape, (1, 1000))
        self.assertEqual(int(np.argmax(logits[0])), TIGER_CAT)

    # --- errors ---

    def test_unknown_model(self):
        inputs, _ = reference("sklearn_digits_rf")
        self.assert_rejected(lambda: self.client.infer("no_such_model", make_inputs(inputs, True)))
        self.assert_rejected(lambda: self.client.get_model_metadata("no_such_model"))

    def test_wrong_shape(self):
        inputs, _ = reference("sklearn_digits_rf")
        for binary in (True, False):
            with self.subTest(binary=binary):
                bad = make_inputs({"X": np.ascontiguousarray(inputs["X"][:, :63])}, binary)
                self.assert_rejected(lambda: self.client.infer("sklearn_digits_rf", bad))

    def test_wrong_datatype(self):
        inputs, _ = reference("sklearn_digits_rf")
        for binary in (True, False):
            with self.subTest(binary=binary):
                bad = make_inputs({"X": inputs["X"].astype(np.float64)}, binary)
                self.assert_rejected(lambda: self.client.infer("sklearn_digits_rf", bad))

    # --- concurrency ---

    def test_async_infer_concurrent(self):
        digits_in, digits_out = reference("sklearn_digits_rf")
        cat_in, cat_out = reference("efficientnet_lite0")
        coffee = (
            {"input": load("efficientnet_lite0.coffee.input.npy")},
            {"logits": load("efficientnet_lite0.coffee.output.npy")},
        )
        cases = []  # (model, inputs, expected): distinct requests, so mixed-up replies show
        for i in range(8):
            rows = slice(i, i + 1)
            digits = ({"X": digits_in["X"][rows]}, {k: v[rows] for k, v in digits_out.items()})
            cases.append(("sklearn_digits_rf", *digits))
            cases.append(("efficientnet_lite0", *(coffee if i % 2 else (cat_in, cat_out))))
        with httpclient.InferenceServerClient(URL, concurrency=8, network_timeout=120.0) as client:
            pending = [
                client.async_infer(model, make_inputs(inputs, True), request_id=str(i))
                for i, (model, inputs, _) in enumerate(cases)
            ]
            for i, (request, (model, _, expected)) in enumerate(zip(pending, cases)):
                with self.subTest(request=i, model=model):
                    result = request.get_result(timeout=120)
                    self.assertEqual(result.get_response().get("id"), str(i))
                    self.assert_outputs(result, expected)


class AsyncioClientTest(unittest.TestCase):
    """`tritonclient.http.aio`, which reads every response with aiohttp: compressed ones only
    where it asked for them."""

    def test_health_metadata_and_concurrent_inference(self):
        async def run():
            async with aiohttpclient.InferenceServerClient(URL) as client:
                self.assertTrue(await client.is_server_live())
                self.assertTrue(await client.is_server_ready())
                meta = await client.get_model_metadata("sklearn_digits_rf")
                self.assertEqual(meta["name"], "sklearn_digits_rf")
                index = await client.get_model_repository_index()
                self.assertEqual({m["name"] for m in index}, set(CASES))
                calls = [
                    client.infer(model, make_inputs(reference(model)[0], True), request_id=model)
                    for model in CASES
                ]
                return await asyncio.gather(*calls)

        results = asyncio.run(run())
        for model, result in zip(CASES, results):
            with self.subTest(model=model):
                self.assertEqual(result.get_response()["id"], model)
                for name, want in reference(model)[1].items():
                    assert_close(self, result.as_numpy(name), want, name)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="server host:port, no scheme")
    parser.add_argument("--shared", required=True, help="directory of reference files")
    args, rest = parser.parse_known_args()
    global URL, SHARED
    URL, SHARED = args.url, args.shared
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
