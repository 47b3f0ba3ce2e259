"""Medians over seeds of the morphism benchmark's `hippo run --json` outputs.

Usage: summarize.py DIR, where DIR holds ALGORITHM-SEED.json and ALGORITHM-SEED.load (the
1-minute load average before and after the run; run_benchmark.sh writes both). Prints one row
per run and one median row per algorithm: the best validation accuracy, the epochs trained
(executed steps: one step is one epoch), the trials, the wall time and the load average.
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
        load_path = path.with_suffix(".load")
        load = load_path.read_text().split() if load_path.exists() else ["?", "?"]
        best = summary["best_trial"]["value"] if summary["best_trial"] else float("nan")
        runs.setdefault(algorithm, []).append(
            (int(seed), best, summary["executed_steps"], summary["trials"],
             summary["wall_seconds"], f"{load[0]}–{load[1]}"))
    print("| algorithm | seed | best val_accuracy | epochs trained | trials | wall s | load avg. |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for algorithm, rows in runs.items():
        for seed, best, epochs, trials, seconds, load in sorted(rows):
            print(f"| {algorithm} | {seed} | {best:.4f} | {epochs} | {trials} | {seconds:.0f} | {load} |")
        print(f"| {algorithm} | **median** | **{statistics.median(r[1] for r in rows):.4f}** | "
              f"**{statistics.median(r[2] for r in rows):g}** | "
              f"{statistics.median(r[3] for r in rows):g} | "
              f"{statistics.median(r[4] for r in rows):.0f} | |")


if __name__ == "__main__":
    main(sys.argv[1])
