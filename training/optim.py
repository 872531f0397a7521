"""ScaledAdam and the Eden learning-rate schedule (Zipformer paper, sec. 3.6-3.7).

ScaledAdam is Adam whose step for each non-scalar tensor is scaled by that tensor's
root-mean-square value, so updates are relative to the parameter's size; the size
itself is learned as if each tensor were ``p = direction * exp(log_scale)``, within
``[param_min_rms, param_max_rms]``. Gradients are clipped against ``clipping_scale`` times
the median norm of recent batches. Parameters of one shape are stacked and updated
together (fewer kernel launches). Eden decays the learning rate with both the batch
and the epoch count, after a linear warm-up.

Typical use (icefall's settings)::

    opt = ScaledAdam(model.named_parameters(), lr=0.045, clipping_scale=2.0)
    sched = Eden(opt, lr_batches=7500, lr_epochs=3.5, warmup_start=0.1)
    for epoch in range(1, n + 1):
        sched.step_epoch(epoch - 1)
        for batch in loader:
            loss.backward(); opt.step(); opt.zero_grad(); sched.step_batch()
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

__all__ = ["Eden", "LRScheduler", "ScaledAdam"]

log = logging.getLogger(__name__)


def _split_names(params: Iterable[Any]) -> tuple[list[dict], list[list[str]]]:
    """Accept parameters, (name, parameter) pairs, or groups of either (``params`` or
    ``named_params`` key); return torch-style groups and the names per group."""
    items = list(params)
    if not items:
        raise ValueError("ScaledAdam got no parameters to optimise")
    if not isinstance(items[0], dict):
        items = [{"params": items}]
    groups, names = [], []
    for raw in items:
        group = dict(raw)
        entries = list(group.pop("named_params", None) or group.pop("params"))
        if entries and isinstance(entries[0], tuple):
            names.append([n for n, _ in entries])
            group["params"] = [p for _, p in entries]
        else:
            names.append([f"param{i}" for i in range(len(entries))])
            group["params"] = entries
        groups.append(group)
    return groups, names


class ScaledAdam(Optimizer):
    """Adam with parameter-scale-relative updates and learned parameter scales.

    Args:
      params: parameters, ``model.named_parameters()``, or groups of either; a group's
        ``lr`` overrides the default (Eden keeps it as that group's ``base_lr``).
      lr: learning rate (relative change per step; icefall uses 0.045).
      clipping_scale: clip the global (rms-scaled) gradient norm to this times the median
        of the last ``clipping_update_period`` batches; ``None`` disables clipping.
      betas: momentum and second-moment decay.
      scalar_lr_scale: lr factor for scalar parameters and for the learned scales.
      eps: added to the Adam denominator.
      param_min_rms, param_max_rms: bounds on a non-scalar tensor's rms.
      scalar_max: bound on the magnitude of scalar parameters.
      size_update_period: steps between updates of the learned scales.
      clipping_update_period: steps between re-estimates of the clipping threshold.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 3e-2,
        clipping_scale: float | None = None,
        betas: tuple[float, float] = (0.9, 0.98),
        scalar_lr_scale: float = 0.1,
        eps: float = 1e-8,
        param_min_rms: float = 1e-5,
        param_max_rms: float = 3.0,
        scalar_max: float = 10.0,
        size_update_period: int = 4,
        clipping_update_period: int = 100,
    ) -> None:
        if not 0.0 <= betas[0] < 1.0 or not 0.0 < betas[1] < 1.0:
            raise ValueError(f"betas must lie in [0, 1) x (0, 1); got {betas}")
        if not 0.0 < param_min_rms < param_max_rms:
            raise ValueError(
                f"need 0 < param_min_rms < param_max_rms; got {param_min_rms}, {param_max_rms}"
            )
        defaults = dict(
            lr=lr,
            clipping_scale=clipping_scale,
            betas=betas,
            scalar_lr_scale=scalar_lr_scale,
            eps=eps,
            param_min_rms=param_min_rms,
            param_max_rms=param_max_rms,
            scalar_max=scalar_max,
            size_update_period=size_update_period,
            clipping_update_period=clipping_update_period,
        )
        groups, names = _split_names(params)
        super().__init__(groups, defaults)
        self._names = {
            id(p): n
            for g, ns in zip(self.param_groups, names, strict=True)
            for p, n in zip(g["params"], ns, strict=True)
        }

    def _batches(self, group: dict) -> list[list[Tensor]]:
        """Parameters of a group, bucketed by (dtype, shape) in a fixed order."""
        buckets: dict[tuple, list[Tensor]] = {}
        for p in group["params"]:
            buckets.setdefault((str(p.dtype), *p.shape), []).append(p)
        return [buckets[k] for k in sorted(buckets, key=str)]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            stacked = []
            for batch in self._batches(group):
                if any(p.grad is not None and p.grad.is_sparse for p in batch):
                    raise RuntimeError("ScaledAdam does not support sparse gradients")
                p = torch.stack(batch)
                grad = torch.stack(
                    [torch.zeros_like(q) if q.grad is None else q.grad for q in batch]
                )
                stacked.append((batch, p, grad, self.state[batch[0]]))
            scale = self._clipping_factor(group, stacked)
            for batch, p, grad, state in stacked:
                if scale != 1.0:
                    grad = grad * scale
                p.add_(self._update(group, p, grad, state))
                if p[0].numel() == 1:
                    p.clamp_(-group["scalar_max"], group["scalar_max"])
                state["step"] += 1
                for i, q in enumerate(batch):
                    q.copy_(p[i])
        return loss

    def _update(self, group: dict, p: Tensor, grad: Tensor, state: dict) -> Tensor:
        """The change to the stacked parameters ``p`` (n, ...) for this step."""
        beta1, beta2 = group["betas"]
        lr, eps = group["lr"], group["eps"]
        scalar = p[0].numel() == 1
        dims = list(range(1, p.ndim))
        if "exp_avg_sq" not in state:
            state.setdefault("step", 0)
            dtype = torch.float32 if p.dtype in (torch.float16, torch.bfloat16) else p.dtype
            state["exp_avg_sq"] = torch.zeros_like(p, dtype=dtype)
            state["delta"] = torch.zeros_like(p, dtype=dtype)
            if not scalar:
                rms = p.pow(2).mean(dim=dims, keepdim=True).sqrt().to(dtype)
                state["param_rms"] = rms
                state["scale_exp_avg_sq"] = torch.zeros_like(rms)
                state["scale_grads"] = rms.new_zeros(group["size_update_period"], *rms.shape)
        step = state["step"]

        # Adam's second moment only (momentum is applied to the final delta)
        exp_avg_sq = state["exp_avg_sq"]
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        correction = 1 - beta2 ** (step + 1)
        denom = (exp_avg_sq / correction if correction < 0.99 else exp_avg_sq).sqrt() + eps
        delta = grad / denom

        if scalar:
            delta = delta * (-lr * group["scalar_lr_scale"])
        else:
            period = group["size_update_period"]
            rms = state["param_rms"]
            # d loss / d log_scale, stored for the periodic scale update
            state["scale_grads"][step % period] = (p * grad).sum(dim=dims, keepdim=True)
            if step % period == period - 1:
                rms.copy_(p.pow(2).mean(dim=dims, keepdim=True).sqrt())
            delta = delta * (-lr * rms.clamp(min=group["param_min_rms"]))
            if step % period == period - 1 and step > 0:
                delta = delta + p * self._scale_step(group, state, step)

        stored = state["delta"]
        stored.mul_(beta1).add_(delta, alpha=1 - beta1)
        return stored.to(p.dtype)

    @staticmethod
    def _scale_step(group: dict, state: dict, step: int) -> Tensor:
        """Relative size change (Adam on log-scale, every ``size_update_period`` steps)."""
        period = group["size_update_period"]
        rms, grads = state["param_rms"], state["scale_grads"]
        beta2 = group["betas"][1] ** period
        avg_sq = state["scale_exp_avg_sq"]
        avg_sq.mul_(beta2).add_(grads.pow(2).mean(dim=0), alpha=1 - beta2)
        correction = 1 - beta2 ** ((step + 1) // period)
        size_lr = group["lr"] * group["scalar_lr_scale"]
        change = -size_lr * correction**0.5 * grads.sum(dim=0) / (avg_sq.sqrt() + group["eps"])
        change = change.masked_fill(rms < group["param_min_rms"], 0.0).clamp(-0.1, 0.1)
        return torch.minimum(change, (group["param_max_rms"] - rms) / rms)

    def _clipping_factor(self, group: dict, stacked: list) -> float:
        """Factor <= 1 for this step's gradients; 0 (and a zeroed step) if they are not finite."""
        clipping_scale = group["clipping_scale"]
        first = stacked[0][3]
        step = first.get("step", 0)
        if clipping_scale is None or step == 0:
            return 1.0
        period = group["clipping_update_period"]
        sumsq = torch.zeros((), device=stacked[0][1].device)
        for _, p, grad, state in stacked:
            if p[0].numel() == 1 or "param_rms" not in state:
                sumsq += (grad.float() * group["scalar_lr_scale"]).pow(2).sum()
            else:
                sumsq += (grad.float() * state["param_rms"]).pow(2).sum()
        norm = sumsq.sqrt()
        if "model_norms" not in first:
            first["model_norms"] = torch.zeros(period, device=norm.device)
        first["model_norms"][step % period] = norm
        early = [s for s in (10, 20, 40) if s < period]
        if step % period == 0 or step in early:
            # before the history is full, use the norms recorded so far (steps 1..step)
            norms = first["model_norms"][1 : step + 1] if step in early else first["model_norms"]
            median = norms.float().median().item()
            if median != median:
                raise RuntimeError(
                    "most recent gradients were not finite; lower the learning rate or check "
                    "the loss for inf/nan"
                )
            # the norm moves fast early on, so be more lenient there
            first["clip_threshold"] = clipping_scale * median * (2.0 if step in early else 1.0)
            log.info(
                "grad-norm median %.3e, clipping threshold %.3e", median, first["clip_threshold"]
            )
        threshold = first.get("clip_threshold")
        if threshold is None:
            return 1.0
        factor = min(1.0, threshold / (norm.item() + 1e-20))
        if factor != factor:
            factor = 0.0
        if factor == 0.0:
            for _, _, grad, _ in stacked:
                grad.zero_()
        elif factor < 0.5:
            log.warning(
                "scaling gradients by %.3g (threshold %.3e); largest contribution from %s",
                factor,
                threshold,
                self._dominant(group, stacked),
            )
        return factor

    def _dominant(self, group: dict, stacked: list) -> str:
        """Name of the parameter with the largest share of the clipped gradient norm."""
        best, name = -1.0, ""
        for batch, _, grad, state in stacked:
            scale = state.get("param_rms", group["scalar_lr_scale"])
            contrib = (grad * scale).pow(2).reshape(len(batch), -1).sum(1)
            i = int(contrib.argmax())
            if contrib[i] > best:
                best, name = float(contrib[i]), self._names.get(id(batch[i]), "?")
        return name


class LRScheduler:
    """A schedule over both the batch and the epoch count; sets each group's ``lr``."""

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not a torch Optimizer")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("base_lr", group["lr"])
        self.base_lrs = [group["base_lr"] for group in optimizer.param_groups]
        self.epoch = 0
        self.batch = 0
        self._set_lrs()

    def state_dict(self) -> dict[str, float]:
        return {"epoch": self.epoch, "batch": self.batch}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.epoch = state["epoch"]
        self.batch = state["batch"]
        self._set_lrs()

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def get_lr(self) -> list[float]:
        raise NotImplementedError(f"{type(self).__name__} must define get_lr()")

    def step_batch(self, batch: int | None = None) -> None:
        """Count one batch, or set the global batch index (summed over epochs)."""
        self.batch = self.batch + 1 if batch is None else batch
        self._set_lrs()

    def step_epoch(self, epoch: int | float | None = None) -> None:
        """Count one epoch (call at the end of it), or set it (call at the start)."""
        self.epoch = self.epoch + 1 if epoch is None else epoch
        self._set_lrs()

    def _set_lrs(self) -> None:
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            group["lr"] = lr


class Eden(LRScheduler):
    """``lr = base_lr * ((batch² + lr_batches²) / lr_batches²) ** -0.25
    * ((epoch² + lr_epochs²) / lr_epochs²) ** -0.25 * warmup``, where ``warmup`` rises
    linearly from ``warmup_start`` to 1 over ``warmup_batches`` batches."""

    def __init__(
        self,
        optimizer: Optimizer,
        lr_batches: float,
        lr_epochs: float,
        warmup_batches: float = 500.0,
        warmup_start: float = 0.5,
    ) -> None:
        if not 0.0 <= warmup_start <= 1.0:
            raise ValueError(f"warmup_start must be in [0, 1]; got {warmup_start}")
        if lr_batches <= 0 or lr_epochs <= 0:
            raise ValueError(f"lr_batches and lr_epochs must be > 0; got {lr_batches}, {lr_epochs}")
        self.lr_batches = lr_batches
        self.lr_epochs = lr_epochs
        self.warmup_batches = warmup_batches
        self.warmup_start = warmup_start
        super().__init__(optimizer)

    def factor(self) -> float:
        decay = ((self.batch**2 + self.lr_batches**2) / self.lr_batches**2) ** -0.25
        decay *= ((self.epoch**2 + self.lr_epochs**2) / self.lr_epochs**2) ** -0.25
        if self.batch >= self.warmup_batches:
            return decay
        return decay * (
            self.warmup_start + (1.0 - self.warmup_start) * self.batch / self.warmup_batches
        )

    def get_lr(self) -> list[float]:
        f = self.factor()
        return [base * f for base in self.base_lrs]
