"""The SDK worker's side of WorkerService against a scripted coordinator on a loopback port:
hello first, Progress per step, a CheckpointAt honoured mid-stage, the end of a stage packed
as one Reports (last Progress, end checkpoint, StageFinished), heartbeats naming the held
attempt, a stage of another trainer kind refused, and Drain ending run()."""

import queue
import threading
from concurrent import futures

import grpc
from google.protobuf import struct_pb2

import hippo.worker
from hippo.v1 import hippo_pb2
from hippo.v1 import hippo_pb2_grpc


class ScriptedCoordinator(hippo_pb2_grpc.WorkerServiceServicer):
    """Records what the worker sends; the test pushes CoordinatorMessages into `to_worker`."""

    def __init__(self):
        self.received = queue.Queue()
        self.heartbeats = queue.Queue()
        self.to_worker = queue.Queue()

    def Session(self, request_iterator, context):
        def read():
            for message in request_iterator:
                is_beat = message.WhichOneof("message") == "heartbeat"
                (self.heartbeats if is_beat else self.received).put(message)
            self.received.put(None)  # the worker half-closed
            self.to_worker.put(None)

        threading.Thread(target=read, daemon=True).start()
        while True:
            message = self.to_worker.get()
            if message is None:
                return
            yield message

    def next(self, kind, timeout=30):
        """The next message (heartbeats aside), which must be of `kind`."""
        message = self.received.get(timeout=timeout)
        assert message is not None, f"stream closed while waiting for {kind}"
        assert message.WhichOneof("message") == kind, message
        return message


def assign(attempt_id, stage_id, start, end, kind="external"):
    return hippo_pb2.CoordinatorMessage(assign=hippo_pb2.Assign(
        attempt_id=attempt_id, stage_id=stage_id, start_step=start, end_step=end,
        parameters=[hippo_pb2.ParameterSegments(name="lr", segments=[
            hippo_pb2.Segment(start=start, end=end, constant=0.5)])],
        static_parameters={"width": struct_pb2.Value(number_value=64)},
        trainer=hippo_pb2.TrainerSpec(kind=kind, seed=3), checkpoint_steps=[end],
        lease_seconds=10))


def test_protocol_with_a_scripted_coordinator(tmp_path):
    coordinator = ScriptedCoordinator()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    hippo_pb2_grpc.add_WorkerServiceServicer_to_server(coordinator, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    first_step = threading.Event()
    go_on = threading.Event()
    stages = []

    def train_stage(stage):
        stages.append(stage)
        for step in stage.steps():
            assert stage.hparams["lr"](step) == 0.5
            stage.report(step, loss=float(step))
            if step == 0:
                first_step.set()
                assert go_on.wait(30)
            if stage.checkpoint_due(step + 1):
                stage.checkpoint(step + 1, lambda path: open(path, "w").write(str(step + 1)))

    worker = hippo.worker.Worker(train_stage, coordinator=f"127.0.0.1:{port}", name="scripted",
                                 checkpoint_dir=str(tmp_path / "ckpt"), heartbeat_seconds=0.1,
                                 log=lambda line: None)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        hello = coordinator.received.get(timeout=30)
        assert hello.WhichOneof("message") == "hello"
        assert hello.hello.worker_id == "scripted" and list(hello.hello.trainers) == ["external"]

        coordinator.to_worker.put(assign(7, 42, 0, 6))
        assert first_step.wait(30)
        coordinator.to_worker.put(hippo_pb2.CoordinatorMessage(
            checkpoint_at=hippo_pb2.CheckpointAt(attempt_id=7, step=3)))
        while not list(coordinator.heartbeats.get(timeout=30).heartbeat.attempt_ids):
            pass  # a beat from before the Assign
        assert list(coordinator.heartbeats.get(timeout=30).heartbeat.attempt_ids) == [7]
        go_on.set()

        steps = [coordinator.next("progress").progress.step for _ in range(3)]
        assert steps == [0, 1, 2]
        checkpoint = coordinator.next("checkpoint").checkpoint
        assert (checkpoint.attempt_id, checkpoint.stage_id, checkpoint.step) == (7, 42, 3)
        assert checkpoint.uri.endswith("/stage-42-step-3.ckpt")
        assert checkpoint.checksum.startswith("crc32:") and checkpoint.size_bytes == 1
        assert [coordinator.next("progress").progress.step for _ in range(2)] == [3, 4]
        packed = coordinator.next("reports").reports.messages
        assert [m.WhichOneof("message") for m in packed] == ["progress", "checkpoint",
                                                            "finished"]
        assert packed[0].progress.step == 5 and packed[1].checkpoint.step == 6
        assert packed[2].finished.ok and packed[2].finished.attempt_id == 7
        assert stages[0].parent_state is None and stages[0].seed == 3
        assert stages[0].static_params == {"width": 64.0}

        # A stage of a trainer kind this worker does not serve fails, naming the kind.
        coordinator.to_worker.put(assign(8, 43, 0, 2, kind="torch"))
        refused = coordinator.next("reports").reports.messages[-1].finished
        assert not refused.ok and "trainer.kind 'torch'" in refused.error

        # Drain: the worker finishes what it holds, half-closes, and run() returns.
        coordinator.to_worker.put(hippo_pb2.CoordinatorMessage(drain=hippo_pb2.Drain()))
        assert coordinator.received.get(timeout=30) is None  # half-closed
        thread.join(timeout=30)
        assert not thread.is_alive()
        assert worker.stats["succeeded"] == 1 and worker.stats["failed"] == 1
    finally:
        worker.stop()
        thread.join(timeout=30)
        server.stop(0)
