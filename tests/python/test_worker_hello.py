"""What an SDK worker's hello tells a coordinator restarted by SIGKILL: the attempts the worker
holds. A running attempt stays the worker's, with no second attempt, and the restarted
coordinator records at once that it is held; an attempt the worker no longer holds (the worker
was killed too and came back fresh) is trained again at once, not after its lease. The hello
also names the worker's checkpoint directory, whose released files the worker deletes."""

import json
import os
import signal
import sqlite3
import time

import pytest

from conftest import Server

LEASE_SECONDS = 60

# One trial, one stage of 100 steps of 0.1 s: long enough for a restart to land inside it.
SPEC = {
    "name": "held",
    "objective": {"metric": "loss", "direction": "MINIMIZE"},
    "trainer": {"kind": "external"},
    "search_space": {"parameters": [{"name": "lr", "fixed": 0.1}]},
    "algorithm": {"name": "grid"},
    "budget": {"max_steps": 100},
}


@pytest.fixture
def leased_server(tmp_path, monkeypatch):
    """A server whose leases outlast the test's waits: only a hello can settle an attempt."""
    directory = tmp_path / "server"
    directory.mkdir()
    started = Server(directory, extra_args=["--lease-seconds", str(LEASE_SECONDS)]).start()
    monkeypatch.delenv("HIPPO_TOKEN", raising=False)
    monkeypatch.setenv("HIPPO_TOKEN_FILE", started.token_file)
    yield started
    started.stop()


def start_worker(processes, server, tmp_path, name):
    return processes.python("sdk_worker.py", "--coordinator", server.address, "--name", name,
                            "--checkpoint-dir", tmp_path / "checkpoints", "--sleep", "0.1")


def wait_until(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout} s: {what}")


def busy(client, name):
    return any(w.worker_id == name and w.connected and w.running_stage_id
               for w in client.workers())


def stage_attempts(study):
    stages = study.stage_tree().stages
    assert len(stages) == 1, stages
    return stages[0].attempts


def stored_hello(server, name):
    """The worker's last hello as the coordinator stored it (its workers table)."""
    with sqlite3.connect(f"file:{server.db}?mode=ro", uri=True) as db:
        row = db.execute("SELECT hello_json FROM workers WHERE worker_id = ?", (name,)).fetchone()
    return json.loads(row[0]) if row else None


def test_restarted_coordinator_keeps_the_attempt_a_running_sdk_worker_holds(
        leased_server, processes, tmp_path):
    client = leased_server.client()
    worker = start_worker(processes, leased_server, tmp_path, "keeper")
    study = client.create_study(SPEC)
    wait_until(lambda: busy(client, "keeper"), 30, "the worker takes the stage")
    time.sleep(1.0)  # mid-stage

    leased_server.kill()
    leased_server.start()
    restarted = time.monotonic()
    client = leased_server.client()
    # The worker's hello after the restart lists the attempt it is training.
    hello = wait_until(lambda: (h := stored_hello(leased_server, "keeper")) and
                       h.get("held", {}).get("attemptIds") and h,
                       20, "the worker's hello to the restarted coordinator lists its attempt")
    assert len(hello["held"]["attemptIds"]) == 1, hello

    study = client.get_study(study.id).wait(progress=False, timeout=LEASE_SECONDS / 2)
    seconds = time.monotonic() - restarted
    assert study.state == "COMPLETED", open(worker.log_path).read()[-2000:]
    assert seconds < LEASE_SECONDS / 2
    assert stage_attempts(study) == 1, "the stage ran once, not again"
    tree = study.stage_tree()
    assert tree.executed_steps == tree.unique_steps == 100


def test_attempt_a_fresh_sdk_worker_does_not_hold_is_trained_again_at_once(
        leased_server, processes, tmp_path):
    client = leased_server.client()
    worker = start_worker(processes, leased_server, tmp_path, "lost")
    study = client.create_study(SPEC)
    wait_until(lambda: busy(client, "lost"), 30, "the worker takes the stage")
    time.sleep(1.0)  # mid-stage

    # Both die; the worker comes back as a fresh process under the same name, holding nothing.
    leased_server.kill()
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    leased_server.start()
    client = leased_server.client()
    started = time.monotonic()
    worker = start_worker(processes, leased_server, tmp_path, "lost")
    wait_until(lambda: stage_attempts(client.get_study(study.id)) >= 2, LEASE_SECONDS / 3,
               "a second attempt of the stage, before the first one's lease ran out")
    print(f"stage given again {time.monotonic() - started:.1f} s after the worker restarted "
          f"(lease {LEASE_SECONDS} s)")
    assert stored_hello(leased_server, "lost")["held"] == {}, "the fresh process holds nothing"
    study = client.get_study(study.id).wait(progress=False, timeout=LEASE_SECONDS)
    assert study.state == "COMPLETED", open(worker.log_path).read()[-2000:]
    assert stage_attempts(study) == 2


def test_an_sdk_worker_names_its_checkpoint_dir_and_deletes_what_the_coordinator_releases(
        make_server, processes, tmp_path, monkeypatch):
    """Its hello names its canonical checkpoint directory; once the only study ends, a
    coordinator that collects checkpoints releases every state of it and the worker deletes the
    files."""
    server = make_server(extra_args=["--checkpoint-gc"])
    monkeypatch.delenv("HIPPO_TOKEN", raising=False)
    monkeypatch.setenv("HIPPO_TOKEN_FILE", server.token_file)
    # Through a symbolic link: the hello names the directory it resolves to.
    (tmp_path / "real-checkpoints").mkdir()
    os.symlink(tmp_path / "real-checkpoints", tmp_path / "checkpoints")
    checkpoints = tmp_path / "checkpoints"
    processes.python("sdk_worker.py", "--coordinator", server.address, "--name", "tidy",
                     "--checkpoint-dir", checkpoints, "--sleep", "0.05")
    client = server.client()
    spec = dict(SPEC, name="released", budget={"max_steps": 12},
                search_space={"parameters": [
                    {"name": "lr", "categorical": {"values": [0.1, 0.2, 0.3]}}]})
    study = client.create_study(spec)
    wait_until(lambda: [name for name in os.listdir(checkpoints) if name.endswith(".ckpt")],
               60, "the worker writes checkpoints")
    study = study.wait(progress=False, timeout=120)
    assert study.state == "COMPLETED"
    assert stored_hello(server, "tidy")["checkpointDir"] == os.path.realpath(
        tmp_path / "real-checkpoints")
    wait_until(lambda: not [name for name in os.listdir(checkpoints) if name.endswith(".ckpt")],
               30, f"the released checkpoints deleted: {sorted(os.listdir(checkpoints))}")
