"""The worker side of hippo.v1.WorkerService in Python: the same protocol as `hippo worker`.

One bidirectional Session stream. The worker says hello (id, host, devices, memory, trainer
kinds, the attempts it holds, the states it wrote and its checkpoint directory), sends a
Heartbeat every heartbeat_seconds listing the attempts it holds, and trains the assigned stages
one at a time on the thread that called run(), in arrival order: Progress after every step,
CheckpointWritten for each requested state, and at the end the last Progress, the end
CheckpointWritten and StageFinished packed in one Reports message. Cancel stops a running stage
at its next report (StageFinished ok=false, "cancelled by the coordinator") or drops a queued
one; CheckpointAt asks for the state at a later step of a running stage; DeleteCheckpoints names
released files of its directory, which it deletes and confirms (CheckpointsDeleted); Drain makes
the worker refuse new stages, finish what it holds, half-close the stream and return.

When the stream breaks, the worker reconnects with exponential backoff (50 ms doubling to 2 s,
±20 % jitter), says hello again, and re-sends every report of its newest attempts (delivery is
at least once and in order per attempt; the coordinator ignores duplicates). A stage keeps
training while disconnected. Unauthenticated, PermissionDenied and Unimplemented are permanent:
run() raises them.
"""

import collections
import os
import queue
import random
import socket
import threading
import time
import traceback

import grpc

from hippo import errors
from hippo.client import TOKEN_HEADER, default_address, make_channel, read_token
from hippo.v1 import hippo_pb2
from hippo.v1 import hippo_pb2_grpc
from hippo.worker.stage import Cancelled, Stage

_END = object()  # ends a session's request stream (half-close)
_PERMANENT = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
              grpc.StatusCode.UNIMPLEMENTED)
_RESENT_ATTEMPTS = 4  # newest attempts whose reports are re-sent after a reconnect
_MAX_CACHED_STATES = 10_000  # states a hello may list (the coordinator refuses more)


class _AttemptControl:
    """What the session thread tells a running stage: cancelled, and CheckpointAt steps."""

    def __init__(self, states):
        self.cancelled = threading.Event()
        self.requested = set()
        self.states = states  # (stage id, step) -> path, shared by the worker's stages


class Worker:
    """A Python worker serving `train_stage` (see hippo.worker.serve for the arguments)."""

    def __init__(self, train_stage, coordinator=None, name=None, token=None, token_file=None,
                 tls=False, checkpoint_dir="hippo-checkpoints", trainers=("external",),
                 heartbeat_seconds=1.0, max_stages=None, log=None):
        self.train_stage = train_stage
        self.coordinator = coordinator or default_address()
        self.worker_id = name or f"{socket.gethostname()}-{os.getpid()}"
        os.makedirs(checkpoint_dir, exist_ok=True)
        # Canonical, as the coordinator names directories (WorkerHello.checkpoint_dir).
        self.checkpoint_dir = os.path.realpath(checkpoint_dir)
        self.trainers = list(trainers)
        self.heartbeat_seconds = heartbeat_seconds
        self.max_stages = max_stages
        self._log = log or (lambda line: print(f"hippo worker {self.worker_id}: {line}",
                                               flush=True))
        token = read_token(token, token_file)
        self._metadata = ((TOKEN_HEADER, token),) if token else ()
        self._channel = make_channel(self.coordinator, tls)
        self._stub = hippo_pb2_grpc.WorkerServiceStub(self._channel)

        self._lock = threading.Lock()
        self._assigned = collections.deque()  # (Assign, _AttemptControl) waiting to run
        self._wake = threading.Condition(self._lock)
        self._held = {}  # attempt id -> _AttemptControl (queued and running)
        self._reports = collections.OrderedDict()  # attempt id -> [WorkerMessage]
        self._outgoing = None  # the current session's request queue; None while disconnected
        self._call = None
        self._states = {}
        self._stopping = threading.Event()
        self._draining = False
        self._closing = threading.Event()
        self._fatal = None
        self.stats = collections.Counter()

    # -- public --------------------------------------------------------------------------------

    def run(self):
        """Serves until stop(), a completed Drain, or max_stages stages; returns the number of
        stages finished. Raises Unauthenticated (or another HippoError) when the coordinator
        refuses the worker for good."""
        session = threading.Thread(target=self._session_loop, name="hippo-session", daemon=True)
        beat = threading.Thread(target=self._heartbeat_loop, name="hippo-heartbeat", daemon=True)
        session.start()
        beat.start()
        try:
            while True:
                with self._lock:
                    while not self._assigned and not self._done():
                        self._wake.wait(0.5)
                    if self._done() and not self._assigned:
                        break
                    assign, control = self._assigned.popleft()
                self._run_stage(assign, control)
                if self.max_stages is not None and self.stats["finished"] >= self.max_stages:
                    break
        finally:
            if not self._stopping.is_set():
                self._close_gracefully()
            self.stop()
            session.join(timeout=10)
            beat.join(timeout=5)
            self._channel.close()
        if self._fatal is not None:
            raise self._fatal
        return self.stats["finished"]

    def stop(self):
        """Makes run() return soon: cancels the running stage and closes the stream."""
        self._stopping.set()
        with self._lock:
            for control in self._held.values():
                control.cancelled.set()
            self._wake.notify_all()
            call = self._call
            if self._outgoing is not None:
                self._outgoing.put(_END)
        if call is not None:
            call.cancel()

    # -- training ------------------------------------------------------------------------------

    def _done(self):
        return self._stopping.is_set() or (self._draining and not self._held)

    def _run_stage(self, assign, control):
        started = time.monotonic()
        stage = None
        try:
            if control.cancelled.is_set():
                raise Cancelled("cancelled before it started")
            if assign.trainer.kind not in self.trainers:
                raise ValueError(f"trainer.kind {assign.trainer.kind!r}: this worker serves "
                                 f"{', '.join(self.trainers)}")
            stage = Stage(assign, self._parent_state(assign), self.checkpoint_dir,
                          lambda message: self._report(assign.attempt_id, message), control)
            self.train_stage(stage)
            stage.check_cancelled()
            messages = stage._end_reports(time.monotonic() - started)
            self.stats["succeeded"] += 1
        except Cancelled:
            messages = self._failure(stage, assign, "cancelled by the coordinator")
            self.stats["cancelled"] += 1
        except Exception as error:  # a trainer failure fails the attempt, not the worker
            tail = "".join(traceback.format_exception(error)[-6:])
            self._log(f"stage {assign.stage_id} failed: {error!r}")
            messages = self._failure(stage, assign, tail[-2000:])
            self.stats["failed"] += 1
        self._report(assign.attempt_id,
                     hippo_pb2.WorkerMessage(reports=hippo_pb2.Reports(messages=messages)))
        self.stats["finished"] += 1
        with self._lock:
            self._held.pop(assign.attempt_id, None)
            self._wake.notify_all()

    @staticmethod
    def _failure(stage, assign, error):
        if stage is not None:
            return stage._failure_reports(error)
        return [hippo_pb2.WorkerMessage(finished=hippo_pb2.StageFinished(
            attempt_id=assign.attempt_id, ok=False, error=error))]

    def _parent_state(self, assign):
        if assign.parent_state_uri:
            uri = assign.parent_state_uri
            path = uri[len("file://"):] if uri.startswith("file://") else uri
            if not os.path.isfile(path):
                raise FileNotFoundError(f"parent state {uri} of stage {assign.stage_id} is "
                                        f"missing (workers must share the checkpoint directory)")
            return path
        if assign.parent_stage_id == 0:
            if assign.start_step != 0:
                raise ValueError(f"stage {assign.stage_id} starts at step {assign.start_step} "
                                 f"without a parent state")
            return None
        local = self._states.get((assign.parent_stage_id, assign.parent_state_step))
        if local is None or not os.path.isfile(local):
            raise FileNotFoundError(f"no state of stage {assign.parent_stage_id} at step "
                                    f"{assign.parent_state_step} to start stage "
                                    f"{assign.stage_id} from")
        return local

    # -- sending -------------------------------------------------------------------------------

    def _report(self, attempt_id, message):
        """Keeps the report for re-sending and sends it if connected."""
        with self._lock:
            if attempt_id not in self._reports:
                self._reports[attempt_id] = []
                while len(self._reports) > _RESENT_ATTEMPTS:
                    self._reports.popitem(last=False)
            self._reports[attempt_id].append(message)
            if self._outgoing is not None:
                self._outgoing.put(message)

    def _heartbeat_loop(self):
        while not self._stopping.wait(self.heartbeat_seconds):
            with self._lock:
                if self._outgoing is not None:
                    beat = hippo_pb2.Heartbeat(attempt_ids=sorted(self._held))
                    self._outgoing.put(hippo_pb2.WorkerMessage(heartbeat=beat))

    def _hello(self):
        """The hello of a new session; call with the lock held, right before the reports to
        re-send are queued, so that it lists exactly what this session starts with.

        `held` lists the attempts queued or running, and those whose reports are re-sent right
        after it (one that ended while the stream was down stays the worker's until they
        arrive): a restarted coordinator keeps these and takes back at once every other attempt
        it gave this worker, instead of waiting for their leases. `cached_states` lists the
        states this process wrote that are still on disk (the newest, at most
        _MAX_CACHED_STATES): stages that start from them may be sent here without a parent
        state URI."""
        try:
            memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            memory = 0
        held = sorted(set(self._held) | set(self._reports))
        cached = [hippo_pb2.CachedState(stage_id=stage_id, step=step)
                  for (stage_id, step), path in list(self._states.items())  # the trainer adds
                  if os.path.isfile(path)]
        return hippo_pb2.WorkerMessage(hello=hippo_pb2.WorkerHello(
            worker_id=self.worker_id, host=socket.gethostname(),
            devices=[hippo_pb2.Device(name="cpu", memory_bytes=memory)], memory_bytes=memory,
            trainers=self.trainers, cached_states=cached[-_MAX_CACHED_STATES:],
            held=hippo_pb2.HeldAttempts(attempt_ids=held), checkpoint_dir=self.checkpoint_dir))

    # -- the session ---------------------------------------------------------------------------

    def _session_loop(self):
        backoff = 0.05
        while not self._stopping.is_set():
            outgoing = queue.Queue()
            opened = time.monotonic()
            got_message = False
            with self._lock:
                outgoing.put(self._hello())
                for messages in self._reports.values():
                    for message in messages:
                        outgoing.put(message)
                self._outgoing = outgoing
                call = self._call = self._stub.Session(iter(outgoing.get, _END),
                                                       metadata=self._metadata)
            self.stats["sessions"] += 1
            try:
                for message in call:
                    got_message = True
                    self._handle(message, outgoing)
                if self._closing.is_set():
                    return
            except grpc.RpcError as error:
                if error.code() in _PERMANENT:
                    self._fatal = errors.from_grpc(error)
                    self._log(f"refused by the coordinator: {error.details()}")
                    self.stop()
                    return
                if not self._stopping.is_set():
                    self._log(f"stream to {self.coordinator} broke ({error.code().name}); "
                              f"reconnecting")
            finally:
                with self._lock:
                    self._outgoing = None
                    self._call = None
                outgoing.put(_END)
            if got_message or time.monotonic() - opened > 2.0:
                backoff = 0.05
            self._stopping.wait(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, 2.0)

    def _handle(self, message, outgoing):
        which = message.WhichOneof("message")
        if which == "assign":
            assign = message.assign
            with self._lock:
                if assign.attempt_id in self._held:
                    return  # re-sent after a reconnect
                if self._draining or self._stopping.is_set():
                    refusal = hippo_pb2.StageFinished(attempt_id=assign.attempt_id, ok=False,
                                                      error="the worker is draining")
                    outgoing.put(hippo_pb2.WorkerMessage(finished=refusal))
                    return
                control = _AttemptControl(self._states)
                self._held[assign.attempt_id] = control
                self._assigned.append((assign, control))
                self._wake.notify_all()
        elif which == "cancel":
            with self._lock:
                control = self._held.get(message.cancel.attempt_id)
                if control is not None:
                    control.cancelled.set()
        elif which == "checkpoint_at":
            with self._lock:
                control = self._held.get(message.checkpoint_at.attempt_id)
                if control is not None:
                    control.requested.add(message.checkpoint_at.step)
        elif which == "delete_checkpoints":
            self._delete_checkpoints(message.delete_checkpoints.uris, outgoing)
        elif which == "drain":
            with self._lock:
                self._draining = True
                self._wake.notify_all()

    def _delete_checkpoints(self, uris, outgoing):
        """Deletes released checkpoint files of this worker's directory and confirms them. A uri
        outside the directory, or a file that cannot be deleted, is not confirmed: the
        coordinator keeps it as garbage and asks again later. Not kept while disconnected: the
        coordinator sends the deletions again after a hello."""
        deleted = []
        for uri in uris:
            path = uri[len("file://"):] if uri.startswith("file://") else ""
            if os.path.dirname(path) != self.checkpoint_dir or \
                    not os.path.basename(path).startswith("stage-"):
                self._log(f"cannot delete released checkpoint {uri!r}: not in "
                          f"{self.checkpoint_dir}")
                continue
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as error:
                self._log(f"cannot delete released checkpoint {uri!r}: {error}")
                continue
            deleted.append(uri)
        if deleted:
            with self._lock:
                for key, path in list(self._states.items()):
                    if "file://" + path in deleted:
                        del self._states[key]
            self.stats["checkpoints_deleted"] += len(deleted)
            outgoing.put(hippo_pb2.WorkerMessage(
                deleted=hippo_pb2.CheckpointsDeleted(uris=deleted)))

    def _close_gracefully(self):
        """After a Drain or max_stages: everything held is reported; half-close the stream
        (the queued reports go first) and let the coordinator end the call."""
        self._closing.set()
        with self._lock:
            if self._outgoing is not None:
                self._outgoing.put(_END)
            call = self._call
        deadline = time.monotonic() + 5.0
        while call is not None and call.is_active() and time.monotonic() < deadline:
            time.sleep(0.02)


def serve(train_stage, coordinator=None, name=None, token=None, token_file=None, tls=False,
          checkpoint_dir="hippo-checkpoints", trainers=("external",), heartbeat_seconds=1.0,
          max_stages=None, log=None):
    """Serves stages of trainer kind ``external`` with `train_stage` until drained or
    interrupted; returns the number of stages finished.

    Args:
        train_stage: called with a hippo.worker.Stage for each assigned stage (see Stage).
        coordinator: host:port; default $HIPPO_COORDINATOR, else 127.0.0.1:50051.
        name: the worker id, stable across reconnects (default host-pid).
        token, token_file, tls: as hippo.connect.
        checkpoint_dir: where states are written; workers that continue each other's stages
            must share it (same path).
        trainers: the trainer kinds served (a stage of another kind fails).
        heartbeat_seconds: how often the held attempts are renewed.
        max_stages: return after this many stages (None: no limit).
        log: a function taking one line (default: print).
    """
    worker = Worker(train_stage, coordinator=coordinator, name=name, token=token,
                    token_file=token_file, tls=tls, checkpoint_dir=checkpoint_dir,
                    trainers=trainers, heartbeat_seconds=heartbeat_seconds,
                    max_stages=max_stages, log=log)
    try:
        return worker.run()
    except KeyboardInterrupt:
        worker.stop()
        return worker.stats["finished"]
