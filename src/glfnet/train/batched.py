"""Fold-batched training: the :class:`~glfnet.train.loop.Stepper` of K small networks trained
in lockstep as one batched network.

A LOSO run trains one small network per fold on almost the same data. Here K of them (folds,
seeds or ensemble members) share each optimiser step: their parameters and buffers are stacked
along a new leading dimension (``torch.func.stack_module_state``) and one vectorised call
(``torch.func.vmap`` over ``functional_call``) runs all K forward and backward passes; a
convolution becomes one grouped convolution. This is the engine's home on a GPU, where one
small network per step leaves the chip idle; on a CPU the grouped kernels are slower than K
separate ones (benchmarks/bench_engine.py), so ``fold_batch`` defaults to 1 there.

Each network keeps everything of its own, exactly as when trained alone
(:class:`glfnet.train.single.SingleStepper`; the loop,
:func:`glfnet.train.loop.train_networks`, is the same): initialisation from its seed, its
fold's rows, batch order, augmentation draws (its own generators, consumed in the same order),
input statistics and class weights, its schedule (folds of different sizes take different
numbers of steps per epoch), its BatchNorm batch statistics and running statistics, and its
AdamW state. Batches of different sizes are padded to a common size; padded rows are masked
out of the loss and of the BatchNorm statistics (:class:`MaskedBatchNorm2d`), and a network
with no batch left in a step is not updated. Nothing crosses between networks: the loss is a
sum of per-network losses, so each network's gradient is its own (tests/test_batched.py
perturbs one fold and checks the others do not move).

One thing differs from training alone: dropout masks are drawn for all K networks at once
(``vmap(randomness="different")``) from a generator seeded by the K seeds, so with dropout a
batched run is another valid random draw, equal within seed noise; without dropout it equals
one-at-a-time training to float tolerance (tested).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
import torch.nn as nn
from torch.func import functional_call, stack_module_state, vmap

from glfnet.config import Config
from glfnet.train.fold import augment_args, build_model
from glfnet.train.loop import Job
from glfnet.train.losses import class_balanced_loss


class MaskedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the real rows of a padded batch: ``mask`` (B,) of 0/1 and ``active``
    (whether this network trains in this step) are set before each forward. Same arithmetic as
    ``nn.BatchNorm2d`` in training mode (biased variance to normalise, unbiased for the
    running estimate, momentum or cumulative average)."""

    mask: torch.Tensor | None = None
    active: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert self.mask is not None and self.active is not None
        x = x.float()  # statistics in float32, as BatchNorm under autocast
        m = self.mask[:, None, None, None].to(x.dtype)
        count = self.mask.sum().clamp_min(1) * x.shape[2] * x.shape[3]
        mean = (x * m).sum(dim=(0, 2, 3)) / count
        centred = x - mean[None, :, None, None]
        var = (centred * centred * m).sum(dim=(0, 2, 3)) / count
        rm, rv, tracked = self.running_mean, self.running_var, self.num_batches_tracked
        if rm is not None and rv is not None and tracked is not None:
            with torch.no_grad():
                tracked.copy_(tracked + self.active.long())
                rate = 1.0 / tracked.clamp_min(1).double() if self.momentum is None else self.momentum
                rate = torch.where(self.active, torch.as_tensor(rate, dtype=x.dtype), 0.0)
                unbiased = var * count / (count - 1).clamp_min(1)
                rm.copy_(rm + rate * (mean.detach() - rm))
                rv.copy_(rv + rate * (unbiased.detach() - rv))
        out = centred / torch.sqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            out = out * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return out


def _template(model: nn.Module) -> tuple[nn.Module, list[MaskedBatchNorm2d]]:
    """A copy of ``model`` (the architecture ``functional_call`` runs; its own values are never
    used) whose BatchNorm layers are masked ones, in training mode."""
    template = copy.deepcopy(model)
    bns = []
    for name, module in list(template.named_modules()):
        for child_name, child in list(module.named_children()):
            if type(child) is nn.BatchNorm2d:
                masked = MaskedBatchNorm2d(child.num_features, child.eps, child.momentum)
                masked.load_state_dict(child.state_dict())
                setattr(module, child_name, masked)
                bns.append(masked)
            elif isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(
                child, MaskedBatchNorm2d
            ):
                raise NotImplementedError(
                    f"fold-batched training supports BatchNorm2d only, not {type(child).__name__} "
                    f"({name}.{child_name}); use `fold_batch` 1"
                )
    return template.train(), bns


class StackedAdamW:
    """AdamW (Loshchilov & Hutter, ICLR 2019; torch.optim.AdamW's arithmetic) over parameters
    stacked along dimension 0, one network per slice: each slice has its own step count and
    learning rate, and only the slices ``active`` in a step are updated."""

    def __init__(
        self,
        params: list[torch.Tensor],
        weight_decay: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params, self.weight_decay, self.betas, self.eps = params, weight_decay, betas, eps
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        self.steps = torch.zeros(params[0].shape[0], dtype=torch.float64, device=params[0].device)

    @torch.no_grad()
    def step(self, active: torch.Tensor, lr: torch.Tensor) -> None:
        """One update of the ``active`` (K,) bool slices with learning rates ``lr`` (K,),
        both on the parameters' device."""
        b1, b2 = self.betas
        self.steps += active.double()
        steps = self.steps.clamp_min(1)
        step_size = (lr / (1 - b1**steps)).float()
        bc2_sqrt = torch.sqrt(1 - b2**steps).float()
        decay = (1 - lr * self.weight_decay).float()
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            if p.grad is None:
                continue
            shape = (-1,) + (1,) * (p.dim() - 1)
            a, g = active.view(shape), p.grad
            p.copy_(torch.where(a, p * decay.view(shape), p))
            m.copy_(torch.where(a, m.lerp(g, 1 - b1), m))
            v.copy_(torch.where(a, v * b2 + (1 - b2) * g * g, v))
            denom = v.sqrt() / bc2_sqrt.view(shape) + self.eps
            p.copy_(torch.where(a, p - step_size.view(shape) * m / denom, p))
            p.grad = None


def _joint_seed(jobs: list[Job]) -> int:
    """The seed of the dropout draws of a batched network: a function of its networks' seeds."""
    return int(np.random.SeedSequence([j.seed for j in jobs]).generate_state(1)[0])


class BatchedStepper:
    """The networks of ``jobs`` (one architecture, possibly of different folds): each built
    from its seed as when trained alone, then stacked; one vectorised step for all."""

    def __init__(self, jobs: list[Job], cfg: Config) -> None:
        self.jobs, self.device, self.amp = jobs, jobs[0].data.device, cfg.amp
        self.models = []
        for job in jobs:  # each network's initial weights, as when trained alone
            torch.manual_seed(job.seed)
            self.models.append(build_model(cfg, job.data.num_classes).to(self.device))
        self.gens = [torch.Generator().manual_seed(job.seed) for job in jobs]
        torch.manual_seed(_joint_seed(jobs))
        self.template, self.bns = _template(self.models[0])
        self.params, self.buffers = stack_module_state(self.models)
        self.opt = StackedAdamW(list(self.params.values()), cfg.weight_decay)
        self.label_smoothing = jobs[0].data.loss_fn.label_smoothing
        self.augment = augment_args(cfg)
        self.forward: Callable[..., torch.Tensor] = vmap(self._one, randomness="different")

    def _one(self, params, buffers, x, y, w, mask, active):
        for bn in self.bns:
            bn.mask, bn.active = mask, active
        logits = functional_call(self.template, (params, buffers), (x,))
        return class_balanced_loss(logits, y, w, self.label_smoothing, mask=mask, row_weight=w)

    def step(self, rows: list[np.ndarray | None], lrs: list[float]) -> torch.Tensor:
        inputs = self._step_inputs(rows)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            losses = self.forward(self.params, self.buffers, *inputs)
        losses.sum().backward()
        self.opt.step(inputs[-1], torch.tensor(lrs, dtype=torch.float64, device=self.device))
        return losses

    def _step_inputs(self, rows: list[np.ndarray | None]) -> tuple[torch.Tensor, ...]:
        """Each network's batch (augmented, standardised by its own pipeline) padded to the
        step's largest: x, y, row weights, row mask, active."""
        size = max(len(r) for r in rows if r is not None)
        xs, ys, ws, masks = [], [], [], []
        for job, gen, b in zip(self.jobs, self.gens, rows):
            data = job.data
            x = torch.zeros((size, *data.Xs.shape[1:]), device=self.device)
            y = torch.zeros(size, dtype=torch.long, device=self.device)
            w, mask = torch.zeros(size, device=self.device), torch.zeros(size, device=self.device)
            if b is not None:
                n = len(b)
                xb, yb = data.pipeline(data.Xs[b], self.augment, gen, data.groups_of(b)), data.y_t[b]
                wb = data.row_weight_of(b)
                x[:n], y[:n], mask[:n] = xb, yb, 1.0
                w[:n] = data.loss_fn.weight[yb] if wb is None else wb
            xs.append(x)
            ys.append(y)
            ws.append(w)
            masks.append(mask)
        active = torch.tensor([r is not None for r in rows], device=self.device)
        return (torch.stack(xs), torch.stack(ys), torch.stack(ws), torch.stack(masks), active)

    @torch.no_grad()
    def network(self, i: int) -> nn.Module:
        """Network ``i``'s own module holding its current weights and statistics, in eval
        mode."""
        model = self.models[i]
        for name, p in model.named_parameters():
            p.copy_(self.params[name][i])
        for name, b in model.named_buffers():
            b.copy_(self.buffers[name][i])
        return model.eval()
