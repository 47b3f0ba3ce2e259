"""The client tries a StudyService call that fails UNAVAILABLE again, and no other failure.

The server here is a stand-in StudyService in this process (a real gRPC server on a loopback
port) that fails its first calls as told, so that the test decides what the client meets.
"""

from concurrent import futures

import grpc
import pytest

import hippo
from hippo.v1 import hippo_pb2
from hippo.v1 import hippo_pb2_grpc


class FailingFirstCalls(hippo_pb2_grpc.StudyServiceServicer):
    """ListStudies fails with `code` for its first `failures` calls, then answers."""

    def __init__(self, code, failures):
        self.code, self.failures, self.calls = code, failures, 0

    def ListStudies(self, request, context):
        self.calls += 1
        if self.calls <= self.failures:
            context.abort(self.code, f"failure {self.calls} of {self.failures}")
        return hippo_pb2.ListStudiesResponse()


@pytest.fixture
def serve():
    servers = []

    def start(servicer):
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        hippo_pb2_grpc.add_StudyServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in servers:
        server.stop(grace=None)


def test_a_call_that_fails_unavailable_is_tried_again(serve):
    servicer = FailingFirstCalls(grpc.StatusCode.UNAVAILABLE, failures=2)
    client = hippo.connect(serve(servicer), timeout=10)
    assert client.list_studies() == []
    assert servicer.calls == 3


def test_a_coordinator_that_stays_unavailable_raises_after_four_tries(serve):
    servicer = FailingFirstCalls(grpc.StatusCode.UNAVAILABLE, failures=100)
    client = hippo.connect(serve(servicer), timeout=10)
    with pytest.raises(hippo.Unavailable, match="failure 4 of 100"):
        client.list_studies()
    assert servicer.calls == 4


def test_other_failures_are_not_tried_again(serve):
    servicer = FailingFirstCalls(grpc.StatusCode.INVALID_ARGUMENT, failures=1)
    client = hippo.connect(serve(servicer), timeout=10)
    with pytest.raises(hippo.InvalidArgument):
        client.list_studies()
    assert servicer.calls == 1
