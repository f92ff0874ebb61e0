"""``--pretrained-run`` is checked before Ray starts: a wrong directory, missing seeds or other spaces exit 2
with a message naming the flag (the reuse itself runs in tests/integration/test_tune_quick.py)."""

import json

import pytest
import ray

from sqrl_rllib.tune import main


def fake_pretraining(run_dir, trials, stage="pretrain"):
    """A run directory as Tune leaves it, as far as the check reads it: tuner.pkl and each trial's params.json."""
    (run_dir / stage).mkdir(parents=True)
    (run_dir / stage / "tuner.pkl").write_bytes(b"")
    for i, (method, seed, env, env_config) in enumerate(trials):
        trial = run_dir / stage / f"trial_{i}"
        trial.mkdir()
        (trial / "params.json").write_text(
            json.dumps({"method": method, "seed": seed, "env": env, "env_config": env_config})
        )


SPIDER = "sqrl/DrunkSpider-v0"


@pytest.mark.parametrize(
    "trials, argv, needle",
    [
        ([], [], "no pretraining stage in"),
        ([("sqrl", 0, SPIDER, {})], ["--seeds", "0,1"], "no pretraining for (method, seed) [('sqrl', 1)]"),
        ([("sqrl", 0, SPIDER, {})], ["--seeds", "0", "--methods", "sqrl,sac"], "[('sac', 0)]; it holds [('sqrl', 0)]"),
        # 8 x 11 against the authors' 8 x 7: the observation bounds differ.
        ([("sqrl", 0, SPIDER, {"layout": "long_detour"})], ["--seeds", "0"], "only fine-tunes on the spaces"),
    ],
)
def test_a_pretrained_run_that_cannot_serve_exits_2_before_ray(tmp_path, capsys, trials, argv, needle):
    source = tmp_path / "source"
    source.mkdir()
    if trials:
        fake_pretraining(source, trials)
    status = main(
        ["drunk_spider", "--methods", "sqrl", *argv, "--storage-path", str(tmp_path), "--pretrained-run", "source"]
    )
    assert status == 2
    err = capsys.readouterr().err
    assert "--pretrained-run source" in err and needle in err, err
    assert not ray.is_initialized()


def test_the_critic_fit_directory_is_not_a_pretraining_stage(tmp_path):
    from sqrl_rllib.pretrained_run import pretraining_trials

    fake_pretraining(tmp_path, [("sqrl", 3, SPIDER, {})])
    fake_pretraining(tmp_path, [("wcpg", 3, SPIDER, {})], stage="pretrain_wcpg")
    (tmp_path / "pretrain_critic_fit" / "seed_3").mkdir(parents=True)
    (tmp_path / "pretrain_critic_fit" / "seed_3" / "params.json").write_text("{}")
    assert sorted(pretraining_trials(tmp_path)) == [("sqrl", 3), ("wcpg", 3)]


def test_each_method_is_read_from_the_stage_that_holds_it_in_either_layout(tmp_path):
    """Runs chained per method keep SAC in ``pretrain_sac``; earlier runs kept every SQRL-class method in
    ``pretrain``. A method found in two stages is refused rather than read from either."""
    from sqrl_rllib.pretrained_run import pretraining_stage_of

    chained, older = tmp_path / "chained", tmp_path / "older"
    fake_pretraining(chained, [("sqrl", 0, SPIDER, {})])
    fake_pretraining(chained, [("sac", 0, SPIDER, {})], stage="pretrain_sac")
    fake_pretraining(older, [("sqrl", 0, SPIDER, {}), ("sac", 0, SPIDER, {})])
    assert [pretraining_stage_of(chained, m) for m in ("sqrl", "sac")] == ["pretrain", "pretrain_sac"]
    assert [pretraining_stage_of(older, m) for m in ("sqrl", "sac")] == ["pretrain", "pretrain"]
    fake_pretraining(older, [("sac", 1, SPIDER, {})], stage="pretrain_sac")
    with pytest.raises(ValueError, match=r"sac's pretraining is in 2 stages"):
        pretraining_stage_of(older, "sac")
