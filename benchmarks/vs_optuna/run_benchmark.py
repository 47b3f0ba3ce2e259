"""Hippo (merging on), Hippo trial by trial (--no-merge) and Optuna 3.1 on the same PyTorch
study: same training code, data subset, schedules, epochs, seeds, and the same trial
configurations in the same order. Prints tables and writes JSON.

    build/venv/bin/python benchmarks/vs_optuna/run_benchmark.py          # the default matrix
    build/venv/bin/python benchmarks/vs_optuna/run_benchmark.py --runs 1 --models mlp
    build/venv/bin/python benchmarks/vs_optuna/run_benchmark.py --report OUT.json  # tables again

Per worker count it starts a `hippo server` (fresh SQLite file), that many Hippo SDK workers
(`hippo_worker.py`) and as many Optuna worker processes (`optuna_worker.py`, one journal-file
storage per study), all before anything is timed: every process loads the data and warms PyTorch up.
Then each run goes round every worker count, algorithm and model, the three sides one after the
other (their order rotates between runs). Hippo's configurations come from its own sampler (grid
order, or ASHA's and Hyperband's seeded draws); Optuna gets the same list through
`enqueue_trial`. Timed: from creating the study until every trial ended; CPU: the server's, the
workers' and this process's CPU time over that interval. Epochs trained are counted from the
training code's own log; where a Hippo study's time went, from its workers' stage logs
(`timeline.py`).
"""

import argparse
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))

import report  # noqa: E402
import timeline  # noqa: E402
import training  # noqa: E402
from common import LocalServer  # noqa: E402  (benchmarks/python)
from study import Study  # noqa: E402

SIDES = ("hippo", "hippo-no-merge", "optuna")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    """User + system CPU seconds of the processes `pids` and of this process so far."""
    total = sum(os.times()[:2])
    for pid in pids:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def read_points(db, study_id):
    """Trial id -> the point Hippo's sampler drew (the store's `trials.point_json`). The API
    gives a trial's schedule only up to the step it is trained to, which does not tell an ASHA
    trial stopped at its first rung from others with the same prefix; the point is the whole
    configuration, which is what Optuna must be given."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        rows = connection.execute("SELECT trial_id, point_json FROM trials WHERE study_id = ?",
                                  (study_id,)).fetchall()
    return {trial: json.loads(point) for trial, point in rows}


def start_python(script, *args, stdin=None):
    return subprocess.Popen([sys.executable, os.path.join(HERE, script), *map(str, args)],
                            stdin=stdin, stdout=subprocess.PIPE, text=True)


def wait_line(process, expected, what):
    line = process.stdout.readline().strip()
    if line != expected:
        raise SystemExit(f"{what} said {line!r} instead of {expected!r} (exit code "
                         f"{process.poll()})")


class Session:
    """A coordinator, `workers` Hippo SDK workers and `workers` Optuna processes, all ready."""

    def __init__(self, scratch, workers, args):
        self.scratch, self.workers, self.args = scratch, workers, args
        self.children = []

    def __enter__(self):
        import hippo

        os.makedirs(self.scratch, exist_ok=True)
        self.server = LocalServer(self.scratch, self.args.hippo).__enter__()
        self.client = hippo.connect(self.server.address)
        limits = ("--train-limit", self.args.train_limit, "--val-limit", self.args.val_limit)
        reload = ("--reload-model",) if self.args.reload_model else ()
        self.hippo_workers = [start_python(
            "hippo_worker.py", "--coordinator", self.server.address, "--name", f"w{i}",
            "--checkpoint-dir", os.path.join(self.scratch, "checkpoints"), *limits, *reload)
            for i in range(self.workers)]
        self.optuna_workers = [start_python("optuna_worker.py", *limits, stdin=subprocess.PIPE)
                               for _ in range(self.workers)]
        self.children = self.hippo_workers + self.optuna_workers
        for process in self.children:
            wait_line(process, "ready", "a worker")
        deadline = time.monotonic() + 60
        while sum(w.connected for w in self.client.workers()) < self.workers:
            if time.monotonic() > deadline:
                raise SystemExit("the Hippo workers did not connect within 60 s")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc):
        for process in self.children:
            process.terminate()
        for process in self.children:
            process.wait()
        self.server.__exit__(*exc)

    def run_hippo(self, study, algorithm, model, no_merge, tag):
        log = os.path.join(self.scratch, f"{tag}.epochs")
        spec = study.hippo_spec(tag, algorithm, model, log)
        pids = [self.server.process.pid] + [w.pid for w in self.hippo_workers]
        cpu, load, started = cpu_seconds(pids), os.getloadavg(), time.perf_counter()
        clock = time.time()
        handle = self.client.create_study(spec, no_merge=no_merge)
        handle.wait()
        wall = time.perf_counter() - started
        records = timeline.read_stages(log + ".stages")
        stages = timeline.summarise(records, clock, clock + wall, self.workers)
        cpu = cpu_seconds(pids) - cpu
        if handle.state != "COMPLETED":
            raise SystemExit(f"Hippo study {tag} ended {handle.state}: {handle.info.message}")
        trials = sorted(handle.get_trials(with_metrics=True), key=lambda t: t.number)
        tree = handle.stage_tree()
        points = read_points(self.server.db, handle.id)
        configs, finals = [], {}
        for trial in trials:
            config = study.config_of_point(algorithm, points[trial.number],
                                           trial.params["lr"].values())
            configs.append(config)
            last = dict(trial.history("val_accuracy")).get(study.epochs - 1)
            if last is not None:
                finals[report.config_name(config)] = last
        # Read defensively: the stage tree's step figures grow new fields over time.
        steps = {name: getattr(tree, name, None)
                 for name in ("trial_steps", "unique_steps", "executed_steps",
                              "recomputed_steps")}
        result = self._result(log, wall, cpu, load, configs, finals, steps, stages)
        result["stage_log"] = timeline.relative(records, clock)
        return result

    def run_optuna(self, study, algorithm, model, configs, tag):
        import optuna

        log = os.path.join(self.scratch, f"{tag}.epochs")
        storage = os.path.join(self.scratch, tag + ".journal")
        pids = [w.pid for w in self.optuna_workers]
        command = {"storage": storage, "study": tag, "space": study.optuna_space(algorithm),
                   "sampler": "grid" if algorithm == "grid" else "random",
                   "pruner": study.optuna_pruner(algorithm), "model": model,
                   "epochs": study.epochs, "batch_size": study.batch_size, "seed": study.seed,
                   "epoch_log": log, "lock": os.path.join(self.scratch, tag + ".lock")}
        cpu, load, started = cpu_seconds(pids), os.getloadavg(), time.perf_counter()
        sampler = (optuna.samplers.GridSampler(command["space"], seed=study.seed)
                   if algorithm == "grid" else optuna.samplers.RandomSampler(seed=study.seed))
        handle = optuna.create_study(study_name=tag, storage=Study.optuna_storage(storage),
                                     direction="maximize",
                                     sampler=sampler)
        for config in configs:
            handle.enqueue_trial(study.optuna_params(config))
        for worker in self.optuna_workers:
            worker.stdin.write(json.dumps(command) + "\n")
            worker.stdin.flush()
        for worker in self.optuna_workers:
            wait_line(worker, "done", "an Optuna worker")
        wall = time.perf_counter() - started
        cpu = cpu_seconds(pids) - cpu
        trials = sorted(handle.get_trials(deepcopy=False), key=lambda t: t.number)
        ran, finals = [], {}
        for trial in trials:
            config = (trial.params["initial"], trial.params["milestones"], trial.params["gamma"])
            ran.append(config)
            last = trial.intermediate_values.get(study.epochs)
            if last is not None:
                finals[report.config_name(config)] = last
        return self._result(log, wall, cpu, load, ran, finals, {})

    @staticmethod
    def _result(log, wall, cpu, load, configs, finals, steps, stages=None):
        epochs = training.read_epoch_log(log)
        best = max(finals.values()) if finals else None
        return {"wall_s": wall, "cpu_s": cpu, "load_average": load[0], "load_averages": load,
                "timeline": stages, "epochs": len(epochs),
                "epoch_s": sum(e[3] for e in epochs), "configs": [list(c) for c in configs],
                "final_accuracy": finals, "best_accuracy": best, "steps": steps}


def service_overhead(args, scratch):
    """Trials/s of a trivial objective: benchmarks/python's ask/tell loops (random sampler)."""
    import ask_tell_benchmark as bench

    out = {}
    directory = os.path.join(scratch, "overhead")
    os.makedirs(directory)
    with LocalServer(directory, args.hippo) as server:
        stamps, _ = bench.hippo_loop(server.address, args.overhead_trials, "random", 600)
    out["hippo"] = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    stamps, _ = bench.optuna_loop(directory, args.overhead_trials, "random", 600)
    out["optuna"] = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    return out


def uptime():
    """`uptime`'s line: the time and the 1, 5 and 15-minute load averages."""
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def number_list(kind):
    return lambda text: [kind(v) for v in text.split(",") if v]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithms", type=number_list(str), default=["grid", "asha", "hyperband"])
    parser.add_argument("--models", type=number_list(str), default=["mlp", "cnn"])
    parser.add_argument("--workers", type=number_list(int), default=[1, 2])
    parser.add_argument("--runs", type=int, default=3, help="runs per side (the table: medians)")
    parser.add_argument("--first-run", type=int, default=0,
                        help="number of the first run (sets the sides' order), to add runs to "
                             "an earlier invocation's")
    parser.add_argument("--report", nargs="+", metavar="JSON",
                        help="run nothing: print the tables of these files' runs together")
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--initial", type=number_list(float), default=[0.1, 0.05, 0.02])
    parser.add_argument("--milestones", type=lambda t: [[int(m) for m in c.split("-")]
                                                        for c in t.split(",")],
                        default=[[3], [6], [3, 6]], help="choices, e.g. 3,6,3-6")
    parser.add_argument("--gamma", type=number_list(float), default=[0.1, 0.3, 0.5])
    parser.add_argument("--grid-gamma", type=number_list(float), default=[0.1],
                        help="the grid's gamma choices (default 0.1: a grid over initial rate "
                             "x milestones; empty: --gamma's, the whole space)")
    parser.add_argument("--reduction-factor", type=int, default=3)
    parser.add_argument("--asha-min-resource", type=int, default=1)
    parser.add_argument("--asha-trials", type=int, default=27)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-limit", type=int, default=1000)
    parser.add_argument("--val-limit", type=int, default=300)
    parser.add_argument("--overhead-trials", type=int, default=200,
                        help="trials of the service-overhead loop per system (0: skip)")
    parser.add_argument("--reload-model", action="store_true",
                        help="Hippo workers load every stage's start state from its file, even "
                             "the one they hold in memory (to measure what keeping it saves)")
    parser.add_argument("--hippo", help="the hippo binary (default build/cli/hippo)")
    parser.add_argument("--out", default="build/vs_optuna_benchmark.json")
    args = parser.parse_args()
    if args.report:
        return print_report(args.report)
    study = Study(args)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    results, known = [], {}
    started = time.time()
    summary = {"arguments": dict(vars(args)), "results": results, "service_overhead": None,
               "uptime": [uptime()]}

    def save():
        """Writes what is measured so far: an interrupted run keeps its figures."""
        summary["seconds"] = time.time() - started
        summary["rows"], summary["goals"] = report.summarise(results, args.val_limit)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out + ".tmp", "w") as file:
            json.dump(summary, file, indent=1)
        os.replace(args.out + ".tmp", args.out)

    with tempfile.TemporaryDirectory(prefix="hippo-vs-optuna-") as scratch, \
            contextlib.ExitStack() as stack:
        # Every worker count's processes are started up front and kept (idle ones cost no
        # CPU), so that runs can go round all of them: each run measures every (workers,
        # algorithm, model, side) once before the next starts, and the machine's changing
        # load hits every cell alike; an interrupted invocation has whole runs.
        sessions = {workers: stack.enter_context(
            Session(os.path.join(scratch, f"w{workers}"), workers, args))
            for workers in args.workers}
        for run in range(args.first_run, args.first_run + args.runs):
            # Rotate the sides' order between runs; Hippo goes first in the first run
            # because its sampler decides the configurations Optuna is given.
            order = SIDES[run % 3:] + SIDES[:run % 3] if run else SIDES
            if order[0] == "optuna" and not known:
                order = SIDES
            for workers, session in sessions.items():
                for algorithm in args.algorithms:
                    for model in args.models:
                        for side in order:
                            results.append(run_side(session, study, known, algorithm, model,
                                                    workers, run, side))
                            print(report.progress_line(results[-1]), flush=True)
                            save()
        if args.overhead_trials:
            summary["service_overhead"] = service_overhead(args, scratch)
    summary["uptime"].append(uptime())
    save()
    print()
    print(report.table(summary))
    print(f"\nwritten: {args.out}")
    if not all(goal["same_configs"] for goal in summary["goals"]):
        raise SystemExit("the sides did not evaluate the same configurations")


def print_report(paths):
    """The tables of several invocations' runs together (e.g. added with --first-run)."""
    summaries = []
    for path in paths:
        with open(path) as file:
            summaries.append(json.load(file))
    val_limits = {s["arguments"]["val_limit"] for s in summaries}
    if len(val_limits) != 1:
        raise SystemExit(f"--report: the files' --val-limit differ ({sorted(val_limits)})")
    results = [r for s in summaries for r in s["results"]]
    summary = {"results": results,
               "service_overhead": next((s["service_overhead"] for s in reversed(summaries)
                                         if s["service_overhead"]), None)}
    summary["rows"], summary["goals"] = report.summarise(results, val_limits.pop())
    print(report.table(summary))


def run_side(session, study, known, algorithm, model, workers, run, side):
    """One study on one side; Hippo's first run of (algorithm, model) fixes the configurations
    that Optuna is given."""
    tag = f"{algorithm}-{model}-w{workers}-r{run}-{side}"
    key = (algorithm, model)
    if side == "optuna":
        if key not in known:
            raise SystemExit(f"{tag}: no Hippo run gave its configurations")
        result = session.run_optuna(study, algorithm, model, known[key], tag)
    else:
        result = session.run_hippo(study, algorithm, model, side == "hippo-no-merge", tag)
        known.setdefault(key, [tuple(c) for c in result["configs"]])
    result.update(algorithm=algorithm, model=model, workers=workers, run=run, side=side)
    return result


if __name__ == "__main__":
    main()
