#!/usr/bin/env python3
"""The ASHA-driven workloads with real workers, N runs each: the spread of their savings.

ASHA promotes asynchronously, so what it trains depends on the order results arrive; the
simulator (workloads_benchmark) fixes one order. Here each run is `hippo run` (an embedded
coordinator with a SQLite file, local workers over loopback gRPC, the sim trainer in virtual
time: no sleeping, so the order is whatever the threads make of it), and the table gives the
minimum, median and maximum over the runs of: trials, trial_steps, distinct_steps,
executed_steps, and the savings against trial by trial and against distinct configurations.

Usage: asha_spread.py HIPPO [--runs 10] [--workers 8] [--out FILE] [--only W2,W2d,W5,W6]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKLOADS = os.path.join(ROOT, "examples", "workloads")

# id -> (spec files, drop the sample_with_replacement line: draw without replacement)
CASES = {
    "W2": (["w2.yaml"], False),
    "W2d": (["w2.yaml"], True),
    "W5": (["w5-grid.yaml", "w5-asha-seed1.yaml", "w5-asha-seed2.yaml"], False),
    "W6": (["w6.yaml"], False),
}


def spec_paths(files, without_replacement, scratch):
    paths = []
    for name in files:
        path = os.path.join(WORKLOADS, name)
        if without_replacement:
            with open(path) as source:
                lines = [line for line in source if "sample_with_replacement" not in line]
            path = os.path.join(scratch, "distinct-" + name)
            with open(path, "w") as copy:
                copy.writelines(lines)
        paths.append(path)
    return paths


def one_run(hippo, paths, workers):
    result = subprocess.run([hippo, "run", *paths, "--workers", str(workers), "--json"],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"hippo run {' '.join(paths)} failed ({result.returncode}): {result.stderr}")
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    studies = summary.get("studies", [summary])
    # The studies of one workload share one family: unique and executed steps are the
    # family's, the same in each study's summary.
    executed = studies[0]["executed_steps"]
    distinct = summary.get("distinct_steps_together", studies[0]["distinct_steps"])
    trial_steps = sum(study["trial_steps"] for study in studies)
    return {
        "trials": sum(study["trials"] for study in studies),
        "trial_steps": trial_steps,
        "distinct_steps": distinct,
        "unique_steps": studies[0]["unique_steps"],
        "executed_steps": executed,
        "savings": trial_steps / executed,
        "distinct_savings": distinct / executed,
        "best": studies[0]["best_trial"]["value"] if studies[0]["best_trial"] else None,
        "wall_seconds": summary["wall_seconds"],
    }


def spread(values):
    return min(values), statistics.median(values), max(values)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("hippo")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--out", default="asha_spread.json")
    parser.add_argument("--only", default=",".join(CASES))
    args = parser.parse_args()
    report = {"runs": args.runs, "workers": args.workers, "workloads": {}}
    columns = ["trials", "trial_steps", "distinct_steps", "executed_steps", "savings",
               "distinct_savings"]
    print(f"{'workload':9}" + "".join(f"{c + ' min/med/max':>32}" for c in columns))
    with tempfile.TemporaryDirectory() as scratch:
        for case in args.only.split(","):
            files, without_replacement = CASES[case]
            paths = spec_paths(files, without_replacement, scratch)
            runs = [one_run(args.hippo, paths, args.workers) for _ in range(args.runs)]
            report["workloads"][case] = runs
            cells = []
            for column in columns:
                low, middle, high = spread([run[column] for run in runs])
                if isinstance(low, float):
                    cells.append(f"{low:.2f}x / {middle:.2f}x / {high:.2f}x")
                else:
                    cells.append(f"{low} / {middle:g} / {high}")
            print(f"{case:9}" + "".join(f"{cell:>32}" for cell in cells), flush=True)
    with open(args.out, "w") as out:
        json.dump(report, out, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
