"""The study the benchmark runs three ways: its search space (step-decay learning-rate
schedules), the algorithms' settings, and how each system is told them — a Hippo spec, and
Optuna's sampler, pruner and enqueued parameters."""

import functools
import itertools
import json
import math
import time

import training


class Study:
    """Schedules lr(epoch) = initial * gamma^(milestones passed) over `epochs` epochs, with
    `initial`, `milestones` (lists of epochs) and `gamma` drawn from the given choices.
    Schedules with the same initial rate are equal up to their first milestone: Hippo trains
    that prefix once and forks.

    ASHA and Hyperband draw from the whole space. The grid covers the space with `gamma`
    replaced by `grid_gamma` (by default one value: a grid over initial rate x milestones), since
    a grid trains every configuration to the end: the whole space's grid alone would cost more
    than the other two algorithms together."""

    def __init__(self, args):
        self.epochs = args.epochs
        self.initial = args.initial
        self.milestones = args.milestones
        self.gamma = args.gamma
        self.grid_gamma = args.grid_gamma or args.gamma
        self.batch_size = args.batch_size
        self.seed = args.seed
        self.train_limit, self.val_limit = args.train_limit, args.val_limit
        self.eta = args.reduction_factor
        self.asha_min = args.asha_min_resource
        self.asha_trials = args.asha_trials
        # Hippo's Hyperband: s_max = floor(log_eta(R)), smallest rung R / eta^s_max.
        s_max = int(math.floor(math.log(self.epochs) / math.log(self.eta) + 1e-9))
        self.hyperband_min = max(1, round(self.epochs / self.eta ** s_max))
        for milestones in self.milestones:
            if any(m <= 0 or m >= self.epochs for m in milestones):
                raise SystemExit(f"--milestones {milestones}: every milestone must lie inside "
                                 f"(0, --epochs {self.epochs})")
        # Every configuration by its lr per epoch: distinct schedules, or the study is moot.
        self._by_values = {}
        for config in self.configs("asha"):
            values = tuple(self.lr(config, e) for e in range(self.epochs))
            if values in self._by_values:
                raise SystemExit(f"configurations {self._by_values[values]} and {config} give "
                                 f"the same schedule: make the choices distinct")
            self._by_values[values] = config
        for config in self.configs("grid"):
            values = tuple(self.lr(config, e) for e in range(self.epochs))
            if self._by_values.setdefault(values, config) != config:
                raise SystemExit(f"configurations {self._by_values[values]} and {config} give "
                                 f"the same schedule: make the choices distinct")

    def choices(self, algorithm):
        """{"initial", "milestones", "gamma"}: the choices of `algorithm`'s space."""
        return {"initial": self.initial, "milestones": self.milestones,
                "gamma": self.grid_gamma if algorithm == "grid" else self.gamma}

    def configs(self, algorithm):
        """Every configuration (initial, milestones as "a-b", gamma) of `algorithm`'s space, in
        Hippo's grid order (the last parameter varying fastest)."""
        c = self.choices(algorithm)
        return [(i, "-".join(map(str, m)), g)
                for i, m, g in itertools.product(c["initial"], c["milestones"], c["gamma"])]

    def lr(self, config, epoch):
        initial, milestones, gamma = config
        return training.step_decay(initial, [int(m) for m in milestones.split("-")], gamma,
                                   epoch)

    def config_of_point(self, algorithm, point, schedule):
        """The configuration of a Hippo trial of `algorithm`. Its point holds one value per
        dimension with more than one choice, in the order the coordinator's space builder adds a
        step decay's components (initial, gamma, milestones). `schedule`, the trial's lr per
        epoch as far as it is trained, must agree with it."""
        space = self.choices(algorithm)
        choices = {name: space[name] for name in ("initial", "gamma", "milestones")}
        dimensions = [name for name, values in choices.items() if len(values) > 1]
        if len(point) != len(dimensions):
            raise ValueError(f"point {point}: expected values of {dimensions}")
        values = {name: values[0] for name, values in choices.items()}
        values.update(zip(dimensions, point))
        config = (values["initial"], "-".join(str(int(m)) for m in values["milestones"]),
                  values["gamma"])
        if config not in self.configs(algorithm):
            raise ValueError(f"point {point} is none of the {algorithm} study's configurations")
        expected = [self.lr(config, e) for e in range(len(schedule))]
        if expected != list(schedule):
            raise ValueError(f"point {point} gives lr {expected}, the trial trained {schedule}")
        return config

    # -- Hippo ---------------------------------------------------------------------------------

    def hippo_spec(self, name, algorithm, model, epoch_log):
        choices = self.choices(algorithm)
        algorithms = {
            "grid": {"name": "grid"},
            "asha": {"name": "asha", "seed": self.seed,
                     "asha": {"min_resource": self.asha_min, "max_resource": self.epochs,
                              "reduction_factor": self.eta, "sampler": "random"}},
            "hyperband": {"name": "hyperband", "seed": self.seed,
                          "hyperband": {"max_resource": self.epochs,
                                        "reduction_factor": self.eta}},
        }
        budget = {"max_steps": self.epochs}
        if algorithm == "asha":
            budget["max_trials"] = self.asha_trials
        return {
            "name": name,
            "objective": {"metric": "val_accuracy", "direction": "MAXIMIZE"},
            "trainer": {"kind": "external", "seed": self.seed,
                        "config": {"model": model, "batch_size": self.batch_size,
                                   "train_limit": self.train_limit,
                                   "val_limit": self.val_limit, "epoch_log": epoch_log}},
            "search_space": {"parameters": [{"name": "lr", "sequence": {"step_decay": {
                "initial": {"choices": {"values": choices["initial"]}},
                "milestones": {"choices": [{"steps": m} for m in choices["milestones"]]},
                "gamma": {"choices": {"values": choices["gamma"]}},
            }}}]},
            "algorithm": algorithms[algorithm],
            "budget": budget,
        }

    # -- Optuna --------------------------------------------------------------------------------

    def optuna_space(self, algorithm):
        choices = self.choices(algorithm)
        return {"initial": list(choices["initial"]),
                "milestones": ["-".join(map(str, m)) for m in choices["milestones"]],
                "gamma": list(choices["gamma"])}

    def optuna_pruner(self, algorithm):
        if algorithm == "grid":
            return {"name": "none"}
        if algorithm == "asha":
            return {"name": "asha", "min_resource": self.asha_min,
                    "reduction_factor": self.eta}
        return {"name": "hyperband", "min_resource": self.hyperband_min,
                "max_resource": self.epochs, "reduction_factor": self.eta}

    @staticmethod
    def optuna_storage(path):
        """The storage every Optuna process of one study shares: a journal file (Optuna's own
        file lock serialises the processes' writes). Not SQLite: with an RDB storage, Optuna
        3.1's SuccessiveHalvingPruner (and so HyperbandPruner) sees the reporting trial's own
        rung value twice (once as stored, once appended) and prunes far less than its rule
        says; the journal storage, like the in-memory one, counts it once."""
        import warnings

        import optuna

        with warnings.catch_warnings():
            # JournalStorage is marked experimental in 3.1; it is the documented way for
            # processes of one machine to share a study without a database server.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.JournalStorage(_rereading_journal_file()(path))

    @staticmethod
    def optuna_params(config):
        initial, milestones, gamma = config
        return {"initial": initial, "milestones": milestones, "gamma": gamma}


@functools.cache
def _rereading_journal_file():
    import optuna

    class RereadingJournalFile(optuna.storages.JournalFileStorage):
        """Optuna 3.1's journal file, read again when a read meets a record being written.

        Optuna 3.1 reads the journal without its lock. A reader that reaches the end of the file
        while another process appends a record sees the record's first part as one line and the
        rest as the next, and raises JSONDecodeError (optuna/optuna#5138, fixed in 3.6 by
        optuna/optuna#5195). One of the benchmark's 2-worker Optuna studies died of it. Reading
        again once the writer is done gives the whole record; nothing else changes."""

        def read_logs(self, log_number_from):
            for attempt in range(100):
                try:
                    return super().read_logs(log_number_from)
                except json.JSONDecodeError:
                    if attempt == 99:
                        raise
                    time.sleep(0.001)

    return RereadingJournalFile

