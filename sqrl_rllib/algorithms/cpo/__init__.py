"""CPO (constrained policy optimization) as an RLlib algorithm: on-policy sampling, a natural-gradient Learner."""

from sqrl_rllib.algorithms.cpo.cpo import CPO, CPOConfig

__all__ = ["CPO", "CPOConfig"]
