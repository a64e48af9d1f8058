#!/usr/bin/env python3
"""KServe's own gRPC client (`kserve.InferenceGRPCClient`) against a running destino server:
health, and the random forest's reference outputs. Apart from test_tritonclient_grpc.py
because both clients register the `inference` protocol in protobuf's descriptor pool.

    python tests/python/test_kserve_grpc.py --url 127.0.0.1:PORT --shared DIR
"""

import argparse
import asyncio
import os
import sys

import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest


async def check(url, shared):
    load = lambda name: np.load(os.path.join(shared, name))
    x = load("sklearn_digits_rf.input.npy")
    client = InferenceGRPCClient(url)
    try:
        assert await client.is_server_live()
        assert await client.is_server_ready()
        assert await client.is_model_ready("sklearn_digits_rf")
        tensor = InferInput("X", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=True)
        request = InferRequest(model_name="sklearn_digits_rf", infer_inputs=[tensor], request_id="k1")
        response = await client.infer(request)
    finally:
        await client.close()
    assert response.id == "k1", response.id
    outputs = {o.name: o.as_numpy() for o in response.outputs}
    np.testing.assert_array_equal(outputs["label"], load("sklearn_digits_rf.output.label.npy"))
    np.testing.assert_allclose(
        outputs["probabilities"], load("sklearn_digits_rf.output.probabilities.npy"), rtol=1e-3, atol=1e-4
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--shared", required=True)
    args = parser.parse_args()
    asyncio.run(check(args.url, args.shared))
    print("kserve InferenceGRPCClient: OK", file=sys.stderr)


if __name__ == "__main__":
    main()
