#!/usr/bin/env python3
"""Runs the NAS example study and prints the best architectures it found.

    python3 examples/nas/nas_summary.py [--hippo build/cli/hippo] [--spec SPEC] [--db DB]
                                        [--workers 2] [--top 5]

`hippo run` trains the study (an embedded coordinator, local workers, a fresh SQLite database);
then a coordinator is started on that database, on a free loopback port, only to list the
trials (`hippo trials --json`), and stopped. The table ranks the trials that reported the
objective: validation accuracy, the epochs the trial reached (an ASHA rung or the full budget)
and its architecture and schedule. Exit status: that of `hippo run`, or 1 if the listing fails.
Only the Python standard library is used.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def list_trials(hippo, db, study_id):
    """The trials of `study_id` in `db`, from a coordinator started for the purpose."""
    address = "127.0.0.1:%d" % free_port()
    server = subprocess.Popen(
        [hippo, "server", "--db", db, "--listen", address, "--insecure"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            listing = subprocess.run(
                [hippo, "trials", study_id, "--json", "--coordinator", address],
                capture_output=True, text=True)
            if listing.returncode == 0:
                return json.loads(listing.stdout).get("trials", [])
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("could not list the trials: %s %s" %
                                   (listing.stderr.strip(), server.stderr.read() if
                                    server.poll() is not None else ""))
            time.sleep(0.5)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def scalar(parameters, name):
    value = parameters.get(name, {})
    return value.get("scalar") if "scalar" in value else None


def schedule(parameters, name="lr"):
    """A learning-rate schedule in a few words: its segments' shapes and values."""
    parts = []
    for segment in parameters.get(name, {}).get("segments", []):
        start, end = int(segment.get("start", 0)), int(segment.get("end", 0))
        if "constant" in segment:
            parts.append("%g@%d-%d" % (segment["constant"], start, end - 1))
        elif "cosine" in segment:
            cosine = segment["cosine"]
            parts.append("cosine %g->%g" % (cosine.get("max", 0), cosine.get("min", 0)))
        else:
            parts.append(next(iter(k for k in segment if k not in ("start", "end")), "?"))
    return ", ".join(parts) if parts else str(scalar(parameters, name))


def architecture(parameters):
    """"2 x conv 5x5, channels 16-32": the depth, the kernel and every channels_<i> the trial
    has (conditional parameters: one per layer that exists, none for the others)."""
    layers = int(scalar(parameters, "layers") or 0)
    kernel = int(scalar(parameters, "kernel_size") or 0)
    widths = sorted((int(name.split("_")[1]), int(scalar(parameters, name)))
                    for name in parameters if name.startswith("channels_"))
    return "%d x conv %dx%d, channels %s" % (layers, kernel, kernel,
                                             "-".join(str(w) for _, w in widths))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hippo", default="build/cli/hippo")
    parser.add_argument("--spec", default=os.path.join(here, "fashion_mnist_nas.yaml"))
    parser.add_argument("--db", default="build/nas.db")
    parser.add_argument("--workers", default="2")
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args()

    for suffix in ("", "-wal", "-shm", ".token"):
        if os.path.exists(args.db + suffix):
            os.remove(args.db + suffix)
    started = time.monotonic()
    run = subprocess.run([args.hippo, "run", args.spec, "--workers", args.workers, "--db",
                          args.db, "--json"], stdout=subprocess.PIPE, text=True)
    if run.returncode != 0:
        sys.stdout.write(run.stdout)
        return run.returncode
    summary = json.loads(run.stdout)
    trials = list_trials(args.hippo, args.db, summary["study_id"])
    scored = [t for t in trials if t.get("has_objective_value")]
    scored.sort(key=lambda t: (-float(t["objective_value"]), int(t.get("id", 0))))

    full = max((int(t.get("target_step", 0)) for t in trials), default=0)
    print("NAS study %s: %s, %d trials (%d trained to the full %d epochs), %.1f s with %s workers"
          % (summary["study_id"], summary["status"], summary["trials"],
             sum(1 for t in trials if int(t.get("reached_step", 0)) >= full), full,
             summary["wall_seconds"], args.workers))
    print("epochs trained: %d (%d if every trial trained alone; trials of one architecture "
          "share their common epochs)" % (summary["executed_steps"], summary["trial_steps"]))
    print("top %d architectures by validation accuracy:" % min(args.top, len(scored)))
    print("  %-5s %-8s %-6s %-38s %s" % ("trial", "val_acc", "epochs", "architecture", "lr"))
    for trial in scored[:args.top]:
        parameters = trial.get("parameters", {})
        print("  %-5s %-8.4f %-6s %-38s %s" % (
            trial.get("id", "0"), float(trial["objective_value"]), trial.get("reached_step", "0"),
            architecture(parameters), schedule(parameters)))
    print("(total %.1f s; database %s)" % (time.monotonic() - started, args.db))
    return 0


if __name__ == "__main__":
    sys.exit(main())
