"""What a client reads of an ask/tell study: live events from study.watch() as trials are told,
study.wait(progress=True) drawing a tqdm bar to the end, trials_dataframe(), the stage tree, and
the errors of a bad tell naming the field. Also a study whose only parameter is a categorical of
strings (every hyper-parameter structural), which asks and tells like any other."""

import threading

import pytest

import hippo


def spec(name, max_trials, max_steps=1, parameters=None):
    return {
        "name": name,
        "objective": {"metric": "loss", "direction": "MINIMIZE"},
        "search_space": {"parameters": parameters or [
            {"name": "x", "float": {"low": -5.0, "high": 5.0}}]},
        "algorithm": {"name": "external", "seed": 5, "tpe": {"n_startup_trials": 3}},
        "budget": {"max_steps": max_steps, "max_trials": max_trials},
    }


def tell_in_background(study, trials, started):
    """Asks and tells `trials` trials in a thread once `started` is set; returns the thread."""

    def loop():
        started.wait(timeout=30)
        for _ in range(trials):
            trial = study.ask()
            trial.report(trial.params["x"] ** 2 + 1.0, 0)
            study.tell(trial, trial.params["x"] ** 2 + 1.0)

    thread = threading.Thread(target=loop)
    thread.start()
    return thread


def test_watch_yields_each_told_trial_and_ends_with_the_study(server):
    client = server.client()
    study = client.create_study(spec("watched", max_trials=5))
    started = threading.Event()
    teller = tell_in_background(client.get_study(study.id), 5, started)
    completed, metric_trials, states = set(), set(), []
    for event in study.watch():
        started.set()
        states.append(event.state)
        if event.trial is not None and event.trial.state == "COMPLETED":
            completed.add(event.trial.number)
        if event.metric is not None:
            step, values = event.metric
            assert step == 0 and values["loss"] >= 1.0
            metric_trials.add(event.trial.number)
    teller.join(timeout=60)
    assert completed == set(range(5))
    assert metric_trials == set(range(5))
    assert states[-1] == "COMPLETED" and study.state == "COMPLETED"


def test_wait_with_progress_draws_a_bar_to_the_end(server, capsys):
    client = server.client()
    study = client.create_study(spec("progress", max_trials=6))
    started = threading.Event()
    started.set()
    teller = tell_in_background(client.get_study(study.id), 6, started)
    assert study.wait(progress=True, timeout=120) is study
    teller.join(timeout=60)
    assert study.state == "COMPLETED"
    bar = capsys.readouterr().err
    assert "progress" in bar and "6/6" in bar and "trial" in bar
    assert "best=" in bar  # the best objective so far

    # progress=False draws nothing; an ended study returns at once.
    assert study.wait(progress=False).state == "COMPLETED"
    assert capsys.readouterr().err == ""


def test_dataframe_and_stage_tree_of_an_ask_tell_study(server):
    pandas = pytest.importorskip("pandas")
    study = server.client().create_study(spec("frame", max_trials=4, max_steps=3))
    for number in range(4):
        trial = study.ask()
        for step in range(3):
            trial.report(10.0 - step - number, step)
        study.tell(trial, 8.0 - number)
    frame = study.trials_dataframe()
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame["number"]) == [0, 1, 2, 3]
    assert list(frame["value"]) == [8.0, 7.0, 6.0, 5.0]
    assert set(frame["state"]) == {"COMPLETED"}
    assert frame["params_x"].between(-5.0, 5.0).all()
    tree = study.stage_tree(dot=True)
    assert tree.trial_steps == 4 * 3
    assert sum(stage.end_step - stage.start_step for stage in tree.stages) == tree.unique_steps
    assert sorted(t for stage in tree.stages for t in stage.trial_ids) == [0, 1, 2, 3]
    assert tree.dot.startswith("digraph")
    assert study.best_trial.number == 3 and study.best_params == study.best_trial.params


def test_a_bad_tell_raises_naming_the_field(server):
    study = server.client().create_study(spec("bad-tell", max_trials=3, max_steps=4))
    trial = study.ask()
    with pytest.raises(hippo.InvalidArgument) as raised:
        trial.report(1.0, 4)  # steps are 0..3
    assert raised.value.field == "step" and "budget.max_steps" in raised.value.message
    trial.report(1.0, 2)
    with pytest.raises(hippo.InvalidArgument) as raised:
        trial.report(0.5, 1)  # steps go up
    assert raised.value.field == "step"
    with pytest.raises(hippo.InvalidArgument) as raised:
        study.tell(trial, float("nan"))
    assert raised.value.field == "value"
    with pytest.raises(hippo.InvalidArgument) as raised:
        study.tell(trial, state="paused")
    assert raised.value.field == "state"
    with pytest.raises(hippo.InvalidArgument) as raised:
        study.ask_many(0)
    assert raised.value.field == "count"


@pytest.mark.parametrize("max_steps", [1, 2, 5])
def test_a_study_of_one_categorical_of_strings_asks_and_tells(server, max_steps):
    parameters = [{"name": "optimizer", "categorical": {"values": ["sgd", "adam", "lion"]}}]
    study = server.client().create_study(
        spec(f"categorical-{max_steps}", max_trials=12, max_steps=max_steps,
             parameters=parameters))
    scores = {"sgd": 3.0, "adam": 1.0, "lion": 2.0}
    seen = set()
    for _ in range(12):
        trial = study.ask()
        choice = trial.params["optimizer"]
        seen.add(choice)
        for step in range(max_steps - 1):
            trial.report(scores[choice] + 1.0, step)
        study.tell(trial, scores[choice])
    assert seen <= set(scores) and len(seen) >= 2
    assert study.refresh().state == "COMPLETED"
    assert study.best_trial.params == {"optimizer": "adam"} and study.best_value == 1.0
    assert all(t.reached_step == max_steps for t in study.trials)


def test_the_builder_refuses_bad_values_naming_the_field():
    with pytest.raises(hippo.InvalidSpec) as raised:
        hippo.StudySpec("s", metric="loss", direction="down")
    assert raised.value.field == "objective.direction"
    with pytest.raises(hippo.InvalidSpec) as raised:
        hippo.StudySpec("s", metric="loss", max_steps=-1)
    assert raised.value.field == "budget.max_steps"
    built = hippo.StudySpec("s", metric="loss", direction="Minimize", algorithm="external",
                            max_steps=3, max_trials=8)
    built.add(hippo.spec.float_param("lr", 1e-4, 1e-1, log=True))
    with pytest.raises(hippo.InvalidSpec) as raised:
        built.add(hippo.spec.int_param("lr", 1, 4))
    assert raised.value.field == "search_space.parameters[1].name"
    as_dict = built.to_dict()
    assert as_dict["objective"] == {"metric": "loss", "direction": "MINIMIZE"}
    assert as_dict["budget"] == {"max_steps": 3, "max_trials": 8}
    assert [p["name"] for p in as_dict["search_space"]["parameters"]] == ["lr"]
