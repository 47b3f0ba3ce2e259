"""Authentication: a server makes its own token in a 0600 file beside its database, which
clients find ($HIPPO_TOKEN_FILE, or ./hippo.db.token); calls without the token are refused, from
clients and SDK workers alike; token files others may read are refused; whitespace around a
token is ignored. TLS: a certificate made at test time carries a client and an SDK worker."""

import os
import stat
import subprocess
import threading
import time

import pytest

import hippo
import hippo.worker

SPEC = {
    "name": "auth",
    "objective": {"metric": "loss", "direction": "MINIMIZE"},
    "search_space": {"parameters": [{"name": "x", "float": {"low": 0, "high": 1}}]},
    "algorithm": {"name": "external"},
    "budget": {"max_steps": 1, "max_trials": 2},
}


def test_calls_need_the_token(make_server, monkeypatch):
    monkeypatch.delenv("HIPPO_TOKEN", raising=False)
    server = make_server(token="s3cret-token")
    with pytest.raises(hippo.Unauthenticated, match="needs a token"):
        hippo.connect(server.address).create_study(SPEC)
    with pytest.raises(hippo.Unauthenticated, match="not this coordinator's"):
        hippo.connect(server.address, token="wrong").list_studies()
    # The token from a file (the CLI's --token-file) and from $HIPPO_TOKEN.
    study = hippo.connect(server.address, token_file=server.token_file).create_study(SPEC)
    monkeypatch.setenv("HIPPO_TOKEN", "s3cret-token")
    assert hippo.connect(server.address).get_study(study.id).name == "auth"


def test_a_worker_without_the_token_is_refused(make_server, monkeypatch, tmp_path):
    monkeypatch.delenv("HIPPO_TOKEN", raising=False)
    server = make_server(token="s3cret-token")
    worker = hippo.worker.Worker(lambda stage: None, coordinator=server.address, name="nope",
                                 checkpoint_dir=str(tmp_path / "ckpt"), log=lambda line: None)
    with pytest.raises(hippo.Unauthenticated):
        worker.run()


def test_the_server_makes_a_0600_token_file_that_clients_find(server, monkeypatch):
    assert stat.S_IMODE(os.stat(server.token_file).st_mode) == 0o600
    token = open(server.token_file).read().strip()
    assert len(token) == 64 and int(token, 16) >= 0  # 256 random bits in hex
    hippo.connect(server.address).list_studies()  # the fixture's $HIPPO_TOKEN_FILE
    monkeypatch.delenv("HIPPO_TOKEN_FILE")
    with pytest.raises(hippo.Unauthenticated, match="needs a token"):
        hippo.connect(server.address).list_studies()
    # In the database's directory, the default file name is found without being named.
    monkeypatch.chdir(server.directory)
    hippo.connect(server.address).list_studies()


def test_a_token_file_others_may_read_is_refused(server, tmp_path):
    loose = tmp_path / "loose-token"
    loose.write_text(open(server.token_file).read())
    loose.chmod(0o644)
    with pytest.raises(hippo.HippoError, match=f"chmod 600 {loose}"):
        hippo.connect(server.address, token_file=str(loose))


def test_whitespace_around_the_token_is_ignored_as_by_the_cli(server, tmp_path, monkeypatch):
    token = open(server.token_file).read().strip()
    hippo.connect(server.address, token=f" {token}\t\n").list_studies()
    monkeypatch.delenv("HIPPO_TOKEN_FILE")
    monkeypatch.setenv("HIPPO_TOKEN", f"\n{token}  ")
    hippo.connect(server.address).list_studies()
    padded = tmp_path / "padded"
    padded.write_text(f"\n  {token}\n\n")
    padded.chmod(0o600)
    hippo.connect(server.address, token_file=str(padded)).list_studies()


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for localhost and 127.0.0.1, and its key, made by openssl."""
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


def test_tls_carries_a_client_and_an_sdk_worker(make_server, certificate, tmp_path):
    server = make_server(tls=certificate)
    with pytest.raises(hippo.Unavailable):
        hippo.connect(server.address, token_file=server.token_file, timeout=5).list_studies()
    client = server.client()  # TLS, trusting the test's certificate
    spec = {
        "name": "tls",
        "objective": {"metric": "loss", "direction": "MINIMIZE"},
        "trainer": {"kind": "external"},
        "search_space": {"parameters": [{"name": "lr", "fixed": 0.1}]},
        "algorithm": {"name": "grid"},
        "budget": {"max_steps": 5},
    }

    def train_stage(stage):
        for step in stage.steps():
            stage.report(step, loss=1.0 / (step + 1))
        with open(stage.state_path, "w") as file:
            file.write(str(stage.end_step))

    worker = hippo.worker.Worker(train_stage, coordinator=server.address, name="tls-worker",
                                 token_file=server.token_file, tls=certificate[0],
                                 checkpoint_dir=str(tmp_path / "ckpt"), log=lambda line: None)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        study = client.create_study(spec)
        deadline = time.monotonic() + 60
        while study.refresh().state == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert study.state == "COMPLETED"
        assert worker.stats["succeeded"] >= 1
    finally:
        worker.stop()
        thread.join(timeout=30)
