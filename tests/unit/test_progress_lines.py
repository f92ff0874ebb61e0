"""The progress lines a pipeline run prints: method, grid values where they mean something, steps, failures, ETA."""

from sqrl_rllib.progress import ProgressLines


class _Trial:
    def __init__(self, name, **config):
        self.trial_id, self.config, self.last_result, self.local_path = name, config, None, f"/runs/{name}"

    def __str__(self):
        return self.trial_id


RESULT = {
    "env_runners": {"num_env_steps_sampled_lifetime": 1000, "episode_return_mean": -12.5},
    "sqrl": {"cumulative_failures": 5, "cumulative_episodes": 20},
    "time_total_s": 30.0,
}


def test_lines_name_the_method_and_only_meaningful_grid_values(capsys):
    lines = ProgressLines("finetune", total_steps=4000, every_s=30.0)
    sqrl = _Trial("SQRL_00000", method="sqrl", eps_safe=0.1, gamma_safe=0.65, seed=3)
    sac = _Trial("SQRL_00001", method="sac", eps_safe=0.1, gamma_safe=0.7, seed=3)
    for trial in (sqrl, sac):
        lines.on_trial_start(0, [], trial)
        lines.on_trial_result(0, [], trial, RESULT)
        lines.on_trial_result(1, [], trial, RESULT)  # within every_s: no second line
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "[finetune] SQRL_00000 started (method=sqrl eps_safe=0.1 gamma_safe=0.65 seed=3)"
    assert out[1] == (
        "[finetune] SQRL_00000 method=sqrl eps_safe=0.1 gamma_safe=0.65 seed=3: 1000/4000 steps  return -12.50  "
        "failures 5/20 (rate 0.250)  elapsed 0m30s  ETA 1m30s"
    )
    # SAC has no safety critic: its eps_safe / gamma_safe are not shown.
    assert out[2] == "[finetune] SQRL_00001 started (method=sac seed=3)"
    assert out[3].startswith("[finetune] SQRL_00001 method=sac seed=3: 1000/4000 steps")
    assert len(out) == 4
    lines.on_trial_complete(2, [], sac)
    assert capsys.readouterr().out.startswith("[finetune] done: SQRL_00001 method=sac seed=3: 1000/4000")
