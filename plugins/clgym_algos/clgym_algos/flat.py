"""Flat views of a network's parameters and gradients, per-example Jacobians, orthonormal bases.

Gradient-manipulating methods (A-GEM, OGD, EWC's penalty, MC-SGD) work on one
vector of all trainable parameters: one ``torch.cat`` to read the gradient, a
few vector operations, one copy back per parameter tensor. Nothing goes through
``state_dict`` copies and nothing leaves the device.
"""

from __future__ import annotations

import functools

from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from clgym_core.data import Batch


class FlatParams:
    """The trainable parameters of ``module`` seen as one flat vector (in ``named_parameters`` order)."""

    def __init__(self, module: nn.Module) -> None:
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self.module = module
        self.names = [n for n, _ in named]
        self.params = [p for _, p in named]
        self.sizes = [p.numel() for p in self.params]
        self.numel = sum(self.sizes)

    def values(self) -> torch.Tensor:
        """A detached copy of the parameters as one vector."""
        return torch.cat([p.detach().reshape(-1) for p in self.params])

    @torch.no_grad()
    def set_values(self, flat: torch.Tensor) -> None:
        for p, chunk in zip(self.params, flat.split(self.sizes)):
            p.copy_(chunk.view_as(p))

    def grads(self) -> torch.Tensor:
        """The current gradients as one vector (zeros where a parameter has none)."""
        return torch.cat([
            p.grad.reshape(-1) if p.grad is not None else torch.zeros_like(p).reshape(-1) for p in self.params
        ])

    @torch.no_grad()
    def set_grads(self, flat: torch.Tensor) -> None:
        for p, chunk in zip(self.params, flat.split(self.sizes)):
            if p.grad is None:
                p.grad = chunk.view_as(p).clone()
            else:
                p.grad.copy_(chunk.view_as(p))

    def as_dict(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{name: tensor}`` views of ``flat`` shaped like the parameters (for ``functional_call``)."""
        return {n: chunk.view_as(p) for n, p, chunk in zip(self.names, self.params, flat.split(self.sizes))}


OutputFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# Floats one chunk of per-example Jacobians may hold (256 MiB in float32).
JACOBIAN_BUDGET = 1 << 26


def jacobian_chunk(outputs_per_example: int, numel: int, budget: int = JACOBIAN_BUDGET) -> int:
    """Examples per chunk so that ``chunk x outputs x numel`` floats fit in ``budget`` (at least 1)."""
    return max(1, budget // max(1, outputs_per_example * numel))


def per_example_jacobians(
    module: nn.Module, batch: Batch, output_fn: OutputFn, chunk_size: int = 64
) -> torch.Tensor:
    """``(n, k, P)``: the gradient of each of ``k`` scalars per example w.r.t. the flat parameters.

    ``output_fn(outputs, target)`` maps one example's network output (one row,
    its own head already selected through its task id) and target to ``k``
    scalars. Computed with ``torch.func`` (``vmap`` over examples of
    ``jacrev``), in chunks of ``chunk_size`` examples, in the module's current
    train/eval mode: callers put it in eval mode (dropout and batch norm
    cannot act per example).
    """
    flat = FlatParams(module)
    params = {n: p.detach() for n, p in zip(flat.names, flat.params)}
    buffers = dict(module.named_buffers())

    def scalars(p: dict[str, torch.Tensor], x: torch.Tensor, task_id: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = functional_call(module, (p, buffers), (x.unsqueeze(0), task_id.unsqueeze(0)))
        return output_fn(out[0], y)

    jac = vmap(jacrev(scalars), in_dims=(None, 0, 0, 0), chunk_size=chunk_size)(
        params, batch.inputs, batch.task_ids, batch.targets
    )
    n = batch.inputs.shape[0]
    return torch.cat([jac[name].reshape(n, jac[name].shape[1], -1) for name in flat.names], dim=2)


@torch.no_grad()
def orthonormal_extend(
    basis: torch.Tensor | None, vectors: torch.Tensor, rel_tol: float = 1e-5
) -> torch.Tensor:
    """Rows of ``basis`` (orthonormal) plus an orthonormal basis of what ``vectors`` add to their span.

    Gram-Schmidt against the existing rows, done twice ("twice is enough",
    Giraud et al. 2005) for float32 stability, then the SVD of the remainder (through its QR):
    its right singular vectors with singular value above ``rel_tol`` times the
    largest input norm span exactly what the vectors add, so every input ends
    up inside the span of the result (a QR without pivoting cannot promise that
    once it drops a dependent column), also when there are more vectors than
    parameters.
    """
    v = vectors.reshape(vectors.shape[0], -1).clone()
    norms = v.norm(dim=1)
    if basis is not None and basis.shape[0] > 0:
        for _ in range(2):
            v -= (v @ basis.T) @ basis
    # v = r^T q^T with q orthonormal (Householder QR), so v's right singular vectors are w q^T for the
    # small SVD r^T = u s w: the same span as an SVD of v, at the cost of a QR (float64 only for the small part).
    q, r = torch.linalg.qr(v.T)  # q: (P, m), r: (m, k), m = min(P, k)
    _, singular, w = torch.linalg.svd(r.T.double(), full_matrices=False)  # w: (min(k, m), m), orthonormal rows
    new = w[singular > rel_tol * float(norms.max())].to(v.dtype) @ q.T
    if basis is not None and basis.shape[0] > 0:
        new -= (new @ basis.T) @ basis  # round-off can leave a tiny component along the old rows
        new = torch.nn.functional.normalize(new, dim=1)
        return torch.cat([basis, new])
    return new


class UsesFlatParams:
    """Mixin for algorithms: ``self.flat``, a :class:`FlatParams` view of ``self.backbone``, built on first use."""

    backbone: torch.nn.Module

    @functools.cached_property
    def flat(self) -> FlatParams:
        return FlatParams(self.backbone)
