"""The per-minibatch update path forces no host sync: no .item(), float(tensor), bool(tensor), .any().

On a GPU learner each of these waits for every queued kernel, once per SGD step. A static check
(the CI box has no GPU, where torch.cuda.set_sync_debug_mode would catch them at run time): the
functions that run once per minibatch may call none of the syncing tensor methods, nor the
float/int/bool builtins, whose argument there is a tensor.
"""

import ast
import inspect

import pytest

from sqrl_rllib.algorithms.sqrl.torch import sqrl_torch_learner, sqrl_torch_rl_module
from sqrl_rllib.core import losses, networks

SYNCING_METHODS = {"item", "tolist", "cpu", "numpy", "any", "all", "nonzero"}
SYNCING_BUILTINS = {"float", "int", "bool"}

PER_MINIBATCH = [
    (sqrl_torch_learner.SQRLTorchLearner, "_update"),
    (sqrl_torch_learner.SQRLTorchLearner, "compute_loss_for_module"),
    (sqrl_torch_learner.SQRLTorchLearner, "_sac_losses"),
    (sqrl_torch_learner.SQRLTorchLearner, "_safety_loss"),
    (sqrl_torch_learner.SQRLTorchLearner, "compute_gradients"),
    (sqrl_torch_learner.SQRLTorchLearner, "apply_gradients"),
    (sqrl_torch_learner, "_polyak"),
    (sqrl_torch_learner, "frozen"),
    (sqrl_torch_rl_module.SQRLTorchRLModule, "_forward_train"),
    (networks, "sample_squashed"),
    (networks.EnsembleQ, "forward"),
    (networks.SafetyCritic, "logits"),
    *[
        (losses, name)
        for name, fn in vars(losses).items()
        if inspect.isfunction(fn) and fn.__module__ == losses.__name__
    ],
]


def syncing_calls(fn) -> list[str]:
    tree = ast.parse(inspect.cleandoc("\n" + inspect.getsource(inspect.unwrap(fn))))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Attribute) and node.func.attr in SYNCING_METHODS:
            found.append(f".{node.func.attr}() at line {node.lineno}")
        if isinstance(node.func, ast.Name) and node.func.id in SYNCING_BUILTINS:
            if not all(isinstance(arg, ast.Constant) for arg in node.args):
                found.append(f"{node.func.id}() at line {node.lineno}")
    return found


@pytest.mark.parametrize("owner, name", PER_MINIBATCH, ids=[f"{o.__name__}.{n}" for o, n in PER_MINIBATCH])
def test_per_minibatch_code_forces_no_host_sync(owner, name):
    assert syncing_calls(getattr(owner, name)) == []


def test_the_check_sees_a_sync():
    def update(loss):
        if loss.isnan().any():
            return float(loss)
        return loss.item()

    assert len(syncing_calls(update)) == 3
