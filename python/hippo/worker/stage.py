"""The Stage handed to a user's train_stage(stage): one assigned range of steps of a family's
training run, with its hyper-parameters, its start state and the means to report.

The contract: train steps ``stage.start_step`` .. ``stage.end_step - 1`` starting from the state
at ``stage.parent_state`` (None at the root: a fresh model from the trainer's seed), call
``stage.report(step, **metrics)`` after each step, write the state whenever
``stage.checkpoint_due(step + 1)`` says so with ``stage.checkpoint(step + 1, save)``, and end with
the state at ``end_step`` saved (by ``stage.checkpoint(stage.end_step, save)``, or by writing
the file ``stage.state_path`` before returning). A trainer that wants staged runs to equal a
straight run keeps everything later steps depend on in that state and never reads the stage,
the worker or the clock.
"""

import os
import threading
import zlib

from google.protobuf import json_format

from hippo.schedule import Schedule, scalar
from hippo.v1 import hippo_pb2


class Cancelled(Exception):
    """Raised inside train_stage (by report(), steps() or check_cancelled()) when the
    coordinator cancelled the stage or the worker is stopping; let it propagate."""


def _file_checksum(path):
    crc, size = 0, 0
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
    return size, f"crc32:{crc:08x}"


class Stage:
    """One assigned stage. Attributes:

    start_step, end_step: train steps [start_step, end_step) (absolute, from 0).
    hparams: name -> Schedule for sequence hyper-parameters; ``stage.hparams["lr"](step)``.
    static_params: name -> value (number, string or bool) for the family's static parameters.
    parent_state: path of the state at start_step to start from, or None at the root.
    state_path: where the state at end_step goes.
    seed, config: TrainerSpec.seed and TrainerSpec.config (a dict) of the study.
    stage_id, attempt_id: identify the work for logs only (training must not depend on them).
    parent_stage_id, parent_state_step: the stage whose state at that step this stage starts
        from (0 and 0 at the root). A worker that kept that stage's model in memory after
        training it to that step may continue it instead of loading parent_state, so long as
        no other stage trained the same objects since.
    """

    def __init__(self, assign, parent_state, checkpoint_dir, send, attempt_control):
        self.attempt_id = assign.attempt_id
        self.stage_id = assign.stage_id
        self.start_step, self.end_step = assign.start_step, assign.end_step
        self.hparams = {p.name: Schedule.from_proto(p.segments) for p in assign.parameters}
        self.static_params = {name: scalar(v) for name, v in assign.static_parameters.items()}
        self.seed = assign.trainer.seed
        self.trainer_kind = assign.trainer.kind
        self.config = json_format.MessageToDict(assign.trainer.config)
        self.parent_state = parent_state
        self.parent_stage_id = assign.parent_stage_id
        self.parent_state_step = assign.parent_state_step
        self.checkpoint_dir = checkpoint_dir
        self.state_path = self.checkpoint_path(self.end_step)
        self._checkpoint_steps = set(assign.checkpoint_steps) | {self.end_step}
        self._send = send
        self._control = attempt_control
        self._last_step = self.start_step - 1
        self._written = {}  # step -> (uri, size, checksum)
        self._held_progress = None  # the last step's Progress, sent with the end of the stage

    # -- hyper-parameters ---------------------------------------------------------------------

    def params(self, step):
        """Every hyper-parameter's value while training `step`: sequences evaluated at it,
        static parameters as they are."""
        values = dict(self.static_params)
        values.update({name: schedule(step) for name, schedule in self.hparams.items()})
        return values

    # -- control -------------------------------------------------------------------------------

    @property
    def cancelled(self):
        """True once the coordinator cancelled the stage (or the worker is stopping)."""
        return self._control.cancelled.is_set()

    def check_cancelled(self):
        """Raises Cancelled if the stage was cancelled."""
        if self._control.cancelled.is_set():
            raise Cancelled(f"stage {self.stage_id} cancelled by the coordinator")

    def steps(self):
        """The steps to train, in order; raises Cancelled between steps once cancelled."""
        for step in range(self.start_step, self.end_step):
            self.check_cancelled()
            yield step

    # -- reports -------------------------------------------------------------------------------

    def report(self, step, metrics=None, **more):
        """Reports the metrics measured after training `step` (numbers by name), e.g.
        ``stage.report(step, loss=0.3, val_accuracy=0.9)``. Steps are reported in increasing
        order within [start_step, end_step). Raises Cancelled if the stage was cancelled."""
        self.check_cancelled()
        step = int(step)
        if not self.start_step <= step < self.end_step or step <= self._last_step:
            raise ValueError(f"report: step {step} is outside [{self.start_step}, "
                             f"{self.end_step}) or not after the last reported "
                             f"{self._last_step}")
        values = dict(metrics or {})
        values.update(more)
        progress = hippo_pb2.Progress(attempt_id=self.attempt_id, step=step,
                                      metrics={k: float(v) for k, v in values.items()})
        self._last_step = step
        message = hippo_pb2.WorkerMessage(progress=progress)
        if step == self.end_step - 1:
            self._held_progress = message  # goes with the end checkpoint and StageFinished
        else:
            self._send(message)

    @property
    def last_reported_step(self):
        """The last step reported (start_step - 1 before any)."""
        return self._last_step

    # -- checkpoints ---------------------------------------------------------------------------

    def checkpoint_path(self, step):
        """Where the state at `step` of this stage is written."""
        return os.path.join(self.checkpoint_dir, f"stage-{self.stage_id}-step-{step}.ckpt")

    def checkpoint_due(self, step):
        """Whether the state at `step` (after `step` steps) must be written: the end of the
        stage, a split point the coordinator named in the Assign, or a CheckpointAt."""
        return step in self._checkpoint_steps or step in self._control.requested

    def checkpoint(self, step, save):
        """Writes the state at `step` by calling ``save(path)`` (atomically: `save` writes a
        temporary file that is renamed), and tells the coordinator. Returns the final path.
        `save` may return the file's (size in bytes, "crc32:%08x" of its bytes), as
        hippo.worker.save_state does, to spare reading the file again for its checksum; a
        size that is not the file's is ignored and the file read."""
        step = int(step)
        if not self.start_step < step <= self.end_step:
            raise ValueError(f"checkpoint: step {step} is outside ({self.start_step}, "
                             f"{self.end_step}]")
        path = self.checkpoint_path(step)
        temporary = os.path.join(self.checkpoint_dir,
                                 f".stage-{self.stage_id}-step-{step}.{os.getpid()}."
                                 f"{threading.get_ident()}.tmp")
        written = save(temporary)
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())
            size = os.fstat(file.fileno()).st_size
        os.replace(temporary, path)
        known = None
        if (isinstance(written, tuple) and len(written) == 2 and written[0] == size
                and isinstance(written[1], str) and written[1].startswith("crc32:")):
            known = written
        self._register(step, path, known)
        return path

    def _register(self, step, path, known=None):
        size, checksum = known or _file_checksum(path)
        self._written[step] = ("file://" + os.path.abspath(path), size, checksum)
        self._control.states[(self.stage_id, step)] = os.path.abspath(path)
        if step != self.end_step:
            self._send(self._checkpoint_message(step))

    def _checkpoint_message(self, step):
        uri, size, checksum = self._written[step]
        return hippo_pb2.WorkerMessage(checkpoint=hippo_pb2.CheckpointWritten(
            attempt_id=self.attempt_id, stage_id=self.stage_id, step=step, uri=uri,
            size_bytes=size, checksum=checksum))

    def _end_reports(self, seconds):
        """The packed end of a successful stage: last Progress, end checkpoint, StageFinished.
        Registers a state file the trainer wrote at state_path itself."""
        if self.end_step not in self._written:
            if not os.path.isfile(self.state_path):
                raise RuntimeError(
                    f"train_stage returned without saving the state at step {self.end_step}: "
                    f"call stage.checkpoint(stage.end_step, save) or write stage.state_path")
            self._register(self.end_step, self.state_path)
        messages = [m for m in (self._held_progress,) if m is not None]
        messages.append(self._checkpoint_message(self.end_step))
        messages.append(hippo_pb2.WorkerMessage(finished=hippo_pb2.StageFinished(
            attempt_id=self.attempt_id, ok=True, seconds=seconds)))
        return messages

    def _failure_reports(self, error):
        """The end of a failed stage: any held Progress, then StageFinished(ok=False)."""
        messages = [m for m in (self._held_progress,) if m is not None]
        messages.append(hippo_pb2.WorkerMessage(finished=hippo_pb2.StageFinished(
            attempt_id=self.attempt_id, ok=False, error=error)))
        return messages

    def __repr__(self):
        return f"Stage(id={self.stage_id}, steps=[{self.start_step}, {self.end_step}), " \
               f"parent_state={self.parent_state!r})"
