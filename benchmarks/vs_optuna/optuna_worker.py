"""An Optuna worker process that runs `training.py` as its objective: started by
`run_benchmark.py`, one process per worker, all on one storage.

    python3 optuna_worker.py --train-limit N --val-limit M

It loads the data subset and warms PyTorch up, prints "ready", then reads one JSON command a
line from stdin: {"storage", "study", "space", "sampler", "pruner", "model", "epochs",
"batch_size", "seed", "epoch_log", "lock"}. For each it loads the study, takes its enqueued trials one by one until
none is left waiting, and prints "done". The study's trials were enqueued by the driver with
fixed parameters (`enqueue_trial`), so the sampler never draws.
"""

import argparse
import fcntl
import json
import os
import sys

import optuna
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import training  # noqa: E402  (beside this file)
from study import Study  # noqa: E402


def make_pruner(spec):
    """The pruner named by spec["name"]: none, asha (SuccessiveHalvingPruner) or hyperband."""
    if spec["name"] == "none":
        return optuna.pruners.NopPruner()
    if spec["name"] == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=spec["min_resource"], reduction_factor=spec["reduction_factor"],
            min_early_stopping_rate=0)
    if spec["name"] == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=spec["min_resource"], max_resource=spec["max_resource"],
            reduction_factor=spec["reduction_factor"])
    raise ValueError(f"pruner {spec['name']!r}")


def objective(trial, command, data):
    """One trial: the schedule's epochs straight through, reporting the validation accuracy
    after each as step = epochs trained, so that Optuna's rungs (min_resource * eta^k steps)
    fall after the same epochs as Hippo's. The last epoch is never pruned: the trial has
    trained everything by then, as in Hippo, where the last rung is max_resource."""
    initial = trial.suggest_categorical("initial", command["space"]["initial"])
    milestones = trial.suggest_categorical("milestones", command["space"]["milestones"])
    gamma = trial.suggest_categorical("gamma", command["space"]["gamma"])
    steps = [int(m) for m in milestones.split("-")]
    model, optimizer = training.new_trial(command["model"], command["seed"])
    log = training.EpochLog(command["epoch_log"])
    epochs = command["epochs"]
    accuracy = None
    for epoch in range(epochs):
        lr = training.step_decay(initial, steps, gamma, epoch)
        _, accuracy, seconds = training.train_epoch(model, optimizer, data, epoch, lr,
                                                    command["seed"], command["batch_size"])
        log.write(epoch, lr, accuracy, seconds)
        trial.report(accuracy, epoch + 1)
        if epoch + 1 < epochs and trial.should_prune():
            raise optuna.TrialPruned()
    return accuracy


def run(command, data):
    if command["sampler"] == "grid":
        sampler = optuna.samplers.GridSampler(command["space"], seed=command["seed"])
    else:
        sampler = optuna.samplers.RandomSampler(seed=command["seed"])
    study = optuna.load_study(study_name=command["study"],
                              storage=Study.optuna_storage(command["storage"]),
                              sampler=sampler, pruner=make_pruner(command["pruner"]))
    waiting = (optuna.trial.TrialState.WAITING,)
    while True:
        # Two processes could both see the last waiting trial; the second's ask would then
        # sample a new one. The lock makes "is one waiting? take it" atomic across processes.
        with open(command["lock"], "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not study.get_trials(deepcopy=False, states=waiting):
                return
            trial = study.ask()
        try:
            study.tell(trial, objective(trial, command, data))
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-limit", type=int, required=True)
    parser.add_argument("--val-limit", type=int, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core per worker, as on the Hippo side
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = training.load_data(args.train_limit, args.val_limit)
    training.warm_up(data)
    print("ready", flush=True)
    for line in sys.stdin:
        run(json.loads(line), data)
        print("done", flush=True)


if __name__ == "__main__":
    main()
