#!/usr/bin/env python3
"""Conformance tests over gRPC: the real `tritonclient[grpc]` package (sync, asyncio and
streaming) and the standard health-checking client against a running destino server.
(KServe's client registers the same protocol in protobuf's pool, so it runs apart:
test_kserve_grpc.py.)

    python tests/python/test_tritonclient_grpc.py --url 127.0.0.1:PORT --http-url http://… \
        --shared DIR --auth-url 127.0.0.1:PORT2 --api-key KEY --max-message-bytes N [unittest args]

--url serves the shared models and `all_dtypes` (tests/fixtures) without an API key;
--auth-url is a server that requires --api-key. Exits non-zero when any test fails.
"""

import os
import argparse
import asyncio
import queue
import sys
import threading
import time
import unittest
import urllib.request

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

import references
from references import CASES, TIGER_CAT, assert_close

URL = HTTP_URL = AUTH_URL = API_KEY = SHARED = ""
MAX_MESSAGE_BYTES = 0


def gauge(name, model):
    """A per-model gauge from the server's Prometheus metrics (0 before it is first set)."""
    with urllib.request.urlopen(f"{HTTP_URL}/metrics", timeout=10) as response:
        metrics = response.read().decode()
    prefix = f'{name}{{model="{model}"}} '
    return sum(float(line[len(prefix):]) for line in metrics.splitlines() if line.startswith(prefix))


def queued(model):
    """Requests waiting for `model`'s instances."""
    return gauge("destino_queue_depth", model)


def wait_until_idle(test, model):
    """Waits until nothing of `model` is queued or running, so its statistics stay put."""
    deadline = time.monotonic() + 300
    while queued(model) or gauge("destino_instances_busy", model):
        test.assertLess(time.monotonic(), deadline, f"{model} never became idle")
        time.sleep(0.01)


def load(file):
    return references.load(SHARED, file)


def reference(model):
    """The reference ({input: array}, {output: array}) of a model."""
    return references.reference(SHARED, model)


def make_inputs(arrays, module=grpcclient):
    inputs = []
    for name, array in arrays.items():
        tensor = module.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


class GrpcTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = grpcclient.InferenceServerClient(URL)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()

    def assert_code(self, call, code):
        """`call` fails with gRPC status `code` and a message."""
        with self.assertRaises(InferenceServerException) as caught:
            call()
        self.assertEqual(caught.exception.status(), str(code), caught.exception.message())
        self.assertTrue(caught.exception.message())
        return caught.exception.message()

    # --- health and metadata ---

    def test_server_and_models_are_live_and_ready(self):
        self.assertTrue(self.client.is_server_live())
        self.assertTrue(self.client.is_server_ready())
        for model in [*CASES, "all_dtypes"]:
            self.assertTrue(self.client.is_model_ready(model), model)
        self.assertFalse(self.client.is_model_ready("no_such_model"))

    def test_metadata(self):
        server = self.client.get_server_metadata()
        self.assertEqual(server.name, "destino")
        self.assertIn("model_repository", server.extensions)
        model = self.client.get_model_metadata("sklearn_digits_rf", as_json=True)
        self.assertEqual(model["platform"], "onnx_onnxv1")
        tensors = {t["name"]: (t["datatype"], t["shape"]) for t in model["inputs"]}
        self.assertEqual(tensors, {"X": ("FP32", ["-1", "64"])})

    def test_model_config(self):
        config = self.client.get_model_config("efficientnet_lite0", as_json=True)["config"]
        self.assertEqual(config["name"], "efficientnet_lite0")
        self.assertEqual(config["platform"], "onnxruntime_onnx")
        self.assertGreater(int(config["max_batch_size"]), 0)
        self.assertEqual(config["input"][0]["data_type"], "TYPE_FP32")
        self.assertEqual([int(d) for d in config["input"][0]["dims"]], [3, 224, 224])
        self.assertIn("dynamic_batching", config)
        # `--instances auto`: one single-thread instance per core (memory permitting).
        self.assertIn(int(config["instance_group"][0]["count"]), range(1, (os.cpu_count() or 1) + 1))

    # --- inference ---

    def test_every_shared_model_matches_its_reference(self):
        for model in CASES:
            with self.subTest(model=model):
                inputs, expected = reference(model)
                outputs = [grpcclient.InferRequestedOutput(name) for name in expected]
                result = self.client.infer(model, make_inputs(inputs), outputs=outputs, request_id="r1")
                self.assertEqual(result.get_response().id, "r1")
                for name, want in expected.items():
                    assert_close(self, result.as_numpy(name), want, name)

    def test_typed_contents_in_and_out(self):
        # What tritonclient cannot send: JSON-equivalent typed `contents`, and typed outputs
        # when binary_data_output is false.
        inputs, expected = reference("sklearn_digits_rf")
        x = inputs["X"]
        request = service_pb2.ModelInferRequest(model_name="sklearn_digits_rf", id="typed")
        tensor = request.inputs.add(name="X", datatype="FP32", shape=list(x.shape))
        tensor.contents.fp32_contents.extend(x.ravel().tolist())
        request.parameters["binary_data_output"].bool_param = False
        stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(URL))
        response = stub.ModelInfer(request)
        self.assertEqual(len(response.raw_output_contents), 0)
        outputs = {o.name: o for o in response.outputs}
        self.assertEqual(list(outputs["label"].contents.int64_contents), expected["label"].tolist())
        probabilities = np.array(outputs["probabilities"].contents.fp32_contents, np.float32)
        assert_close(self, probabilities.reshape(expected["probabilities"].shape),
                     expected["probabilities"], "probabilities")

    def test_every_dtype_round_trips(self):
        arrays = {
            "x_bool": np.array([True, False, True]),
            "x_uint8": np.array([0, 7, 255], np.uint8),
            "x_uint16": np.array([0, 7, 65535], np.uint16),
            "x_uint32": np.array([0, 7, 2**32 - 1], np.uint32),
            "x_uint64": np.array([0, 7, 2**64 - 1], np.uint64),
            "x_int8": np.array([-128, 0, 127], np.int8),
            "x_int16": np.array([-32768, 0, 32767], np.int16),
            "x_int32": np.array([-(2**31), 0, 2**31 - 1], np.int32),
            "x_int64": np.array([-(2**63), 0, 2**63 - 1], np.int64),
            "x_float16": np.array([-1.5, 0.0, 65504.0], np.float16),
            "x_float32": np.array([-1.5, 0.0, 3.25], np.float32),
            "x_float64": np.array([-1.5, 0.0, 1e300], np.float64),
            "x_string": np.array([b"a", b"", b"tiger cat"], np.object_),
            "scalar": np.array(42, np.int64),
        }
        result = self.client.infer("all_dtypes", make_inputs(arrays))
        for name, array in arrays.items():
            out = "scalar_out" if name == "scalar" else "y_" + name[2:]
            got = result.as_numpy(out)
            self.assertEqual(got.shape, array.shape, out)
            np.testing.assert_array_equal(got, array, err_msg=out)

    def test_classification(self):
        inputs, expected = reference("efficientnet_lite0")
        top3 = [int(i) for i in np.argsort(-expected["logits"][0])[:3]]
        result = self.client.infer(
            "efficientnet_lite0",
            make_inputs(inputs),
            outputs=[grpcclient.InferRequestedOutput("logits", class_count=3)],
        )
        entries = result.as_numpy("logits").ravel()
        parsed = [e.split(b":", 2) for e in entries]
        self.assertEqual([int(p[1]) for p in parsed], top3)
        self.assertEqual(parsed[0][2], b"tiger cat")

    def test_gzip_both_ways(self):
        inputs, expected = reference("efficientnet_lite0")
        result = self.client.infer(
            "efficientnet_lite0", make_inputs(inputs), compression_algorithm="gzip"
        )
        assert_close(self, result.as_numpy("logits"), expected["logits"], "logits")

    def test_asyncio_client(self):
        async def run():
            async with aioclient.InferenceServerClient(URL) as client:
                self.assertTrue(await client.is_server_ready())
                calls = []
                for model in CASES:
                    inputs, _ = reference(model)
                    calls.append(client.infer(model, make_inputs(inputs, aioclient)))
                results = await asyncio.gather(*calls)
            for model, result in zip(CASES, results):
                for name, want in reference(model)[1].items():
                    assert_close(self, result.as_numpy(name), want, f"{model}:{name}")

        asyncio.run(run())

    # --- streaming ---

    def test_stream_answers_each_request_with_its_id_and_survives_errors(self):
        answers = queue.Queue()
        self.client.start_stream(callback=lambda result, error: answers.put((result, error)))
        try:
            digits, expected = reference("sklearn_digits_rf")
            for i in range(6):
                if i == 3:  # a bad request: the wrong shape
                    bad = {"X": np.zeros((1, 63), np.float32)}
                    self.client.async_stream_infer("sklearn_digits_rf", make_inputs(bad), request_id="bad")
                    continue
                rows = {"X": digits["X"][i : i + 1]}
                self.client.async_stream_infer("sklearn_digits_rf", make_inputs(rows), request_id=str(i))
            got = [answers.get(timeout=60) for _ in range(6)]
        finally:
            self.client.stop_stream()
        errors = [e for _, e in got if e is not None]
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("shape", errors[0].message())
        ids = [r.get_response().id for r, e in got if e is None]
        self.assertEqual(ids, ["0", "1", "2", "4", "5"])
        for result, error in got:
            if error is None:
                i = int(result.get_response().id)
                np.testing.assert_array_equal(result.as_numpy("label"), expected["label"][i : i + 1])

    def test_a_cancelled_stream_leaves_the_server_serving(self):
        client = grpcclient.InferenceServerClient(URL)
        client.start_stream(callback=lambda result, error: None)
        inputs, _ = reference("efficientnet_lite0")
        for i in range(16):
            client.async_stream_infer("efficientnet_lite0", make_inputs(inputs), request_id=str(i))
        client.stop_stream(cancel_requests=True)
        client.close()
        self.assertTrue(self.client.is_server_ready())
        result = self.client.infer("efficientnet_lite0", make_inputs(inputs))
        self.assertEqual(int(np.argmax(result.as_numpy("logits")[0])), TIGER_CAT)

    # --- model control and statistics ---

    def test_repository_unload_load_and_refused_parameters(self):
        index = self.client.get_model_repository_index(as_json=True)["models"]
        self.assertTrue(all(m.get("state") == "READY" for m in index), index)
        self.client.unload_model("all_dtypes")
        self.assertFalse(self.client.is_model_ready("all_dtypes"))
        ready_only = self.client.get_model_repository_index(as_json=True)["models"]
        self.assertNotIn("all_dtypes", [m["name"] for m in ready_only if m.get("state") == "READY"])
        self.client.load_model("all_dtypes")
        self.assertTrue(self.client.is_model_ready("all_dtypes"))
        message = self.assert_code(
            lambda: self.client.load_model("all_dtypes", config='{"max_batch_size": 2}'),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        self.assertIn("config", message)

    def test_statistics_count_what_ran(self):
        before = self.client.get_inference_statistics("sklearn_digits_rf", as_json=True)
        count = lambda stats: int(stats["model_stats"][0]["inference_stats"]["success"].get("count", 0))
        inputs, _ = reference("sklearn_digits_rf")
        for _ in range(3):
            self.client.infer("sklearn_digits_rf", make_inputs(inputs))
        after = self.client.get_inference_statistics("sklearn_digits_rf", as_json=True)
        self.assertEqual(count(after) - count(before), 3)
        stats = after["model_stats"][0]
        self.assertEqual(stats["name"], "sklearn_digits_rf")
        for phase in ("queue", "compute_input", "compute_infer", "compute_output"):
            self.assertGreater(int(stats["inference_stats"][phase].get("ns", 0)), 0, phase)
        self.assertGreater(int(stats["execution_count"]), 0)
        everything = self.client.get_inference_statistics(as_json=True)["model_stats"]
        self.assertGreaterEqual(len(everything), len(CASES))

    # --- errors ---

    def test_error_codes(self):
        inputs, _ = reference("sklearn_digits_rf")
        self.assert_code(lambda: self.client.infer("no_such_model", make_inputs(inputs)),
                         grpc.StatusCode.NOT_FOUND)
        bad = make_inputs({"X": np.zeros((1, 63), np.float32)})
        self.assert_code(lambda: self.client.infer("sklearn_digits_rf", bad),
                         grpc.StatusCode.INVALID_ARGUMENT)
        wrong_type = make_inputs({"X": inputs["X"].astype(np.float64)})
        self.assert_code(lambda: self.client.infer("sklearn_digits_rf", wrong_type),
                         grpc.StatusCode.INVALID_ARGUMENT)
        twice = make_inputs(inputs) + make_inputs(inputs)
        message = self.assert_code(lambda: self.client.infer("sklearn_digits_rf", twice),
                                   grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("appears twice", message)
        negative = [grpcclient.InferInput("X", [-1, 64], "FP32")]
        negative[0]._raw_content = inputs["X"].tobytes()
        message = self.assert_code(lambda: self.client.infer("sklearn_digits_rf", negative),
                                   grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("negative dimension", message)
        rows = MAX_MESSAGE_BYTES // (64 * 4) + 1
        huge = make_inputs({"X": np.zeros((rows, 64), np.float32)})
        self.assert_code(lambda: self.client.infer("sklearn_digits_rf", huge),
                         grpc.StatusCode.RESOURCE_EXHAUSTED)

    def test_a_deadline_that_expires_in_the_queue(self):
        inputs, _ = reference("efficientnet_lite0")
        statistics = lambda: self.client.get_inference_statistics("efficientnet_lite0", as_json=True)
        ran = lambda: int(statistics()["model_stats"][0].get("inference_count", 0))
        # A batch of an earlier test's cancelled requests may still be running.
        wait_until_idle(self, "efficientnet_lite0")
        before = ran()
        answers = queue.Queue()
        # Keep every instance busy with a full batch and wait until a full batch for each of
        # them is queued, then send a request whose deadline passes while it waits: no
        # instance reaches it before a whole batch has run. (Requests arrive while the first
        # batches run, so a third round is sent for the queue to fill.)
        config = self.client.get_model_config("efficientnet_lite0", as_json=True)["config"]
        one_round = int(config["max_batch_size"]) * int(config["instance_group"][0]["count"])
        busy = 3 * one_round
        for _ in range(busy):
            self.client.async_infer(
                "efficientnet_lite0", make_inputs(inputs), lambda result, error: answers.put(error)
            )
        deadline = time.monotonic() + 60
        while queued("efficientnet_lite0") < one_round:
            self.assertLess(time.monotonic(), deadline, "the backlog never queued")
            time.sleep(0.001)
        self.assert_code(
            lambda: self.client.infer("efficientnet_lite0", make_inputs(inputs), client_timeout=0.02),
            grpc.StatusCode.DEADLINE_EXCEEDED,
        )
        errors = [answers.get(timeout=300) for _ in range(busy)]
        self.assertEqual(errors, [None] * busy)
        self.assertEqual(ran() - before, busy, "the expired request was never computed")

    def test_api_key(self):
        inputs, expected = reference("sklearn_digits_rf")
        with grpcclient.InferenceServerClient(AUTH_URL) as client:
            self.assertTrue(client.is_server_live())  # health needs no key
            self.assert_code(lambda: client.infer("sklearn_digits_rf", make_inputs(inputs)),
                             grpc.StatusCode.UNAUTHENTICATED)
            result = client.infer("sklearn_digits_rf", make_inputs(inputs),
                                  headers={"authorization": f"Bearer {API_KEY}"})
            np.testing.assert_array_equal(result.as_numpy("label"), expected["label"])

    # --- other clients ---

    def test_health_checking_protocol(self):
        with grpc.insecure_channel(URL) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            serving = health_pb2.HealthCheckResponse.SERVING
            for service in ("", "inference.GRPCInferenceService", "sklearn_digits_rf"):
                self.assertEqual(health.Check(health_pb2.HealthCheckRequest(service=service)).status,
                                 serving, service)
            with self.assertRaises(grpc.RpcError) as caught:
                health.Check(health_pb2.HealthCheckRequest(service="no_such_model"))
            self.assertEqual(caught.exception.code(), grpc.StatusCode.NOT_FOUND)
            watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
            self.assertEqual(next(watch).status, serving)
            watch.cancel()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--http-url", required=True, help="the same server's HTTP address (metrics)")
    parser.add_argument("--auth-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--shared", required=True)
    parser.add_argument("--max-message-bytes", type=int, required=True)
    args, rest = parser.parse_known_args()
    global URL, HTTP_URL, AUTH_URL, API_KEY, SHARED, MAX_MESSAGE_BYTES
    URL, HTTP_URL, AUTH_URL, API_KEY, SHARED = args.url, args.http_url, args.auth_url, args.api_key, args.shared
    MAX_MESSAGE_BYTES = args.max_message_bytes
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
