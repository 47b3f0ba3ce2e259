#!/usr/bin/env python3
"""Runs the NAS example study and prints the best architectures it found.

    python3 examples/nas/nas_summary.py [--hippo build/cli/hippo] [--spec SPEC] [--db DB]
                                        [--workers 2] [--top 5]

`hippo run` trains the study (an embedded coordinator, local workers, a fresh SQLite database);
then a coordinator is started on that database, on a free loopback port, only to list the
trials (`hippo trials --json`), and stopped. It prints the epochs trained against those a
trial-by-trial run trains (the stage tree's saving) and against those every trial trained to
the full budget would take (the ASHA rungs' saving), then ranks the configurations that
reported the objective: validation accuracy, the epochs trained (an ASHA rung or the full
budget), architecture and schedule, and the trials that had it (evolution may find one
configuration again; its trials share every epoch). Exit status: that of `hippo run`, or 1 if
the listing fails. Only the Python standard library is used.
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
        [hippo, "server", "--db", db, "--listen", address, "--insecure", "--http", "off"],
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
    """A learning-rate schedule in a few words: "cosine 0.1->0" (a constant first segment is the
    cosine's value over epochs it shares with another trial's schedule), or the first value and
    each change with the epoch it takes effect: "0.05, x0.1 at 4"."""
    segments = parameters.get(name, {}).get("segments", [])
    cosine = next((segment["cosine"] for segment in segments if "cosine" in segment), None)
    if cosine is not None:
        return "cosine %g->%g" % (cosine.get("max", 0), cosine.get("min", 0))
    if segments and all("constant" in segment for segment in segments):
        parts = ["%g" % segments[0]["constant"]]
        for previous, segment in zip(segments, segments[1:]):
            parts.append("x%g at %d" % (round(segment["constant"] / previous["constant"], 6),
                                        int(segment.get("start", 0))))
        return ", ".join(parts)
    parts = [next(iter(k for k in segment if k not in ("start", "end")), "?")
             for segment in segments]
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


def print_summary(summary, trials, workers, top):
    """The study's figures and its `top` configurations (the table described above)."""
    scored = [t for t in trials if t.get("has_objective_value")]
    scored.sort(key=lambda t: (-float(t["objective_value"]), int(t.get("id", 0))))
    # One row per configuration: its best trial first, then the others that had it.
    rows = {}
    for trial in scored:
        parameters = trial.get("parameters", {})
        key = (architecture(parameters), schedule(parameters))
        rows.setdefault(key, []).append(trial)

    full = max((int(t.get("target_step", 0)) for t in trials), default=0)
    reached = [int(t.get("reached_step", 0)) for t in trials]
    executed, trial_steps = int(summary["executed_steps"]), int(summary["trial_steps"])
    print("NAS study %s: %s, %d trials (%d trained to the full %d epochs), %.1f s with %s workers"
          % (summary["study_id"], summary["status"], summary["trials"],
             sum(1 for r in reached if r >= full), full, summary["wall_seconds"], workers))
    print("epochs trained: %d; trial by trial: %d (the stage tree saved %d: trials of one "
          "architecture share the epochs their schedules agree on); every trial to %d epochs: "
          "%d (the ASHA rungs stopped %d trials early)"
          % (executed, trial_steps, trial_steps - executed, full, full * len(trials),
             sum(1 for r in reached if r < full)))
    print("top %d of %d configurations by validation accuracy:" % (min(top, len(rows)),
                                                                  len(rows)))
    print("  %-5s %-8s %-6s %-34s %-26s %s" % ("trial", "val_acc", "epochs", "architecture",
                                               "lr", "same configuration"))
    for (arch, lr), group in list(rows.items())[:top]:
        best = group[0]
        print("  %-5s %-8.4f %-6s %-34s %-26s %s" % (
            best.get("id", "0"), float(best["objective_value"]), best.get("reached_step", "0"),
            arch, lr, ", ".join("#%s" % t.get("id", "0") for t in group[1:])))


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
    print_summary(summary, trials, args.workers, args.top)
    print("(total %.1f s; database %s)" % (time.monotonic() - started, args.db))
    return 0


if __name__ == "__main__":
    sys.exit(main())
