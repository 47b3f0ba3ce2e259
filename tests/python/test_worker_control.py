"""The coordinator's control messages reach a running SDK stage: stopping a study cancels its
running stage (Cancelled inside train_stage, the attempt reported failed), and a worker whose
coordinator restarts reconnects and finishes its stage."""

import threading
import time

import hippo
import hippo.worker

SPEC = {
    "name": "control",
    "objective": {"metric": "loss", "direction": "MINIMIZE"},
    "trainer": {"kind": "external"},
    "search_space": {"parameters": [{"name": "lr", "fixed": 0.1}]},
    "algorithm": {"name": "grid"},
    "budget": {"max_steps": 400},
}


def test_stopping_a_study_cancels_its_running_stage(server, tmp_path):
    reported = threading.Event()
    seen = {}

    def train_stage(stage):
        try:
            for step in stage.steps():
                time.sleep(0.02)
                stage.report(step, loss=1.0)
                reported.set()
        except hippo.worker.Cancelled:
            seen["cancelled_at"] = stage.last_reported_step
            raise

    worker = hippo.worker.Worker(train_stage, coordinator=server.address, name="w",
                                 checkpoint_dir=str(tmp_path / "ckpt"), log=lambda line: None)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        study = server.client().create_study(SPEC)
        assert reported.wait(30)
        study.stop("test")
        deadline = time.monotonic() + 30
        while worker.stats["cancelled"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker.stats["cancelled"] == 1
        assert 0 <= seen["cancelled_at"] < 399
        assert worker.stats["succeeded"] == 0
        assert study.refresh().state == "STOPPED"
    finally:
        worker.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_a_worker_reconnects_after_a_coordinator_restart_and_finishes(server, tmp_path):
    reported = threading.Event()

    def train_stage(stage):
        for step in stage.steps():
            time.sleep(0.01)
            stage.report(step, loss=1.0 / (step + 1))
            reported.set()
        with open(stage.state_path, "w") as file:
            file.write("done")

    worker = hippo.worker.Worker(train_stage, coordinator=server.address, name="w",
                                 checkpoint_dir=str(tmp_path / "ckpt"), log=lambda line: None)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        study = server.client().create_study(dict(SPEC, budget={"max_steps": 300}))
        assert reported.wait(30)
        server.restart()
        study = server.client().get_study(study.id).wait(progress=False, timeout=120)
        assert study.state == "COMPLETED"
        assert worker.stats["sessions"] >= 2
        trial = study.trials[0]
        assert trial.history("loss")[-1] == (299, 1.0 / 300)
        assert len(trial.history("loss")) == 300
    finally:
        worker.stop()
        thread.join(timeout=30)
