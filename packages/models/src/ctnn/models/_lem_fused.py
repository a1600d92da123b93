"""LEM over a whole sequence as one autograd node, with a hand-written backward pass.

Where the time goes (profiled on 32 units, batch 64, T=100, one thread): a training step
of the per-step loop is ~20 small ops per step forward and ~35 backward, each a few
microseconds of dispatch and autograd bookkeeping on ``[64, 32]`` tensors — the
arithmetic itself is negligible. Here the forward loop runs without recording a graph
(10 ops per step, biases folded in, ``addcmul`` updates), saves the few per-step
tensors the gradient needs, and the backward loop is 12 ops per step; the weight
gradients are two matmuls over all steps at once.

The arithmetic is :meth:`ctnn.models.LEM.step` (the tests compare the outputs in float64
to 1e-12 and check the gradients with ``torch.autograd.gradcheck``); only the rounding of
``(1 − d)·z + d·c`` written as ``z + d·(c − z)`` differs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class _LEMSequence(torch.autograd.Function):
    """``(p [T,N,3U], q [T,N,U], dt [T,N|1,1], y0, z0, whh [3U,U], wz [U,U]) → (Y [T,N,U], z_T)``.

    ``p`` holds the pre-activations of (Δt gate of y, Δt gate of z, candidate of z) without
    the ``y @ whhᵀ`` term, ``q`` the candidate of y without ``z @ wzᵀ`` (biases included).
    """

    @staticmethod
    def forward(
        ctx: Any, p: Tensor, q: Tensor, dt: Tensor, y: Tensor, z: Tensor, whh: Tensor, wz: Tensor
    ) -> tuple[Tensor, Tensor]:
        t_len, n, u = p.shape[0], y.shape[0], y.shape[1]
        y0, z0 = y, z
        whh_t, wz_t = whh.t(), wz.t()
        # every per-step result is written into its slot of a preallocated buffer (out=):
        # no per-step allocation, no stacking at the end
        ys, zs, cs, es = (p.new_empty(t_len, n, u) for _ in range(4))
        ss = p.new_empty(t_len, n, 2 * u)
        eycz = p.new_empty(t_len, n, 2 * u)  # (e − y, c − z): what the gate gradients multiply
        d = p.new_empty(n, 2 * u)
        for t, (pt, qt, dtt) in enumerate(zip(p.unbind(0), q.unbind(0), dt.unbind(0), strict=True)):
            g = torch.addmm(pt, y, whh_t)
            s = torch.sigmoid(g[:, : 2 * u], out=ss[t])
            torch.mul(s, dtt, out=d)  # [:, :u] gates y (Δt̄), [:, u:] gates z (Δt)
            c = torch.tanh(g[:, 2 * u :], out=cs[t])
            cz = torch.sub(c, z, out=eycz[t, :, u:])
            z = torch.addcmul(z, d[:, u:], cz, out=zs[t])
            e = torch.tanh(torch.addmm(qt, z, wz_t), out=es[t])
            ey = torch.sub(e, y, out=eycz[t, :, :u])
            y = torch.addcmul(y, d[:, :u], ey, out=ys[t])
        ctx.save_for_backward(ys, zs, ss, cs, es, eycz, dt, y0, z0, whh, wz)
        return ys, z

    @staticmethod
    def backward(ctx: Any, g_out: Tensor | None, g_zlast: Tensor | None) -> tuple[Tensor | None, ...]:
        ys, zs, ss, cs, es, eycz, dt, y0, z0, whh, wz = ctx.saved_tensors
        t_len, n, u = ys.shape
        d = ss * dt
        ds = ss * (1.0 - ss) * dt  # ∂Δt/∂(gate pre-activation)
        d1_de = (d[..., :u] * (1.0 - es * es)).unbind(0)
        d2_dc = (d[..., u:] * (1.0 - cs * cs)).unbind(0)
        d1, d2 = d[..., :u].unbind(0), d[..., u:].unbind(0)
        ds_l, eycz_l = ds.unbind(0), eycz.unbind(0)
        gy = torch.zeros_like(y0)
        gz = torch.zeros_like(z0) if g_zlast is None else g_zlast
        need_dt = ctx.needs_input_grad[2]
        gp, gq_all = ys.new_empty(t_len, n, 3 * u), ys.new_empty(t_len, n, u)
        gds = ys.new_empty(t_len, n, 2 * u) if need_dt else None
        gd_work = ys.new_empty(n, 2 * u)
        for t in range(t_len - 1, -1, -1):
            if g_out is not None:
                gy = gy + g_out[t]
            gq = torch.mul(gy, d1_de[t], out=gq_all[t])
            gzp = torch.addmm(gz, gq, wz)
            gd = gds[t] if need_dt else gd_work  # ∂L/∂(Δt̄, Δt)
            torch.mul(gy, eycz_l[t][:, :u], out=gd[:, :u])
            torch.mul(gzp, eycz_l[t][:, u:], out=gd[:, u:])
            gg = gp[t]
            torch.mul(gd, ds_l[t], out=gg[:, : 2 * u])
            torch.mul(gzp, d2_dc[t], out=gg[:, 2 * u :])
            gz = torch.addcmul(gzp, gzp, d2[t], value=-1.0)
            gy = torch.addmm(torch.addcmul(gy, gy, d1[t], value=-1.0), gg, whh)
        y_prev = torch.cat([y0.unsqueeze(0), ys[:-1]])
        g_whh = gp.reshape(-1, 3 * u).t() @ y_prev.reshape(-1, u)
        g_wz = gq_all.reshape(-1, u).t() @ zs.reshape(-1, u)
        g_dt = None
        if need_dt:
            g_dt = (gds * ss).sum(-1, keepdim=True)
            g_dt = g_dt.sum(1, keepdim=True) if dt.shape[1] == 1 else g_dt
        return gp, gq_all, g_dt, gy, gz, g_whh, g_wz


def lem_sequence(
    p: Tensor, q: Tensor, dt: Tensor, y0: Tensor, z0: Tensor, whh: Tensor, wz: Tensor
) -> tuple[Tensor, Tensor]:
    """Run LEM's recurrence over ``T`` steps; returns ``(y for every step [T, N, U], final z)``."""
    return _LEMSequence.apply(p, q, dt, y0, z0, whh, wz)
