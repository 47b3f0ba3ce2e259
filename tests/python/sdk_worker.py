"""An SDK worker process for the tests: serves tiny_trainer.train_stage (or a sleeping trainer
with --sleep) until killed or drained."""

import argparse
import sys
import time

import hippo.worker

parser = argparse.ArgumentParser()
parser.add_argument("--coordinator", required=True)
parser.add_argument("--name", required=True)
parser.add_argument("--checkpoint-dir", required=True)
parser.add_argument("--sleep", type=float, default=None,
                    help="train nothing: sleep this long per step and report a constant")
args = parser.parse_args()


def sleeping_stage(stage):
    for step in stage.steps():
        time.sleep(args.sleep)
        stage.report(step, loss=1.0 / (step + 1))
    with open(stage.state_path, "w") as file:
        file.write(str(stage.end_step))


if args.sleep is None:
    import tiny_trainer

    train = tiny_trainer.train_stage
else:
    train = sleeping_stage
sys.exit(0 if hippo.worker.serve(train, coordinator=args.coordinator, name=args.name,
                                  checkpoint_dir=args.checkpoint_dir) >= 0 else 1)
