"""ConnectorV2 pieces of SQRL (the safety mask on the EnvRunners)."""

from sqrl_rllib.connectors.safety_mask import SafetyMask

__all__ = ["SafetyMask"]
