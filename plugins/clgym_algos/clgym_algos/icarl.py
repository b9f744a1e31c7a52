"""iCaRL: incremental classifier and representation learning."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from clgym_core.algorithm import Algorithm
from clgym_core.component import Params
from clgym_core.data import Batch, TaskData
from clgym_core.errors import SpecError

from clgym_algos.frozen import FrozenCopy
from clgym_algos.memory import as_task_data, class_keys, default_memory_size, num_class_keys

if TYPE_CHECKING:
    from clgym_core.trainer import ContinualTrainer

# Score of a class without exemplars: below -||phi - mu||^2 >= -4 for unit vectors, and finite (a loss stays finite).
NO_MEAN_SCORE = -5.0


class ICaRLParams(Params):
    memory_size: int | None = Field(
        None, ge=1,
        description="K: exemplars kept in all, shared equally by the classes seen so far; unset: "
        "per_task_memory_examples x num_tasks, or one per class per task.",
    )
    feature_batch_size: int = Field(
        1024, ge=1, description="Examples per forward pass when computing features for herding and class means."
    )
    class_reduction: Literal["sum", "mean"] = Field(
        "sum",
        description="How an example's per-class binary cross-entropies combine: 'sum' over the classes seen so "
        "far (Alg. 3, the paper), or their 'mean' (aimagelab/mammoth's models/icarl.py, behind the DER paper's "
        "iCaRL rows: a gradient 1/classes-seen as large).",
    )
    normalize_features: bool = Field(
        True,
        description="L2-normalise phi(x) for herding and the class means (Alg. 1, 4; the paper); false: raw "
        "features and plain means, as aimagelab/mammoth's 2020 code does.",
    )


@torch.no_grad()
def herding(features: torch.Tensor, groups: torch.Tensor, num_groups: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """iCaRL Algorithm 4 for every group at once: ``(num_groups, m)`` chosen rows and whether each is valid.

    ``features`` are L2-normalised, ``groups[i]`` the group (class) of row i.
    Step k picks, in each group, the row not yet chosen that brings the mean
    of the k chosen rows closest to the group's mean ``mu``:
    ``argmin_x ||mu - (phi(x) + sum_{j<k} phi(p_j)) / k||``. The loop runs
    over the m steps, vectorised over rows and groups; a group with fewer
    than m rows gets invalid picks past its size.
    """
    n, d = features.shape
    device = features.device
    member = groups.unsqueeze(0) == torch.arange(num_groups, device=device).unsqueeze(1)  # (G, n)
    counts = member.sum(1)
    mu = (member.to(features.dtype) @ features) / counts.clamp_min(1).unsqueeze(1).to(features.dtype)
    running = torch.zeros(num_groups, d, dtype=features.dtype, device=device)
    available = member.clone()
    picks = torch.zeros(num_groups, m, dtype=torch.long, device=device)
    valid = torch.zeros(num_groups, m, dtype=torch.bool, device=device)
    rows = torch.arange(num_groups, device=device)
    squared = (features * features).sum(1)
    for k in range(1, m + 1):
        # ||mu_g - (running_g + phi_i) / k||^2 = ||a_g||^2 - 2/k a_g.phi_i + ||phi_i||^2 / k^2, a_g = mu_g - running_g / k.
        a = mu - running / k
        distance = (a * a).sum(1, keepdim=True) - (2.0 / k) * (a @ features.T) + squared.unsqueeze(0) / (k * k)
        distance = distance.masked_fill(~available, float("inf"))
        best = distance.argmin(dim=1)
        ok = available[rows, best]
        picks[:, k - 1], valid[:, k - 1] = best, ok
        available[rows, best] = False
        running += features[best] * ok.unsqueeze(1).to(features.dtype)
    return picks, valid


class ICaRL(Algorithm):
    """iCaRL: sigmoid training with distillation on old classes, herded exemplars, nearest-mean-of-exemplars.

    Rebuffi et al. 2017, "iCaRL: Incremental Classifier and Representation
    Learning" (CVPR), Algorithms 1-5:

    * representation (Alg. 3): train on the task's data plus every exemplar
      with a binary cross-entropy per class over the classes seen so far; the
      target is the one-hot label for the classes of the current task and the
      previous network's sigmoid output for the old classes (distillation;
      the previous network is a frozen copy taken after the last task,
      equivalent to the paper's stored outputs);
    * memory (Alg. 4-5): ``K`` exemplars in all, ``m = K / classes seen`` per
      class; old sets are cut to their first ``m`` (they are ordered by
      herding), new sets are built by herding on L2-normalised features;
    * classification (Alg. 1): the nearest mean of exemplars,
      ``argmin_y ||phi(x) - mu_y||`` with ``mu_y`` the renormalised mean of the
      normalised features of class y's exemplars. This is :meth:`predict`, so
      the trainer evaluates with it; the head's outputs are only used for
      training. Before the first task ends there are no exemplars and the head
      predicts.

    ``phi`` is ``backbone.features`` (the layers before the head), normalised.
    With one head per task a class is (task, label) and each example is scored
    against the classes of its own task; when tasks share labels (domain-
    incremental) a label present in the current task takes its one-hot target
    and exemplars are kept per (task, label). Per-example loss: the sum over
    classes, averaged over the batch. Not done: the paper's data augmentation
    and its flipped-image class means.

    Two options reproduce the authors' code of the DER paper (Buzzega et al.
    2020, aimagelab/mammoth ``models/icarl.py``) instead of the paper:
    ``class_reduction: mean`` averages the per-class terms (their
    ``binary_cross_entropy_with_logits`` over the seen columns), and
    ``normalize_features: false`` herds and classifies on raw features with
    plain means (then ``-||phi(x) - mu_y||^2`` in full).
    """

    name = "icarl"
    Params = ICaRLParams
    params: ICaRLParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.benchmark.problem != "classification":
            raise SpecError("icarl classifies by class means and needs a classification benchmark")
        if not callable(getattr(self.backbone, "features", None)):
            raise SpecError(
                f"icarl needs the backbone's feature extractor: backbone {self.backbone.name!r} has no "
                "callable `features` (the layers before the head)"
            )
        self.capacity = default_memory_size(self.benchmark, self.params.memory_size)
        keys = num_class_keys(self.benchmark)
        self.previous = FrozenCopy()
        self.seen = torch.zeros(keys, dtype=torch.bool)  # classes met so far, the current task's included
        self.old = torch.zeros(keys, dtype=torch.bool)  # classes met before the current task
        self.new = torch.zeros(keys, dtype=torch.bool)  # classes of the current task
        self.groups = 0  # exemplar sets so far: one per (task, class)
        self.exemplars: dict[str, torch.Tensor] = {}  # inputs, targets, task_ids, group, rank
        self.class_means: torch.Tensor | None = None  # (keys, D), unit rows
        self.has_mean = torch.zeros(keys, dtype=torch.bool)

    def setup(self, trainer: ContinualTrainer) -> None:
        super().setup(trainer)
        self.load_state_dict(self.state_dict())

    # ---- features and classes -------------------------------------------------------------------
    def features(self, inputs: torch.Tensor) -> torch.Tensor:
        """``phi(x)``: the backbone's features, L2-normalised (unless ``normalize_features`` is false)."""
        features = self.backbone.features(inputs).flatten(1)
        return F.normalize(features, dim=1) if self.params.normalize_features else features

    @torch.no_grad()
    def features_of(self, inputs: torch.Tensor) -> torch.Tensor:
        """:meth:`features` in eval mode, in chunks of ``feature_batch_size``."""
        was_training = self.backbone.training
        self.backbone.eval()
        try:
            return torch.cat([self.features(chunk) for chunk in inputs.split(self.params.feature_batch_size)])
        finally:
            self.backbone.train(was_training)

    def column_keys(self, task_ids: torch.Tensor) -> torch.Tensor:
        """``(n, head_size)``: the class each output column of each example stands for."""
        columns = torch.arange(self.benchmark.head_size, device=task_ids.device)
        if self.benchmark.num_heads == 1:
            return columns.expand(task_ids.shape[0], -1)
        return (task_ids.long().unsqueeze(1) - 1) * self.benchmark.head_size + columns

    # ---- training ---------------------------------------------------------------------------------
    def prepare_train_data(self, task: int) -> TaskData:
        """The task's training data plus every exemplar (Alg. 3), as model inputs."""
        current = as_task_data(self.benchmark.load_train(task)).all()
        keys = class_keys(current.targets, current.task_ids, self.benchmark).to(self.seen.device)
        self.new = torch.zeros_like(self.seen)
        self.new[keys] = True
        self.old = self.seen.clone()
        self.seen |= self.new
        parts = [TaskData(current.inputs, current.targets, current.task_ids.long())]
        if self.exemplars:
            e = self.exemplars
            device = current.inputs.device
            parts.append(TaskData(e["inputs"].to(device), e["targets"].to(device), e["task_ids"].to(device)))
        return TaskData.concat(parts) if len(parts) > 1 else parts[0]

    def training_loss(self, batch: Batch) -> torch.Tensor:
        outputs = self.forward(batch)
        keys = self.column_keys(batch.task_ids)
        target = F.one_hot(batch.targets.long(), self.benchmark.head_size).to(outputs.dtype)
        if self.previous:
            distil = self.old[keys] & ~self.new[keys]
            target = torch.where(distil, torch.sigmoid(self.previous(batch.inputs, batch.task_ids)), target)
        per_class = F.binary_cross_entropy_with_logits(outputs, target, reduction="none")
        seen = self.seen[keys].to(outputs.dtype)
        per_example = (per_class * seen).sum(1)
        if self.params.class_reduction == "mean":
            per_example = per_example / seen.sum(1).clamp_min(1)
        return per_example.mean()

    # ---- exemplars and class means ---------------------------------------------------------------------
    @torch.no_grad()
    def train_task_end(self, task: int) -> None:
        new_keys = torch.nonzero(self.new).flatten()
        self.groups += int(new_keys.numel())
        m = max(1, self.capacity // self.groups)
        # Alg. 5: cut every old set to its first m exemplars (herding order).
        if self.exemplars:
            keep = self.exemplars["rank"] < m
            self.exemplars = {k: v[keep] for k, v in self.exemplars.items()}
        # Alg. 4: herd m exemplars for each class of this task.
        current = self.to_device(as_task_data(self.benchmark.load_train(task))).all()
        keys = class_keys(current.targets, current.task_ids, self.benchmark)
        lookup = torch.full((self.seen.numel(),), -1, dtype=torch.long, device=keys.device)
        lookup[new_keys.to(keys.device)] = torch.arange(new_keys.numel(), device=keys.device)
        picks, valid = herding(self.features_of(current.inputs), lookup[keys], int(new_keys.numel()), m)
        rows, rank = picks[valid], torch.nonzero(valid)[:, 1]
        first_group = self.groups - int(new_keys.numel())
        added = {
            "inputs": current.inputs[rows], "targets": current.targets[rows],
            "task_ids": current.task_ids[rows].long(), "rank": rank,
            "group": torch.nonzero(valid)[:, 0] + first_group,
        }
        if self.exemplars:
            added = {k: torch.cat([self.exemplars[k], v]) for k, v in added.items()}
        self.exemplars = added
        self.update_class_means()
        if task < self.benchmark.num_tasks:
            self.previous.update(self.backbone)

    @torch.no_grad()
    def update_class_means(self) -> None:
        """``mu_y``: the renormalised mean of the normalised features of class y's exemplars (Alg. 1); the
        plain mean of the raw features when ``normalize_features`` is false."""
        e = self.exemplars
        features = self.features_of(e["inputs"])
        keys = class_keys(e["targets"], e["task_ids"], self.benchmark)
        sums = torch.zeros(self.seen.numel(), features.shape[1], dtype=features.dtype, device=features.device)
        sums.index_add_(0, keys, features)
        self.has_mean = torch.zeros_like(self.seen)
        self.has_mean[keys] = True
        if self.params.normalize_features:
            self.class_means = F.normalize(sums, dim=1)
        else:
            counts = torch.zeros(self.seen.numel(), dtype=features.dtype, device=features.device)
            counts.index_add_(0, keys, torch.ones_like(keys, dtype=features.dtype))
            self.class_means = sums / counts.clamp_min(1).unsqueeze(1)

    # ---- classification ----------------------------------------------------------------------------------
    def predict(self, batch: Batch) -> torch.Tensor:
        """Nearest mean of exemplars: scores ``-||phi(x) - mu_y||^2`` per class of the example's head."""
        if self.class_means is None:
            return self.forward(batch)
        phi = self.features(batch.inputs)
        if self.benchmark.num_heads == 1:
            means = self.class_means.unsqueeze(0)  # (1, classes, D)
            dots = phi @ self.class_means.T
        else:
            means = self.class_means.view(self.benchmark.num_heads, self.benchmark.head_size, -1)
            means = means[batch.task_ids.long() - 1]  # (n, classes, D)
            dots = torch.einsum("nd,nhd->nh", phi, means)
        has_mean = self.has_mean[self.column_keys(batch.task_ids)]
        if self.params.normalize_features:
            scores = 2 * dots - 2  # -||a - b||^2 for unit vectors
            return scores.masked_fill(~has_mean, NO_MEAN_SCORE)
        scores = 2 * dots - (phi * phi).sum(1, keepdim=True) - (means * means).sum(2)  # -||phi - mu||^2
        lowest = scores.masked_fill(~has_mean, float("inf")).amin(1, keepdim=True) - 1.0
        return torch.where(has_mean, scores, lowest)

    # ---- persistence -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "previous": self.previous.state_dict(), "seen": self.seen, "old": self.old, "new": self.new,
            "groups": self.groups, "exemplars": dict(self.exemplars), "has_mean": self.has_mean,
        }
        if self.class_means is not None:
            state["class_means"] = self.class_means
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.previous.load_state_dict(state["previous"], self.backbone)
        self.seen, self.old, self.new = (state[k].to(self.device) for k in ("seen", "old", "new"))
        self.groups = int(state["groups"])
        self.exemplars = {k: v.to(self.device) for k, v in state["exemplars"].items()}
        self.has_mean = state["has_mean"].to(self.device)
        self.class_means = state["class_means"].to(self.device) if "class_means" in state else None
