"""WCPG (worst-case policy gradients) as an RLlib algorithm: SQRL's Algorithm with WCPG's module and Learner."""

from sqrl_rllib.algorithms.wcpg.wcpg import WCPG, WCPGConfig

__all__ = ["WCPG", "WCPGConfig"]
