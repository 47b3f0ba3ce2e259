#!/usr/bin/python3
"""Trains a small PyTorch model on Fashion-MNIST for Hippo's `command` trainer.

One step is one epoch over a fixed subset of the training images. The program follows the
command trainer's contract (workers/README.md, "command"):

  - it reads the stage from the JSON file at $HIPPO_CONFIG: the steps [start_step, end_step),
    the seed, the value of every hyper-parameter for every step, the trainer config;
  - it starts from the checkpoint at $HIPPO_CHECKPOINT_IN, or from fresh weights drawn from the
    seed when there is none (step 0);
  - after each epoch it prints one JSON line: {"step": s, "loss": ..., "val_loss": ...,
    "val_accuracy": ...};
  - at the end it writes everything later epochs depend on (weights, the optimizer's momentum
    buffers, the step) to $HIPPO_CHECKPOINT_OUT.

Training is deterministic given the seed and the step: weights come from torch.manual_seed(seed),
the order of the images in epoch s from a generator seeded with (seed, s), and there is no
dropout, so no random state has to be saved. Training [a, c) straight or as [a, b) + [b, c) gives
bit-identical metrics (on the CPU with the same thread count).

Hyper-parameters: lr (required), momentum (0.9), weight_decay (0). Config (TrainerSpec.config):
data_dir (/usr/share/datasets/fashion-mnist), train_size (6000), val_size (2000), batch_size
(128), model ("mlp" or "cnn"), hidden (64, the MLP's width), threads (1).
"""
import gzip
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def read_idx(path, count, item_bytes, header_bytes):
    """The first `count` items of a gz IDX file, as a uint8 array of count x item_bytes."""
    with gzip.open(path, "rb") as f:
        header = f.read(header_bytes)
        available = int.from_bytes(header[4:8], "big")
        if count > available:
            sys.exit(f"{path} holds {available} items, {count} were asked for")
        data = f.read(count * item_bytes)
    return np.frombuffer(data, dtype=np.uint8).reshape(count, item_bytes)


def load(data_dir, prefix, count):
    images = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"), count, 784, 16)
    labels = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"), count, 1, 8)
    x = torch.from_numpy(images.astype(np.float32) / 255.0).view(count, 1, 28, 28)
    x = (x - 0.2860) / 0.3530  # Fashion-MNIST's mean and standard deviation
    y = torch.from_numpy(labels.reshape(count).astype(np.int64))
    return x, y


class Mlp(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.fc1 = nn.Linear(784, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)
        self.conv2 = nn.Conv2d(16, 32, 5, padding=2)
        self.fc = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


def main():
    with open(os.environ["HIPPO_CONFIG"]) as f:
        stage = json.load(f)
    config = stage["config"]
    seed, start, end = stage["seed"], stage["start_step"], stage["end_step"]

    def value(name, step, default=None):
        """The value of hyper-parameter `name` while training `step`."""
        if name in stage["parameters"]:
            return stage["parameters"][name][step - start]
        if name in stage["static_parameters"]:
            return stage["static_parameters"][name]
        if default is None:
            sys.exit(f"the study gives no value for the hyper-parameter '{name}'")
        return default

    torch.set_num_threads(int(config.get("threads", 1)))
    torch.use_deterministic_algorithms(True)
    data_dir = config.get("data_dir", "/usr/share/datasets/fashion-mnist")
    train_size = int(config.get("train_size", 6000))
    val_size = int(config.get("val_size", 2000))
    batch_size = int(config.get("batch_size", 128))
    train_x, train_y = load(data_dir, "train", train_size)
    val_x, val_y = load(data_dir, "t10k", val_size)

    torch.manual_seed(seed)
    model = Cnn() if config.get("model", "mlp") == "cnn" else Mlp(int(config.get("hidden", 64)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    checkpoint_in = os.environ.get("HIPPO_CHECKPOINT_IN")
    if checkpoint_in:
        saved = torch.load(checkpoint_in)
        if saved["step"] != start:
            sys.exit(f"the checkpoint is at step {saved['step']}, the stage starts at {start}")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
    elif start != 0:
        sys.exit(f"no input checkpoint, but the stage starts at step {start}")

    for step in range(start, end):
        for group in optimizer.param_groups:
            group["lr"] = value("lr", step)
            group["momentum"] = value("momentum", step, 0.9)
            group["weight_decay"] = value("weight_decay", step, 0.0)
        order = torch.from_numpy(np.random.default_rng([seed, step]).permutation(train_size))
        model.train()
        total_loss = 0.0
        for first in range(0, train_size, batch_size):
            batch = order[first:first + batch_size]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(train_x[batch]), train_y[batch])
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(batch)
        model.eval()
        with torch.no_grad():
            logits = model(val_x)
            val_loss = F.cross_entropy(logits, val_y).item()
            val_accuracy = (logits.argmax(1) == val_y).double().mean().item()
        print(json.dumps({"step": step, "loss": total_loss / train_size, "val_loss": val_loss,
                          "val_accuracy": val_accuracy}), flush=True)

    out = os.environ["HIPPO_CHECKPOINT_OUT"]
    torch.save({"step": end, "model": model.state_dict(), "optimizer": optimizer.state_dict()},
               out + ".tmp")
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main()
