"""Fold-batched training: K small networks trained in lockstep as one batched network.

A LOSO run trains one small network per fold on almost the same data. Here K of them (folds,
seeds or ensemble members) share each optimiser step: their parameters and buffers are stacked
along a new leading dimension (``torch.func.stack_module_state``) and one vectorised call
(``torch.func.vmap`` over ``functional_call``) runs all K forward and backward passes; a
convolution becomes one grouped convolution. This is the engine's home on a GPU, where one
small network per step leaves the chip idle; on a CPU the grouped kernels are slower than K
separate ones (benchmarks/bench_engine.py), so ``fold_batch`` defaults to 1 there.

Each network keeps everything of its own, exactly as when trained alone
(:func:`glfnet.train.trainer._train_member`): initialisation from its seed, its fold's rows,
batch order, augmentation draws (its own generators, consumed in the same order), input
statistics and class weights, its schedule (folds of different sizes take different numbers
of steps per epoch), its BatchNorm batch statistics and running statistics, and its AdamW
state. Batches of different sizes are padded to a common size; padded rows are masked out of
the loss and of the BatchNorm statistics (:class:`MaskedBatchNorm2d`), and a network with no
batch left in a step is not updated. Nothing crosses between networks: the loss is a sum of
per-network losses, so each network's gradient is its own (tests/test_batched.py perturbs
one fold and checks the others do not move).

One thing differs from training alone: dropout masks are drawn for all K networks at once
(``vmap(randomness="different")``) from a generator seeded by the K seeds, so with dropout a
batched run is another valid random draw, equal within seed noise; without dropout it equals
one-at-a-time training to float tolerance (tested).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn as nn
from torch.func import functional_call, stack_module_state, vmap

from glfnet.config import Config
from glfnet.models.inference import predict_proba
from glfnet.train.losses import class_balanced_loss
from glfnet.train.trainer import (
    MemberJob,
    augment_args,
    build_model,
    lr_schedule,
    refresh_batchnorm,
    val_uf1,
)

Trained = tuple[nn.Module, list[dict], int | None]


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


def _joint_seed(jobs: list[MemberJob]) -> int:
    """The seed of the dropout draws of a batched network: a function of its networks' seeds."""
    return int(np.random.SeedSequence([j.seed for j in jobs]).generate_state(1)[0])


def train_batched(jobs: list[MemberJob], cfg: Config, on_epoch: Callable | None = None) -> list[Trained]:
    """Train ``jobs`` (networks of one architecture, possibly of different folds) as one
    batched network; (model, history, selected epoch) per job, as ``_train_member`` returns."""
    device = jobs[0].data.device
    models = []
    for job in jobs:  # each network's initial weights, as when trained alone
        torch.manual_seed(job.seed)
        models.append(build_model(cfg, job.data.num_classes).to(device))
    gens = [torch.Generator().manual_seed(job.seed) for job in jobs]
    torch.manual_seed(_joint_seed(jobs))
    template, bns = _template(models[0])
    params, buffers = stack_module_state(models)
    opt = StackedAdamW(list(params.values()), cfg.weight_decay)
    run = _Lockstep(jobs, cfg, template, bns, params, buffers, gens)

    histories: list[list[dict]] = [[] for _ in jobs]
    best: list[tuple[float, dict | None]] = [(-1.0, None)] * len(jobs)
    selected: list[int | None] = [None] * len(jobs)
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        losses = run.epoch(opt)
        seconds = (time.perf_counter() - t0) / len(jobs)  # the batched epoch, shared
        for i, job in enumerate(jobs):
            record = {"epoch": epoch, "loss": losses[i], "lr": run.lr(i), "seconds": seconds}
            # a network's own module is filled only for what reads it (validation, observer)
            model = run.materialise(models[i], i) if len(job.data.val_idx) or job.observer else models[i]
            if len(job.data.val_idx):
                record["val_uf1"] = val_uf1(model, job.data)
                if record["val_uf1"] > best[i][0]:
                    best[i], selected[i] = (record["val_uf1"], copy.deepcopy(model.state_dict())), epoch
            if job.member is not None:
                record["member"] = job.member
            histories[i].append(record)
            if on_epoch:
                on_epoch(record)
            if job.observer is not None:
                job.observer(
                    epoch,
                    lambda Xo, groups=None, m=model, p=job.data.pipeline: predict_proba(
                        m, p, Xo, groups=groups
                    ),
                )
    out = []
    for i, job in enumerate(jobs):
        model, best_state = run.materialise(models[i], i), best[i][1]
        if best_state is not None:
            model.load_state_dict(best_state)
        if cfg.bn_refresh:
            fit = job.data.fit_idx
            refresh_batchnorm(
                model, job.data.pipeline, job.data.Xs[fit], cfg.batch_size, job.data.groups_of(fit)
            )
        out.append((model.eval(), histories[i], selected[i]))
    return out


class _Lockstep:
    """The state of K networks training together: their stacked weights, schedules, step
    counts and per-network random generators; one :meth:`epoch` at a time."""

    def __init__(self, jobs, cfg, template, bns, params, buffers, gens) -> None:
        self.jobs, self.cfg, self.template, self.bns = jobs, cfg, template, bns
        self.params, self.buffers, self.gens = params, buffers, gens
        self.device = jobs[0].data.device
        self.n_batches = [max(1, math.ceil(len(j.data.fit_idx) / cfg.batch_size)) for j in jobs]
        self.factors = [lr_schedule(cfg, n) for n in self.n_batches]
        self.steps = [0] * len(jobs)
        loss = jobs[0].data.loss_fn
        self.label_smoothing = loss.label_smoothing
        self.augment = augment_args(cfg)
        self.forward: Callable[..., torch.Tensor] = vmap(self._one, randomness="different")

    def lr(self, i: int) -> float:
        """Network ``i``'s learning rate for its next step (what LambdaLR would report)."""
        return self.cfg.lr * self.factors[i](self.steps[i])

    def _one(self, params, buffers, x, y, w, mask, active):
        for bn in self.bns:
            bn.mask, bn.active = mask, active
        logits = functional_call(self.template, (params, buffers), (x,))
        return class_balanced_loss(logits, y, w, self.label_smoothing, mask=mask, row_weight=w)

    def epoch(self, opt: StackedAdamW) -> list[float]:
        """One epoch of every network (each over its own rows in a fresh order); returns each
        network's mean training loss."""
        jobs, cfg = self.jobs, self.cfg
        batches = [np.array_split(j.rng.permutation(j.data.fit_idx), n) for j, n in zip(jobs, self.n_batches)]
        totals = torch.zeros(len(jobs), dtype=torch.float64, device=self.device)
        seen = np.zeros(len(jobs))
        for s in range(max(self.n_batches)):
            rows = [b[s] if s < len(b) else None for b in batches]
            inputs = self._step_inputs(rows)
            sizes = np.array([0 if r is None else len(r) for r in rows])
            lr = [self.lr(i) if sizes[i] else 0.0 for i in range(len(jobs))]
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.amp):
                losses = self.forward(self.params, self.buffers, *inputs)
            losses.sum().backward()
            opt.step(inputs[-1], torch.tensor(lr, dtype=torch.float64, device=self.device))
            totals += losses.detach().double() * torch.from_numpy(sizes).to(self.device)  # no sync per step
            seen += sizes
            for i in np.flatnonzero(sizes):
                self.steps[i] += 1
        return (totals.cpu().numpy() / np.maximum(seen, 1)).tolist()

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
    def materialise(self, model: nn.Module, i: int) -> nn.Module:
        """``model`` (network ``i``'s own module) holding network ``i``'s current weights and
        statistics, in eval mode."""
        for name, p in model.named_parameters():
            p.copy_(self.params[name][i])
        for name, b in model.named_buffers():
            b.copy_(self.buffers[name][i])
        return model.eval()
