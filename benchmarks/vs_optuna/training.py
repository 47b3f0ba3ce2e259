"""The training code both systems run: one PyTorch function, imported unchanged by Hippo's SDK
workers (`hippo_worker.py`) and by Optuna's objective (`optuna_worker.py`).

A trial is a step-decay learning-rate schedule over `epochs` epochs of SGD (momentum 0.9,
weight decay 5e-4) on a Fashion-MNIST subset, for an MLP or the demo's CNN. Everything random
is a function of (seed, epoch): the initial weights come from `seed`, an epoch's shuffle from a
generator seeded with (seed, epoch), and the models have no dropout. So on the CPU, with a fixed
thread count, a schedule's accuracy after epoch e is the same bits whether the epochs ran in one
process straight through (Optuna) or in stages resumed from saved states (Hippo), and the two
systems' results can be compared trial by trial, not only in distribution.
"""

import gzip
import math
import os
import time

import numpy
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA_DIR = "/usr/share/datasets/fashion-mnist"
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST's training pixels


def read_idx(name, limit):
    """The first `limit` items of an IDX file (gzipped, or an unpacked copy without .gz)."""
    path = os.path.join(DATA_DIR, name)
    opener = gzip.open if os.path.exists(path) else open
    with opener(path if os.path.exists(path) else path[:-3], "rb") as file:
        data = file.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return numpy.frombuffer(data, dtype=numpy.uint8, offset=4 + 4 * dims).reshape(shape)[:limit]


def load_data(train_limit, val_limit):
    """(train images, train labels, validation images, validation labels): the first
    `train_limit` training images and the first `val_limit` test images, normalised."""

    def images(name, limit):
        pixels = torch.tensor(read_idx(name, limit), dtype=torch.float32).unsqueeze(1) / 255.0
        return (pixels - MEAN) / STD

    def labels(name, limit):
        return torch.tensor(read_idx(name, limit), dtype=torch.int64)

    return (images("train-images-idx3-ubyte.gz", train_limit),
            labels("train-labels-idx1-ubyte.gz", train_limit),
            images("t10k-images-idx3-ubyte.gz", val_limit),
            labels("t10k-labels-idx1-ubyte.gz", val_limit))


def make_model(name):
    """`mlp`: 784-256-256-10 with ReLU (Hippo's torch trainer's default MLP, no dropout).
    `cnn`: the demo's CNN (examples/fashion_mnist.yaml): 2 x (3x3 convolution, batch norm, ReLU,
    2x2 max-pool) with 16 then 32 channels, then a linear layer."""
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256),
                             nn.ReLU(), nn.Linear(256, 10))
    if name == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
    raise ValueError(f"model {name!r}: use mlp or cnn")


def new_trial(model_name, seed):
    """A fresh model and its optimizer; the weights depend only on `seed`."""
    torch.manual_seed(seed)
    model = make_model(model_name)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0, momentum=MOMENTUM,
                                weight_decay=WEIGHT_DECAY)
    return model, optimizer


def step_decay(initial, milestones, gamma, epoch):
    """The learning rate of `epoch` under step decay, with Hippo's formula and operation order
    (initial * gamma^k, k = milestones passed), so both systems use the same doubles."""
    decays = sum(1 for milestone in milestones if milestone <= epoch)
    return initial * math.pow(gamma, decays)


def train_epoch(model, optimizer, data, epoch, lr, seed, batch_size):
    """Trains epoch `epoch` at learning rate `lr` and returns (mean training loss, validation
    accuracy, seconds). The shuffle depends only on (seed, epoch)."""
    started = time.perf_counter()
    x_train, y_train, x_val, y_val = data
    for group in optimizer.param_groups:
        group["lr"] = lr
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    batches = torch.randperm(len(x_train), generator=generator).split(batch_size)
    model.train()
    total = 0.0
    for indices in batches:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x_train[indices]), y_train[indices])
        loss.backward()
        optimizer.step()
        total += loss.item()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_val).argmax(dim=1) == y_val).float().mean().item()
    return total / len(batches), accuracy, time.perf_counter() - started


def warm_up(data):
    """One batch of each model, so that neither side's first timed epoch pays PyTorch's lazy
    initialisation."""
    for name in ("mlp", "cnn"):
        model, optimizer = new_trial(name, 0)
        train_epoch(model, optimizer, tuple(t[:64] for t in data), 0, 0.01, 0, 64)


class EpochLog:
    """Appends one line per trained epoch (`epoch lr accuracy seconds`) to a file: the epochs
    a side trained are counted from these lines, the same way on both sides."""

    def __init__(self, path):
        self.path = path

    def write(self, epoch, lr, accuracy, seconds):
        with open(self.path, "a") as file:
            file.write(f"{epoch} {lr!r} {accuracy!r} {seconds:.6f}\n")


def read_epoch_log(path):
    """[(epoch, lr, accuracy, seconds), ...] of a log written by EpochLog ([] if none)."""
    if not os.path.exists(path):
        return []
    with open(path) as file:
        return [(int(e), float(lr), float(a), float(s))
                for e, lr, a, s in (line.split() for line in file if line.strip())]
