"""Your own PyTorch CNN on Fashion-MNIST, trained by Hippo's Python SDK workers under a grid of
step-decay learning-rate schedules; trials that share a schedule's prefix share its training.

    python3 examples/python/fashion_mnist_sdk.py                  # starts a local coordinator
    python3 examples/python/fashion_mnist_sdk.py --coordinator HOST:PORT --workers 0

It starts a `hippo server` (binary from --hippo, else build/cli/hippo, else PATH) unless given
--coordinator, runs --workers SDK workers as subprocesses (this file with --serve), submits the
study, waits with a progress bar and prints the best schedule and the steps stage sharing saved.
Data: Debian's dataset-fashion-mnist (IDX files in /usr/share/datasets/fashion-mnist), a small
subset so that it runs in a few minutes on 2 CPU cores.
"""

import argparse
import gzip
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

DATA_DIR = "/usr/share/datasets/fashion-mnist"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SPEC = {
    "name": "fashion-mnist-sdk",
    "objective": {"metric": "val_accuracy", "direction": "MAXIMIZE"},
    "trainer": {"kind": "external", "seed": 0,
                "config": {"train_limit": 3000, "val_limit": 1000, "batch_size": 64}},
    "search_space": {"parameters": [{
        "name": "lr",
        "sequence": {"step_decay": {
            "initial": {"choices": {"values": [0.1, 0.05]}},
            "gamma": {"value": 0.2},
            "milestones": {"choices": [{"steps": [4]}, {"steps": [6]}, {"steps": [4, 7]}]},
        }},
    }]},
    "algorithm": {"name": "grid"},
    "budget": {"max_steps": 8},
}


# -- the user's own model and training code ------------------------------------------------------


def read_idx(name, limit):
    """An IDX file (gzipped or not) as a uint8 array, first `limit` items."""
    import numpy

    path = os.path.join(DATA_DIR, name)
    if os.path.exists(path):
        with gzip.open(path, "rb") as file:
            data = file.read()
    else:  # unpacked copies, without .gz
        with open(path[:-3], "rb") as file:
            data = file.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    array = numpy.frombuffer(data, dtype=numpy.uint8, offset=4 + 4 * dims).reshape(shape)
    return array[:limit]


def load_data(config):
    import torch

    def images(name, limit):
        return torch.tensor(read_idx(name, limit), dtype=torch.float32).unsqueeze(1) / 255.0

    def labels(name, limit):
        return torch.tensor(read_idx(name, limit), dtype=torch.int64)

    # trainer.config arrives as JSON numbers (floats).
    train_limit, val_limit = int(config["train_limit"]), int(config["val_limit"])
    return (images("train-images-idx3-ubyte.gz", train_limit),
            labels("train-labels-idx1-ubyte.gz", train_limit),
            images("t10k-images-idx3-ubyte.gz", val_limit),
            labels("t10k-labels-idx1-ubyte.gz", val_limit))


def make_model():
    import torch.nn as nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.2), nn.Linear(32 * 7 * 7, 10))


_DATA = None


def train_stage(stage):
    """Trains steps (epochs) [stage.start_step, stage.end_step) of one schedule."""
    import torch
    import hippo.worker

    global _DATA
    if _DATA is None:
        _DATA = load_data(stage.config)
    x_train, y_train, x_val, y_val = _DATA
    batch = int(stage.config["batch_size"])

    torch.manual_seed(stage.seed)
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    if stage.parent_state is not None:
        hippo.worker.load_state(stage.parent_state, model, optimizer)

    for epoch in stage.steps():
        for group in optimizer.param_groups:
            group["lr"] = stage.hparams["lr"](epoch)
        model.train()
        total = 0.0
        order = torch.randperm(len(x_train))
        batches = order.split(batch)
        for indices in batches:
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x_train[indices]), y_train[indices])
            loss.backward()
            optimizer.step()
            total += loss.item()
        model.eval()
        with torch.no_grad():
            logits = model(x_val)
            accuracy = (logits.argmax(dim=1) == y_val).float().mean().item()
        stage.report(epoch, loss=total / len(batches), val_accuracy=accuracy)
        if stage.checkpoint_due(epoch + 1):
            stage.checkpoint(epoch + 1,
                             lambda path: hippo.worker.save_state(path, model, optimizer))


# -- running it ----------------------------------------------------------------------------------


def serve(args):
    import torch
    import hippo.worker

    torch.set_num_threads(1)
    hippo.worker.serve(train_stage, coordinator=args.coordinator, name=args.name,
                       checkpoint_dir=args.checkpoint_dir)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def print_dashboard_url(server_log):
    """Prints the dashboard's address, as the coordinator this script started logged it."""
    if not os.path.exists(server_log):
        return  # --coordinator: not ours
    with open(server_log) as log:
        for line in log:
            if "dashboard at " in line:
                print("dashboard:", line.split("dashboard at ", 1)[1].strip(), flush=True)
                return


def find_hippo(given):
    for candidate in (given, os.path.join(REPO, "build", "cli", "hippo"), shutil.which("hippo")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    sys.exit("fashion_mnist_sdk: no hippo binary; build it (make build) or pass --hippo")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coordinator", help="an existing coordinator (default: start one)")
    parser.add_argument("--hippo", help="the hippo binary, to start a coordinator")
    parser.add_argument("--workers", type=int, default=2, help="SDK worker processes to run")
    parser.add_argument("--no-merge", action="store_true", help="train trial by trial")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--name", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args)

    import hippo

    scratch = tempfile.mkdtemp(prefix="hippo-fmnist-")
    children = []
    try:
        if args.coordinator is None:
            args.coordinator = f"127.0.0.1:{free_port()}"
            log = open(os.path.join(scratch, "server.log"), "w")
            # Its dashboard on a free loopback port of its own (the default, 8080, may be taken).
            children.append(subprocess.Popen(
                [find_hippo(args.hippo), "server", "--listen", args.coordinator, "--db",
                 os.path.join(scratch, "hippo.db"), "--http", f"127.0.0.1:{free_port()}"],
                stdout=log, stderr=subprocess.STDOUT))
            # The server writes its token beside its database before it listens; this process
            # and the SDK workers below find it through $HIPPO_TOKEN_FILE.
            os.environ["HIPPO_TOKEN_FILE"] = os.path.join(scratch, "hippo.db.token")
        for attempt in range(100):
            try:
                client = hippo.connect(args.coordinator)
                client.list_studies()
                break
            except hippo.HippoError:  # not listening yet, or its token file not written yet
                time.sleep(0.2)
        print_dashboard_url(os.path.join(scratch, "server.log"))
        for i in range(args.workers):
            children.append(subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--serve", "--coordinator",
                 args.coordinator, "--name", f"sdk-worker-{i}", "--checkpoint-dir",
                 os.path.join(scratch, "checkpoints")],
                stdout=subprocess.DEVNULL))
        started = time.monotonic()
        study = client.create_study(SPEC, no_merge=args.no_merge)
        study.wait(progress=True)
        seconds = time.monotonic() - started
        if study.state != "COMPLETED":
            sys.exit(f"study {study.id} {study.state}: {study.info.message}")
        best = study.best_trial
        tree = study.stage_tree()
        print(f"study {study.id} {study.state} in {seconds:.1f} s with {args.workers} workers")
        print(f"best val_accuracy {best.value:.4f}: lr by epoch "
              f"{[round(v, 5) for v in best.params['lr'].values(0, 8)]}")
        print(f"epochs: {tree.trial_steps} trial by trial, {tree.unique_steps} unique, "
              f"{tree.executed_steps} trained -> stage sharing trained "
              f"{tree.trial_steps / max(tree.executed_steps, 1):.2f}x fewer epochs")
    finally:
        for child in reversed(children):
            child.terminate()
            child.wait()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
