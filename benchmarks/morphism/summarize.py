"""Medians over seeds of the morphism benchmark, both ways: (a) the best validation accuracy
each algorithm reaches with the epochs it trained, and within as many epochs as evolution from
scratch trained with the same seed (equal epochs), (b) the epochs each needed to reach evolution
from scratch's best accuracy of the same seed; and the anytime curve: the best accuracy each run
had once it had trained 10, 20, ..., 70 epochs; and, for a morphism run, how many networks
trained from scratch (initial or mutations) started the lineages that reached budget.max_steps,
and which one the best network grew from.

Usage: summarize.py DIR [DIR...], where each DIR (a round) holds, per run, ALGORITHM-SEED.json (`hippo run --json`),
ALGORITHM-SEED.db (its SQLite file), ALGORITHM-SEED.checkpoints (its state files) and
ALGORITHM-SEED.load (the 1-minute load average before and after the run); run_benchmark.sh
writes them. With several rounds (e.g. a second run of evolution per seed), the tables come
per round, then the paired comparison over them all: per seed, every other arm's run against
every evolution run of that seed, the medians over seeds 0-2 (the issue's) and over all seeds,
and a sign test over seeds.

A run's timeline is kept in ALGORITHM-SEED.timeline (JSON) the first time it is read from the
checkpoints, and read from there when the checkpoints are gone (runs copied off another
machine without them).

Epochs to a target come from the run's timeline: every stage writes its state file when it
ends, so the files' modification times order the stages as they finished. Walking them in that
order, the epochs so far are the steps of the stages finished (one step is one epoch), and the
accuracy so far is the best validation accuracy reported at a step where a trial of the stage's
family ends (its target, where its result counts). The epochs to reach an accuracy are the
epochs so far at the first stage that reached it; stages still running on the other worker at
that moment are not counted. Standard library only.
"""
import json
import math
import pathlib
import sqlite3
import statistics
import sys
import urllib.parse


def timeline(db_path: pathlib.Path):
    """(epochs so far, best accuracy so far) after each finished stage, in finishing order; from
    the checkpoints where they are (written to the .timeline file), else that file."""
    cache = db_path.with_suffix(".timeline")
    if not db_path.with_suffix(".checkpoints").is_dir() and cache.exists():
        return [tuple(point) for point in json.loads(cache.read_text())]
    points = timeline_from_checkpoints(db_path)
    cache.write_text(json.dumps(points))
    return points


def timeline_from_checkpoints(db_path: pathlib.Path):
    """timeline() read from the state files' modification times."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    targets = {}  # family -> the steps where one of its trials ends (its result)
    for family, target in db.execute("SELECT family_id, target_step FROM trials"):
        targets.setdefault(family, set()).add(target)
    finished = []
    for family, lineage, start, end, uri in db.execute(
            "SELECT family_id, lineage, start_step, end_step, checkpoint_uri FROM stages "
            "WHERE checkpoint_uri != ''"):
        path = pathlib.Path(urllib.parse.urlparse(uri).path)
        if not path.exists():
            continue
        accuracy = None
        if end in targets.get(family, ()):
            row = db.execute(
                "SELECT value FROM metrics WHERE family_id = ? AND lineage = ? AND step = ? AND "
                "name = 'val_accuracy'", (family, lineage, end - 1)).fetchone()
            if row is not None and row[0] is not None:
                accuracy = row[0]
        finished.append((path.stat().st_mtime, end - start, accuracy))
    finished.sort(key=lambda stage: stage[0])  # by time alone: ties must not compare accuracies
    points, epochs, best = [], 0, float("-inf")
    for _, steps, accuracy in finished:
        epochs += steps
        if accuracy is not None:
            best = max(best, accuracy)
        points.append((epochs, best))
    return points


def lineages(db_path: pathlib.Path, max_steps: int):
    """For a morphism run: (the roots of the inheritance lineages whose networks were trained to
    `max_steps`, the root of the best network's lineage), a root being the trial trained from
    scratch that a chain of inheriting children grew from; read from the algorithm's saved state
    (search_algos/morphism.cc, "morphism-v2": per trial its state, target, parent, inherits,
    has objective, objective, point). None for another algorithm."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    row = db.execute("SELECT state FROM algorithm_states").fetchone()
    if row is None:
        return None
    text = row[0].decode() if isinstance(row[0], bytes) else row[0]
    lines = text.split("\n")
    if lines[0] != "morphism-v2":
        return None
    count = int(lines[1].split()[0])
    trials = []
    for line in lines[2:2 + count]:
        tokens = line.split()
        trials.append({"target": int(tokens[1]), "parent": int(tokens[2]),
                       "inherits": tokens[3] == "1", "scored": tokens[4] == "1",
                       "objective": float(tokens[5])})

    def root(trial: int) -> int:
        while trials[trial]["inherits"]:
            trial = trials[trial]["parent"]
        return trial

    full = {root(t) for t, trial in enumerate(trials) if trial["target"] == max_steps and
            trial["scored"]}
    scored = [t for t, trial in enumerate(trials) if trial["scored"]]
    best = max(scored, key=lambda t: trials[t]["objective"]) if scored else None
    return full, (None if best is None else root(best))


# The epochs at which summarize's anytime table reads each run's best accuracy so far.
CHECKPOINTS = (10, 20, 30, 40, 50, 60, 70)


def best_within(points, epochs: int) -> float:
    """The best accuracy once `epochs` epochs had been trained (NaN if none by then)."""
    return max((best for spent, best in points if spent <= epochs), default=float("nan"))


def epochs_to(points, target: float):
    """The epochs so far when the best accuracy first reached `target`, or None."""
    return next((epochs for epochs, best in points if best >= target - 1e-9), None)


def cell(accuracy: float) -> str:
    """An accuracy of the anytime table; "–" where no network had finished by then."""
    return f"{accuracy:.4f}" if math.isfinite(accuracy) else "–"


def ratio(evolution_epochs, epochs) -> str:
    """Evolution's epochs to its best over this run's epochs to it ("2.0x": half as many)."""
    if evolution_epochs is None or epochs is None or epochs == 0:
        return "–"
    return f"{evolution_epochs / epochs:.1f}x"


def load_runs(directory: str):
    """algorithm -> seed -> the run's figures, for the runs in `directory`."""
    runs = {}  # algorithm -> seed -> figures
    for path in sorted(pathlib.Path(directory).glob("*-*.json")):
        algorithm, seed = path.stem.rsplit("-", 1)
        try:
            summary = json.loads(path.read_text())
        except json.JSONDecodeError:  # a run that did not finish
            print(f"summarize: {path} holds no result; left out", file=sys.stderr)
            continue
        load_path = path.with_suffix(".load")
        load = load_path.read_text().split() if load_path.exists() else ["?", "?"]
        best = summary["best_trial"]["value"] if summary["best_trial"] else float("nan")
        runs.setdefault(algorithm, {})[int(seed)] = {
            "best": best, "epochs": summary["executed_steps"], "trials": summary["trials"],
            "seconds": summary["wall_seconds"], "load": f"{load[0]}–{load[1]}",
            "timeline": timeline(path.with_suffix(".db"))}
    return runs


def print_round(directory: str, runs) -> None:
    """summarize's tables for the runs of one round (output folder)."""
    baseline = runs.get("evolution", {})
    print("| algorithm | seed | best val_accuracy | epochs trained | best within evolution's epochs "
          "| epochs to evolution's best | fewer epochs than evolution | trials | wall s | load avg. |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    # Evolution's epochs to its own best, per seed: what the other run's epochs are set against.
    own = {seed: epochs_to(run["timeline"], run["best"]) for seed, run in baseline.items()}
    for algorithm, by_seed in runs.items():
        reached, equal = [], []
        for seed, run in sorted(by_seed.items()):
            to_target, within = None, float("nan")
            if seed in baseline:
                to_target = epochs_to(run["timeline"], baseline[seed]["best"])
                within = best_within(run["timeline"], baseline[seed]["epochs"])
            reached.append(to_target)
            equal.append(within)
            shown = "not reached" if to_target is None else str(to_target)
            print(f"| {algorithm} | {seed} | {run['best']:.4f} | {run['epochs']} | {within:.4f} | "
                  f"{shown} | {ratio(own.get(seed), to_target)} | {run['trials']} | "
                  f"{run['seconds']:.0f} | {run['load']} |")
        rows = list(by_seed.values())
        # A run that never reached the target counts as needing more than any epochs.
        median_to = statistics.median(float("inf") if r is None else r for r in reached)
        shown = "not reached" if median_to == float("inf") else f"{median_to:g}"
        median_own = statistics.median(
            float("inf") if own.get(seed) is None else own[seed] for seed in by_seed)
        print(f"| {algorithm} | **median** | **{statistics.median(r['best'] for r in rows):.4f}** | "
              f"**{statistics.median(r['epochs'] for r in rows):g}** | "
              f"**{statistics.median(equal):.4f}** | **{shown}** | "
              f"**{ratio(median_own, None if median_to == float('inf') else median_to)}** | "
              f"{statistics.median(r['trials'] for r in rows):g} | "
              f"{statistics.median(r['seconds'] for r in rows):.0f} | |")
    # The anytime curve: the best accuracy each run had once it had trained so many epochs, a
    # comparison less sensitive than the above to when the last thousandth of accuracy came.
    print()
    print("| algorithm | seed | " + " | ".join(f"best within {n} epochs" for n in CHECKPOINTS) +
          " |")
    print("| --- | --- | " + " | ".join("---" for _ in CHECKPOINTS) + " |")
    for algorithm, by_seed in runs.items():
        curves = {seed: [best_within(run["timeline"], n) for n in CHECKPOINTS]
                  for seed, run in sorted(by_seed.items())}
        for seed, curve in curves.items():
            print(f"| {algorithm} | {seed} | " + " | ".join(cell(v) for v in curve) + " |")
        medians = [statistics.median(curve[i] for curve in curves.values())
                   for i in range(len(CHECKPOINTS))]
        print(f"| {algorithm} | **median** | " + " | ".join(f"**{cell(v)}**" for v in medians) +
              " |")


    # Where a morphism run's full-length networks came from: one lineage, or several.
    rows = []
    for algorithm, by_seed in runs.items():
        for seed in sorted(by_seed):
            db = pathlib.Path(directory) / f"{algorithm}-{seed}.db"
            spec = db.with_suffix(".yaml").read_text() if db.with_suffix(".yaml").exists() else ""
            max_steps = next((int(line.split("max_steps:")[1].strip(" }\n"))
                              for line in spec.splitlines()
                              if line.startswith("budget:") and "max_steps:" in line), None)
            found = lineages(db, max_steps) if max_steps else None
            if found is not None:
                full, best = found
                rows.append(f"| {algorithm} | {seed} | {len(full)} | "
                            f"{', '.join(str(t) for t in sorted(full))} | {best} |")
    if rows:
        print()
        print("| algorithm | seed | lineages trained to max_steps | their roots (trials from scratch) "
              "| root of the best network |")
        print("| --- | --- | --- | --- | --- |")
        print("\n".join(rows))


def sign_test(wins: int, losses: int) -> float:
    """Two-sided sign test: the chance of a split at least this uneven between wins and losses
    (ties left out) if either side were equally likely."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def pair(run, evolution):
    """(the run's best within evolution's epochs minus evolution's best, in points; evolution's
    epochs to its best over the run's epochs to it, 0 if the run never reached it)."""
    within = best_within(run["timeline"], evolution["epochs"])
    difference = 100 * (within - best_within(evolution["timeline"], evolution["epochs"]))
    own = epochs_to(evolution["timeline"], evolution["best"])
    to_target = epochs_to(run["timeline"], evolution["best"])
    faster = 0.0 if not own or not to_target else own / to_target
    return difference, faster


def print_pairs(rounds) -> None:
    """Every arm's runs against every evolution run of the same seed, over all rounds."""
    evolution = {}  # seed -> evolution's runs over the rounds
    arms = {}  # arm -> seed -> its runs
    for runs in rounds:
        for algorithm, by_seed in runs.items():
            for seed, run in by_seed.items():
                target = evolution if algorithm == "evolution" else arms.setdefault(algorithm, {})
                target.setdefault(seed, []).append(run)
    if not arms:
        return
    print()
    print("Paired by seed over the rounds: each run of the arm against each evolution run of the "
          "seed. Equal epochs: the arm's best within evolution's epochs minus evolution's best, "
          "in points; fewer epochs: evolution's epochs to its best over the arm's to it.")
    print()
    print("| arm | seed | pairs | equal-epoch difference (points) | mean | fewer epochs | median |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    summaries = []
    for arm, by_seed in sorted(arms.items()):
        means, ratios = {}, {}
        for seed in sorted(by_seed):
            if seed not in evolution:
                continue
            found = [pair(run, base) for run in by_seed[seed] for base in evolution[seed]]
            means[seed] = statistics.mean(d for d, _ in found)
            ratios[seed] = statistics.median(r for _, r in found)
            print(f"| {arm} | {seed} | {len(found)} | "
                  f"{', '.join(f'{d:+.2f}' for d, _ in found)} | {means[seed]:+.2f} | "
                  f"{', '.join(f'{r:.1f}x' for _, r in found)} | {ratios[seed]:.1f}x |")
        for label, seeds in (("seeds 0-2", [s for s in means if s in (0, 1, 2)]),
                             ("all seeds", list(means))):
            if not seeds:
                continue
            wins = sum(means[s] > 0 for s in seeds)
            losses = sum(means[s] < 0 for s in seeds)
            summaries.append(
                f"| {arm} | {label} | {len(seeds)} | "
                f"{statistics.median(means[s] for s in seeds):+.2f} | "
                f"{statistics.median(ratios[s] for s in seeds):.2f}x | "
                f"{sum(ratios[s] >= 2 for s in seeds)} | {wins} / {losses} / "
                f"{len(seeds) - wins - losses} | {sign_test(wins, losses):.3f} |")
    print()
    print("| arm | over | seeds | median equal-epoch difference (points) | median fewer epochs "
          "| seeds at 2x or more | seeds ahead / behind / even | sign test p (two-sided) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(summaries))
    # How far apart two runs of evolution with the same seed land: the noise of one run.
    noise = [100 * (runs[1]["best"] - runs[0]["best"]) for runs in evolution.values()
             if len(runs) > 1]
    if noise:
        print()
        print(f"Evolution, second run minus first, best accuracy (points), {len(noise)} seeds: "
              f"{', '.join(f'{d:+.2f}' for d in noise)}; median absolute "
              f"{statistics.median(abs(d) for d in noise):.2f}.")


def main(directories) -> None:
    rounds = []
    for directory in directories:
        runs = load_runs(directory)
        if len(directories) > 1:
            print(f"### {directory}")
            print()
        print_round(directory, runs)
        print()
        rounds.append(runs)
    print_pairs(rounds)


if __name__ == "__main__":
    main(sys.argv[1:])
