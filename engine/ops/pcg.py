"""Batched preconditioned conjugate gradient in torch, matrix-free, on any device.

Solves ``A x = b`` for a symmetric positive definite ``A`` given only as a product ``x ↦ A x``. ``b`` has a
leading batch dimension: ``b[n]`` is an independent system, with its own step sizes and its own stopping test,
so one call can solve e.g. three colour channels or many frames at once. A system that has converged stops
changing (its step is zeroed) while the others continue.

Stopping rule: ``‖b − A x‖₂ / ‖b‖₂ ≤ tol`` on the (unpreconditioned) residual, or ``maxiter`` iterations; that is
MATLAB ``pcg``'s rule. With ``tol_reference="initial"`` the test is ``‖b − A x‖ ≤ tol·‖b − A x0‖`` instead: the
same "reduce the residual by a factor tol" as MATLAB's from a zero start, which keeps a warm start from
stopping at once when ``x0`` already meets a loose tolerance (the solve would then not move at all).
Unlike MATLAB, a run that hits ``maxiter`` returns its last iterate, not the iterate of smallest residual:
with a warm start and a loose tolerance the two practically coincide, and keeping the minimum would cost one
more full-size buffer.

Preconditioners: ``inv_diag`` (Jacobi, one multiply) or any SPD ``precond`` callable, e.g.
:class:`engine.ops.multigrid.AggregationMultigrid` for the systems of :mod:`engine.ops.laplacian`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable

import torch

__all__ = ["PCGResult", "pcg"]


@dataclass
class PCGResult:
    x: torch.Tensor  # the solution, shaped like b
    iterations: list[int]  # per system: CG iterations used
    converged: list[bool]  # per system: reached tol
    relative_residual: list[float]  # per system: final ‖b − A x‖ / ‖b‖ (the recurrence's residual)
    history: list[list[float]] = field(default_factory=list)  # per iteration: relative residual of each system


def _accepts_out(fn: Callable) -> bool:
    try:
        return "out" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def pcg(matvec: Callable[..., torch.Tensor], b: torch.Tensor, *, x0: torch.Tensor | None = None,
        inv_diag: torch.Tensor | None = None,
        precond: Callable[[torch.Tensor], torch.Tensor] | None = None,
        tol: float = 1e-2, maxiter: int = 40, tol_reference: str = "b", record_history: bool = True
        ) -> PCGResult:
    """Preconditioned CG for a batch of SPD systems ``A x = b``.

    Args:
        matvec: ``A x`` for ``x`` shaped like ``b``; if it takes an ``out=`` keyword, the product is written
            into a reused buffer (no allocation per iteration).
        b: ``(N, ...)`` right-hand sides; dim 0 indexes independent systems.
        x0: warm start, shaped like ``b`` (not modified); zero when None.
        inv_diag: Jacobi preconditioner ``1 / diag(A)``, shaped like ``b`` (cheapest, fully parallel).
        precond: any other SPD preconditioner ``r ↦ M⁻¹ r``; exclusive with ``inv_diag``. Neither: plain CG.
        tol: relative residual target ``‖b − A x‖ / ‖b‖``.
        tol_reference: ``"b"`` (MATLAB: relative to ‖b‖) or ``"initial"`` (relative to ‖b − A x0‖).
        maxiter: iteration cap.
        record_history: keep the per-iteration relative residuals (a host sync per iteration either way,
            since the stopping test needs one).

    A system with ``b = 0`` returns ``x = 0`` after 0 iterations. ``relative_residual`` and ``history`` are
    always relative to ‖b‖, whichever ``tol_reference``.
    """
    if tol_reference not in ("b", "initial"):
        raise ValueError(f"tol_reference must be 'b' or 'initial', got {tol_reference!r}")
    if inv_diag is not None and precond is not None:
        raise ValueError("give either inv_diag or precond, not both")
    if b.ndim < 1:
        raise ValueError(f"Expected a batch (N, ...), got shape {tuple(b.shape)}")
    if x0 is not None and x0.shape != b.shape:
        raise ValueError(f"x0 must be shaped like b {tuple(b.shape)}, got {tuple(x0.shape)}")
    n = b.shape[0]
    bcast = (n,) + (1,) * (b.ndim - 1)
    with_out = _accepts_out(matvec)

    def dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.bmm(u.reshape(n, 1, -1), v.reshape(n, -1, 1)).view(n)

    def apply_precond(r: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if inv_diag is not None:
            return torch.mul(r, inv_diag, out=out)
        if precond is not None:
            return out.copy_(precond(r))
        return out.copy_(r)

    b_norm = torch.linalg.vector_norm(b.reshape(n, -1), dim=1)
    safe_b_norm = torch.where(b_norm > 0, b_norm, torch.ones_like(b_norm))
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    x[b_norm == 0] = 0
    r = b - matvec(x) if x0 is not None else b.clone()
    rel = torch.linalg.vector_norm(r.reshape(n, -1), dim=1) / safe_b_norm
    target = tol * rel if tol_reference == "initial" else torch.full_like(rel, tol)
    active = rel > target
    iterations = torch.zeros(n, dtype=torch.int64, device=b.device)
    history: list[list[float]] = []
    z = apply_precond(r, torch.empty_like(b))
    p = z.clone()
    q = torch.empty_like(b)
    rz = dot(r, z)
    for _ in range(maxiter):
        if not bool(active.any()):
            break
        q = matvec(p, out=q) if with_out else matvec(p)
        pq = dot(p, q)
        # pq <= 0 means breakdown (A not SPD on this batch member, or p = 0): freeze it rather than divide.
        ok = active & (pq > 0)
        alpha = torch.where(ok, rz / torch.where(ok, pq, torch.ones_like(pq)), torch.zeros_like(pq))
        x.addcmul_(alpha.view(bcast), p)
        r.addcmul_(alpha.view(bcast), q, value=-1.0)
        iterations += ok
        rel = torch.linalg.vector_norm(r.reshape(n, -1), dim=1) / safe_b_norm
        if record_history:
            history.append(rel.tolist())
        active = ok & (rel > target)
        z = apply_precond(r, z)
        rz_new = dot(r, z)
        beta = torch.where(active, rz_new / torch.where(rz != 0, rz, torch.ones_like(rz)), torch.zeros_like(rz))
        p.mul_(beta.view(bcast)).add_(z)
        rz = rz_new
    return PCGResult(
        x=x, iterations=iterations.tolist(), converged=(rel <= target).tolist(), relative_residual=rel.tolist(),
        history=history,
    )
