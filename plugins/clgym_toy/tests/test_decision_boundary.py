"""decision_boundary: one picture per task, where the run puts it, of the model as it is after that task."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clgym_core.errors import SpecError
from clgym_core.registry import get_registry
from clgym_core.runner import run_spec
from clgym_core.spec import parse_spec
from clgym_toy.classification_2d import Toy2DClassification
from clgym_toy.decision_boundary import DecisionBoundary
from clgym_toy.regression_1d import Toy1DRegression

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _image(path) -> np.ndarray:
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    return matplotlib.image.imread(path)


def test_registered_as_a_callback():
    assert get_registry().get("callback", "decision_boundary") is DecisionBoundary


def test_one_picture_per_task_showing_the_current_model(tmp_path, trainer_factory):
    callback = DecisionBoundary(directory=str(tmp_path / "pictures"), resolution=60, dpi=40)
    trainer = trainer_factory(Toy2DClassification(num_tasks=2, cluster_size=40), "finetune", epochs=10,
                              callbacks=[callback])
    trainer.fit()
    names = sorted(p.name for p in (tmp_path / "pictures").iterdir())
    assert names == ["decision_boundary_task1.png", "decision_boundary_task2.png"]
    assert callback.paths == [tmp_path / "pictures" / name for name in names]
    first, second = (_image(p) for p in callback.paths)
    assert first.shape == second.shape and first.shape[0] > 100 and first.shape[1] > 100
    # Finetune flipped the boundary between the tasks, so the two pictures differ over a large area.
    changed = np.abs(first[..., :3] - second[..., :3]).max(axis=-1) > 0.1
    assert changed.mean() > 0.1


def test_pictures_match_the_models_predictions(tmp_path, trainer_factory):
    callback = DecisionBoundary(directory=str(tmp_path), resolution=40)
    trainer = trainer_factory(Toy2DClassification(num_tasks=2, cluster_size=40), "finetune", epochs=10,
                              callbacks=[callback])
    trainer.fit()
    # The grid the picture is drawn from holds the trained model's class probabilities ...
    centres = trainer.benchmark.centers(2)
    probs = callback._predict(trainer, centres, task=2)
    with torch.no_grad():
        expected = torch.softmax(trainer.backbone(centres), dim=1)
    assert torch.allclose(probs, expected, atol=1e-6)
    # ... and after task 2 (class 0 on the right) they give task 2's labels at task 2's centres.
    at_centres = probs.argmax(dim=1)
    assert at_centres.tolist() == [0, 1]


def test_run_directory_wins_over_the_directory_param(tmp_path):
    spec = parse_spec({
        "benchmark": {"name": "toy_2d_classification", "params": {"cluster_size": 20, "test_cluster_size": 10}},
        "backbone": {"name": "mlp", "params": {"hidden_sizes": [8]}},
        "trainer": {"epochs_per_task": 1, "device": "cpu", "progress": False},
        "callbacks": [{"name": "decision_boundary", "params": {"directory": str(tmp_path / "elsewhere"),
                                                               "resolution": 20, "dpi": 30}}],
    })
    result = run_spec(spec, out_dir=tmp_path / "run")
    assert (result.run_dir / "decision_boundary_task1.png").is_file()
    assert (result.run_dir / "decision_boundary_task2.png").is_file()
    assert not (tmp_path / "elsewhere").exists()


def test_without_a_folder_warns_and_draws_nothing(trainer_factory, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    callback = DecisionBoundary()
    trainer = trainer_factory(Toy2DClassification(num_tasks=2), "finetune", epochs=1, callbacks=[callback])
    with pytest.warns(UserWarning, match="directory"):
        trainer.fit()
    assert callback.paths == [] and not any(tmp_path.iterdir())
    assert len(trainer.accuracy_matrix) == 3  # the run itself went on


def test_refuses_inputs_that_are_not_2d(tmp_path, trainer_factory):
    callback = DecisionBoundary(directory=str(tmp_path))
    trainer = trainer_factory(Toy1DRegression(num_tasks=2), "finetune", epochs=1, callbacks=[callback])
    with pytest.raises(SpecError, match="2-D inputs"):
        trainer.fit()
    assert not any(tmp_path.iterdir())


def test_bad_params_name_the_field():
    with pytest.raises(SpecError, match="resolution"):
        DecisionBoundary(resolution=1)


def test_the_legend_is_never_cut_at_the_edge(tmp_path, trainer_factory):
    # After task 1 of 4 every other label reads "(not trained yet)": the longest legend there is.
    callback = DecisionBoundary(directory=str(tmp_path), resolution=20, max_points_per_task=20)
    trainer = trainer_factory(Toy2DClassification(num_tasks=4, cluster_size=20), "finetune", epochs=1,
                              callbacks=[callback])
    trainer.fit()
    for path in callback.paths:
        rgb = _image(path)[..., :3]
        # Nothing is drawn on the picture's border: no text or marker runs off any side.
        for edge in (rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]):
            assert (edge > 0.95).all(), path.name
