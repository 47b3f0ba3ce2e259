"""A Hippo SDK worker that trains stages with `training.py`: started by `run_benchmark.py`,
one process per worker.

    python3 hippo_worker.py --coordinator HOST:PORT --name NAME --checkpoint-dir DIR \
        --train-limit N --val-limit M

It loads the data subset and warms PyTorch up before it connects (so no timed study pays
for either), prints "ready", then serves until terminated. A stage trains epochs
[start_step, end_step) of one schedule: the study's `trainer.config` names the model, the
batch size and the epoch log; `stage.hparams["lr"](epoch)` is Hippo's step-decay schedule.
"""

import argparse
import os
import sys

import torch

import hippo.worker

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import training  # noqa: E402  (beside this file)

DATA = None
LIMITS = None


def train_stage(stage):
    config = stage.config
    limits = (int(config["train_limit"]), int(config["val_limit"]))
    if limits != LIMITS:
        raise ValueError(f"trainer.config train_limit/val_limit {limits}: this worker loaded "
                         f"{LIMITS} (start it with the study's --train-limit and --val-limit)")
    model, optimizer = training.new_trial(config["model"], stage.seed)
    if stage.parent_state is not None:
        hippo.worker.load_state(stage.parent_state, model, optimizer)
    log = training.EpochLog(config["epoch_log"])
    batch_size = int(config["batch_size"])
    for epoch in stage.steps():
        lr = stage.hparams["lr"](epoch)
        loss, accuracy, seconds = training.train_epoch(model, optimizer, DATA, epoch, lr,
                                                       stage.seed, batch_size)
        log.write(epoch, lr, accuracy, seconds)
        stage.report(epoch, loss=loss, val_accuracy=accuracy)
        if stage.checkpoint_due(epoch + 1):
            stage.checkpoint(epoch + 1,
                             lambda path: hippo.worker.save_state(path, model, optimizer))


def main():
    global DATA, LIMITS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coordinator", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--checkpoint-dir", required=True)
    parser.add_argument("--train-limit", type=int, required=True)
    parser.add_argument("--val-limit", type=int, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core per worker, as on the Optuna side
    LIMITS = (args.train_limit, args.val_limit)
    DATA = training.load_data(*LIMITS)
    training.warm_up(DATA)
    print("ready", flush=True)
    hippo.worker.serve(train_stage, coordinator=args.coordinator, name=args.name,
                       checkpoint_dir=args.checkpoint_dir, log=lambda line: None)


if __name__ == "__main__":
    main()
