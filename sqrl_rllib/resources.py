"""Fitting each trial's resource request to the cluster before Tune starts (no trial waits PENDING forever).

Tune queues a trial whose placement group is larger than the whole cluster and only logs a warning, so a
4-EnvRunner experiment on a 2-core laptop hangs. ``fit_resources`` checks the request first: with
``resources.fit: auto`` (what ``--quick`` sets) it drops remote EnvRunners and GPUs until the trial fits
and says so in one line; with ``fit: strict`` (the default) it raises ``ResourceFitError`` naming the
request, the cluster and the ``--set`` overrides that would fit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

FIT_MODES = ("strict", "auto")


class ResourceFitError(ValueError):
    """A trial needs more than the cluster has; the message says what to change."""


def fit_resources(
    resources: dict[str, Any],
    request: Callable[[dict[str, Any]], dict[str, float]],
    cluster: dict[str, float],
) -> tuple[dict[str, Any], str | None]:
    """The ``resources`` section a trial fits with, and a one-line note of what was shrunk (None: unchanged).

    Args:
        resources: the experiment's ``resources`` section (``fit`` plus the numeric keys).
        request: maps a resources section to the trial's total request, e.g. ``{"CPU": 5, "GPU": 0}``
            (the Algorithm's placement group, summed).
        cluster: ``ray.cluster_resources()``.
    Raises:
        ResourceFitError: the request does not fit and ``fit`` is ``strict``, or nothing left to shrink.
    """
    mode = resources.get("fit", "strict")
    if mode not in FIT_MODES:
        raise ResourceFitError(f"resources.fit={mode!r} is invalid: valid values: {list(FIT_MODES)}.")
    wanted = request(resources)
    if _fits(wanted, cluster):
        return resources, None
    if mode == "strict":
        raise ResourceFitError(
            f"each trial requests {_show(wanted)} but the cluster has {_show(cluster)}: Tune would leave it "
            f"PENDING forever. Fit it with {_suggestion(resources, request, cluster)}, or let the pipeline "
            "shrink it with --set resources.fit=auto."
        )
    fitted = dict(resources)
    if wanted.get("GPU", 0) > cluster.get("GPU", 0):
        fitted["num_gpus_per_learner"] = 0
    while not _fits(request(fitted), cluster) and fitted.get("num_env_runners", 1) > 0:
        fitted["num_env_runners"] = int(fitted.get("num_env_runners", 1)) - 1
    while not _fits(request(fitted), cluster) and fitted.get("num_learners", 0) > 0:
        fitted["num_learners"] = int(fitted["num_learners"]) - 1
    final = request(fitted)
    if not _fits(final, cluster):
        raise ResourceFitError(
            f"each trial needs at least {_show(final)} even shrunk to {_changes(resources, fitted)}, "
            f"but the cluster has {_show(cluster)}: start Ray with more CPUs (ray start --num-cpus N)."
        )
    return fitted, (
        f"[sqrl] resources.fit=auto: each trial asked for {_show(wanted)}, the cluster has {_show(cluster)}; "
        f"running with {_changes(resources, fitted)} ({_show(final)})."
    )


def _fits(wanted: dict[str, float], cluster: dict[str, float]) -> bool:
    return all(amount <= cluster.get(kind, 0) + 1e-9 for kind, amount in wanted.items() if amount > 0)


def _show(resources: dict[str, float]) -> str:
    shown = {kind: resources.get(kind, 0) for kind in ("CPU", "GPU") if resources.get(kind, 0) or kind == "CPU"}
    return "{" + ", ".join(f"{kind}: {amount:g}" for kind, amount in shown.items()) + "}"


def _changes(before: dict[str, Any], after: dict[str, Any]) -> str:
    keys = [k for k in after if k != "fit" and after.get(k) != before.get(k)]
    return ", ".join(f"{k}={after[k]}" for k in keys) or "the same resources"


def _suggestion(resources: dict[str, Any], request, cluster: dict[str, float]) -> str:
    """The ``--set resources.KEY=VALUE`` flags of the largest EnvRunner count that fits, if any."""
    fitted = {**resources, "fit": "auto"}
    try:
        fitted, _ = fit_resources(fitted, request, cluster)
    except ResourceFitError:
        return "more CPUs in the cluster (ray start --num-cpus N)"
    return " ".join(f"--set resources.{k}={fitted[k]}" for k in fitted if k != "fit" and fitted[k] != resources.get(k))
