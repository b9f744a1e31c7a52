"""Mode Connectivity SGD."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import torch
from pydantic import Field
from torch.func import functional_call

from clgym_core.algorithm import Algorithm, build_optimizer
from clgym_core.component import Params
from clgym_core.data import Batch, TaskData, iterate_batches
from clgym_core.errors import SpecError

from clgym_algos.flat import UsesFlatParams
from clgym_algos.memory import as_task_data, draw_train_examples
from clgym_algos.stable_sgd import decayed_lr

if TYPE_CHECKING:
    from clgym_core.trainer import ContinualTrainer


# Their line learning rate (experiment_2.py: lmc_lr 0.005, 5 line samples, batch 64) mapped onto our
# exact gradient of the averaged line loss: 0.005 * n (n + 2) / B (derivation in MCSGD's docstring).
AUTHORS_LINE_LR = 0.005
LINE_LR = AUTHORS_LINE_LR * 5 * (5 + 2) / 64


class MCSGDParams(Params):
    alpha: float = Field(
        0.01, ge=0, le=1,
        description="Start of the line phase: w_prev + alpha (w_hat - w_prev) (their lcm_init_position 0.01).",
    )
    line_samples: int = Field(5, ge=1, description="Points n on each line: alpha_i = i/n, i = 1..n (theirs: 5).")
    line_lr: float = Field(
        LINE_LR, gt=0,
        description="Learning rate of the line phase (the run's optimizer type and momentum); default: their "
        "0.005 mapped onto our gradient, 0.005 n(n+2)/B = 0.00273 for n 5, B 64.",
    )
    line_batch_size: int = Field(64, ge=1, description="Batch size of the line phase (memory and current subset).")
    line_epochs: int = Field(1, ge=1, description="Epochs of the line phase over memory and current subset.")
    current_examples: int | None = Field(
        None, ge=1,
        description="Examples of task t (class-balanced) in the line phase; unset: the benchmark's load_subset "
        "(per_task_subset_examples), or 500 when that is unset too.",
    )
    first_task_epoch_factor: int = Field(
        1, ge=1,
        description="Task 1 trains this many times trainer.epochs_per_task epochs (their code: 2).",
    )
    lr_decay: float = Field(
        1.0, gt=0, le=1, description="Continual phase of task t trains with lr * lr_decay^(t-1) (1: no decay)."
    )
    min_lr: float = Field(5e-4, ge=0, description="Lower bound of the decayed continual learning rate.")


class MCSGD(UsesFlatParams, Algorithm):
    """MC-SGD: after each task, find weights on low-loss lines to the previous and the new solution.

    Mirzadeh et al. 2021, "Linear Mode Connectivity in Multitask and
    Continual Learning" (ICLR), Sec. 5. Task 1 trains normally and gives
    ``w_bar_1``. For task t >= 2, the continual solution ``w_hat_t`` is
    trained first from ``w_bar_{t-1}`` with the run's optimizer (learning rate
    decayed per task by ``lr_decay``, as in the authors' runs). Then, starting
    from ``w_bar_{t-1} + alpha (w_hat_t - w_bar_{t-1})``, SGD minimises

        1/n sum_{i=1..n} L_mem(w_bar_{t-1} + a_i (w - w_bar_{t-1})) + L_t(w_hat_t + a_i (w - w_hat_t)),

    ``a_i = i/n`` (both losses integrated along their segment by a right
    Riemann sum), with ``L_mem`` the loss on the episodic memories of tasks
    1..t (task t's included, as in the authors' ``loaders['multitask'][t]``)
    and ``L_t`` the loss on a subset of task t: ``current_examples``
    class-balanced examples (unset: ``load_subset`` when the benchmark sets
    ``per_task_subset_examples``, else 500; the authors draw 2x, 5x or 10x
    their memory size, a few hundred to a thousand). Each step takes one batch
    of each; when one set runs out the other goes on alone (as in the authors'
    code). It runs ``line_epochs`` epochs, entirely on the device, in eval
    mode; the result is ``w_bar_t``. ``first_task_epoch_factor: 2`` trains
    task 1 twice as many epochs, as their ``train_task_sequentially`` does
    (the extra epochs run inside this algorithm with the task's optimizer, so
    step callbacks do not see them).

    Defaults are the authors' (imirzadeh/CL-LinearModeConnectivity,
    ``experiment_2.py``): 5 line samples, line batch 64, initial position
    0.01, and their line learning rate 0.005 mapped onto our gradient. Their
    run settings go in the spec: SGD with momentum 0.8 (the line phase uses
    it too), lr 0.1, batch 64, no decay. The mapping: for one line from
    ``s`` with points ``p_j = s + t_j (w - s)``, ``t_j = j/n``, and ``g_j``
    the gradient of the batch-mean loss at ``p_j`` w.r.t. the point's own
    weights, their ``get_line_loss`` divides the batch-mean loss by the batch
    size ``B`` again, back-propagates it at each point into the same model
    without clearing ``.grad`` in between, and sums the accumulated gradients
    over ``j = 0..n``, so point j enters ``n + 1 - j`` times:

        G_theirs = 1/B sum_{j=0..n} (n + 1 - j) g_j        (checked by running their code's logic)
        G_ours   = 1/n sum_{i=1..n} (i/n) g_i              (exact chain rule of the objective above)

    Where the gradient is about the same along the segment (``g_j = g``),
    ``G_theirs = (n+1)(n+2)/(2B) g`` and ``G_ours = (n+1)/(2n) g``; the same
    step needs ``lr_ours = lr_theirs * n (n + 2) / B``: 0.005 * 35/64 =
    0.00273 for n = 5, B = 64. Their weighting also leans towards the segment's
    start (weight n + 1 - j) where ours leans towards w (weight i/n), so the
    two steps agree in size, not in direction, once the gradient varies.

    Remaining deviations from their code: it trains each ``w_hat_t`` from
    ``w_hat_{t-1}`` (a plain finetuning chain) rather than from
    ``w_bar_{t-1}``; its memory batches are one task's memory each
    (``memory_size / num_tasks`` examples, 5 in experiment_2.py), and as each
    batch's loss is divided by its own size, its memory line weighs 64/5 times
    more than its subset line, where ours gives both the same weight; it
    draws the subset with replacement (ours: distinct, class-balanced).
    CL-Gym took a single step on the whole memory; this runs every step of
    every epoch (``line_steps`` records how many).
    """

    name = "mcsgd"
    Params = MCSGDParams
    params: MCSGDParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not getattr(self.benchmark.params, "per_task_memory_examples", None):
            raise SpecError("mcsgd needs episodic memory: set benchmark.params.per_task_memory_examples (e.g. 200)")
        self.w_prev: torch.Tensor | None = None  # w_bar of the last completed task
        self.w_hat: torch.Tensor | None = None  # continual solution of the last task
        self.line_steps: dict[int, int] = {}
        self._task_optimizer: torch.optim.Optimizer | None = None

    def setup(self, trainer: ContinualTrainer) -> None:
        super().setup(trainer)
        self.load_state_dict(self.state_dict())

    def prepare_optimizer(self, task: int) -> torch.optim.Optimizer:
        lr = decayed_lr(self.optimizer_config.lr, self.params.lr_decay, task, self.params.min_lr)
        self._task_optimizer = build_optimizer(self.backbone.parameters(), self.optimizer_config, lr=lr)
        return self._task_optimizer

    def _extra_first_task_epochs(self) -> None:
        """``first_task_epoch_factor - 1`` more times the trainer's epochs on task 1, with its optimizer."""
        epochs = (self.params.first_task_epoch_factor - 1) * getattr(self.trainer, "epochs_per_task", 1)
        if epochs == 0:
            return
        data = self.to_device(self.prepare_train_data(1))
        optimizer = self._task_optimizer or self.prepare_optimizer(1)
        self.backbone.train()
        for _ in range(epochs):
            # Shuffles drawn from the global RNG, which the trainer seeds per task.
            generator = torch.Generator().manual_seed(int(torch.randint(0, 1 << 62, (1,))))
            for batch in iterate_batches(data, self.batch_size, True, generator, self.device):
                self.train_step(batch, optimizer)

    # ---- line phase -----------------------------------------------------------------------------------
    def line_loss(self, start: torch.Tensor, batch: Batch) -> torch.Tensor:
        """``1/n sum_i L(start + a_i (w - start))`` on ``batch``, differentiable in the backbone's weights."""
        n = self.params.line_samples
        starts = self.flat.as_dict(start)
        total = torch.zeros((), device=start.device)
        for i in range(1, n + 1):
            a = i / n
            point = {name: s + a * (p - s) for name, p, s in zip(self.flat.names, self.flat.params, starts.values())}
            outputs = functional_call(self.backbone, point, (batch.inputs, batch.task_ids))
            total = total + self.criterion(outputs, batch.targets)
        return total / n

    def _current_subset(self, task: int) -> TaskData:
        k = self.params.current_examples
        if k is None and getattr(self.benchmark.params, "per_task_subset_examples", None):
            return as_task_data(self.benchmark.load_subset(task))
        return draw_train_examples(self.benchmark, task, k or 500, "mcsgd_current")

    def line_phase(self, task: int) -> None:
        """Move the backbone from ``w_hat_t`` to ``w_bar_t`` (see the class docstring)."""
        assert self.w_prev is not None
        w_prev, w_hat = self.w_prev, self.flat.values()
        self.w_hat = w_hat
        self.flat.set_values(w_prev + self.params.alpha * (w_hat - w_prev))
        previous = self.to_device(as_task_data(self.benchmark.load_memory_joint(task)))  # memories of 1..t
        current = self.to_device(self._current_subset(task))
        optimizer = build_optimizer(self.backbone.parameters(), self.optimizer_config, lr=self.params.line_lr)
        size = self.params.line_batch_size
        was_training = self.backbone.training
        self.backbone.eval()
        steps = 0
        try:
            for _ in range(self.params.line_epochs):
                # Shuffles drawn from the global RNG, which the trainer seeds per task.
                seeds = torch.randint(0, 1 << 62, (2,)).tolist()
                pairs = itertools.zip_longest(
                    previous.batches(size, shuffle=True, generator=torch.Generator().manual_seed(seeds[0])),
                    current.batches(size, shuffle=True, generator=torch.Generator().manual_seed(seeds[1])),
                )
                for prev_batch, curr_batch in pairs:
                    optimizer.zero_grad(set_to_none=True)
                    loss = torch.zeros((), device=self.device)
                    if prev_batch is not None:
                        loss = loss + self.line_loss(w_prev, prev_batch)
                    if curr_batch is not None:
                        loss = loss + self.line_loss(w_hat, curr_batch)
                    loss.backward()
                    optimizer.step()
                    steps += 1
        finally:
            self.backbone.train(was_training)
        self.line_steps[task] = steps

    def train_task_end(self, task: int) -> None:
        if task == 1:
            self._extra_first_task_epochs()
        self._task_optimizer = None
        if task >= 2 and self.w_prev is not None:
            self.line_phase(task)
        else:
            self.w_hat = self.flat.values()
        self.w_prev = self.flat.values()

    # ---- persistence ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"line_steps": dict(self.line_steps)}
        if self.w_prev is not None:
            state["w_prev"] = self.w_prev
        if self.w_hat is not None:
            state["w_hat"] = self.w_hat
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.w_prev = state["w_prev"].to(self.device) if "w_prev" in state else None
        self.w_hat = state["w_hat"].to(self.device) if "w_hat" in state else None
        self.line_steps = {int(k): int(v) for k, v in state.get("line_steps", {}).items()}
