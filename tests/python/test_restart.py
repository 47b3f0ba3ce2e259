"""A coordinator killed (SIGKILL) while a client waits on a study, and restarted on the same
database and port: the client reconnects and its wait ends when the study completes."""

import threading
import time


SPEC = {
    "name": "restart",
    "objective": {"metric": "loss", "direction": "MINIMIZE"},
    "trainer": {"kind": "external"},
    "search_space": {"parameters": [{"name": "lr", "categorical": {"values": [0.1, 0.2, 0.3]}}]},
    "algorithm": {"name": "grid"},
    "budget": {"max_steps": 12},
}


def test_wait_survives_a_coordinator_killed_and_restarted(server, processes, tmp_path):
    client = server.client()
    study = client.create_study(SPEC)
    processes.python("sdk_worker.py", "--coordinator", server.address, "--name", "sleepy",
                     "--checkpoint-dir", tmp_path / "checkpoints", "--sleep", "0.1")
    outcome = {}

    def wait():
        try:
            outcome["study"] = study.wait(progress=False, timeout=180, reconnect_timeout=60)
        except Exception as error:  # reported by the assertion below
            outcome["error"] = error

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(1.5)  # the worker is inside the first stages
    assert waiter.is_alive() and "error" not in outcome
    server.kill()
    time.sleep(1.0)  # the client sees the coordinator gone
    assert waiter.is_alive()
    server.start()
    waiter.join(timeout=200)
    assert not waiter.is_alive()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["study"].state == "COMPLETED"
    trials = client.get_study(study.id).trials
    assert len(trials) == 3 and all(t.state == "COMPLETED" for t in trials)
    assert all(t.reached_step == 12 for t in trials)
