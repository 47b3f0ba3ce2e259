"""Ask/tell for studies with algorithm ``external``, shaped like Optuna's:

    trial = study.ask()
    for step in range(max_steps):
        trial.report(loss, step)
        if trial.should_prune():
            study.tell(trial, state="pruned"); break
    else:
        study.tell(trial, loss)

The coordinator suggests the points (TPE; random for the first tpe.n_startup_trials) and stores
every told value. Pruning is decided on the client by the study's pruner (MedianPruner by
default, with Optuna's rule), from the values told through this Study handle and those the
study held when the handle first pruned.
"""

import math

from hippo import errors
from hippo.v1 import hippo_pb2

_FINAL_STATES = {
    None: hippo_pb2.TRIAL_COMPLETED, "complete": hippo_pb2.TRIAL_COMPLETED,
    "completed": hippo_pb2.TRIAL_COMPLETED, "pruned": hippo_pb2.TRIAL_STOPPED,
    "stopped": hippo_pb2.TRIAL_STOPPED, "fail": hippo_pb2.TRIAL_FAILED,
    "failed": hippo_pb2.TRIAL_FAILED,
}


class AskedTrial:
    """A trial handed out by study.ask(): ``number``, ``params``, ``report``, ``should_prune``.

    Sequence parameters are hippo.Schedule objects (call them with a step).
    """

    def __init__(self, study, message):
        from hippo.study import Trial

        self.study = study
        view = Trial(message, study.spec)
        self.number = view.number
        self.params = view.params
        self.target_step = message.target_step  # budget.max_steps
        self.last_step = -1
        self.last_value = None
        self.ended = False  # told its final state through this handle

    def suggest(self, name):
        """The value of parameter `name` (as optuna's suggest_*, but the space is the spec's)."""
        return self.params[name]

    def report(self, value, step):
        """Reports the objective's intermediate `value` after `step` (0 <= step < max_steps,
        increasing)."""
        value = float(value)
        self.study._report(self.number, int(step), {self.study.metric: value})
        self.last_step, self.last_value = int(step), value
        self.study._told.setdefault(self.number, {})[int(step)] = value

    def should_prune(self):
        """Whether the study's pruner says to stop this trial now."""
        return self.study.pruner.prune(self.study, self)

    def __repr__(self):
        return f"AskedTrial(number={self.number}, params={self.params})"


def tell(study, trial, value=None, state=None):
    """study.tell: ends `trial` (an AskedTrial or a trial number); see Study.tell."""
    if not isinstance(trial, AskedTrial):
        raise errors.InvalidArgument("tell: pass the trial study.ask() returned")
    if state not in _FINAL_STATES:
        raise errors.InvalidArgument(f"state: {state!r} is not one of complete, pruned, fail",
                                     field="state")
    final_state = _FINAL_STATES[state]
    values, step = {}, 0
    if trial.ended:
        # The coordinator answers a second tell with InvalidState ("already ended").
        study._report(trial.number, 0, {}, final_state)
        return
    if value is not None:
        value = float(value)
        if not math.isfinite(value):
            raise errors.InvalidArgument(f"value: {value} is not a finite number", field="value")
        last = trial.target_step - 1
        if trial.last_step < last:
            values, step = {study.metric: value}, last
        elif value != trial.last_value:
            raise errors.InvalidArgument(
                f"value: trial {trial.number} reported step {last} (its last) with "
                f"{trial.last_value} already; tell that value or none", field="value")
    elif final_state == hippo_pb2.TRIAL_COMPLETED and trial.last_value is None:
        raise errors.InvalidArgument("value: completing a trial needs its objective value",
                                     field="value")
    study._report(trial.number, step, values, final_state)
    trial.ended = True
    if values:
        trial.last_step, trial.last_value = step, value
        study._told.setdefault(trial.number, {})[step] = value
    if final_state == hippo_pb2.TRIAL_COMPLETED:
        study._completed.add(trial.number)


class NopPruner:
    """Never prunes."""

    def prune(self, study, trial):
        """Always False."""
        return False


class MedianPruner:
    """Optuna's median rule: prune when the trial's best value so far is worse than the median
    of the completed trials' values at the same step.

    Args:
        n_startup_trials: completed trials needed before anything is pruned.
        n_warmup_steps: steps a trial trains before it may be pruned.
        interval_steps: check only every this many steps after the warm-up.
    """

    def __init__(self, n_startup_trials=5, n_warmup_steps=0, interval_steps=1):
        self.n_startup_trials = n_startup_trials
        self.n_warmup_steps = n_warmup_steps
        self.interval_steps = max(1, interval_steps)

    def prune(self, study, trial):
        """Whether `trial` (an AskedTrial) should stop at its last reported step."""
        step = trial.last_step
        if step < 0 or step < self.n_warmup_steps:
            return False
        if (step - self.n_warmup_steps) % self.interval_steps:
            return False
        _load_history(study)
        if len(study._completed) < self.n_startup_trials:
            return False
        others = [study._told[n][step] for n in study._completed
                  if n != trial.number and step in study._told.get(n, {})]
        if not others:
            return False
        mine = study._told.get(trial.number, {})
        values = [v for s, v in mine.items() if s <= step]
        maximize = study.direction == "maximize"
        best = max(values) if maximize else min(values)
        median = _median(others)
        return best < median if maximize else best > median


def _median(values):
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2.0


def _load_history(study):
    """Once per Study handle: the study's told values and completed trials, from the server."""
    if study._history_loaded:
        return
    study._history_loaded = True
    metric = study.metric
    for trial in study.get_trials(with_metrics=True):
        for step, value in trial.metrics.get(metric, ()):
            study._told.setdefault(trial.number, {}).setdefault(step, value)
        if trial.state == "COMPLETED":
            study._completed.add(trial.number)
