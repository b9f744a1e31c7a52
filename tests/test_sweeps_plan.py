"""Sweep files: product and paired lists, run names, and one-line errors naming the field."""

from __future__ import annotations

import pytest

from clgym_core.sweeps.plan import SweepError, check_points, expand, short_names


def plan_of(section: dict, base: dict | None = None):
    base = base or {"benchmark": {"name": "toy_2d_classification"}, "seed": 0}
    return expand({**base, "sweep": section}, "s.yaml")


def test_product_of_lists_and_names_by_differing_fields() -> None:
    plan = plan_of({"seed": [0, 1, 2], "algorithm.params.lambda": [1, 100]})
    assert len(plan.points) == 6
    assert plan.fields == ["seed", "algorithm.params.lambda"]
    assert [p.name for p in plan.points][:2] == ["seed=0_lambda=1", "seed=0_lambda=100"]
    point = plan.points[-1]
    assert point.data["seed"] == 2 and point.data["algorithm"]["params"]["lambda"] == 100
    assert len({p.name for p in plan.points}) == 6


def test_zip_pairs_lists_instead_of_crossing_them() -> None:
    plan = plan_of({"seed": [0, 1], "zip": {"algorithm.name": ["ewc", "agem"], "optimizer.lr": [0.01, 0.1]}})
    assert len(plan.points) == 4  # 2 seeds x 2 pairs, not 2 x 2 x 2
    pairs = {(p.data["algorithm"]["name"], p.data["optimizer"]["lr"]) for p in plan.points}
    assert pairs == {("ewc", 0.01), ("agem", 0.1)}


def test_zip_groups_as_a_list_and_unequal_lengths() -> None:
    plan = plan_of({"zip": [{"seed": [0, 1]}, {"optimizer.lr": [0.1, 0.2, 0.3]}]})
    assert len(plan.points) == 6
    with pytest.raises(SweepError, match=r"sweep.zip: paired lists must have equal lengths"):
        plan_of({"zip": {"seed": [0, 1], "optimizer.lr": [0.1]}})


def test_a_field_that_does_not_differ_is_not_in_the_name() -> None:
    plan = plan_of({"seed": [0, 1], "optimizer.lr": [0.1]})
    assert [p.name for p in plan.points] == ["seed=0", "seed=1"]
    assert plan.points[0].data["optimizer"]["lr"] == 0.1


def test_short_names_stay_unique() -> None:
    names = short_names(["optimizer.lr", "algorithm.params.lr", "seed"])
    assert names == {"optimizer.lr": "optimizer.lr", "algorithm.params.lr": "params.lr", "seed": "seed"}


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"seed": []}, r"sweep.seed: empty list"),
        ({"seed": 3}, r"sweep.seed: expected a list"),
        ({"a..b": [1]}, r"is not a field path"),
        ({"seed": [1], "zip": {"seed": [2]}}, r"sweep.seed: swept twice"),
    ],
)
def test_bad_sections_name_the_field(section, message) -> None:
    with pytest.raises(SweepError, match=message):
        plan_of(section)


def test_unknown_path_is_caught_before_running_and_named_as_sweep_field() -> None:
    plan = plan_of({"trainer.epochz": [1, 2]})
    with pytest.raises(SweepError, match=r"sweep.trainer.epochz: unknown parameter|sweep.trainer.epochz: Extra"):
        check_points(plan)
    plan = plan_of({"benchmark.params.cluster_sise": [1, 2]})
    with pytest.raises(SweepError, match=r"sweep.benchmark.params.cluster_sise"):
        check_points(plan)


@pytest.mark.parametrize("trainer", [{"strategy": "ddp", "devices": 2}, {"devices": 2}, {"num_nodes": 2}])
def test_a_point_that_would_start_several_processes_is_refused(trainer) -> None:
    """Each point runs inside one worker process: a ddp spec cannot start its own processes there."""
    plan = plan_of({"seed": [0, 1]}, base={"benchmark": {"name": "toy_2d_classification"}, "trainer": trainer})
    with pytest.raises(SweepError, match=r"trainer.strategy: a sweep or study runs each point in one process"):
        check_points(plan)


def test_one_fabric_device_is_a_valid_point() -> None:
    plan = plan_of({"seed": [0, 1]}, base={"benchmark": {"name": "toy_2d_classification"},
                                           "trainer": {"strategy": "single_device", "accelerator": "cpu"}})
    assert len(check_points(plan)) == 2
