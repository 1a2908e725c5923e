"""The optimizer step every plain training loop takes (zoo pretraining, lisalib.lisa.ceiling), written once."""
from __future__ import annotations

import torch


def take_step(loss: torch.Tensor, params: list[torch.nn.Parameter], optimizer: torch.optim.Optimizer,
              schedule: torch.optim.lr_scheduler.LRScheduler, max_grad_norm: float = 1.0) -> float:
    """Backward, clip, step the optimizer and the schedule, clear gradients; returns the loss value."""
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    schedule.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()
