#!/usr/bin/env python3
"""grpc.health.v1 Check, as a Kubernetes gRPC probe asks it.

    python tests/python/health_check.py HOST:PORT [SERVICE]

Prints the status and exits 0 when it is SERVING, 1 otherwise.
"""

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def status(address, service="", timeout=30):
    """The status name `address` answers for `service`; raises grpc.RpcError on failure."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)


if __name__ == "__main__":
    answer = status(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "")
    print(f"gRPC health: {answer}")
    sys.exit(0 if answer == "SERVING" else 1)
