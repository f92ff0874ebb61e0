"""Experiment files (``tune_configs/*.yaml``): loading, ``--set`` overrides, ``--quick``, validation.

Everything here runs before Ray starts, so that a typo is reported in one paragraph, not as a
stack trace from inside a Ray worker.
"""

from __future__ import annotations

import copy
import math
import pathlib
import re
from typing import Any

import yaml

from sqrl_rllib.algorithms.sqrl.keys import SQRL_KEYS, check_sqrl_keys
from sqrl_rllib.export import CHECKPOINT_MODULE
from sqrl_rllib.methods import DEFAULT_METHODS, METHODS, MethodError, check_methods
from sqrl_rllib.resources import FIT_MODES

CONFIG_DIR = pathlib.Path(__file__).parent / "tune_configs"

# Structure of an experiment file: section -> allowed keys (None: free-form, validated elsewhere).
TRAINING_KEYS = {
    "gamma": "discount of the task reward.",
    "tau": "polyak coefficient of the target networks.",
    "actor_lr": "Adam learning rate of the policy.",
    "critic_lr": "Adam learning rate of the twin critics.",
    "alpha_lr": "Adam learning rate of SAC's temperature.",
    "initial_alpha": "initial SAC temperature.",
    "train_batch_size_per_learner": "SGD minibatch size.",
    "num_steps_sampled_before_learning_starts": "env steps collected before the first update.",
}
RESOURCE_KEYS = {
    "num_env_runners": "remote EnvRunner actors per trial (0: sample in the trial's process).",
    "num_envs_per_env_runner": "vectorised sub-envs per EnvRunner.",
    "num_learners": "remote Learner actors per trial (0: learn in the trial's process).",
    "num_gpus_per_learner": "GPUs per Learner (use with num_learners >= 1 on a GPU cluster).",
    "fit": "'strict' (default: a trial larger than the cluster stops the run, exit 2, naming the --set to "
    "use) or 'auto' (drop remote EnvRunners / GPUs until each trial fits; --quick sets it). "
    "'resources: auto' is shorthand for {fit: auto}.",
}
STAGE_KEYS = {
    "env_config": "keyword arguments of the env for this stage (e.g. task).",
    "stop": "Tune stop criteria, e.g. {num_env_steps_sampled_lifetime: 50000}.",
    "sqrl": "SQRL safety keys for this stage.",
    "grid": "finetune only: lists of eps_safe / gamma_safe values, crossed into a Tune grid.",
    "critic_fit": "pretrain only: fit Q_safe on all pretraining data before fine-tuning "
    "({num_steps, failure_fraction}; SQRL.fit_safety_critic); null turns a YAML's fit off.",
    "offline_data": "pretrain only: after pretraining (and critic_fit), fit Q_safe further on a Parquet transition "
    "dataset, streamed (docs/offline_data.md): a path (a file or a folder of files; '{seed}' in it is replaced by "
    "each seed) or a mapping of OFFLINE_DATA_KEYS; SQRL.fit_safety_critic_offline.",
}
# pretrain.offline_data: the mapping's keys, and the defaults of those not given (the path alone is shorthand).
OFFLINE_DATA_KEYS = {
    "path": "the Parquet file or folder (sqrl_rllib.offline_data schema, e.g. written by --record-transitions); "
    "'{seed}' is replaced by the seed whose checkpoint is fitted. A relative path is relative to the working "
    "directory.",
    "num_steps": "safety-critic SGD steps on the dataset (integer >= 1; default 4000).",
    "failure_fraction": "share of each minibatch drawn from the failing transitions, in [0, 1) (default 0.2).",
    "include_sac": "also train the policy, the SAC critics and alpha on the dataset (default false: Q_safe only).",
    "window_rows": "rows of the shuffle window the dataset streams through (integer >= 1; default 200000): "
    "bounds the memory used, whatever the dataset's size.",
}
OFFLINE_DATA_DEFAULTS = {"num_steps": 4000, "failure_fraction": 0.2, "include_sac": False, "window_rows": 200_000}
CRITIC_FIT_KEYS = {
    "num_steps": "safety-critic SGD steps on D_offline after pretraining (integer >= 1).",
    "failure_fraction": "share of each of those minibatches drawn from the failing transitions, in [0, 1).",
}
QUICK_KEYS = {
    "pretrain_steps": "env steps of pretraining under --quick.",
    "finetune_steps": "env steps of each fine-tuning trial under --quick.",
    "num_seeds": "seeds under --quick: seeds 0..N-1 in both stages (default 1: one seed, seed 0).",
    "num_steps_sampled_before_learning_starts": "learning starts under --quick.",
    "num_action_samples": "K under --quick.",
    "hidden": "network sizes under --quick.",
    "critic_fit_steps": "pretrain.critic_fit.num_steps (and pretrain.offline_data.num_steps) under --quick.",
    "num_env_runners": "resources.num_env_runners under --quick (default 0: each trial samples in its own "
    "process, so it needs one CPU and two trials run side by side on a 2-core machine).",
}
TOP_KEYS = {
    "name": "experiment name (run directory name).",
    "env": "the env: a gymnasium id (e.g. Hopper-v5, sqrl/DrunkSpider-v0) or 'module:callable', an env creator "
    "called with the stage's env_config (docs/own_env.md).",
    "failure": "what a failure is, for an env whose info has no 'failure': terminated, {info: KEY}, {info: KEY, "
    "above: X}, {obs: INDEX, below: X}, {obs: INDEX, above: X} or {python: module:function} (docs/own_env.md).",
    "pretrain": "pretraining stage.",
    "finetune": "fine-tuning stage.",
    "seeds": "list of distinct non-negative integer seeds (default [0]). Each seed runs its own pretraining "
    "trial (and critic fit), and every fine-tuning grid point once per seed, from that seed's checkpoint.",
    "num_seeds": "shorthand for seeds: [0, 1, ..., N-1] (integer >= 1); give seeds or num_seeds, not both.",
    "methods": f"list of methods to compare (default {list(DEFAULT_METHODS)}; valid: {', '.join(METHODS)}). "
    "Each pretrains per seed (or reuses the pretraining it is built on) and runs its fine-tuning trials.",
    "method_config": "per-method SQRL keys (and the method's own, e.g. wcpg's risk_level) over the stages' sqrl "
    "sections, e.g. {sac: {finetune: {reward_scale: 1.0}}} (sections pretrain / finetune).",
    "training": "SAC training keys shared by both stages.",
    "resources": "EnvRunner / Learner resources per trial, and how they are fitted to the cluster ('auto').",
    "quick": "shrunken step counts used by --quick.",
}
GRID_KEYS = ("eps_safe", "gamma_safe")
STOP_KEYS = ("num_env_steps_sampled_lifetime", "training_iteration", "time_total_s")
SEED_KEYS = ("seeds", "num_seeds")
# Seeds feed random.seed / np.random.seed (< 2**32) after RLlib adds the EnvRunner index: stay well below.
MAX_SEED = 2**31 - 1


class ExperimentError(ValueError):
    """A problem with an experiment file or an override; its message is shown to the user as is."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, reading ``3e-5`` and ``1E6`` as numbers (YAML 1.2) rather than strings
    (YAML 1.1 wants ``3.0e-5``), so that ``--set training.actor_lr=3e-5`` means what it says."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def available_experiments() -> list[str]:
    """Names of the experiment files shipped in ``tune_configs/``, then the own-env examples in
    ``tune_configs/examples/`` (named ``examples/NAME``)."""
    examples = sorted(f"examples/{p.stem}" for p in (CONFIG_DIR / "examples").glob("*.yaml"))
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")) + examples


def load_experiment(name_or_path: str) -> dict[str, Any]:
    """Read an experiment by name (from ``tune_configs/``) or by YAML path."""
    path = pathlib.Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise ExperimentError(
            f"Unknown experiment {name_or_path!r}: it is neither a name in {CONFIG_DIR} nor an existing "
            f"YAML file. Valid names: {', '.join(available_experiments())}."
        )
    try:
        data = _load_yaml(path.read_text())
    except yaml.YAMLError as err:
        raise ExperimentError(f"Malformed YAML in {path}: {err}") from None
    if not isinstance(data, dict):
        raise ExperimentError(f"Malformed experiment {path}: the top level must be a mapping of {sorted(TOP_KEYS)}.")
    data.setdefault("name", path.stem)
    return data


def apply_override(experiment: dict[str, Any], assignment: str) -> None:
    """Apply one ``--set dotted.key=value`` (value parsed as YAML) in place."""
    if "=" not in assignment:
        raise ExperimentError(f"--set {assignment!r}: expected KEY=VALUE, e.g. --set finetune.sqrl.eps_safe=0.2.")
    key, raw = assignment.split("=", 1)
    try:
        value = _load_yaml(raw)
    except yaml.YAMLError as err:
        raise ExperimentError(f"--set {assignment!r}: the value is not valid YAML ({err}).") from None
    parts = key.strip().split(".")
    if parts == ["resources"] and value == "auto" and isinstance(experiment.get("resources"), dict):
        experiment["resources"]["fit"] = "auto"  # keep the file's sizes, fit them to the cluster
        return
    node = experiment
    allowed = _allowed_keys(parts[:1], experiment)
    for depth, part in enumerate(parts):
        allowed = _allowed_keys(parts[: depth + 1], experiment)
        if allowed is not None and part not in allowed:
            where = ".".join(parts[:depth]) or "the top level"
            raise ExperimentError(
                f"--set {assignment!r}: unknown key {part!r} in {where}. Valid keys: {', '.join(sorted(allowed))}."
            )
        if depth == len(parts) - 1:
            node[part] = value
        else:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ExperimentError(f"--set {assignment!r}: {'.'.join(parts[: depth + 1])} is not a section.")


def _allowed_keys(path: list[str], experiment: dict[str, Any]):
    """Allowed key names at ``path`` (the key itself is the last element), or None for free-form."""
    if len(path) == 1:
        return TOP_KEYS
    section = path[0]
    if len(path) == 2:
        return {
            "pretrain": STAGE_KEYS,
            "finetune": STAGE_KEYS,
            "training": TRAINING_KEYS,
            "resources": RESOURCE_KEYS,
            "quick": QUICK_KEYS,
        }.get(section)
    if len(path) == 3 and section in ("pretrain", "finetune"):
        return {
            "sqrl": SQRL_KEYS,
            "grid": GRID_KEYS,
            "stop": STOP_KEYS,
            "critic_fit": CRITIC_FIT_KEYS,
            "offline_data": OFFLINE_DATA_KEYS,
        }.get(path[1])
    return None


def apply_quick(experiment: dict[str, Any]) -> None:
    """Shrink the experiment to the ``quick`` section's sizes (a laptop run of a few minutes)."""
    quick = experiment.get("quick") or {}
    experiment["pretrain"]["stop"] = {"num_env_steps_sampled_lifetime": quick.get("pretrain_steps", 1000)}
    # A quick run must start on whatever machine it is tried on (a later --set resources.fit wins).
    resources = experiment.setdefault("resources", {})
    resources.setdefault("fit", "auto")
    resources["num_env_runners"] = quick.get("num_env_runners", 0)
    experiment["finetune"]["stop"] = {"num_env_steps_sampled_lifetime": quick.get("finetune_steps", 500)}
    # --quick runs quick.num_seeds seeds (0..N-1) whatever the file's seeds / num_seeds say.
    experiment.pop("seeds", None)
    experiment["num_seeds"] = quick.get("num_seeds", 1)
    training = experiment.setdefault("training", {})
    if "num_steps_sampled_before_learning_starts" in quick:
        training["num_steps_sampled_before_learning_starts"] = quick["num_steps_sampled_before_learning_starts"]
    if experiment["pretrain"].get("critic_fit") and "critic_fit_steps" in quick:
        experiment["pretrain"]["critic_fit"]["num_steps"] = quick["critic_fit_steps"]
    if experiment["pretrain"].get("offline_data") and "critic_fit_steps" in quick:
        offline = experiment["pretrain"]["offline_data"]
        offline = {"path": offline} if isinstance(offline, str) else offline
        experiment["pretrain"]["offline_data"] = {**offline, "num_steps": quick["critic_fit_steps"]}
    for stage in ("pretrain", "finetune"):
        sqrl = experiment[stage].setdefault("sqrl", {})
        for key in ("num_action_samples", "hidden"):
            if key in quick:
                sqrl[key] = quick[key]


def validate_experiment(experiment: dict[str, Any], check_env: bool = True) -> None:
    """Check every section; raises ExperimentError naming the problem and the valid choices."""
    for key in experiment:
        if key not in TOP_KEYS:
            raise ExperimentError(f"Unknown top-level key {key!r}. Valid keys: {', '.join(sorted(TOP_KEYS))}.")
    for key in ("env", "pretrain", "finetune"):
        if key not in experiment:
            raise ExperimentError(f"The experiment has no {key!r} section; it needs: env, pretrain, finetune.")
    for section, allowed in (("training", TRAINING_KEYS), ("resources", RESOURCE_KEYS), ("quick", QUICK_KEYS)):
        _check_mapping(experiment.get(section) or {}, allowed, section)
    fit = (experiment.get("resources") or {}).get("fit", "strict")
    if fit not in FIT_MODES:
        raise ExperimentError(f"resources.fit={fit!r} is invalid: valid values: {', '.join(FIT_MODES)}.")
    for key in ("training", "resources"):
        for sub, value in (experiment.get(key) or {}).items():
            if key == "resources" and sub == "fit":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or math.isnan(value):
                raise ExperimentError(f"{key}.{sub}={value!r} is invalid: must be a number >= 0.")
    _check_one_seed_key(experiment, "the experiment")
    if "seeds" in experiment:
        check_seeds(experiment["seeds"], "seeds")
    num_seeds = experiment.get("num_seeds", 1)
    if isinstance(num_seeds, bool) or not isinstance(num_seeds, int) or num_seeds < 1:
        raise ExperimentError(f"num_seeds={num_seeds!r} is invalid: must be an integer >= 1.")
    try:
        methods = check_methods(experiment.get("methods", list(DEFAULT_METHODS)))
    except MethodError as err:
        raise ExperimentError(str(err)) from None
    _check_method_config(experiment.get("method_config") or {}, methods)
    _check_failure_spec(experiment)
    for stage in ("pretrain", "finetune"):
        spec = experiment[stage]
        _check_mapping(spec, STAGE_KEYS, stage)
        if "method" in (spec.get("sqrl") or {}):
            raise ExperimentError(f"{stage}.sqrl.method is set by the pipeline: list methods in 'methods:' instead.")
        _check_mapping(spec.get("sqrl") or {}, SQRL_KEYS, f"{stage}.sqrl")
        _check_mapping(spec.get("stop") or {}, STOP_KEYS, f"{stage}.stop")
        if not spec.get("stop"):
            raise ExperimentError(f"{stage}.stop is empty: give e.g. num_env_steps_sampled_lifetime: 50000.")
        for key, value in spec["stop"].items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ExperimentError(f"{stage}.stop.{key}={value!r} is invalid: must be a number > 0.")
            if isinstance(value, float) and value.is_integer():  # 1e5 reads as a float: count steps in ints
                spec["stop"][key] = int(value)
        phase = (spec.get("sqrl") or {}).get("phase", stage)
        if phase != stage:
            raise ExperimentError(
                f"{stage}.sqrl.phase={phase!r} is invalid: the stage sets the phase; valid value here: {stage!r}."
            )
        grid = spec.get("grid") or {}
        if grid and stage == "pretrain":
            raise ExperimentError("pretrain.grid is not supported: the grid crosses fine-tuning trials.")
        _check_mapping(grid, GRID_KEYS, f"{stage}.grid")
        if spec.get("critic_fit") is not None:  # null (e.g. --set pretrain.critic_fit=null) turns it off
            _check_critic_fit(spec, stage)
        if "offline_data" in spec:
            _check_offline_data(experiment, stage, check_env)
        _check_pretrained_checkpoint(spec, stage, methods)
        for name in methods:
            for values in [{}] + _grid_points(grid):
                keys = {
                    "phase": stage,
                    **(spec.get("sqrl") or {}),
                    **values,
                    **method_stage_keys(experiment, name, stage),
                }
                try:
                    check_sqrl_keys(keys | {"method": name})
                    METHODS[name].check_keys(keys)
                except ValueError as err:
                    raise ExperimentError(f"{stage} (method {name}): {err}") from None
                if stage == "finetune" and keys.get("restore_replay"):
                    source = METHODS[name].pretrained_by
                    pre = {
                        **(experiment["pretrain"].get("sqrl") or {}),
                        **method_stage_keys(experiment, source, "pretrain"),
                    }
                    if pre.get("checkpoint_replay") is False:
                        raise ExperimentError(
                            f"finetune (method {name}): restore_replay needs the pretraining data in the checkpoint: "
                            "drop pretrain.sqrl.checkpoint_replay=false."
                        )
        if check_env:
            _check_env(experiment["env"], experiment.get("failure"), spec.get("env_config") or {}, stage)


def _check_pretrained_checkpoint(spec: dict[str, Any], stage: str, methods: list[str]) -> None:
    """``pretrain.sqrl.pretrained_checkpoint`` continues an earlier SQRL pretraining: checked before Ray starts,
    so that a mistyped path is not a stack trace from inside a trial. Fine-tuning's is the pipeline's to set."""
    checkpoint = (spec.get("sqrl") or {}).get("pretrained_checkpoint")
    if checkpoint is None:
        return
    key = f"{stage}.sqrl.pretrained_checkpoint={checkpoint!r}"
    if stage == "finetune":
        raise ExperimentError(
            f"{key} is set by the pipeline (each fine-tuning trial starts from its seed's pretraining): "
            "fine-tune another run's pretraining with --pretrained-run RUN_DIR."
        )
    if methods != ["sqrl"]:
        # One checkpoint holds one method's networks; every method's pretraining would start from it.
        raise ExperimentError(f"{key} continues an SQRL pretraining: run it with --methods sqrl (not {methods}).")
    path = pathlib.Path(str(checkpoint)).expanduser().resolve()
    if not (path / "rllib_checkpoint.json").is_file() or not path.joinpath(*CHECKPOINT_MODULE).is_dir():
        raise ExperimentError(
            f"{key} is invalid: not an Algorithm checkpoint (no rllib_checkpoint.json and "
            f"{'/'.join(CHECKPOINT_MODULE)}); give a pretraining trial's checkpoint_NNNNNN directory."
        )
    # Absolute: a trial runs in its own working directory, where a relative path names nothing.
    spec["sqrl"]["pretrained_checkpoint"] = str(path)


def method_stage_keys(experiment: dict[str, Any], name: str, stage: str) -> dict[str, Any]:
    """The keys method ``name`` sets in ``stage`` (SQRL's, and its config class's own): the registry's, then
    the experiment's ``method_config``."""
    own = ((experiment.get("method_config") or {}).get(name) or {}).get(stage) or {}
    return {**METHODS[name].keys(stage), **own}


def _check_method_config(config: Any, methods: list[str]) -> None:
    _check_mapping(config, METHODS, "method_config")
    for name, stages in config.items():
        if name not in methods:
            raise ExperimentError(f"method_config.{name} is set but {name!r} is not in methods {methods}.")
        _check_mapping(stages or {}, ("pretrain", "finetune"), f"method_config.{name}")
        for stage, keys in (stages or {}).items():
            allowed = {**SQRL_KEYS, **METHODS[name].own_key_names()}
            _check_mapping(keys or {}, allowed, f"method_config.{name}.{stage}")
            for key in ("method", "phase"):
                if key in (keys or {}):
                    raise ExperimentError(f"method_config.{name}.{stage}.{key} is set by the pipeline.")


def experiment_methods(experiment: dict[str, Any]) -> list[str]:
    """The methods the experiment compares: ``methods``, else the default (sqrl, sac)."""
    return list(experiment.get("methods", DEFAULT_METHODS))


def experiment_seeds(experiment: dict[str, Any]) -> list[int]:
    """The seeds both stages run: ``seeds``, else ``range(num_seeds)``, else ``[0]``."""
    if "seeds" in experiment:
        return [int(s) for s in experiment["seeds"]]
    return list(range(int(experiment.get("num_seeds", 1))))


def check_seeds(seeds: Any, where: str, shown: str | None = None) -> list[int]:
    """Check a list of seeds: non-empty, distinct integers in [0, 2**31 - 1].

    ``where`` names the key or flag in the message (``seeds``, ``--seeds``), ``shown`` is the value as
    the user wrote it (default: its repr). Returns the seeds; raises ExperimentError.
    """
    flag = where.startswith("--")
    example = "e.g. --seeds 3,7,11" if flag else "e.g. [0, 1, 2]"
    head = f"{where} {shown}" if flag and shown is not None else f"{where}={seeds!r}"
    if not isinstance(seeds, list) or not seeds:
        raise ExperimentError(
            f"{head} is invalid: must be a non-empty list of distinct non-negative integers, {example}."
        )
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise ExperimentError(
                f"{head} is invalid: {seed!r} is not an integer in [0, {MAX_SEED}]; "
                f"seeds must be distinct non-negative integers, {example}."
            )
    duplicates = sorted({s for s in seeds if seeds.count(s) > 1})
    if duplicates:
        raise ExperimentError(
            f"{head} is invalid: {', '.join(map(str, duplicates))} given more than once; "
            f"seeds must be distinct, {example}."
        )
    return list(seeds)


def parse_seeds(text: str, flag: str = "--seeds") -> list[int]:
    """Parse a comma-separated seed list (``--seeds 3,7,11``) and check it like the ``seeds`` key."""
    if not text.strip():
        raise ExperimentError(f"{flag} {text!r} is invalid: give at least one seed, e.g. {flag} 3,7,11.")
    seeds: list[Any] = []
    for item in (item.strip() for item in text.split(",")):
        try:
            seeds.append(int(item))
        except ValueError:
            raise ExperimentError(
                f"{flag} {text} is invalid: {item!r} is not an integer; "
                f"give comma-separated non-negative integers, e.g. {flag} 3,7,11."
            ) from None
    return check_seeds(seeds, flag, shown=text)


def _check_one_seed_key(experiment: dict[str, Any], where: str) -> None:
    if all(key in experiment for key in SEED_KEYS):
        raise ExperimentError(
            f"{where} gives both seeds={experiment['seeds']!r} and num_seeds={experiment['num_seeds']!r}: "
            "keep one (num_seeds: N is shorthand for seeds: [0, ..., N-1])."
        )


def _check_critic_fit(spec: dict[str, Any], stage: str) -> None:
    fit = spec["critic_fit"]
    if stage != "pretrain":
        raise ExperimentError(f"{stage}.critic_fit is not supported: Q_safe is fitted on the pretraining data.")
    _check_mapping(fit, CRITIC_FIT_KEYS, "pretrain.critic_fit")
    steps, fraction = fit.get("num_steps"), fit.get("failure_fraction", 0.0)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ExperimentError(f"pretrain.critic_fit.num_steps={steps!r} is invalid: must be an integer >= 1.")
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 <= fraction < 1:
        raise ExperimentError(f"pretrain.critic_fit.failure_fraction={fraction!r} is invalid: must lie in [0, 1).")
    if (spec.get("sqrl") or {}).get("checkpoint_replay") is False:
        raise ExperimentError(
            "pretrain.critic_fit needs the pretraining data in the checkpoint: "
            "drop pretrain.sqrl.checkpoint_replay=false."
        )


def offline_data_spec(experiment: dict[str, Any], seed: int | None = None) -> dict[str, Any] | None:
    """``pretrain.offline_data`` as a full mapping (``OFFLINE_DATA_KEYS``, defaults filled in), or None.

    With ``seed``, ``{seed}`` in the path is replaced by it.
    """
    offline = experiment["pretrain"].get("offline_data")
    if offline is None:
        return None
    spec = {**OFFLINE_DATA_DEFAULTS, **({"path": offline} if isinstance(offline, str) else offline)}
    if seed is not None:
        spec["path"] = str(spec["path"]).replace("{seed}", str(int(seed)))
    return spec


def _check_offline_data(experiment: dict[str, Any], stage: str, check_env: bool) -> None:
    """``pretrain.offline_data``: its keys and values, and each seed's dataset (exists, schema, sizes)."""
    from sqrl_rllib.offline_data import OfflineDataError, inspect_transitions

    if stage != "pretrain":
        raise ExperimentError(f"{stage}.offline_data is not supported: Q_safe is fitted after pretraining.")
    offline = experiment["pretrain"]["offline_data"]
    if not isinstance(offline, str | dict) or not offline:
        raise ExperimentError(
            f"pretrain.offline_data={offline!r} is invalid: give a path or a mapping of {', '.join(OFFLINE_DATA_KEYS)}."
        )
    key = "pretrain.offline_data" if isinstance(offline, str) else "pretrain.offline_data.path"
    if isinstance(offline, dict):
        _check_mapping(offline, OFFLINE_DATA_KEYS, "pretrain.offline_data")
    spec = offline_data_spec(experiment)
    if not isinstance(spec.get("path"), str) or not spec["path"]:
        raise ExperimentError(f"{key}={spec.get('path')!r} is invalid: give the path of a Parquet file or folder.")
    for name in ("num_steps", "window_rows"):
        value = spec[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ExperimentError(f"pretrain.offline_data.{name}={value!r} is invalid: must be an integer >= 1.")
    fraction = spec["failure_fraction"]
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 <= fraction < 1:
        raise ExperimentError(f"pretrain.offline_data.failure_fraction={fraction!r} is invalid: must lie in [0, 1).")
    if not isinstance(spec["include_sac"], bool):
        raise ExperimentError(f"pretrain.offline_data.include_sac={spec['include_sac']!r} is invalid: true or false.")
    for seed in experiment_seeds(experiment) if "{seed}" in spec["path"] else [None]:
        path = offline_data_spec(experiment, seed)["path"]
        try:
            data = inspect_transitions(path)
        except OfflineDataError as err:
            raise ExperimentError(f"{key}={spec['path']!r} is invalid: {err}.") from None
        dims = data.obs_dim, data.act_dim
        if check_env:
            expected = _env_sizes(experiment)
            if dims != expected:
                raise ExperimentError(
                    f"{key}={spec['path']!r} is invalid: {path!r} holds observations of size {dims[0]} and actions "
                    f"of size {dims[1]}, the env {experiment['env']!r} has {expected[0]} and {expected[1]}."
                )


def _env_sizes(experiment: dict[str, Any]) -> tuple[int, int]:
    """Flat observation and action sizes of the pretraining env (as SQRL's replay stores them)."""
    import numpy as np

    from sqrl_rllib.envs.own_env import make_base_env

    env = make_base_env(experiment["env"], experiment["pretrain"].get("env_config") or {})
    try:
        return int(np.prod(env.observation_space.shape)), int(np.prod(env.action_space.shape))
    finally:
        env.close()


def check_record_transitions(experiment: dict[str, Any]) -> None:
    """``--record-transitions`` can run: SQRL pretrains, and its checkpoints keep D_offline.

    Raises ExperimentError naming the flag and the key in the way.
    """
    from sqrl_rllib.methods import pretraining_methods

    methods = pretraining_methods(experiment_methods(experiment))
    if "sqrl" not in methods:
        raise ExperimentError(
            f"--record-transitions records SQRL's pretraining, but the methods {experiment_methods(experiment)} "
            "pretrain no sqrl: add sqrl to methods."
        )
    keys = {**(experiment["pretrain"].get("sqrl") or {}), **method_stage_keys(experiment, "sqrl", "pretrain")}
    if keys.get("checkpoint_replay") is False:
        raise ExperimentError(
            "--record-transitions writes the pretraining replay saved in the checkpoint: "
            "drop pretrain.sqrl.checkpoint_replay=false."
        )


def _grid_points(grid: dict[str, Any]) -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = [{}]
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ExperimentError(f"grid.{key}={values!r} is invalid: must be a non-empty list.")
        points = [{**p, key: v} for p in points for v in values]
    return points


def _check_mapping(mapping: Any, allowed, where: str) -> None:
    if not isinstance(mapping, dict):
        raise ExperimentError(f"{where} must be a mapping, got {mapping!r}.")
    for key in mapping:
        if key not in allowed:
            raise ExperimentError(f"Unknown key {key!r} in {where}. Valid keys: {', '.join(sorted(allowed))}.")


def _expand_resources_shorthand(experiment: dict[str, Any]) -> None:
    """``resources: auto`` means ``resources: {fit: auto}``; any other string is left for validation."""
    if experiment.get("resources") == "auto":
        experiment["resources"] = {"fit": "auto"}


def _check_failure_spec(experiment: dict[str, Any]) -> None:
    """``env`` is a string and ``failure`` parses (the checks against the env itself are ``_check_env``'s)."""
    from sqrl_rllib.envs.failure_spec import FailureSpecError, failure_predicate

    if not isinstance(experiment["env"], str) or not experiment["env"]:
        raise ExperimentError(f"env={experiment['env']!r} is invalid: give a gymnasium id or 'module:callable'.")
    if experiment.get("failure") is not None:
        try:
            failure_predicate(experiment["failure"])
        except FailureSpecError as err:
            raise ExperimentError(str(err)) from None


def _check_env(env_id: str, failure: Any, env_config: dict[str, Any], stage: str) -> None:
    """Build the stage's env and check the failure spec against it (``own_env.check_own_env``)."""
    from sqrl_rllib.envs.own_env import OwnEnvError, check_own_env

    try:
        check_own_env(env_id, failure, env_config, stage)
    except OwnEnvError as err:
        raise ExperimentError(str(err)) from None


def prepare_experiment(
    name_or_path: str,
    overrides: list[str],
    quick: bool,
    num_seeds: int | None,
    seeds: list[int] | None = None,
    methods: list[str] | None = None,
) -> dict:
    """Load, override, shrink (``--quick``) and validate an experiment; returns a fresh dict.

    ``methods`` (the ``--methods`` flag) replaces the file's ``methods`` after every ``--set``.

    The seeds come from, last one winning: the file's ``seeds`` / ``num_seeds`` (not both), ``--quick``
    (``quick.num_seeds``), ``--set seeds=[..]`` / ``--set num_seeds=N`` (not both), then ``seeds`` /
    ``num_seeds`` here (the ``--seeds`` / ``--num-seeds`` flags, not both). Each of these replaces the
    seed choice before it.
    """
    if seeds is not None and num_seeds is not None:
        raise ExperimentError(
            f"--seeds {','.join(map(str, seeds))} and --num-seeds {num_seeds} both given: use one "
            "(--num-seeds N is shorthand for --seeds 0,1,...,N-1)."
        )
    if num_seeds is not None and (isinstance(num_seeds, bool) or not isinstance(num_seeds, int) or num_seeds < 1):
        raise ExperimentError(f"--num-seeds={num_seeds!r} is invalid: must be an integer >= 1.")
    if seeds is not None:
        check_seeds(list(seeds), "--seeds", shown=",".join(map(str, seeds)))
    experiment = copy.deepcopy(load_experiment(name_or_path))
    _expand_resources_shorthand(experiment)
    _check_one_seed_key(experiment, f"The experiment {name_or_path!r}")
    # quick.* overrides shape --quick itself; every other --set is applied after it, so it always wins.
    quick_first = [a for a in overrides if a.strip().startswith("quick.")]
    for assignment in quick_first:
        apply_override(experiment, assignment)
    if quick:
        apply_quick(experiment)
    set_seed_keys = {a.split("=", 1)[0].strip() for a in overrides} & set(SEED_KEYS)
    if len(set_seed_keys) == 2:
        raise ExperimentError(
            "--set seeds=... and --set num_seeds=... both given: use one "
            "(num_seeds=N is shorthand for seeds=[0, ..., N-1])."
        )
    for key in set_seed_keys:  # a --set seed key replaces the file's (or --quick's) choice
        for other in SEED_KEYS:
            if other != key:
                experiment.pop(other, None)
    for assignment in overrides:
        if assignment not in quick_first:
            apply_override(experiment, assignment)
            _expand_resources_shorthand(experiment)
    if seeds is not None:
        experiment.pop("num_seeds", None)
        experiment["seeds"] = list(seeds)
    elif num_seeds is not None:
        experiment.pop("seeds", None)
        experiment["num_seeds"] = num_seeds
    if methods is not None:
        experiment["methods"] = list(methods)
    validate_experiment(experiment)
    return experiment
