"""benchmarks/vs_optuna end to end at a tiny size (2-4 trials, 2 epochs of 128 images): the
script runs Hippo, Hippo --no-merge and Optuna, and the three evaluate the same configurations
in the same order; Hippo trains the stage tree's unique epochs, and the deterministic training
code gives every configuration the same accuracy on every side (also where a Hippo worker
continued a stage from the model it kept in memory); each Hippo study's timeline accounts for
its wall time."""

import json
import os
import subprocess
import sys

from conftest import REPO, hippo_binary

SCRIPT = os.path.join(REPO, "benchmarks", "vs_optuna", "run_benchmark.py")


def test_benchmark_sides_evaluate_the_same_configurations(tmp_path):
    out = tmp_path / "vs_optuna.json"
    subprocess.run(
        [sys.executable, SCRIPT, "--hippo", hippo_binary(), "--models", "mlp", "--workers", "1",
         "--runs", "1", "--epochs", "2", "--initial", "0.1", "--milestones", "1",
         "--gamma", "0.1,0.5", "--grid-gamma", "0.1,0.5", "--asha-min-resource", "1",
         "--reduction-factor", "2", "--asha-trials", "3", "--train-limit", "128", "--val-limit", "128",
         "--overhead-trials", "5", "--out", str(out)],
        check=True, timeout=1200, cwd=tmp_path)
    summary = json.loads(out.read_text())

    sides = {}
    for result in summary["results"]:
        sides.setdefault(result["algorithm"], {})[result["side"]] = result
    assert set(sides) == {"grid", "asha", "hyperband"}
    for algorithm, by_side in sides.items():
        assert set(by_side) == {"hippo", "hippo-no-merge", "optuna"}, algorithm
        configs = by_side["hippo"]["configs"]
        assert configs, algorithm
        assert by_side["hippo-no-merge"]["configs"] == configs, algorithm
        assert by_side["optuna"]["configs"] == configs, algorithm
        merged = by_side["hippo"]
        assert merged["epochs"] == merged["steps"]["unique_steps"], algorithm
        assert merged["epochs"] == merged["steps"]["executed_steps"], algorithm
        # The same configuration trained to the end gives the same accuracy on every side.
        for side in ("hippo-no-merge", "optuna"):
            for name, accuracy in by_side[side]["final_accuracy"].items():
                if name in merged["final_accuracy"]:
                    assert merged["final_accuracy"][name] == accuracy, (algorithm, side, name)
    assert all(goal["same_configs"] for goal in summary["goals"])

    # The grid in Hippo's order (the last parameter fastest), and its epochs: the shared first
    # epoch once plus one per gamma merged; two per trial trial by trial and in Optuna.
    grid = sides["grid"]
    assert grid["hippo"]["configs"] == [[0.1, "1", 0.1], [0.1, "1", 0.5]]
    assert grid["hippo"]["epochs"] == 3
    assert grid["hippo-no-merge"]["epochs"] == grid["optuna"]["epochs"] == 4
    assert summary["service_overhead"]["hippo"] > 0 and summary["service_overhead"]["optuna"] > 0

    # With one worker the first gamma's stage follows the shared one on the same worker: it
    # continues the model kept in memory; the second starts from the shared state's file.
    timeline = grid["hippo"]["timeline"]
    assert (timeline["stages"], timeline["kept"], timeline["loaded"]) == (3, 1, 1), timeline
    # The longest chain of epochs is a trial's two epochs on both sides (shared first epoch,
    # then the gamma's), and the goal table's parallel bound is then the epoch gain.
    assert timeline["critical_epochs"] == 2, timeline
    assert grid["hippo-no-merge"]["timeline"]["critical_epochs"] == 2
    grid_goal = next(goal for goal in summary["goals"] if goal["algorithm"] == "grid")
    assert grid_goal["bound_gain"] == grid_goal["epoch_gain"] == 4 / 3, grid_goal
    assert grid_goal["paired_wall_over_epoch_gain"] == grid_goal["wall_over_epoch_gain"]
    # The JSON keeps the stage log the timeline was made from, in seconds since the study began.
    log = grid["hippo"]["stage_log"]
    assert len(log) == timeline["stages"], log
    assert all(0 <= r["entered"] <= r["started"] <= r["left"] <= grid["hippo"]["wall_s"] + 1
               for r in log), log
    # The timeline's parts are the worker's whole time: they add up to the study's wall time.
    for algorithm, by_side in sides.items():
        for side in ("hippo", "hippo-no-merge"):
            result = by_side[side]
            parts = sum(result["timeline"][part] for part in
                        ("train", "setup", "save", "other", "dispatch", "wait", "end"))
            assert abs(parts - result["wall_s"]) < 0.01 * result["wall_s"] + 0.05, \
                (algorithm, side, result["timeline"], result["wall_s"])


def test_optuna_storage_prunes_as_optunas_rule_says(tmp_path):
    """The storage the benchmark's Optuna processes share makes SuccessiveHalvingPruner decide
    as Optuna's in-memory storage does. Optuna 3.1's SQLite storage does not: the reporting
    trial's rung value is counted twice, and the trials below get promoted instead of pruned."""
    import optuna

    sys.path.insert(0, os.path.dirname(SCRIPT))
    from study import Study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Rung-0 values (min resource 2, eta 3) in the order the trials report them.
    values = [0.70, 0.70, 0.70, 0.75, 0.70, 0.75, 0.75, 0.75, 0.60]

    def pruned_at(storage):
        study = optuna.create_study(
            storage=storage, direction="maximize",
            pruner=optuna.pruners.SuccessiveHalvingPruner(
                min_resource=2, reduction_factor=3, min_early_stopping_rate=0))
        stops = []
        for value in values:
            trial = study.ask()
            stop = 0
            for epoch in range(1, 7):
                trial.report(value + 0.01 * epoch, epoch)
                if epoch < 6 and trial.should_prune():
                    stop = epoch
                    break
            stops.append(stop)
            if stop:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                study.tell(trial, value)
        return stops

    in_memory = pruned_at(None)
    assert in_memory[4] == 2 and in_memory[8] == 2, in_memory  # the rule prunes these
    assert pruned_at(Study.optuna_storage(str(tmp_path / "study.journal"))) == in_memory


def test_grid_gamma_narrows_only_the_grid():
    """--grid-gamma gives the grid its own gamma choices (the default study's grid covers initial
    rate x milestones at one gamma); ASHA and Hyperband keep the whole space, and each side's
    spec and Optuna space say the same."""
    import argparse

    sys.path.insert(0, os.path.dirname(SCRIPT))
    from study import Study

    args = argparse.Namespace(
        epochs=4, initial=[0.1, 0.02], milestones=[[1], [2]], gamma=[0.1, 0.5], grid_gamma=[0.5],
        batch_size=16, seed=0, train_limit=8, val_limit=8, reduction_factor=2,
        asha_min_resource=1, asha_trials=8)
    study = Study(args)
    assert study.configs("grid") == [(0.1, "1", 0.5), (0.1, "2", 0.5), (0.02, "1", 0.5),
                                     (0.02, "2", 0.5)]
    assert len(study.configs("asha")) == len(study.configs("hyperband")) == 8

    def gammas(algorithm):
        spec = study.hippo_spec("s", algorithm, "mlp", "log")
        return spec["search_space"]["parameters"][0]["sequence"]["step_decay"]["gamma"]
    assert gammas("grid") == {"choices": {"values": [0.5]}}
    assert gammas("asha") == {"choices": {"values": [0.1, 0.5]}}
    assert study.optuna_space("grid")["gamma"] == [0.5]
    assert study.optuna_space("hyperband")["gamma"] == [0.1, 0.5]
    # A grid trial's point (initial, milestones: gamma has one choice) is read back as the
    # grid's configuration.
    assert study.config_of_point("grid", [0.02, [2]], [0.02, 0.02, 0.01, 0.01]) == \
        (0.02, "2", 0.5)
    # Without --grid-gamma the grid is the whole space.
    args.grid_gamma = []
    assert Study(args).configs("grid") == Study(args).configs("asha")
