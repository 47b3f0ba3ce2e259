"""One trial trained straight, without Hippo: every step in one process, one model.

Usage: straight_run.py SEED LR_JSON (the learning rate at each step 0..n-1); prints the
metrics of every step as one JSON list."""

import json
import sys

import tiny_trainer

seed, rates = int(sys.argv[1]), json.loads(sys.argv[2])
model, optimizer = tiny_trainer.build(seed)
print(json.dumps([tiny_trainer.train_step(model, optimizer, lr) for lr in rates]))
