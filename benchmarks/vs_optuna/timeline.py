"""Where a Hippo study's wall time went: the stage log that `hippo_worker.py` writes (one JSON
line per stage: worker, stage and parent ids, wall-clock times entering `train_stage`, starting
the first epoch and leaving, seconds training and saving states) set against the study's own
start and end.

Every worker's time from the study's creation to its end is split into:

- train: inside the training function's epochs (what `--no-merge` and Optuna also spend);
- setup: building the model and loading the parent state (or taking the one kept in memory);
- save: writing the states the coordinator asked for (torch.save, fsync, checksum);
- other: the rest of `train_stage` (reports, the epoch log);
- dispatch: between the moment a stage could start on this worker (its previous stage ended
  and the stage it continues ended, wherever) and the moment it started: the report's trip to
  the coordinator, its commit, the next Assign's trip back, the SDK's hand-over; the first
  stage's is counted from the study's creation;
- wait: a worker idle because nothing was ready: the stage it trains next continues one still
  running on another worker (only with several workers);
- end: after the worker's last stage until the study was seen to end (with several workers,
  also the time a worker has no stage left while another finishes).

The parts add up to workers × wall; `summarise` gives them per worker (divided by the worker
count), in seconds of wall time.
"""

import json
import os

PARTS = ("train", "setup", "save", "other", "dispatch", "wait", "end")


def read_stages(path):
    """The stage log's records ([] if none)."""
    if not os.path.exists(path):
        return []
    with open(path) as file:
        return [json.loads(line) for line in file if line.strip()]


def relative(stages, started):
    """The records with their times in seconds since `started` (the study's creation), for the
    benchmark's JSON: what each worker ran when."""
    times = ("entered", "started", "left")
    return [{**record, **{name: record[name] - started for name in times}} for record in stages]


def summarise(stages, started, ended, workers):
    """{part: seconds per worker, "stages": n, "kept": n, "loaded": n} for a study that ran from
    `started` to `ended` (wall-clock seconds) on `workers` workers."""
    parts = dict.fromkeys(PARTS, 0.0)
    left_at = {record["stage"]: record["left"] for record in stages}
    by_worker = {}
    for record in stages:
        by_worker.setdefault(record["worker"], []).append(record)
    for records in by_worker.values():
        records.sort(key=lambda r: r["entered"])
        free = started
        for record in records:
            ready = max(free, min(left_at.get(record["parent"], started), record["entered"]))
            parts["wait"] += ready - free
            parts["dispatch"] += record["entered"] - ready
            parts["setup"] += record["started"] - record["entered"]
            parts["train"] += record["train_s"]
            parts["save"] += record["save_s"]
            parts["other"] += (record["left"] - record["started"] - record["train_s"]
                               - record["save_s"])
            free = record["left"]
        parts["end"] += ended - free
    # A worker that trained nothing was idle all along: waiting for work that never came.
    parts["wait"] += (workers - len(by_worker)) * (ended - started)
    summary = {part: seconds / workers for part, seconds in parts.items()}
    summary["stages"] = len(stages)
    summary["critical_epochs"] = critical_epochs(stages)
    summary["kept"] = sum(record["how"] == "kept" for record in stages)
    summary["loaded"] = sum(record["how"] == "loaded" for record in stages)
    # Setup by how the start state was had: what keeping a continuing stage's model in memory
    # saves is the loaded stages' mean setup less the kept ones'.
    for how in ("kept", "loaded", "fresh"):
        summary[f"setup_{how}_s"] = sum(record["started"] - record["entered"]
                                        for record in stages if record["how"] == how)
    return summary


def critical_epochs(stages):
    """The longest chain of epochs through the stages: no number of workers can train the study
    in fewer epochs' time. A record follows the one that ended at its start step, either in its
    parent stage or in the same stage (a stage extended in parts, e.g. a promoted trial)."""
    chain = {}  # index in `stages` -> epochs up to that record's end
    for index in sorted(range(len(stages)), key=lambda i: stages[i]["start_step"]):
        record = stages[index]
        before = [chain[i] for i in chain
                  if stages[i]["end_step"] == record["start_step"]
                  and stages[i]["stage"] in (record["parent"], record["stage"])]
        chain[index] = record["end_step"] - record["start_step"] + max(before, default=0)
    return max(chain.values(), default=0)
