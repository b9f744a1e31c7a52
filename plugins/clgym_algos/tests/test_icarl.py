"""iCaRL: herding by hand, nearest-mean-of-exemplars evaluation, distillation on old classes, exemplar budget."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clgym_core.errors import SpecError
from clgym_core.testing import AlgorithmConformance
from clgym_core.trainer import ContinualTrainer

from clgym_algos.icarl import NO_MEAN_SCORE, ICaRL, herding


def test_herding_matches_a_hand_computed_case():
    # Group 0: values 0, 1, 2, 10 (mean 3.25). Step 1 picks 2 (|3.25 - 2| = 1.25); step 2 wants x near 4.5: 1;
    # step 3 wants x near 3 * 3.25 - 3 = 6.75: 10 (nearest to the mean alone would take 0); step 4: 0.
    # Group 1: values 5, 8, 6 (mean 6.33): 6, then x near 6.67: 8, then 5; a fourth pick does not exist.
    features = torch.tensor([[0.0], [5.0], [1.0], [2.0], [8.0], [10.0], [6.0]])
    groups = torch.tensor([0, 1, 0, 0, 1, 0, 1])
    picks, valid = herding(features, groups, num_groups=2, m=4)
    assert picks[0].tolist() == [3, 2, 5, 0]
    assert picks[1, :3].tolist() == [6, 4, 1]
    assert valid.tolist() == [[True] * 4, [True, True, True, False]]




def _trained_on_task_1(bench, backbone_for, **params):
    """iCaRL with a 24-exemplar memory after one pass over task 1, and its optimizer."""
    alg = ICaRL(backbone_for(bench), bench, {"memory_size": 24, **params})
    optimizer = torch.optim.SGD(alg.backbone.parameters(), lr=0.05)
    alg.current_task = 1
    for batch in alg.prepare_train_data(1).batches(20):
        alg.train_step(batch, optimizer)
    alg.train_task_end(1)
    return alg, optimizer


def test_exemplars_are_herded_per_class_and_cut_to_their_prefix(class_blobs, backbone_for):
    bench = class_blobs(seed=0)
    alg, optimizer = _trained_on_task_1(bench, backbone_for)
    e = alg.exemplars
    assert e["targets"].bincount().tolist() == [12, 12]  # m = 24 / 2 classes
    first = {c: e["inputs"][e["targets"] == c][e["rank"][e["targets"] == c].argsort()] for c in (0, 1)}
    # The order is herding's on the normalised features of the class's training examples.
    data = bench.load_train(1)
    for c in (0, 1):
        rows = torch.nonzero(data.targets == c).flatten()
        picks, _ = herding(alg.features_of(data.inputs[rows]), torch.zeros(len(rows), dtype=torch.long), 1, 12)
        torch.testing.assert_close(first[c], data.inputs[rows][picks[0]])
    alg.current_task = 2
    train = alg.prepare_train_data(2)
    assert len(train) == len(bench.load_train(2)) + 24  # the task's data plus every exemplar
    for batch in train.batches(20):
        alg.train_step(batch, optimizer)
    alg.train_task_end(2)
    e = alg.exemplars
    assert e["targets"].bincount().tolist() == [6, 6, 6, 6]  # m = 24 / 4
    for c in (0, 1):  # old sets keep the first 6 of their herding order
        kept = e["inputs"][e["targets"] == c][e["rank"][e["targets"] == c].argsort()]
        torch.testing.assert_close(kept, first[c][:6])


def _nearest_mean(alg, batch):
    """Manual NME: class means from the exemplars' normalised features, then the nearest one."""
    e = alg.exemplars
    with torch.no_grad():
        alg.backbone.eval()
        phi_e = F.normalize(alg.backbone.features(e["inputs"]), dim=1)
        phi = F.normalize(alg.backbone.features(batch.inputs), dim=1)
    classes = sorted(set(e["targets"].tolist()))
    means = torch.stack([F.normalize(phi_e[e["targets"] == c].mean(0), dim=0) for c in classes])
    return torch.tensor(classes)[torch.cdist(phi, means).argmin(1)]


def test_trainer_evaluates_with_the_nearest_mean_of_exemplars(class_blobs, backbone_for):
    bench = class_blobs(seed=0)
    alg = ICaRL(backbone_for(bench), bench, {"memory_size": 24})
    trainer = ContinualTrainer(alg, epochs_per_task=3, batch_size=20, device="cpu", seed=0, checkpoint=False)
    trainer.fit()
    for task in (1, 2, 3):
        batch = bench.load_test(task).all()
        expected = _nearest_mean(alg, batch)
        with torch.no_grad():
            scores = alg.predict(batch)
        assert torch.equal(scores.argmax(1), expected)
        accuracy = 100.0 * float((expected == batch.targets).double().mean())
        assert trainer.accuracy_matrix[3][task - 1] == pytest.approx(accuracy)
    # After task 1 only classes 0 and 1 have exemplars: the others score lowest.
    alg2 = ICaRL(backbone_for(bench), bench, {"memory_size": 24})
    alg2.current_task = 1
    optimizer = torch.optim.SGD(alg2.backbone.parameters(), lr=0.05)
    for b in alg2.prepare_train_data(1).batches(20):
        alg2.train_step(b, optimizer)
    alg2.train_task_end(1)
    with torch.no_grad():
        scores = alg2.predict(bench.load_test(2).all())
    assert (scores[:, 2:] == NO_MEAN_SCORE).all() and (scores[:, :2] > NO_MEAN_SCORE).all()


def test_loss_distils_old_classes_and_learns_new_ones(class_blobs, backbone_for):
    bench = class_blobs(seed=0)
    alg, optimizer = _trained_on_task_1(bench, backbone_for)
    alg.current_task = 2
    train = alg.prepare_train_data(2)
    for batch in list(train.batches(20, shuffle=True, generator=torch.Generator().manual_seed(0)))[:3]:
        alg.train_step(batch, optimizer)
    batch = train.batch(torch.tensor([0, 1, 2, len(train) - 1, len(train) - 2]))  # new examples and exemplars
    with torch.no_grad():
        old = torch.sigmoid(alg.previous.module(batch.inputs))
    target = torch.zeros(5, 6)
    target[:, :2] = old[:, :2]  # old classes: the previous model's sigmoid outputs
    target[:, 2:4] = F.one_hot(batch.targets, 6)[:, 2:4].float()  # new classes: the label
    outputs = alg.forward(batch)
    expected = F.binary_cross_entropy_with_logits(outputs[:, :4], target[:, :4], reduction="none").sum(1).mean()
    torch.testing.assert_close(alg.training_loss(batch), expected)  # classes 4, 5 (unseen) take no part
    assert set(batch.targets.tolist()) & {0, 1} and set(batch.targets.tolist()) & {2, 3}


def test_class_reduction_mean_divides_each_example_by_its_seen_classes(class_blobs, backbone_for):
    bench = class_blobs(seed=0)
    summed, _ = _trained_on_task_1(bench, backbone_for)
    averaged, _ = _trained_on_task_1(bench, backbone_for, class_reduction="mean")
    for alg in (summed, averaged):
        alg.current_task = 2
    train = summed.prepare_train_data(2)
    averaged.prepare_train_data(2)  # its class bookkeeping for task 2
    batch = train.batch(torch.tensor([0, 1, len(train) - 1]))  # new examples and an exemplar
    averaged.backbone.load_state_dict(summed.backbone.state_dict())
    averaged.previous.update(summed.previous.module)
    # Task 2: classes 0-3 seen, so the mean is the sum over those 4 columns divided by 4.
    torch.testing.assert_close(averaged.training_loss(batch), summed.training_loss(batch) / 4)


def test_raw_features_give_plain_class_means_and_full_squared_distances(class_blobs, backbone_for):
    bench = class_blobs(seed=0)
    alg, _ = _trained_on_task_1(bench, backbone_for, normalize_features=False)
    e = alg.exemplars
    with torch.no_grad():
        alg.backbone.eval()
        phi_e = alg.backbone.features(e["inputs"])
        batch = bench.load_test(2).all()
        phi = alg.backbone.features(batch.inputs)
        scores = alg.predict(batch)
    means = torch.stack([phi_e[e["targets"] == c].mean(0) for c in (0, 1)])
    torch.testing.assert_close(alg.class_means[:2], means)
    assert means.norm(dim=1).max() > 1.5  # not unit vectors: nothing was normalised
    torch.testing.assert_close(scores[:, :2], -torch.cdist(phi, means) ** 2, rtol=1e-4, atol=1e-3)
    # Classes without exemplars score below every class that has them, whatever the scale.
    assert (scores[:, 2:] < scores[:, :2].min(1, keepdim=True).values).all()


def test_multi_head_scores_only_the_example_task_classes(blobs, backbone_for):
    bench = blobs(seed=0, multi_head=True)
    alg = ICaRL(backbone_for(bench), bench, {"memory_size": 24})
    trainer = ContinualTrainer(alg, epochs_per_task=3, batch_size=20, device="cpu", seed=0, checkpoint=False)
    trainer.fit()
    assert alg.exemplars["targets"].shape[0] == 24 and alg.groups == 6  # (task, class) sets of 4
    assert trainer.accuracy_matrix[3] == [pytest.approx(100.0, abs=5)] * 3


def test_icarl_needs_features(blobs, featureless):
    with pytest.raises(SpecError, match="features"):
        ICaRL(featureless, blobs())


class TestICaRLConformance(AlgorithmConformance):
    component = ICaRL
    params = {"memory_size": 18}
