"""The client over the paged list RPCs: Study.get_trials and Client.pages follow every page,
a bad page token is InvalidArgument naming page_token, and changed_since lists only what
changed after a version."""

import pytest

import hippo
from hippo.v1 import hippo_pb2


def spec(name, max_trials):
    return {
        "name": name,
        "objective": {"metric": "loss", "direction": "MINIMIZE"},
        "search_space": {"parameters": [{"name": "x", "float": {"low": -5.0, "high": 5.0}}]},
        "algorithm": {"name": "external", "seed": 5},
        "budget": {"max_steps": 1, "max_trials": max_trials},
    }


def test_trials_are_read_over_every_page_and_followed_by_version(server):
    client = server.client()
    study = client.create_study(spec("paged", max_trials=251))
    for _ in range(250):
        trial = study.ask()
        study.tell(trial, (trial.params["x"] - 1.0) ** 2)
    # 250 trials are more than one page of the default size (100).
    trials = study.get_trials(with_metrics=True)
    assert [t.number for t in trials] == list(range(250))
    assert all(t.state == "COMPLETED" for t in trials)

    pages = list(client.pages("ListTrials",
                              hippo_pb2.ListTrialsRequest(study_id=study.id, page_size=100)))
    assert [len(page.trials) for page in pages] == [100, 100, 50]
    version = pages[0].version

    # Only the trial changed after the version is listed.
    trial = study.ask()
    study.tell(trial, 0.5)
    changed = [t.id for page in client.pages(
        "ListTrials", hippo_pb2.ListTrialsRequest(study_id=study.id, changed_since=version))
        for t in page.trials]
    assert changed == [trial.number]


def test_a_token_that_is_not_one_is_refused(server):
    client = server.client()
    study = client.create_study(spec("tokens", max_trials=3))
    request = hippo_pb2.ListTrialsRequest(study_id=study.id, page_token="garbage")
    with pytest.raises(hippo.errors.InvalidArgument, match="page_token"):
        client.call("ListTrials", request)
