"""Ask/tell against a real coordinator: loops with TPE and random suggestions, pruning through
should_prune, and the errors a client gets (tell twice, ask on a finished study, a bad spec)."""

import math

import pytest

import hippo


def ask_tell_spec(name, max_trials, n_startup_trials=4, max_steps=1, parameters=None):
    return {
        "name": name,
        "objective": {"metric": "loss", "direction": "MINIMIZE"},
        "search_space": {"parameters": parameters or [
            {"name": "x", "float": {"low": -5.0, "high": 5.0}},
            {"name": "n", "int": {"low": 1, "high": 8}},
        ]},
        "algorithm": {"name": "external", "seed": 3,
                      "tpe": {"n_startup_trials": n_startup_trials}},
        "budget": {"max_steps": max_steps, "max_trials": max_trials},
    }


def objective(params):
    return (params["x"] - 2.0) ** 2 + 0.1 * params["n"]


def run_loop(study, trials):
    values = []
    for _ in range(trials):
        trial = study.ask()
        assert -5.0 <= trial.params["x"] <= 5.0
        assert isinstance(trial.params["n"], int) and 1 <= trial.params["n"] <= 8
        value = objective(trial.params)
        study.tell(trial, value)
        values.append(value)
    return values


def test_tpe_loop_finds_the_minimum_better_than_its_random_start(server):
    client = server.client()
    study = client.create_study(ask_tell_spec("tpe", max_trials=60, n_startup_trials=10))
    values = run_loop(study, 60)
    best = study.best_trial
    assert best.value == pytest.approx(min(values))
    assert best.params["x"] == pytest.approx(2.0, abs=1.0)
    # The model-guided trials do better on average than the random start.
    assert sum(values[30:]) / 30 < sum(values[:10]) / 10
    study.refresh()
    assert study.state == "COMPLETED"
    trials = study.trials
    assert len(trials) == 60 and all(t.state == "COMPLETED" for t in trials)
    assert [t.value for t in sorted(trials, key=lambda t: t.number)] == values


def test_random_loop_when_every_trial_is_a_startup_trial(server):
    client = server.client()
    study = client.create_study(ask_tell_spec("random", max_trials=30, n_startup_trials=30))
    values = run_loop(study, 30)
    assert len(set(values)) == 30
    assert study.best_value == min(values)
    frame = study.trials_dataframe()
    assert list(frame["number"]) == list(range(30))
    assert set(frame.columns) >= {"number", "state", "value", "params_x", "params_n"}


def test_should_prune_stops_trials_worse_than_the_median(server):
    client = server.client()
    study = client.create_study(ask_tell_spec("prune", max_trials=12, max_steps=10),
                                pruner=hippo.MedianPruner(n_startup_trials=3))
    pruned = []
    for number in range(12):
        trial = study.ask()
        # Even trials learn well, odd ones badly: odd ones fall behind the median at once.
        slope = 1.0 if number % 2 == 0 else 0.1
        for step in range(10):
            trial.report(10.0 - slope * step, step)
            if trial.should_prune():
                study.tell(trial, state="pruned")
                pruned.append(number)
                break
        else:
            study.tell(trial, 10.0 - slope * 9)
    assert pruned and all(number % 2 == 1 for number in pruned)
    assert min(pruned) >= 3  # nothing is pruned before 3 trials completed
    states = {t.number: t.state for t in study.trials}
    assert {n for n, s in states.items() if s == "PRUNED"} == set(pruned)
    history = next(t for t in study.trials if t.number == 0).history("loss")
    assert history == [(step, 10.0 - step) for step in range(10)]


def test_telling_a_trial_twice_raises(server):
    study = server.client().create_study(ask_tell_spec("twice", max_trials=5))
    trial = study.ask()
    study.tell(trial, 1.0)
    with pytest.raises(hippo.InvalidState, match="already ended"):
        study.tell(trial, 1.0)


def test_ask_on_a_finished_study_raises(server):
    study = server.client().create_study(ask_tell_spec("finished", max_trials=2))
    for _ in range(2):
        study.tell(study.ask(), 0.5)
    assert study.refresh().state == "COMPLETED"
    with pytest.raises(hippo.InvalidState) as raised:
        study.ask()
    assert "takes no more asks" in raised.value.message


def test_ask_on_a_stopped_study_raises(server):
    study = server.client().create_study(ask_tell_spec("stopped", max_trials=0))
    study.tell(study.ask(), 0.5)
    study.stop("enough")
    with pytest.raises(hippo.InvalidState):
        study.ask()


def test_a_bad_spec_raises_naming_the_field(server):
    client = server.client()
    spec = ask_tell_spec("bad", max_trials=5)
    spec["search_space"]["parameters"][0]["float"] = {"low": 5.0, "high": -5.0}
    with pytest.raises(hippo.InvalidSpec) as raised:
        client.create_study(spec)
    assert raised.value.field == "search_space.parameters[0].float.low"
    assert isinstance(raised.value, hippo.HippoError)

    spec = ask_tell_spec("bad", max_trials=5)
    spec["budget"]["max_stepz"] = 3
    with pytest.raises(hippo.InvalidSpec) as raised:
        client.create_study(spec)
    assert raised.value.field == "budget.max_stepz"


def test_a_spec_from_a_yaml_file_and_from_the_builder(server, tmp_path):
    client = server.client()
    path = tmp_path / "spec.yaml"
    path.write_text("name: from-file\n"
                    "objective: {metric: loss, direction: MINIMIZE}\n"
                    "search_space:\n  parameters:\n"
                    "    - {name: lr, float: {low: 0.001, high: 0.1, log: true}}\n"
                    "algorithm: {name: external}\n"
                    "budget: {max_steps: 3, max_trials: 4}\n")
    study = client.create_study(str(path))
    assert study.name == "from-file" and study.direction == "minimize"
    lr = study.ask().params["lr"]
    assert 0.001 <= lr <= 0.1 and math.isfinite(lr)

    built = hippo.StudySpec("built", metric="acc", direction="maximize", algorithm="external",
                            max_steps=2, max_trials=3)
    built.add(hippo.spec.categorical("act", ["relu", "gelu"]),
              hippo.spec.float_param("dropout", 0.0, 0.5))
    study = client.create_study(built)
    params = study.ask().params
    assert params["act"] in ("relu", "gelu") and 0.0 <= params["dropout"] <= 0.5
    assert {s.id for s in client.list_studies()} >= {study.id}


def test_unknown_study_raises_not_found(server):
    with pytest.raises(hippo.NotFound):
        server.client().get_study("no-such-study")


def test_an_unreachable_coordinator_raises_unavailable():
    from conftest import free_port

    client = hippo.connect(f"127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(hippo.Unavailable):
        client.list_studies()
