"""The methods a pipeline run compares (the experiment's ``methods:`` key, ``--methods``): one registry.

A method is a way to pretrain and fine-tune: which config class (and so which RLlib Algorithm) its
trials run, which SQRL keys they set in each stage, whose pretraining checkpoint its fine-tuning starts
from, and whether the fine-tuning grid over eps_safe / gamma_safe means anything for it. The pipeline
knows methods only through :data:`METHODS`, so adding one is one entry here (plus its keys or classes).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

DEFAULT_METHODS = ("sqrl", "sac")
# Methods whose math is in sqrl_rllib/core but whose RLlib algorithm is not built yet: the pipeline refuses
# them by name instead of running something else (empty since CPO, the paper's last baseline, was built).
PLANNED_METHODS: tuple[str, ...] = ()
# Import paths ("module:Class") of the config classes a method can run; strings keep this module Ray-free.
SQRL_CONFIG = "sqrl_rllib.algorithms.sqrl.sqrl:SQRLConfig"
WCPG_CONFIG = "sqrl_rllib.algorithms.wcpg.wcpg:WCPGConfig"
CPO_CONFIG = "sqrl_rllib.algorithms.cpo.cpo:CPOConfig"


@dataclass(frozen=True)
class Method:
    """One entry of the registry.

    Attributes:
        name: the name users write in ``methods:`` / ``--methods`` and the results' ``method`` column.
        help: one line for users.
        pretrained_by: the method whose pretraining trials (one per seed) this method fine-tunes from;
            its own name when it pretrains itself.
        pretrain: SQRL keys of its pretraining trials (over the experiment's ``pretrain.sqrl``).
        finetune: SQRL keys of its fine-tuning trials (over the experiment's ``finetune.sqrl``).
        safety_grid: the fine-tuning grid over eps_safe / gamma_safe applies (False: one fine-tuning
            trial per seed, and those columns are empty in the results).
        critic_fit: ``pretrain.critic_fit`` applies to its pretraining checkpoints (it has a safety critic).
        config_class: import path ("module:Class") of the AlgorithmConfig subclass its trials are built
            from; its ``algo_class`` is the Algorithm they run (default: SQRL's). A method and the one it is
            ``pretrained_by`` share it (a checkpoint only loads into the Algorithm that wrote it).
        own_keys: import path ("module:NAME") of the ``{key: (default, help)}`` dict of the keys its config
            class adds to SQRL's (allowed under ``method_config.NAME``), or None.
        check_own_keys: import path of the function that validates a dict of those keys (with the SQRL
            keys it refuses), raising ValueError naming the key; None when ``own_keys`` is None.
        step_cost: CPU time per env step relative to SAC's (``benchmarks/throughput.py``, 2 cores); the
            pipeline starts the costliest chains of runs first, so the slowest is not queued behind the rest.
    """

    name: str
    help: str
    pretrained_by: str
    pretrain: dict[str, Any] = field(default_factory=dict)
    finetune: dict[str, Any] = field(default_factory=dict)
    safety_grid: bool = True
    critic_fit: bool = True
    config_class: str = SQRL_CONFIG
    own_keys: str | None = None
    check_own_keys: str | None = None
    step_cost: float = 1.0

    def own_key_names(self) -> dict[str, tuple[Any, str]]:
        """The keys (name -> (default, help)) this method's config class adds to SQRL's; {} for SQRL's."""
        return load_object(self.own_keys) if self.own_keys else {}

    def check_keys(self, keys: dict[str, Any]) -> None:
        """Validate ``keys`` (SQRL keys plus :meth:`own_key_names`) with the method's own check, if any."""
        if self.check_own_keys:
            load_object(self.check_own_keys)(keys)

    def keys(self, stage: str) -> dict[str, Any]:
        """The SQRL keys this method sets in ``stage`` (``"pretrain"`` or ``"finetune"``)."""
        return dict(self.pretrain if stage == "pretrain" else self.finetune)


def load_object(path: str) -> Any:
    """The object an import path ``"package.module:NAME"`` names (``Method.config_class``, ``own_keys``);
    imports the module."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


_NO_SAFETY = {"safety_critic": False, "mask_enabled": False, "lagrangian": False, "pretrain_lagrangian": False}
# ESAC is SAC with a 10-critic ensemble and the minimum over it in the target (sqrl_rllib.core.esac): the
# authors' effective aggregate, with SAC's entropy term kept (critic_target_entropy=false drops it as they do).
_ESAC = _NO_SAFETY | {"num_critics": 10, "critic_target_aggregate": "min"}
# The methods without SAC's entropy term reset the experiments' reward_scale (SAC's entropy balance) to 1.
# CPO normalises its advantages, so a scale would only inflate its value net's regression targets. WCPG's
# variance critic's targets grow with the reward's square: at drunk_spider's 10 (Q ~ -600) its actor
# saturated at "leave the map" within 3k steps on seeds 0 and 10; at 1 it stays alive longer but, on seed 0,
# still fails 95% of pretraining episodes (benchmarks/README.md, "Method comparison").
_NO_SAFETY_UNSCALED = _NO_SAFETY | {"reward_scale": 1.0}

METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            "sqrl",
            "SAC + safety critic: masked pretraining, masked Lagrangian fine-tuning (the paper's Algorithms 1-2).",
            pretrained_by="sqrl",
            step_cost=1.3,  # 59.4 vs SAC's 78.2 env steps/s (benchmarks/README.md, "The baselines")
        ),
        Method(
            "sac",
            "plain SAC in both stages: no safety critic, no mask, no Lagrangian (the paper's SAC baseline).",
            pretrained_by="sac",
            pretrain=_NO_SAFETY,
            finetune=_NO_SAFETY,
            safety_grid=False,
            critic_fit=False,
        ),
        Method(
            "esac",
            "ensemble SAC: 10 critics, the minimum over them in the target and the actor loss, no safety critic "
            "(the paper's ESAC baseline).",
            pretrained_by="esac",
            pretrain=_ESAC,
            finetune=_ESAC,
            safety_grid=False,
            critic_fit=False,
            step_cost=3.2,  # 24.1 env steps/s
        ),
        Method(
            "sac_from_sqrl",
            "SAC fine-tuning (no mask, no Lagrangian) from SQRL's pretrained policy: isolates the mask's effect.",
            pretrained_by="sqrl",
            finetune={"mask_enabled": False, "lagrangian": False},
            safety_grid=False,
        ),
        Method(
            "rs",
            "risk-sensitive Q: SQRL's pretrained policy and Q_safe, no mask; the critic learns r - lambda * Q_safe, "
            "lambda by dual ascent against eps_safe (the paper's RS baseline; method_config.rs.finetune."
            "lambda_schedule: [0, 10, STEPS] schedules it as the authors' code does).",
            pretrained_by="sqrl",
            finetune={"mask_enabled": False, "lagrangian": False, "risk_penalty": True},
        ),
        Method(
            "wcpg",
            "worst-case policy gradients: a deterministic actor maximising the CVaR of a Gaussian return model, "
            "risk level alpha ~ U(0.1, 1) per pretraining episode, fixed in fine-tuning (the paper's WCPG baseline).",
            pretrained_by="wcpg",
            pretrain=_NO_SAFETY_UNSCALED,
            finetune=_NO_SAFETY_UNSCALED,
            safety_grid=False,
            critic_fit=False,
            step_cost=0.75,  # 103.9 env steps/s
            config_class=WCPG_CONFIG,
            own_keys="sqrl_rllib.algorithms.wcpg.keys:WCPG_KEYS",
            check_own_keys="sqrl_rllib.algorithms.wcpg.keys:check_wcpg_keys",
        ),
        Method(
            "cpo",
            "constrained policy optimisation: on-policy trust-region steps on a Gaussian policy with the failure "
            "indicator as cost, P(episode fails) <= eps_safe (cost_limit under method_config.cpo) as the constraint; "
            "the fine-tuning grid does not apply, the stage's eps_safe sets the limit (the paper's CPO baseline).",
            pretrained_by="cpo",
            pretrain=_NO_SAFETY_UNSCALED,
            finetune=_NO_SAFETY_UNSCALED,
            safety_grid=False,
            critic_fit=False,
            step_cost=0.15,  # on-policy; its 5e4-step pretraining took 2 min to SAC's 14 (methods seed 1)
            config_class=CPO_CONFIG,
            own_keys="sqrl_rllib.algorithms.cpo.keys:CPO_KEYS",
            check_own_keys="sqrl_rllib.algorithms.cpo.keys:check_cpo_keys",
        ),
    )
}


class MethodError(ValueError):
    """An unknown or planned-but-missing method name; the message lists the valid names."""


def check_methods(names: Any, where: str = "methods") -> list[str]:
    """Check a list of method names (non-empty, distinct, in :data:`METHODS`); returns it as a list."""
    valid = ", ".join(METHODS)
    if not isinstance(names, list | tuple) or not names or not all(isinstance(n, str) for n in names):
        raise MethodError(f"{where}={names!r} is invalid: give a non-empty list of method names ({valid}).")
    for name in names:
        if name in PLANNED_METHODS:
            raise MethodError(
                f"{where}: method {name!r} is not available yet (its math is in sqrl_rllib/core, its RLlib "
                f"algorithm is not built). Valid methods: {valid}."
            )
        if name not in METHODS:
            raise MethodError(f"{where}: unknown method {name!r}. Valid methods: {valid}.")
    repeated = sorted({n for n in names if list(names).count(n) > 1})
    if repeated:
        raise MethodError(f"{where}: {', '.join(repeated)} given more than once.")
    return list(names)


def parse_methods(text: str) -> list[str]:
    """``--methods sqrl,sac`` into a checked list."""
    return check_methods([item.strip() for item in text.split(",") if item.strip()], "--methods")


def pretraining_methods(methods: list[str]) -> list[str]:
    """The methods that run pretraining trials for ``methods``, in order (a source runs once)."""
    out: list[str] = []
    for name in methods:
        source = METHODS[name].pretrained_by
        if source not in out:
            out.append(source)
    return out


def method_keys(stage: str, methods: list[str]) -> list[str]:
    """Every SQRL key some method in ``methods`` sets in ``stage`` (the keys that vary per trial)."""
    return sorted({key for name in methods for key in METHODS[name].keys(stage)})
