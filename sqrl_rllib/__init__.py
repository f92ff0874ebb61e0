"""sqrl_rllib: SQRL (safety Q-functions for RL) on Ray RLlib's new API stack.

Subpackages: ``envs`` (safety environments), ``core`` (pure PyTorch math), ``algorithms.sqrl``
(RLlib glue), ``connectors`` (the safety mask), ``tune`` (the command-line pipeline).
"""

__version__ = "0.1.0"
