"""Pure PyTorch/NumPy core of SQRL: networks, losses, the mask's selection rule, columnar replay.

Nothing here imports Ray, so it is unit-testable alone and runs on a GPU machine without Ray.
"""
