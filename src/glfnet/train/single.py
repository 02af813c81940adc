"""One network at a time: the :class:`~glfnet.train.loop.Stepper` of ordinary training.

Each step is one forward and backward pass of the network on its batch (augmented by the
fold's pipeline with the network's own generator; bfloat16 autocast with ``amp``) and one
AdamW step (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019) at the
learning rate the loop gives.
"""

from __future__ import annotations

import numpy as np
import torch

from glfnet.config import Config
from glfnet.train.fold import augment_args, build_model
from glfnet.train.loop import Job


class SingleStepper:
    """The network of ``job``, initialised from its seed, in channels-last memory."""

    def __init__(self, job: Job, cfg: Config) -> None:
        torch.manual_seed(job.seed)  # initialisation, then dropout draws during training
        self.gen = torch.Generator().manual_seed(job.seed)  # augmentation draws
        self.data, self.amp, self.augment = job.data, cfg.amp, augment_args(cfg)
        model = build_model(cfg, job.data.num_classes)
        # (Module.to takes memory_format, which PyTorch's type stubs do not show)
        self.model = model.to(job.data.device, memory_format=torch.channels_last)  # type: ignore[call-overload]
        params = self.model.parameters()
        self.opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)

    def step(self, rows: list[np.ndarray | None], lrs: list[float]) -> torch.Tensor:
        (b,), (lr,) = rows, lrs  # one network: it has a batch in every step of its epoch
        assert b is not None
        data = self.data
        self.model.train()
        xb = data.pipeline(data.Xs[b], self.augment, self.gen, data.groups_of(b))
        with torch.autocast(data.device.type, dtype=torch.bfloat16, enabled=self.amp):
            loss = data.loss_fn(self.model(xb), data.y_t[b], row_weight=data.row_weight_of(b))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.param_groups[0]["lr"] = lr
        self.opt.step()
        return loss.detach().reshape(1)

    def network(self, i: int) -> torch.nn.Module:
        return self.model
