"""Token authentication: a server started with --token-file on a loopback address refuses
calls without the token, from clients and from SDK workers alike."""

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
    with pytest.raises(hippo.Unauthenticated):
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
