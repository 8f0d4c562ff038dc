"""The shipped Ray cluster-launcher configs (cluster/*.yaml) against ray's own schema and the
checks `ray up` makes, and against what `sweep launch --backend=ray` asks of them."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

pytest.importorskip("ray")
jsonschema = pytest.importorskip("jsonschema")

import ray.autoscaler  # noqa: E402  (the package: its schema file)
from ray._private.accelerators import TPUAcceleratorManager, tpu  # noqa: E402
from ray.autoscaler._private.util import prepare_config, validate_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "cluster").glob("*.yaml"))


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_both_accelerator_families_are_shipped():
    assert [p.name for p in CONFIGS] == ["gcp-gpu.yaml", "gcp-tpu.yaml"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_validates_against_rays_schema(path: Path):
    config = _load(path)
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    validate_config(prepare_config(copy.deepcopy(config)))  # what `ray up` runs first
    broken = copy.deepcopy(config)
    broken["available_node_types"]["head"]["resourcez"] = {}
    with pytest.raises(jsonschema.ValidationError, match="resourcez"):
        jsonschema.validate(broken, schema)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_workers_offer_the_accelerator_with_spot_and_on_demand(path: Path):
    """Every worker type declares the accelerator it has (TPU chips as Ray counts them on a
    single-host TPU VM, or one GPU), the head none (no cell lands there), one spot type is kept
    alive (`sweep launch` refuses a cluster no live node of which holds a cell's request) and an
    on-demand twin exists."""
    config = _load(path)
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"] == {"CPU": 0}
    workers = {k: v for k, v in types.items() if k != config["head_node_type"]}
    spot, on_demand = [], []
    for name, node in workers.items():
        spec = node["node_config"]
        if "acceleratorType" in spec:  # a TPU VM
            kind = spec["acceleratorType"]
            assert TPUAcceleratorManager.is_valid_tpu_accelerator_type(kind)
            chips = int(kind.split("-")[1]) // tpu.get_tpu_cores_per_chip(kind)
            assert chips <= tpu.get_num_tpu_visible_chips_per_host(kind)  # one host
            assert node["resources"]["TPU"] == chips
            preemptible = spec["schedulingConfig"]["preemptible"]
        else:  # a Compute Engine VM with GPUs
            [gpu] = spec["guestAccelerators"]
            assert node["resources"]["GPU"] == gpu["acceleratorCount"]
            assert spec["scheduling"]["onHostMaintenance"] == "TERMINATE"
            preemptible = spec["scheduling"]["provisioningModel"] == "SPOT"
        (spot if preemptible else on_demand).append(name)
        assert node["max_workers"] >= node["min_workers"]
    assert spot and on_demand
    assert any(workers[name]["min_workers"] >= 1 for name in spot)
    assert config["idle_timeout_minutes"] > 0  # idle paid VMs are deleted
