"""Ask/tell service throughput: Hippo over gRPC (SQLite store) against Optuna with SQLite
storage, same sampler family, trivial objective.

    python3 benchmarks/python/ask_tell_benchmark.py --trials 10000 --sampler random
    python3 benchmarks/python/ask_tell_benchmark.py --trials 10000 --sampler tpe \
        --optuna-seconds 600

Each side runs one client loop: ask, evaluate (x - 2)^2 + 0.1 n, tell. Reports trials/s over the
first and the last 1 000 trials (or over the first and last tenth when fewer ran), the time
per trial, and the time per trial of every consecutive window (ms_per_trial_by_window); a side that hits its time limit reports the trials it finished. Hippo's random
sampler is its TPE with every trial a start-up trial (tpe.n_startup_trials = trials), TPE its
default (10 start-up trials); Optuna uses RandomSampler / TPESampler with default settings.
"""

import argparse
import json
import os
import tempfile
import time

from common import LocalServer


def objective(x, n):
    return (x - 2.0) ** 2 + 0.1 * n


def hippo_loop(address, trials, sampler, seconds):
    import hippo

    startup = trials if sampler == "random" else 10
    spec = {
        "name": f"bench-{sampler}",
        "objective": {"metric": "loss", "direction": "MINIMIZE"},
        "search_space": {"parameters": [{"name": "x", "float": {"low": -5.0, "high": 5.0}},
                                        {"name": "n", "int": {"low": 1, "high": 8}}]},
        "algorithm": {"name": "external", "seed": 1, "tpe": {"n_startup_trials": startup}},
        "budget": {"max_steps": 1, "max_trials": trials},
    }
    study = hippo.connect(address).create_study(spec, pruner=hippo.NopPruner())
    stamps = [time.perf_counter()]
    deadline = stamps[0] + seconds
    for _ in range(trials):
        trial = study.ask()
        study.tell(trial, objective(trial.params["x"], trial.params["n"]))
        stamps.append(time.perf_counter())
        if stamps[-1] > deadline:
            break
    return stamps, study.best_value


def optuna_loop(directory, trials, sampler, seconds):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    samplers = {"random": optuna.samplers.RandomSampler(seed=1),
                "tpe": optuna.samplers.TPESampler(seed=1)}
    storage = f"sqlite:///{os.path.join(directory, f'optuna-{sampler}.db')}"
    study = optuna.create_study(storage=storage, sampler=samplers[sampler], direction="minimize")
    stamps = [time.perf_counter()]
    deadline = stamps[0] + seconds
    for _ in range(trials):
        trial = study.ask()
        x = trial.suggest_float("x", -5.0, 5.0)
        n = trial.suggest_int("n", 1, 8)
        study.tell(trial, objective(x, n))
        stamps.append(time.perf_counter())
        if stamps[-1] > deadline:
            break
    return stamps, study.best_value


def summary(stamps, window):
    done = len(stamps) - 1
    window = min(window, max(1, done // 10))
    first = window / (stamps[window] - stamps[0])
    last = window / (stamps[done] - stamps[done - window])
    return {"trials": done, "seconds": round(stamps[-1] - stamps[0], 2), "window": window,
            "first_per_s": round(first, 1), "last_per_s": round(last, 1),
            "first_ms_per_trial": round(1000 / first, 3),
            "last_ms_per_trial": round(1000 / last, 3),
            "ms_per_trial_by_window": [
                round(1000 * (stamps[end] - stamps[end - window]) / window, 3)
                for end in range(window, done + 1, window)]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10000)
    parser.add_argument("--sampler", choices=["random", "tpe"], default="random")
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--hippo-seconds", type=float, default=600)
    parser.add_argument("--optuna-seconds", type=float, default=600)
    parser.add_argument("--hippo", help="the hippo binary (default build/cli/hippo)")
    parser.add_argument("--skip-optuna", action="store_true")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()

    results = {"sampler": args.sampler, "trials_asked": args.trials}
    with tempfile.TemporaryDirectory(prefix="hippo-asktell-bench-") as directory:
        with LocalServer(directory, args.hippo) as server:
            stamps, best = hippo_loop(server.address, args.trials, args.sampler,
                                      args.hippo_seconds)
        results["hippo"] = {**summary(stamps, args.window), "best": best}
        print("hippo ", json.dumps(results["hippo"]), flush=True)
        if not args.skip_optuna:
            stamps, best = optuna_loop(directory, args.trials, args.sampler, args.optuna_seconds)
            results["optuna"] = {**summary(stamps, args.window), "best": best}
            print("optuna", json.dumps(results["optuna"]), flush=True)
            hippo_last, optuna_last = results["hippo"], results["optuna"]
            if optuna_last["window"] == hippo_last["window"]:
                ratio = hippo_last["last_per_s"] / optuna_last["last_per_s"]
                results["last_window_ratio"] = round(ratio, 2)
                print(f"hippo / optuna trials/s over the last {hippo_last['window']}: "
                      f"{ratio:.2f}x")
    if args.out:
        with open(args.out, "w") as file:
            json.dump(results, file, indent=2)


if __name__ == "__main__":
    main()
