"""A Hippo SDK worker that trains stages with `training.py`: started by `run_benchmark.py`,
one process per worker.

    python3 hippo_worker.py --coordinator HOST:PORT --name NAME --checkpoint-dir DIR \
        --train-limit N --val-limit M

It loads the data subset and warms PyTorch up before it connects (so no timed study pays
for either), prints "ready", then serves until terminated. A stage trains epochs
[start_step, end_step) of one schedule: the study's `trainer.config` names the model, the
batch size and the epoch log; `stage.hparams["lr"](epoch)` is Hippo's step-decay schedule.

A stage that continues the one this worker trained last (its parent stage and step are that
stage's end) goes on with the model and optimizer still in memory instead of building a model
and loading the saved state (`--reload-model` turns this off); the states are saved either way,
for the stages that fork from them. Each stage appends one JSON line to the epoch log's path +
".stages" (worker, stage and parent, when it entered, started training and left, seconds
training and saving): `timeline.py` reads it.
"""

import argparse
import json
import os
import sys
import time

import torch

import hippo.worker

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import training  # noqa: E402  (beside this file)

DATA = None
LIMITS = None
KEEP_MODEL = True
# The model and optimizer of the last stage this worker trained, as its end state:
# (stage id, end step, model name, model, optimizer), or None.
KEPT = None
NAME = None
STAGE_LOG_SUFFIX = ".stages"


def start_model(stage, model_name):
    """The model and optimizer at stage.start_step: the last stage's objects when this stage
    continues it (the same state as its saved file: nothing else ran in between), else a fresh
    model loaded from the parent state. Returns (model, optimizer, how) with how one of
    "fresh", "kept", "loaded"."""
    global KEPT
    kept, KEPT = KEPT, None  # this stage trains the kept objects further: never reuse twice
    if stage.parent_state is None:
        return (*training.new_trial(model_name, stage.seed), "fresh")
    if kept is not None and kept[:3] == (stage.parent_stage_id, stage.start_step, model_name):
        return kept[3], kept[4], "kept"
    model, optimizer = training.new_trial(model_name, stage.seed)
    hippo.worker.load_state(stage.parent_state, model, optimizer)
    return model, optimizer, "loaded"


def train_stage(stage):
    global KEPT
    entered = time.time()
    config = stage.config
    limits = (int(config["train_limit"]), int(config["val_limit"]))
    if limits != LIMITS:
        raise ValueError(f"trainer.config train_limit/val_limit {limits}: this worker loaded "
                         f"{LIMITS} (start it with the study's --train-limit and --val-limit)")
    model, optimizer, how = start_model(stage, config["model"])
    started = time.time()
    log = training.EpochLog(config["epoch_log"])
    batch_size = int(config["batch_size"])
    train_seconds = save_seconds = 0.0
    for epoch in stage.steps():
        lr = stage.hparams["lr"](epoch)
        loss, accuracy, seconds = training.train_epoch(model, optimizer, DATA, epoch, lr,
                                                       stage.seed, batch_size)
        train_seconds += seconds
        log.write(epoch, lr, accuracy, seconds)
        stage.report(epoch, loss=loss, val_accuracy=accuracy)
        if stage.checkpoint_due(epoch + 1):
            saving = time.perf_counter()
            stage.checkpoint(epoch + 1,
                             lambda path: hippo.worker.save_state(path, model, optimizer))
            save_seconds += time.perf_counter() - saving
    if KEEP_MODEL:
        KEPT = (stage.stage_id, stage.end_step, config["model"], model, optimizer)
    with open(config["epoch_log"] + STAGE_LOG_SUFFIX, "a") as file:
        file.write(json.dumps({
            "worker": NAME, "stage": stage.stage_id, "parent": stage.parent_stage_id,
            "start_step": stage.start_step, "end_step": stage.end_step, "how": how,
            "entered": entered, "started": started, "left": time.time(),
            "train_s": train_seconds, "save_s": save_seconds}) + "\n")


def main():
    global DATA, LIMITS, KEEP_MODEL, NAME
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coordinator", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--checkpoint-dir", required=True)
    parser.add_argument("--train-limit", type=int, required=True)
    parser.add_argument("--val-limit", type=int, required=True)
    parser.add_argument("--reload-model", action="store_true",
                        help="load every stage's start state from its file, even when this "
                             "worker holds it in memory (to measure what keeping it saves)")
    args = parser.parse_args()
    KEEP_MODEL, NAME = not args.reload_model, args.name
    torch.set_num_threads(1)  # one core per worker, as on the Optuna side
    LIMITS = (args.train_limit, args.val_limit)
    DATA = training.load_data(*LIMITS)
    training.warm_up(DATA)
    print("ready", flush=True)
    hippo.worker.serve(train_stage, coordinator=args.coordinator, name=args.name,
                       checkpoint_dir=args.checkpoint_dir, log=lambda line: None)


if __name__ == "__main__":
    main()
