"""The benchmark's figures: medians per algorithm, model, worker count and side; Hippo's
ratios; the goals; and the tables printed (Markdown, as benchmarks/README.md holds them)."""

import math
import statistics

SIDES = ("hippo", "hippo-no-merge", "optuna")


def config_name(config):
    initial, milestones, gamma = config
    return f"lr {initial:g} milestones {milestones} gamma {gamma:g}"


def progress_line(result):
    best = result["best_accuracy"]
    return (f"{result['algorithm']:9} {result['model']} workers {result['workers']} run "
            f"{result['run']} {result['side']:14} wall {result['wall_s']:7.2f} s  CPU "
            f"{result['cpu_s']:7.2f} s  epochs {result['epochs']:4}  best "
            f"{'-' if best is None else f'{best:.4f}'}  load {result['load_average']:.1f}")


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarise(results, val_limit):
    """(rows, goals): a row per (algorithm, model, workers, side) with the medians over runs;
    a goal record per (algorithm, model, workers)."""
    groups = {}
    for result in results:
        key = (result["algorithm"], result["model"], result["workers"])
        groups.setdefault(key, {}).setdefault(result["side"], []).append(result)
    rows, goals = [], []
    for (algorithm, model, workers), sides in groups.items():
        medians = {}
        for side in SIDES:
            runs = sides.get(side, [])
            if not runs:
                continue
            medians[side] = {name: _median([r[name] for r in runs])
                             for name in ("wall_s", "cpu_s", "epochs", "epoch_s",
                                          "best_accuracy")}
            medians[side]["runs"] = len(runs)
            timelines = [r["timeline"] for r in runs if r.get("timeline")]
            if timelines:
                medians[side]["timeline"] = {
                    part: _median([t[part] for t in timelines]) for part in timelines[0]}
            medians[side]["load_average"] = [min(r["load_average"] for r in runs),
                                             max(r["load_average"] for r in runs)]
            rows.append({"algorithm": algorithm, "model": model, "workers": workers,
                         "side": side, **medians[side]})
        everything = [r for runs in sides.values() for r in runs]
        goal = {"algorithm": algorithm, "model": model, "workers": workers,
                "same_configs": all(r["configs"] == everything[0]["configs"]
                                    for r in everything),
                "trials": len(everything[0]["configs"]),
                "distinct_configs": len({tuple(c) for c in everything[0]["configs"]})}
        merged = sides.get("hippo", [])
        goal["unique_epochs"] = [(r["epochs"], r["steps"].get("unique_steps"),
                                  r["steps"].get("executed_steps")) for r in merged]
        goal["trains_unique_epochs"] = all(e == u == x for e, u, x in goal["unique_epochs"])
        if "hippo" in medians and "hippo-no-merge" in medians:
            h, n = medians["hippo"], medians["hippo-no-merge"]
            goal["epoch_gain"] = n["epochs"] / h["epochs"]
            goal["wall_gain"] = n["wall_s"] / h["wall_s"]
            goal["cpu_gain"] = n["cpu_s"] / h["cpu_s"]
            goal["wall_over_epoch_gain"] = goal["wall_gain"] / goal["epoch_gain"]
            # The same ratio had both sides' epochs run at the same speed: wall time per second
            # of training, --no-merge's over Hippo's. It leaves out how fast the machine ran
            # each side's epochs (on a loaded machine, the larger part of the spread) and keeps
            # what the systems add to training: 1 when neither adds anything.
            if h["epoch_s"] and n["epoch_s"]:
                goal["same_speed_ratio"] = ((n["wall_s"] / n["epoch_s"])
                                            / (h["wall_s"] / h["epoch_s"]))
            _parallel_bound(goal, h, n, workers)
            goal["paired_wall_over_epoch_gain"] = _paired_ratio(sides["hippo"],
                                                                sides["hippo-no-merge"])
        if "hippo" in medians and "optuna" in medians:
            h, o = medians["hippo"], medians["optuna"]
            goal["vs_optuna"] = {"epochs": o["epochs"] / h["epochs"],
                                 "wall": o["wall_s"] / h["wall_s"],
                                 "cpu": o["cpu_s"] / h["cpu_s"]}
            if h["best_accuracy"] is not None and o["best_accuracy"] is not None:
                p = o["best_accuracy"]
                goal["standard_error"] = math.sqrt(p * (1 - p) / val_limit)
                goal["best_difference"] = h["best_accuracy"] - o["best_accuracy"]
                goal["best_equal_within_se"] = (abs(goal["best_difference"])
                                                <= goal["standard_error"])
            # The same configuration trained to the end on both sides: the same accuracy?
            shared = same = 0
            for hr in merged:
                for orun in sides.get("optuna", []):
                    for name, value in hr["final_accuracy"].items():
                        if name in orun["final_accuracy"]:
                            shared += 1
                            same += value == orun["final_accuracy"][name]
            goal["final_accuracy_pairs"] = {"shared": shared, "identical": same}
        goals.append(goal)
    return rows, goals


def _paired_ratio(merged_runs, trial_by_trial_runs):
    """The median over runs of each run's wall-clock gain over its epoch gain, the two sides of a
    run having run one after the other: the machine's speed drifts between runs (±25 % per epoch
    on this shared box) more than within one, and ASHA's epochs differ from run to run, so a
    ratio of medians taken over different runs mixes them."""
    by_run = {r["run"]: r for r in trial_by_trial_runs}
    ratios = [(by_run[h["run"]]["wall_s"] / h["wall_s"]) / (by_run[h["run"]]["epochs"] / h["epochs"])
              for h in merged_runs if h["run"] in by_run and h["wall_s"] and h["epochs"]]
    return _median(ratios)


def _parallel_bound(goal, merged, trial_by_trial, workers):
    """The wall-clock gain no scheduler could beat: each side needs at least the larger of its
    longest chain of epochs (a stage starts after its parent) and its epochs spread evenly over
    the workers. With one worker that is the epoch gain; with several, merging can lengthen the
    chain against the spread (fewer independent branches than workers), and the goal's ratio is
    then measured against this bound."""
    h_tl, n_tl = merged.get("timeline"), trial_by_trial.get("timeline")
    if not h_tl or not n_tl or "critical_epochs" not in h_tl or "critical_epochs" not in n_tl:
        return
    goal["critical_epochs"] = (h_tl["critical_epochs"], n_tl["critical_epochs"])
    h_bound = max(h_tl["critical_epochs"], merged["epochs"] / workers)
    n_bound = max(n_tl["critical_epochs"], trial_by_trial["epochs"] / workers)
    goal["bound_gain"] = n_bound / h_bound
    goal["wall_over_bound_gain"] = goal["wall_gain"] / min(goal["epoch_gain"], goal["bound_gain"])


def bound_table(summary):
    lines = ["| algorithm | model | workers | longest chain, epochs (hippo / no-merge) | "
             "epoch gain | parallel bound on the gain | wall gain | wall gain / the lesser "
             "(≥ 0.95) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for goal in summary["goals"]:
        if "bound_gain" not in goal:
            continue
        ratio = goal["wall_over_bound_gain"]
        lines.append(
            f"| {goal['algorithm']} | {goal['model']} | {goal['workers']} | "
            f"{goal['critical_epochs'][0]:g} / {goal['critical_epochs'][1]:g} | "
            f"{_f(goal['epoch_gain'])}× | {_f(goal['bound_gain'])}× | {_f(goal['wall_gain'])}× | "
            f"{_f(ratio)} {'ok' if ratio >= 0.95 else 'MISSED'} |")
    return lines if len(lines) > 2 else []


def _f(value, digits=2):
    return "–" if value is None else f"{value:.{digits}f}"


def table(summary):
    lines = ["| algorithm | model | workers | side | runs | wall s | CPU s | epochs | "
             "s per epoch | wall − training / workers, s | best val. acc. | load avg. |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in summary["rows"]:
        per_epoch = row["epoch_s"] / row["epochs"] if row["epochs"] else None
        load = row["load_average"]
        lines.append(
            f"| {row['algorithm']} | {row['model']} | {row['workers']} | {row['side']} | "
            f"{row['runs']} | {_f(row['wall_s'])} | {_f(row['cpu_s'])} | {row['epochs']:g} | "
            f"{_f(per_epoch, 3)} | {_f(row['wall_s'] - row['epoch_s'] / row['workers'])} | "
            f"{_f(row['best_accuracy'], 4)} | "
            f"{load[0]:.1f}–{load[1]:.1f} |")
    lines += ["", "| algorithm | model | workers | trials (distinct) | same configs | "
              "epochs = unique | epoch gain | CPU gain | wall gain | wall/epoch gain (≥ 0.95) | "
              "the same, paired per run (≥ 0.95) | "
              "same epoch speed | vs Optuna: epochs, wall, CPU | best Δ vs Optuna (SE) | "
              "same config, same acc. |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | "
              "--- | --- |"]
    for goal in summary["goals"]:
        vs = goal.get("vs_optuna")
        unique = ", ".join(f"{e}/{u}" for e, u, _ in goal["unique_epochs"])
        pairs = goal.get("final_accuracy_pairs", {})
        best = (f"{goal['best_difference']:+.4f} ({goal['standard_error']:.4f}) "
                f"{'ok' if goal['best_equal_within_se'] else 'MISSED'}"
                if "best_difference" in goal else "–")
        ratio = goal.get("wall_over_epoch_gain")
        paired = goal.get("paired_wall_over_epoch_gain")
        lines.append(
            f"| {goal['algorithm']} | {goal['model']} | {goal['workers']} | {goal['trials']} "
            f"({goal['distinct_configs']}) | {'yes' if goal['same_configs'] else 'NO'} | "
            f"{unique} {'ok' if goal['trains_unique_epochs'] else 'MISSED'} | "
            f"{_f(goal.get('epoch_gain'))}× | {_f(goal.get('cpu_gain'))}× | "
            f"{_f(goal.get('wall_gain'))}× | "
            f"{_f(ratio)} {'' if ratio is None else 'ok' if ratio >= 0.95 else 'MISSED'} | "
            f"{_f(paired)} {'' if paired is None else 'ok' if paired >= 0.95 else 'MISSED'} | "
            f"{_f(goal.get('same_speed_ratio'))} | "
            + (f"{vs['epochs']:.2f}×, {vs['wall']:.2f}×, {vs['cpu']:.2f}× | " if vs else "– | ")
            + f"{best} | {pairs.get('identical', 0)}/{pairs.get('shared', 0)} |")
    lines += ["", "Where each Hippo study's time went, seconds per worker (medians; "
                  "`timeline.py`): training epochs, model setup (build + load, or the kept "
                  "model), saving states, the rest of the stage, dispatch (coordinator round "
                  "trip), waiting for a parent stage running elsewhere, and the end (after a "
                  "worker's last stage); overhead = everything but training, as a share of "
                  "wall.", "",
              "| algorithm | model | workers | side | wall s | train | setup | save | other | "
              "dispatch | wait | end | overhead | stages (kept / loaded) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | "
              "--- |"]
    for row in summary["rows"]:
        t = row.get("timeline")
        if not t:
            continue
        overhead = 1 - t["train"] / row["wall_s"] if row["wall_s"] else None
        lines.append(
            f"| {row['algorithm']} | {row['model']} | {row['workers']} | {row['side']} | "
            f"{_f(row['wall_s'])} | "
            + " | ".join(_f(t[part]) for part in ("train", "setup", "save", "other",
                                                  "dispatch", "wait", "end"))
            + f" | {_f(None if overhead is None else 100 * overhead, 1)} % | "
            f"{t['stages']:g} ({t['kept']:g} / {t['loaded']:g}) |")
    bounds = bound_table(summary)
    if bounds:
        lines += ["", "The gain no scheduler could beat (`_parallel_bound`): each side needs at "
                      "least its longest chain of epochs or its epochs over the workers, "
                      "whichever is larger.", ""] + bounds
    overhead = summary.get("service_overhead")
    if overhead:
        lines += ["", f"Service overhead, trivial objective (ask/tell, random sampler): Hippo "
                      f"{overhead['hippo']:.1f} trials/s, Optuna {overhead['optuna']:.1f} "
                      f"trials/s ({overhead['hippo'] / overhead['optuna']:.1f}×)."]
    return "\n".join(lines)
