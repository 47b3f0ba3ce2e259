"""SDK workers train a grid study over step-decay schedules; every trial's metrics equal, bit
for bit, the same trial trained straight in its own process without Hippo (as stored and as
streamed by study.watch()), and the workers trained each unique step of the stage tree exactly
once."""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

SPEC = {
    "name": "sdk-grid",
    "objective": {"metric": "val_loss", "direction": "MINIMIZE"},
    "trainer": {"kind": "external", "seed": 7},
    "search_space": {"parameters": [{
        "name": "lr",
        "sequence": {"step_decay": {
            "initial": {"choices": {"values": [0.1, 0.05]}},
            "gamma": {"value": 0.5},
            "milestones": {"choices": [{"steps": [3]}, {"steps": [5]}, {"steps": [3, 6]}]},
        }},
    }]},
    "algorithm": {"name": "grid"},
    "budget": {"max_steps": 8},
}


def test_staged_trials_equal_straight_runs_and_steps_are_trained_once(server, processes,
                                                                      tmp_path):
    client = server.client()
    study = client.create_study(SPEC)
    checkpoints = tmp_path / "checkpoints"
    children = [processes.python("sdk_worker.py", "--coordinator", server.address, "--name",
                                 f"sdk-{i}", "--checkpoint-dir", checkpoints) for i in range(2)]
    streamed = {}  # (trial, step) -> metrics, from the live events
    for event in study.watch():
        if event.metric is not None:
            step, values = event.metric
            streamed[(event.trial.number, step)] = values
    assert study.refresh().state == "COMPLETED", \
        [open(c.log_path).read()[-2000:] for c in children]

    tree = study.stage_tree()
    assert tree.trial_steps == 6 * 8
    assert tree.unique_steps == 30
    assert tree.executed_steps == tree.unique_steps
    # Both usually train; on a loaded machine one may still be importing torch at the end.
    workers = {info.worker_id: list(info.trainers) for info in client.workers()}
    assert workers and set(workers) <= {"sdk-0", "sdk-1"}
    assert all(trainers == ["external"] for trainers in workers.values())

    trials = study.trials
    assert len(trials) == 6
    for trial in trials:
        rates = trial.params["lr"].values(0, 8)
        straight = json.loads(subprocess.run(
            [sys.executable, os.path.join(HERE, "straight_run.py"), "7", json.dumps(rates)],
            check=True, capture_output=True, text=True).stdout)
        for name in ("loss", "val_loss"):
            staged = trial.history(name)
            assert [step for step, _ in staged] == list(range(8))
            assert [value for _, value in staged] == [m[name] for m in straight], \
                (trial.number, name)
        assert trial.value == straight[-1]["val_loss"]
        assert [streamed[(trial.number, step)] for step in range(8)] == straight
