"""Study specs: from a dict (the fields of a YAML spec), a YAML or JSON file, or typed builders.

A spec is a hippo.v1.StudySpec; every form goes through protobuf's JSON mapping, as the
server's own loader does, so field names may be snake_case or lowerCamelCase. An unknown field
or a wrong type raises InvalidSpec naming the field; the server checks the rest.
"""

import json
import os
import re

import yaml
from google.protobuf import json_format

from hippo.errors import InvalidSpec
from hippo.v1 import hippo_pb2


def to_proto(spec):
    """A hippo.v1.StudySpec from a dict, a path (.yaml/.yml/.json), a StudySpec, or a
    builder (anything with ``to_dict()``)."""
    if isinstance(spec, hippo_pb2.StudySpec):
        return spec
    if hasattr(spec, "to_dict"):
        spec = spec.to_dict()
    if isinstance(spec, (str, os.PathLike)):
        spec = load_file(os.fspath(spec))
    if not isinstance(spec, dict):
        raise InvalidSpec(f"a spec is a dict, a file path or a StudySpec "
                          f"(got {type(spec).__name__})")
    message = hippo_pb2.StudySpec()
    try:
        json_format.ParseDict(spec, message)
    except json_format.ParseError as error:
        text = str(error)
        raise InvalidSpec(text, field=_field_of_parse_error(text)) from None
    return message


def load_file(path):
    """Reads a YAML or JSON spec file into a dict."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as error:
        raise InvalidSpec(f"{path}: {error.strerror}") from None
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise InvalidSpec(f"{path}: not valid {'JSON' if path.endswith('.json') else 'YAML'}: "
                          f"{error}") from None
    if not isinstance(data, dict):
        raise InvalidSpec(f"{path}: a spec is a mapping of fields (name, objective, ...)")
    return data


def _field_of_parse_error(text):
    # protobuf says e.g. 'Message type "hippo.v1.Budget" has no field named "max_stepz" at
    # "StudySpec.budget".' or 'Failed to parse max_steps field: ... at "StudySpec.budget"'.
    path = re.search(r'at "StudySpec\.?([^"]*)"', text)
    prefix = path.group(1) if path else ""
    name = re.search(r'has no field named "([^"]+)"', text) or re.search(
        r"Failed to parse (\w+) field", text)
    parts = [part for part in (prefix, name.group(1) if name else "") if part]
    return ".".join(parts) or None


# ---------------------------------------------------------------------------------------------
# Builders: small helpers that return the dict forms, so a spec reads like its YAML.


def float_param(name, low, high, log=False, step=0.0):
    """A float parameter in [low, high]."""
    body = {"low": low, "high": high, "log": log}
    if step:
        body["step"] = step
    return {"name": name, "float": body}


def int_param(name, low, high, step=1, log=False):
    """An integer parameter in [low, high] (inclusive)."""
    return {"name": name, "int": {"low": low, "high": high, "step": step, "log": log}}


def categorical(name, values, structural=False):
    """A categorical parameter (numbers or strings)."""
    return {"name": name, "categorical": {"values": list(values)}, "structural": structural}


def fixed(name, value, structural=False):
    """A constant parameter, not searched."""
    return {"name": name, "fixed": value, "structural": structural}


def _domain(value):
    if isinstance(value, dict):
        return value
    if isinstance(value, (list, tuple)):
        return {"choices": {"values": list(value)}}
    return {"value": value}


def step_decay(name, initial, gamma, milestones, warmup_steps=None):
    """A step-decay sequence: initial * gamma^k after k milestones. `initial` and `gamma` are
    a number or a list of choices; `milestones` a list of step lists to choose from."""
    body = {"step_decay": {"initial": _domain(initial), "gamma": _domain(gamma),
                           "milestones": {"choices": [{"steps": list(m)} for m in milestones]}}}
    if warmup_steps is not None:
        body["warmup_steps"] = _domain(warmup_steps)
    return {"name": name, "sequence": body}


class StudySpec:
    """A typed builder for a study spec; ``to_dict()`` gives the YAML-shaped dict.

    Example::

        spec = hippo.StudySpec("lr-search", metric="loss", direction="minimize",
                               algorithm="external", max_steps=10, max_trials=50)
        spec.add(hippo.spec.float_param("lr", 1e-4, 1e-1, log=True))
    """

    def __init__(self, name, metric, direction="maximize", algorithm="grid", max_steps=1,
                 max_trials=0, trainer=None, seed=0, algorithm_config=None, budget=None,
                 resources=None, family=None, labels=None):
        if str(direction).lower() not in ("minimize", "maximize"):
            raise InvalidSpec(f"objective.direction: {direction!r} is neither 'minimize' nor "
                              f"'maximize'", field="objective.direction")
        for field, value in (("budget.max_steps", max_steps), ("budget.max_trials", max_trials)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidSpec(f"{field}: {value!r} is not a whole number >= 0", field=field)
        self.name, self.metric, self.direction = name, metric, str(direction).lower()
        self.algorithm, self.max_steps, self.max_trials = algorithm, max_steps, max_trials
        self.trainer, self.seed = trainer, seed
        self.algorithm_config, self.budget = algorithm_config, budget or {}
        self.resources, self.family, self.labels = resources, family, labels
        self.parameters = []

    def add(self, *parameters):
        """Adds parameters (dicts, e.g. from float_param); returns self. InvalidSpec naming
        the field if one is not a parameter or repeats a name."""
        for parameter in parameters:
            index = len(self.parameters)
            field = f"search_space.parameters[{index}]"
            if not isinstance(parameter, dict) or not parameter.get("name"):
                raise InvalidSpec(f"{field}: a parameter is a dict with a name (use float_param, "
                                  f"int_param, categorical, fixed or step_decay)", field=field)
            if any(p["name"] == parameter["name"] for p in self.parameters):
                raise InvalidSpec(f"{field}.name: '{parameter['name']}' is already a parameter",
                                  field=f"{field}.name")
            self.parameters.append(parameter)
        return self

    def to_dict(self):
        """The spec as the dict a YAML file would give."""
        algorithm = {"name": self.algorithm, "seed": self.seed}
        if self.algorithm_config is not None:
            algorithm[self.algorithm] = self.algorithm_config
        spec = {
            "name": self.name,
            "objective": {"metric": self.metric, "direction": self.direction.upper()},
            "search_space": {"parameters": list(self.parameters)},
            "algorithm": algorithm,
            "budget": {"max_steps": self.max_steps, "max_trials": self.max_trials,
                       **self.budget},
        }
        if self.trainer is not None:
            spec["trainer"] = self.trainer
        if self.resources is not None:
            spec["resources"] = self.resources
        if self.family is not None:
            spec["family"] = self.family
        if self.labels is not None:
            spec["labels"] = self.labels
        return spec
