#!/usr/bin/env python3
"""Prints the short table of scripts/gpu-check.sh from the JSON files in one output folder.

Usage: summarize.py DIR   (reads hippo_*.json, pytorch_reference.json, study-merge.json,
                           study-no-merge.json; any may be missing)
"""
import json
import os
import sys


def load(directory, name):
    path = os.path.join(directory, name)
    try:
        with open(path) as f:
            text = f.read().strip()
        # hippo run --json prints one object on its last line.
        return json.loads(text.splitlines()[-1] if name.startswith("study") else text)
    except (OSError, ValueError, IndexError):
        return None


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "."
    # scripts/gpu-check.sh runs each phase in its own process: hippo_throughput.json,
    # hippo_fork.json, hippo_gap.json; one run of all phases writes one file.
    hippo = {"throughput": [], "fork": [], "gap": {}}
    found = False
    for name in sorted(os.listdir(directory)):
        if not (name.startswith("hippo_") and name.endswith(".json")):
            continue
        part = load(directory, name)
        if part is None:
            continue
        found = True
        hippo["throughput"] += part.get("throughput", [])
        hippo["fork"] += part.get("fork", [])
        if part.get("gap", {}).get("status", "not run") != "not run":
            hippo["gap"] = part["gap"]
    if not found:
        hippo = None
    reference = load(directory, "pytorch_reference.json")
    figures = {}
    for source, rows in (("hippo", (hippo or {}).get("throughput", [])),
                         ("pytorch", (reference or {}).get("rows", []))):
        for row in rows:
            if row.get("status") != "ok":
                continue
            key = (row["model"], row["batch_size"], row["precision"], row.get("layout", "nchw"))
            figures.setdefault(key, {})[f"{source} {row['mode']}"] = row["images_per_second"]
    if figures:
        print("images/s (same GPU, same run); nchw = PyTorch's default layout, nhwc = channels_last")
        columns = ["pytorch eager", "pytorch graph", "hippo eager", "hippo graph"]
        bases = ["pytorch eager", "pytorch graph", "pytorch eager nchw"]
        print(f"{'model':9} {'batch':>5} {'prec':>4} {'layout':>6} " +
              " ".join(f"{c:>13}" for c in columns) + " " +
              " ".join(f"{'vs ' + b[8:]:>14}" for b in bases))
        for key in sorted(figures):
            values = dict(figures[key])
            nchw = figures.get(key[:3] + ("nchw",), {})
            if "pytorch eager" in nchw:
                values["pytorch eager nchw"] = nchw["pytorch eager"]
            cells = " ".join(f"{values[c]:13.0f}" if c in values else f"{'-':>13}"
                             for c in columns)
            ratios = []
            for base in bases:
                if "hippo graph" in values and base in values:
                    ratios.append(f"{values['hippo graph'] / values[base]:13.2f}x")
                else:
                    ratios.append(f"{'-':>14}")
            print(f"{key[0]:9} {key[1]:5} {key[2]:>4} {key[3]:>6} {cells} {' '.join(ratios)}")
    if hippo:
        for row in hippo.get("fork", []):
            if row.get("status") == "ok":
                print(f"fork {row['model']}: state {row['state_bytes'] / 1e6:.2f} MB, "
                      f"from memory (Clone) {row['clone_ms']:.3f} ms, from disk "
                      f"(serialize+write+read+deserialize) {row['disk_ms']:.2f} ms")
            else:
                print(f"fork {row['model']}: {row.get('status')}")
        gap = hippo.get("gap", {})
        if gap.get("status") == "ok":
            print(f"stage switch ({gap['model']}, batch {gap['batch_size']}, {gap['mode']}): "
                  f"one-epoch stage {gap['epoch_ms']:.1f} ms, overhead {gap['overhead_ms']:.2f} ms "
                  f"= {gap['overhead_percent']:.2f}% (goal under 1%)")
        elif gap:
            print(f"stage switch: {gap.get('status')}")
    for mode in ("merge", "no-merge"):
        study = load(directory, f"study-{mode}.json")
        if study is None:
            continue
        best = study.get("best_trial") or {}
        print(f"study {mode:8}: {study.get('status')}, {study.get('trials_completed')}/"
              f"{study.get('trials')} trials, executed steps {study.get('executed_steps')} "
              f"(trial steps {study.get('trial_steps')}), wall = GPU seconds "
              f"{study.get('wall_seconds', float('nan')):.1f}, best val_accuracy "
              f"{best.get('value', float('nan')):.4f}")


if __name__ == "__main__":
    main()
