"""Ask/tell with Hippo as Optuna users know it: the coordinator suggests (TPE), this loop
trains and tells.

    hippo server --listen 127.0.0.1:50051 --db hippo.db &
    python3 examples/python/ask_tell.py            # or --coordinator HOST:PORT

Run from the server's directory, the client finds the token the server wrote beside its
database (./hippo.db.token); from elsewhere, set HIPPO_TOKEN_FILE to that file.

The objective is a toy "training curve" so the example runs in seconds; replace `train` with
your own code.
"""

import argparse
import math

import hippo

SPEC = {
    "name": "ask-tell-example",
    "objective": {"metric": "loss", "direction": "MINIMIZE"},
    "search_space": {"parameters": [
        {"name": "lr", "float": {"low": 1e-4, "high": 1.0, "log": True}},
        {"name": "layers", "int": {"low": 1, "high": 4}},
        {"name": "activation", "categorical": {"values": ["relu", "tanh"]}},
    ]},
    # external: trials are asked for and told by this client; TPE after 10 random trials.
    "algorithm": {"name": "external", "seed": 1, "tpe": {"n_startup_trials": 10}},
    "budget": {"max_steps": 20, "max_trials": 40},
}


def train(params, step):
    """The loss after `step` epochs: best near lr 0.05 with 2 layers and relu."""
    distance = (math.log10(params["lr"]) + 1.3) ** 2 + 0.1 * (params["layers"] - 2) ** 2
    floor = 0.1 + distance + (0.05 if params["activation"] == "tanh" else 0.0)
    return floor + 2.0 * math.exp(-0.3 * (step + 1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coordinator", default=None, help="host:port (default: "
                        "$HIPPO_COORDINATOR, else 127.0.0.1:50051)")
    args = parser.parse_args()

    client = hippo.connect(args.coordinator)
    study = client.create_study(SPEC, pruner=hippo.MedianPruner(n_startup_trials=5))
    pruned = 0
    for _ in range(SPEC["budget"]["max_trials"]):
        trial = study.ask()
        for step in range(SPEC["budget"]["max_steps"]):
            loss = train(trial.params, step)
            trial.report(loss, step)
            if trial.should_prune():
                study.tell(trial, state="pruned")
                pruned += 1
                break
        else:
            study.tell(trial, loss)
    best = study.best_trial
    print(f"study {study.id}: {len(study.trials)} trials, {pruned} pruned")
    print(f"best loss {best.value:.4f} with {best.params}")


if __name__ == "__main__":
    main()
