"""A study on the coordinator: its state, trials, best trial, stage tree, live events and
ask/tell.

A Study handle holds the last view the coordinator sent (``study.state``, ``study.info``);
``refresh()`` fetches a new one. Reads such as ``study.trials`` always ask the coordinator.
"""

import random
import sys
import time

import grpc

from hippo import errors
from hippo.schedule import Schedule, parameter_value
from hippo.v1 import hippo_pb2

_STUDY_STATES = {
    hippo_pb2.STUDY_PENDING: "PENDING", hippo_pb2.STUDY_RUNNING: "RUNNING",
    hippo_pb2.STUDY_COMPLETED: "COMPLETED", hippo_pb2.STUDY_STOPPED: "STOPPED",
    hippo_pb2.STUDY_FAILED: "FAILED",
}
_TRIAL_STATES = {
    hippo_pb2.TRIAL_RUNNING: "RUNNING", hippo_pb2.TRIAL_COMPLETED: "COMPLETED",
    hippo_pb2.TRIAL_STOPPED: "PRUNED", hippo_pb2.TRIAL_FAILED: "FAILED",
    hippo_pb2.TRIAL_PAUSED: "PAUSED",
}
_STAGE_STATES = {
    hippo_pb2.STAGE_PENDING: "PENDING", hippo_pb2.STAGE_READY: "READY",
    hippo_pb2.STAGE_RUNNING: "RUNNING", hippo_pb2.STAGE_DONE: "DONE",
    hippo_pb2.STAGE_FAILED: "FAILED",
}
TERMINAL_STATES = ("COMPLETED", "STOPPED", "FAILED")


def _int_parameters(spec):
    return {p.name for p in spec.search_space.parameters if p.WhichOneof("kind") == "int"}


def _sequence_parameters(spec):
    return {p.name for p in spec.search_space.parameters if p.WhichOneof("kind") == "sequence"}


def _plain(value):
    """A constant Schedule (how the coordinator holds a searched number) as its number."""
    if isinstance(value, Schedule) and value.segments and all(
            s.kind == "constant" and s.a == value.segments[0].a for s in value.segments):
        return value.segments[0].a
    return value


class Trial:
    """A trial as the coordinator reports it.

    Attributes:
        number: the trial's number in its study (0, 1, ...).
        state: "RUNNING", "COMPLETED", "PRUNED" (stopped early), "FAILED" or "PAUSED".
        params: name -> value; a sequence parameter is a hippo.Schedule (call it with a step),
            as is a number whose value changed during training (PBT).
        value: the latest value of the objective metric, or None.
        reached_step: steps trained; target_step: steps it should reach.
        metrics: name -> [(step, value), ...] in step order (when fetched with metrics).
        path: the stage ids from the root of the stage tree to its leaf.
    """

    def __init__(self, message, spec=None, metrics=None):
        ints = _int_parameters(spec) if spec is not None else set()
        sequences = _sequence_parameters(spec) if spec is not None else set()
        self.proto = message
        self.number = message.id
        self.state = _TRIAL_STATES.get(message.state, "UNSPECIFIED")
        self.params = {}
        for name, value in message.parameters.items():
            value = parameter_value(value)
            if name not in sequences:
                value = _plain(value)
            self.params[name] = int(value) if name in ints and isinstance(value, float) else value
        self.value = message.objective_value if message.has_objective_value else None
        self.reached_step = message.reached_step
        self.target_step = message.target_step
        self.path = list(message.path)
        self.metrics = {}
        for metric in metrics or ():
            for name, value in metric.values.items():
                self.metrics.setdefault(name, []).append((metric.step, value))
        for history in self.metrics.values():
            history.sort()

    def history(self, name):
        """[(step, value), ...] of one metric."""
        return list(self.metrics.get(name, ()))

    def __repr__(self):
        return f"Trial(number={self.number}, state={self.state}, value={self.value}, " \
               f"params={self.params})"


class TreeStage:
    """One stage of the stage tree: steps [start_step, end_step) shared by ``trial_ids``.

    A ``DONE`` stage was trained; ``checkpoint_uri`` names its end state's file while that is
    kept, and is empty once checkpoint collection deleted it (or it was lost): ``state_kept``.
    """

    def __init__(self, message):
        self.proto = message
        self.id, self.parent_id = message.id, message.parent_id
        self.start_step, self.end_step = message.start_step, message.end_step
        self.state = _STAGE_STATES.get(message.state, "UNSPECIFIED")
        self.attempts, self.worker = message.attempts, message.worker
        self.checkpoint_uri = message.checkpoint_uri
        self.state_kept = bool(message.checkpoint_uri)
        self.trial_ids = list(message.trial_ids)

    def __repr__(self):
        return f"TreeStage(id={self.id}, parent={self.parent_id}, steps=[{self.start_step}, " \
               f"{self.end_step}), state={self.state}, trials={self.trial_ids})"


class StageTree:
    """The study's stage tree: ``stages``, step counts and (when asked) Graphviz ``dot``.

    ``trial_steps`` is what trial-by-trial training would run, ``unique_steps`` the steps of
    the tree (each shared prefix once), ``executed_steps`` what workers actually trained,
    ``reached_trial_steps`` the trial-by-trial steps of the work done so far (each trial up to
    the step it reached).
    """

    def __init__(self, message):
        self.proto = message
        self.stages = [TreeStage(stage) for stage in message.stages]
        self.trial_steps = message.steps.trial_steps
        self.unique_steps = message.steps.unique_steps
        self.executed_steps = message.steps.executed_steps
        self.recomputed_steps = message.steps.recomputed_steps
        self.reached_trial_steps = message.steps.reached_trial_steps
        self.dot = message.dot or None

    @property
    def savings(self):
        """reached_trial_steps / executed_steps: how many times fewer steps stage sharing
        trained for the work done so far (for a finished study: trial_steps / executed_steps)."""
        return self.reached_trial_steps / self.executed_steps if self.executed_steps else None


class Event:
    """One live event of study.watch(), with the study's view at that time (``state``,
    ``trials_completed``, ``trials_total``, ``study``: the hippo.v1.Study).

    ``trial`` (a Trial) is set when a trial is new or changed, and on a metric event;
    ``metric`` is ``(step, {name: value})`` when metrics of ``trial`` arrived for a step. Neither
    set: the study's own view changed. A watch started (or reconnected) late first replays the
    study, every trial and every metric so far.
    """

    def __init__(self, message, spec):
        self.proto = message
        self.study = message.study
        self.state = _STUDY_STATES.get(message.study.state, "UNSPECIFIED")
        self.trials_total = message.study.trials_total
        self.trials_completed = message.study.trials_completed
        self.trial = Trial(message.trial, spec) if message.HasField("trial") else None
        self.metric = ((message.metric.step, dict(message.metric.values))
                       if message.HasField("metric") else None)

    def __repr__(self):
        return f"Event(state={self.state}, trials={self.trials_completed}/{self.trials_total})"


class Study:
    """A handle on one study. Get one from client.create_study / get_study / list_studies."""

    def __init__(self, client, message, pruner=None):
        from hippo.ask_tell import MedianPruner

        self._client = client
        self._update(message)
        self.pruner = pruner if pruner is not None else MedianPruner()
        self._told = {}  # trial number -> {step: objective value}, for the pruner
        self._completed = set()
        self._history_loaded = False

    def _update(self, message):
        self.info = message
        self.id = message.id
        self.spec = message.spec

    # -- views ---------------------------------------------------------------------------------

    @property
    def name(self):
        """The spec's name."""
        return self.spec.name

    @property
    def state(self):
        """"PENDING", "RUNNING", "COMPLETED", "STOPPED" or "FAILED" as of the last view."""
        return _STUDY_STATES.get(self.info.state, "UNSPECIFIED")

    @property
    def direction(self):
        """"minimize" or "maximize"."""
        return "maximize" if self.spec.objective.direction == hippo_pb2.MAXIMIZE else "minimize"

    @property
    def metric(self):
        """The objective metric's name."""
        return self.spec.objective.metric

    def refresh(self):
        """Fetches the study's current view; returns self."""
        self._update(self._client.call("GetStudy", hippo_pb2.GetStudyRequest(study_id=self.id)))
        return self

    def stop(self, reason=""):
        """Stops the study (running stages are cancelled); returns self."""
        request = hippo_pb2.StopStudyRequest(study_id=self.id, reason=reason)
        self._update(self._client.call("StopStudy", request))
        return self

    def get_trials(self, with_metrics=True):
        """Every trial, with metric histories when `with_metrics` (read a page at a time)."""
        request = hippo_pb2.ListTrialsRequest(study_id=self.id, with_metrics=with_metrics,
                                              page_size=1000)
        trials = []
        for page in self._client.pages("ListTrials", request):
            metrics = {m.trial_id: m.metrics for m in page.metrics}
            trials.extend(Trial(t, self.spec, metrics.get(t.id)) for t in page.trials)
        return trials

    @property
    def trials(self):
        """Every trial with its parameters and metric histories (see Trial)."""
        return self.get_trials(with_metrics=True)

    @property
    def best_trial(self):
        """The best trial so far by the objective (``.value``, ``.params``); NotFound if no
        trial has a value yet."""
        request = hippo_pb2.GetBestTrialRequest(study_id=self.id)
        return Trial(self._client.call("GetBestTrial", request), self.spec)

    @property
    def best_value(self):
        """The best trial's objective value."""
        return self.best_trial.value

    @property
    def best_params(self):
        """The best trial's parameters."""
        return self.best_trial.params

    def stage_tree(self, dot=False):
        """The stage tree (StageTree), with Graphviz text in ``.dot`` when `dot`."""
        request = hippo_pb2.GetStageTreeRequest(study_id=self.id, dot=dot)
        tree = None
        for page in self._client.pages("GetStageTree", request):
            if tree is None:
                tree = page
            else:
                tree.stages.extend(page.stages)
        tree.next_page_token = ""
        return StageTree(tree)

    def trials_dataframe(self):
        """The trials as a pandas DataFrame: number, state, value, reached_step and one
        ``params_<name>`` column per parameter (a sequence shows as its Schedule).
        Needs pandas (Debian: python3-pandas)."""
        try:
            import pandas
        except ImportError:
            raise errors.HippoError("trials_dataframe needs pandas (apt-get install "
                                    "python3-pandas)") from None
        rows = []
        for trial in self.get_trials(with_metrics=False):
            row = {"number": trial.number, "state": trial.state, "value": trial.value,
                   "reached_step": trial.reached_step}
            for name, value in sorted(trial.params.items()):
                row[f"params_{name}"] = value
            rows.append(row)
        return pandas.DataFrame(rows)

    # -- waiting -------------------------------------------------------------------------------

    def watch(self, reconnect_timeout=60.0):
        """Yields an Event for each change of the study, its trials and their metrics, until
        the study ends.

        When the coordinator goes away (restart, network) it reconnects with backoff for up to
        `reconnect_timeout` seconds, then raises Unavailable.
        """
        backoff, down_since = 0.05, None
        while True:
            try:
                stream = self._client.stream("WatchStudy",
                                             hippo_pb2.WatchStudyRequest(study_id=self.id))
                for message in stream:
                    backoff, down_since = 0.05, None
                    self._update(message.study)
                    yield Event(message, self.spec)
                # The server ends the stream when the study ends (or when it stops serving).
                if self.refresh().state in TERMINAL_STATES:
                    return
            except grpc.RpcError as error:
                if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
                                        grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
                    raise errors.from_grpc(error) from None
            except errors.Unavailable:
                pass
            now = time.monotonic()
            down_since = down_since or now
            if now - down_since > reconnect_timeout:
                raise errors.Unavailable(f"coordinator {self._client.address} unreachable for "
                                         f"{reconnect_timeout:.0f} s while watching {self.id}")
            time.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, 2.0)

    def wait(self, progress=None, timeout=None, reconnect_timeout=60.0):
        """Blocks until the study ends; returns self (refreshed).

        progress: None shows a tqdm bar of finished trials (with the best objective so far)
        when stderr is a terminal; True always; False never. timeout: seconds before
        TimeoutError (None: no limit). Survives a coordinator restart (see watch()).
        """
        show = sys.stderr.isatty() if progress is None else bool(progress)
        bar = None
        if show:
            from tqdm import tqdm
            bar = tqdm(total=max(self.info.trials_total, 1), unit="trial",
                       desc=self.name or self.id)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self.refresh()
            self._show(bar, self.info)
            if self.state in TERMINAL_STATES:
                return self
            for event in self.watch(reconnect_timeout=reconnect_timeout):
                self._show(bar, event.study)
                if event.state in TERMINAL_STATES:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"study {self.id} still {event.state} after {timeout} s")
            return self
        finally:
            if bar is not None:
                bar.close()

    @classmethod
    def _show(cls, bar, study):
        """Moves the progress bar (if any) to `study`'s counts and best value."""
        if bar is None or (bar.n, bar.total) == (study.trials_completed,
                                                 max(study.trials_total, 1)):
            return
        bar.total = max(study.trials_total, 1)
        bar.n = study.trials_completed
        bar.set_postfix(best=cls._best_text(study), refresh=False)
        bar.refresh()

    @staticmethod
    def _best_text(study):
        best = study.best_trial
        return f"{best.objective_value:.4g}" if best.has_objective_value else "-"

    # -- ask/tell (algorithm: external) -------------------------------------------------------

    def ask(self):
        """Asks the coordinator for a new trial (algorithm external); returns an AskedTrial
        with ``params``, ``report(value, step)`` and ``should_prune()``. InvalidState when the
        study has ended or its budget is used up."""
        return self.ask_many(1)[0]

    def ask_many(self, count):
        """Asks for `count` trials in one call."""
        from hippo.ask_tell import AskedTrial

        response = self._client.call("Ask", hippo_pb2.AskRequest(study_id=self.id, count=count))
        return [AskedTrial(self, trial) for trial in response.trials]

    def tell(self, trial, value=None, state=None):
        """Ends an asked trial, as Optuna's study.tell.

        study.tell(trial, 0.93) completes it with that objective value (at its last step,
        budget.max_steps - 1, unless it reported that step already); study.tell(trial,
        state="pruned") or state="fail" ends it without one. Telling a trial twice raises
        InvalidState.
        """
        from hippo.ask_tell import tell

        tell(self, trial, value, state)

    def _report(self, trial_number, step, values, final_state=None):
        request = hippo_pb2.TellRequest(study_id=self.id, trial_id=trial_number, step=step,
                                        values=values, final_state=final_state or 0)
        self._client.call("Tell", request)

    def __repr__(self):
        return f"Study(id={self.id!r}, name={self.name!r}, state={self.state})"
