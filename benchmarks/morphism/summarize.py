"""Medians over seeds of the morphism benchmark's `hippo run --json` outputs.

Usage: summarize.py DIR, where DIR holds ALGORITHM-SEED.json (run_benchmark.sh writes them).
Prints one row per run and one median row per algorithm: the best validation accuracy, the
epochs trained (executed steps: one step is one epoch), and the wall time.
"""
import json
import pathlib
import statistics
import sys


def main(directory: str) -> None:
    runs = {}
    for path in sorted(pathlib.Path(directory).glob("*-*.json")):
        algorithm, seed = path.stem.rsplit("-", 1)
        summary = json.loads(path.read_text())
        runs.setdefault(algorithm, []).append(
            (int(seed), summary["best_trial"]["value"], summary["executed_steps"],
             summary["wall_seconds"]))
    print("| algorithm | seed | best val_accuracy | epochs trained | wall s |")
    print("| --- | --- | --- | --- | --- |")
    for algorithm, rows in runs.items():
        for seed, best, epochs, seconds in sorted(rows):
            print(f"| {algorithm} | {seed} | {best:.4f} | {epochs} | {seconds:.0f} |")
        print(f"| {algorithm} | median | {statistics.median(r[1] for r in rows):.4f} | "
              f"{statistics.median(r[2] for r in rows):g} | "
              f"{statistics.median(r[3] for r in rows):.0f} |")


if __name__ == "__main__":
    main(sys.argv[1])
