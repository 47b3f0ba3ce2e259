"""Worker SDK overhead: one stage of 100 trivial steps at 10 ms each, trained through
hippo.worker (a report per step, the end checkpoint, the packed end of stage) against the same
loop in plain Python.

    python3 benchmarks/python/worker_overhead_benchmark.py --rounds 5

Per round: the plain loop's time; the SDK stage's time on the worker (Assign taken to the
packed end of stage queued for sending, every per-step report included); and the study's wall
time from CreateStudy to the client's seeing it COMPLETED (adds dispatch, commit and the watch
poll). Medians printed, and the mean time a step spends inside stage.report (the SDK's own cost
per step, which the sleep-based totals blur on a loaded machine).
"""

import argparse
import json
import statistics
import tempfile
import threading
import time

from common import LocalServer

STEPS, STEP_SECONDS = 100, 0.010


def step_work(step):
    time.sleep(STEP_SECONDS)
    return {"loss": 1.0 / (step + 1)}


def plain_loop():
    started = time.perf_counter()
    metrics = []
    for step in range(STEPS):
        metrics.append(step_work(step))
    with open("/dev/null", "w") as file:
        file.write(str(metrics[-1]))
    return time.perf_counter() - started


report_seconds = []  # time inside stage.report, every step of every round


def sdk_round(address, directory, number):
    import hippo
    import hippo.worker

    stage_seconds = []

    class TimedWorker(hippo.worker.Worker):
        """Times a whole stage on the worker: Assign taken to the end reports queued."""

        def _run_stage(self, assign, control):
            started = time.perf_counter()
            super()._run_stage(assign, control)
            stage_seconds.append(time.perf_counter() - started)

    def train_stage(stage):
        for step in stage.steps():
            metrics = step_work(step)
            started = time.perf_counter()
            stage.report(step, metrics)
            report_seconds.append(time.perf_counter() - started)
        with open(stage.state_path, "w") as file:
            file.write("state")

    spec = {
        "name": f"overhead-{number}",
        "objective": {"metric": "loss", "direction": "MINIMIZE"},
        "trainer": {"kind": "external", "seed": number},
        "search_space": {"parameters": [{"name": "lr", "fixed": 0.1}]},
        "algorithm": {"name": "grid"},
        "budget": {"max_steps": STEPS},
    }
    worker = TimedWorker(train_stage, coordinator=address, name=f"bench-{number}",
                                 checkpoint_dir=f"{directory}/ckpt", max_stages=1,
                                 log=lambda line: None)
    thread = threading.Thread(target=worker.run)
    thread.start()
    client = hippo.connect(address)
    started = time.perf_counter()
    study = client.create_study(spec)
    study.wait(progress=False)
    wall = time.perf_counter() - started
    thread.join()
    return stage_seconds[0], wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hippo", help="the hippo binary (default build/cli/hippo)")
    args = parser.parse_args()
    plain, stage, wall = [], [], []
    with tempfile.TemporaryDirectory(prefix="hippo-overhead-bench-") as directory:
        with LocalServer(directory, args.hippo) as server:
            for number in range(args.rounds):
                plain.append(plain_loop())
                seconds, study_wall = sdk_round(server.address, directory, number)
                stage.append(seconds)
                wall.append(study_wall)
    result = {
        "plain_s": round(statistics.median(plain), 4),
        "sdk_stage_s": round(statistics.median(stage), 4),
        "study_wall_s": round(statistics.median(wall), 4),
    }
    result["sdk_overhead_pct"] = round(100 * (result["sdk_stage_s"] / result["plain_s"] - 1), 2)
    result["report_us_mean"] = round(1e6 * statistics.mean(report_seconds), 1)
    result["report_pct_of_step"] = round(100 * statistics.mean(report_seconds) / STEP_SECONDS, 2)
    result["study_overhead_pct"] = round(100 * (result["study_wall_s"] / result["plain_s"] - 1),
                                         2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
