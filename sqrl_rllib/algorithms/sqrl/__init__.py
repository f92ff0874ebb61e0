"""SQRL as an RLlib algorithm: config, Algorithm, Learner and RLModule (thin glue over sqrl_rllib.core)."""

from sqrl_rllib.algorithms.sqrl.sqrl import SQRL, SQRLConfig

__all__ = ["SQRL", "SQRLConfig"]
