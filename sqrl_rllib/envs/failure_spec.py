"""The experiment file's ``failure:`` key: what a failure is, for an env whose info has no ``"failure"``.

Each form becomes a predicate with ``with_failure``'s signature, ``predicate(obs, reward, terminated, info)
-> bool`` (``sqrl_rllib.envs.failure.FailurePredicate``):

=========================================  ===========================================================
``failure: terminated``                    every termination (not a truncation) is a failure
``failure: {info: cost}``                  ``info["cost"]`` is truthy (Safety-Gymnasium style cost)
``failure: {info: cost, above: 0.5}``      ``info["cost"] > 0.5`` (``below: X``: ``info["cost"] < X``)
``failure: {obs: 0, below: -0.9}``         ``obs.flat[0] < -0.9``
``failure: {obs: 2, above: 6.0}``          ``obs.flat[2] > 6.0``
``failure: {python: my_pkg.safety:fell}``  ``my_pkg.safety.fell(obs, reward, terminated, info)``
=========================================  ===========================================================

A step whose info lacks the ``info`` key is not a failure. The predicates are plain picklable objects
(the python one is imported by name where it runs), so an env creator holding one travels to remote
EnvRunners. Everything here checks the spec alone; the checks that need the env (the observation index
against its space, the info key against its output) are in ``sqrl_rllib.envs.own_env``.
"""

from __future__ import annotations

import importlib
import math
import numbers
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from sqrl_rllib.envs.failure import FailurePredicate, terminated_is_failure

# The mapping form's keys; exactly one of the first three says what is looked at.
FAILURE_KEYS = {
    "info": "name of an info entry: a step fails when it is truthy (or above / below a threshold).",
    "obs": "flat index into the observation: a step fails when that entry is above / below a threshold.",
    "python": "import path 'module:function' of a predicate(obs, reward, terminated, info) -> bool.",
    "above": "threshold: the info entry / observation entry is a failure when strictly greater.",
    "below": "threshold: the info entry / observation entry is a failure when strictly smaller.",
}
SOURCE_KEYS = ("info", "obs", "python")
THRESHOLD_KEYS = ("above", "below")
FORMS = (
    "'terminated', {info: KEY}, {info: KEY, above: X}, {obs: INDEX, below: X}, {obs: INDEX, above: X} "
    "or {python: module:function}"
)
_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class FailureSpecError(ValueError):
    """A ``failure:`` spec that cannot be turned into a predicate; the message names the key."""


class InfoFailure:
    """``info[key]`` is truthy, or (with a threshold) strictly above ``above`` / below ``below``."""

    def __init__(self, key: str, above: float | None = None, below: float | None = None):
        self.key, self.above, self.below = key, above, below

    def __call__(self, obs: Any, reward: float, terminated: bool, info: dict) -> bool:
        if self.key not in info:
            return False
        value = info[self.key]
        if self.above is not None:
            return bool(float(value) > self.above)
        if self.below is not None:
            return bool(float(value) < self.below)
        return bool(value)

    def __repr__(self) -> str:
        return f"InfoFailure({self.key!r}, above={self.above}, below={self.below})"


class ObsFailure:
    """Entry ``index`` of the flattened observation is strictly above ``above`` or below ``below``."""

    def __init__(self, index: int, above: float | None = None, below: float | None = None):
        self.index, self.above, self.below = index, above, below

    def __call__(self, obs: Any, reward: float, terminated: bool, info: dict) -> bool:
        value = float(np.asarray(obs).reshape(-1)[self.index])
        return bool(value > self.above) if self.above is not None else bool(value < self.below)

    def __repr__(self) -> str:
        return f"ObsFailure({self.index}, above={self.above}, below={self.below})"


class ImportedPredicate:
    """The predicate an import path ``"module:function"`` names, imported on first use in each process."""

    def __init__(self, path: str):
        self.path = path
        self._function: Callable | None = None

    def __call__(self, obs: Any, reward: float, terminated: bool, info: dict) -> bool:
        if self._function is None:
            self._function = load_callable(self.path, "failure.python")
        return bool(self._function(obs, reward, terminated, info))

    def __getstate__(self) -> dict:
        return {"path": self.path, "_function": None}  # travel by name, not by value

    def __repr__(self) -> str:
        return f"ImportedPredicate({self.path!r})"


def load_callable(path: Any, key: str) -> Callable:
    """The callable an import path ``"package.module:name"`` (``name`` may be dotted) names.

    ``key`` names the experiment key in the message of the FailureSpecError raised when the path is
    malformed, its module does not import, or the name is missing or not callable.
    """
    if not isinstance(path, str) or not _IMPORT_PATH.match(path):
        raise FailureSpecError(f"{key}={path!r} is invalid: expected an import path 'module:function'.")
    module_name, _, name = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as err:  # an ImportError, or whatever the module raises while importing
        raise FailureSpecError(
            f"{key}={path!r}: module {module_name!r} cannot be imported ({type(err).__name__}: {err}); "
            "it must be importable where the trials run (installed, or on PYTHONPATH)."
        ) from None
    for part in name.split("."):
        if not hasattr(target, part):
            raise FailureSpecError(f"{key}={path!r}: module {module_name!r} has no attribute {name!r}.")
        target = getattr(target, part)
    if not callable(target):
        raise FailureSpecError(f"{key}={path!r}: {name!r} is a {type(target).__name__}, not callable.")
    return target


def failure_predicate(spec: Any) -> FailurePredicate:
    """The predicate of a ``failure:`` spec (see the module docstring); raises FailureSpecError.

    The python form is imported here once, so a missing module or function is reported now, not on
    the first env step.
    """
    if spec == "terminated":
        return terminated_is_failure
    if not isinstance(spec, dict):
        raise FailureSpecError(f"failure={spec!r} is invalid: give one of {FORMS}.")
    for key in spec:
        if key not in FAILURE_KEYS:
            raise FailureSpecError(
                f"Unknown key {key!r} in failure. Valid keys: {', '.join(sorted(FAILURE_KEYS))} (forms: {FORMS})."
            )
    sources = [key for key in SOURCE_KEYS if key in spec]
    if len(sources) != 1:
        given = ", ".join(sources) or "none of them"
        raise FailureSpecError(f"failure={spec!r} is invalid: give exactly one of info, obs, python (got {given}).")
    source = sources[0]
    thresholds = {key: spec[key] for key in THRESHOLD_KEYS if key in spec}
    for key, value in thresholds.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise FailureSpecError(f"failure.{key}={value!r} is invalid: must be a finite number.")
    if len(thresholds) == 2:
        raise FailureSpecError(f"failure={spec!r} is invalid: give above or below, not both.")
    above, below = (None if key not in thresholds else float(thresholds[key]) for key in THRESHOLD_KEYS)
    if source == "python":
        if thresholds:
            raise FailureSpecError(
                f"failure={spec!r} is invalid: failure.python takes no {', '.join(thresholds)} (the predicate decides)."
            )
        load_callable(spec["python"], "failure.python")
        return ImportedPredicate(spec["python"])
    if source == "info":
        key = spec["info"]
        if not isinstance(key, str) or not key:
            raise FailureSpecError(f"failure.info={key!r} is invalid: must be the name of an info entry.")
        return InfoFailure(key, above=above, below=below)
    index = spec["obs"]
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise FailureSpecError(f"failure.obs={index!r} is invalid: must be an integer index >= 0.")
    if not thresholds:
        raise FailureSpecError(f"failure={spec!r} is invalid: failure.obs needs below: X or above: X.")
    return ObsFailure(index, above=above, below=below)
