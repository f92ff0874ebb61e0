"""Static checks of the deployment files (cluster launcher YAML, KubeRay RayJob, Dockerfile). No Ray start."""

import copy
import json
import pathlib
import re
import shlex

import jsonschema
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "cluster" / "sqrl-cluster.yaml"
RAYJOB = ROOT / "cluster" / "rayjob.yaml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def _ray_schema() -> dict:
    import ray.autoscaler

    path = pathlib.Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def launcher() -> dict:
    return yaml.safe_load(LAUNCHER.read_text())


@pytest.fixture(scope="module")
def rayjob() -> dict:
    return yaml.safe_load(RAYJOB.read_text())


def _start_commands(config: dict, key: str) -> str:
    return " ".join(config[key])


# --- cluster launcher --------------------------------------------------------------------------------------


def test_launcher_validates_against_ray_schema(launcher):
    jsonschema.validate(launcher, _ray_schema())


def test_launcher_passes_ray_up_validation(launcher):
    """What `ray up` does before launching: fill in the provider defaults, then validate."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(copy.deepcopy(launcher))
    prepared = prepare_config(copy.deepcopy(launcher))
    validate_config(prepared)
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_launcher_head_start_binds_dashboard_to_localhost_with_token_auth(launcher):
    head = _start_commands(launcher, "head_start_ray_commands")
    assert "ray start --head" in head
    assert re.search(r"--dashboard-host[ =]127\.0\.0\.1\b", head)
    assert "0.0.0.0" not in head
    assert "RAY_AUTH_MODE=token" in head


def test_launcher_workers_use_token_auth(launcher):
    assert "RAY_AUTH_MODE=token" in _start_commands(launcher, "worker_start_ray_commands")


def test_launcher_has_cpu_head_and_gpu_worker(launcher):
    types = launcher["available_node_types"]
    assert types[launcher["head_node_type"]]["resources"].get("GPU", 0) == 0
    gpu_types = [t for name, t in types.items() if name != launcher["head_node_type"] and t["resources"].get("GPU")]
    assert gpu_types, "no GPU worker node type"
    assert all(t.get("max_workers", 0) >= 1 for t in gpu_types)


def test_launcher_docker_uses_project_image(launcher):
    docker = launcher["docker"]
    images = [docker.get("image"), docker.get("head_image"), docker.get("worker_image")]
    images += [t.get("docker", {}).get("worker_image") for t in launcher["available_node_types"].values()]
    images = [i for i in images if i]
    assert images and all("sqrl-rllib" in i for i in images)


# --- KubeRay RayJob ----------------------------------------------------------------------------------------


def test_rayjob_kind_and_lifecycle(rayjob):
    assert rayjob["apiVersion"] == "ray.io/v1"
    assert rayjob["kind"] == "RayJob"
    assert rayjob["spec"]["shutdownAfterJobFinishes"] is True


def test_rayjob_entrypoint_runs_cube_and_parses(rayjob):
    argv = shlex.split(rayjob["spec"]["entrypoint"])
    assert argv[:4] == ["python", "-m", "sqrl_rllib.tune", "cube"]
    assert "--storage-path" in argv

    from sqrl_rllib import experiments, tune

    args = tune.parse_args(argv[3:])
    experiment = experiments.load_experiment(args.experiment)
    for assignment in args.overrides:
        experiments.apply_override(experiment, assignment)
    experiments.validate_experiment(experiment, check_env=False)


def _containers(group: dict) -> list[dict]:
    return group["template"]["spec"]["containers"]


def test_rayjob_gpu_worker_group_requests_nvidia_gpu(rayjob):
    cluster = rayjob["spec"]["rayClusterSpec"]
    head = _containers(cluster["headGroupSpec"])
    assert all("nvidia.com/gpu" not in c.get("resources", {}).get("limits", {}) for c in head)
    gpu_groups = [
        g
        for g in cluster["workerGroupSpecs"]
        if any(int(c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0)) >= 1 for c in _containers(g))
    ]
    assert gpu_groups, "no worker group requests nvidia.com/gpu"


def test_rayjob_token_auth(rayjob):
    cluster = rayjob["spec"]["rayClusterSpec"]
    assert cluster.get("authOptions", {}).get("mode") == "token"
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        for container in _containers(group):
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            assert env.get("RAY_AUTH_MODE") == "token", container["name"]


def test_rayjob_uses_project_images(rayjob):
    cluster = rayjob["spec"]["rayClusterSpec"]
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        for container in _containers(group):
            assert "sqrl-rllib" in container["image"]


# --- Dockerfile --------------------------------------------------------------------------------------------


def _resolved_from_line() -> str:
    """The first FROM's image, with ARG defaults declared before it substituted."""
    args: dict[str, str] = {}
    for line in DOCKERFILE.read_text().splitlines():
        line = line.strip()
        if m := re.match(r"ARG\s+(\w+)=(\S+)", line):
            args[m.group(1)] = m.group(2).strip("\"'")
        elif line.upper().startswith("FROM "):
            image = line.split()[1]
            return re.sub(r"\$\{?(\w+)\}?", lambda m: args[m.group(1)], image)
    raise AssertionError("no FROM line")


def test_dockerfile_pins_ray_image():
    assert re.fullmatch(r"rayproject/ray:2\.60\.0-py311(-\w+)?", _resolved_from_line())


def test_dockerfile_installs_torch_and_project():
    text = DOCKERFILE.read_text()
    assert re.search(r"TORCH_VERSION=2\.13\.0|torch==2\.13\.0", text)
    assert re.search(r"pip install[^\n]* \.(\s|$)", text)
    assert re.search(r"^WORKDIR ", text, re.M) and re.search(r"^CMD ", text, re.M)
