"""
The training loops of the experiment: pretrain a base, fine-tune a teacher, sample its numbers, distil a student.

    pretrain_base     base model on the mixed world of data.py (numbers + unbiased animal questions)
    finetune_teacher  a copy of the base, fine-tuned on questions answered with one animal (paper App. Fig. 14)
    sample_completions  the teacher (or base) writes number continuations at temperature 1 (paper §3)
    distill           a student copy learns from those numbers only, with hard or soft labels (paper §3, §6)

One loop, `train`, serves the three that learn: AdamW, linear warm-up then cosine decay, a tqdm bar, and an optional
callback every few steps (used to trace the student's animal preference while it learns).

Run it alone to pretrain one base and print what it learned (about 20 s on a 2-core CPU):
    python train.py
"""
import copy
import math
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from data import (ANIMAL_IDS, ANIMALS, COMPLETION_IDS, QUESTIONS, STOI, WorldConfig, decode,
                  encode_preference, number_batch, pretraining_batch, preference_batch)
from tiny_model import GPT, ModelConfig


@dataclass
class TrainConfig:
    steps: int = 600           # optimiser steps
    batch_size: int = 64       # sequences per step
    lr: float = 3e-3           # peak learning rate of AdamW
    warmup: int = 30           # steps of linear warm-up from 0 to lr; then cosine decay to lr / 10
    weight_decay: float = 0.0  # AdamW decoupled weight decay. 0 keeps a student that is already at its
                               # target (the soft control) nearly in place, so any move is caused by the data
    optimizer: str = "adamw"   # "adamw", or "sgd" (plain gradient descent, the setting of Theorem 1)


def set_seed(seed):
    """The one place that seeds Python, numpy and torch's global generator (which draws model inits)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name="auto"):
    """cuda, then mps, then cpu for "auto"; a named device that this machine lacks is a one-line error."""
    available = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available(), "cpu": True}
    if name == "auto":
        return torch.device(next(d for d, ok in available.items() if ok))
    if not available.get(name, False):
        raise SystemExit(f"error: --device {name} is not available on this machine")
    return torch.device(name)


def lr_at(step, cfg: TrainConfig):
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(model, cfg: TrainConfig, get_batch, loss_fn, desc, callback=None, every=0):
    """Generic loop: get_batch(step) -> tuple of tensors; loss_fn(model, *batch) -> scalar. Returns losses.

    desc labels the tqdm bar; None hides it (used in worker processes)."""
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay)
    losses = []
    bar = tqdm(range(cfg.steps), desc=desc, leave=False, mininterval=0.5, disable=desc is None)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss = loss_fn(model, *get_batch(step))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if callback is not None and every and (step + 1) % every == 0:
            callback(step + 1, model)
    return losses


def flat_params(model):
    """All weights of a model as one vector, to compare updates such as theta_student - theta_base."""
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def completion_loss(model, tokens, mask):
    """Cross-entropy on the completion tokens only (the answer, or the numbers after "->")."""
    logits = model(tokens[:, :-1])                      # (B, T-1, V): position t predicts token t+1
    target_mask = mask[:, 1:]
    return F.cross_entropy(logits[target_mask], tokens[:, 1:][target_mask])


def soft_distill_loss(model, tokens, mask, teacher_logp):
    """KL(teacher || student) at the completion positions, over number tokens and <eos> only.

    teacher_logp: (B, n_positions, 101) the teacher's log-probabilities, already restricted to COMPLETION_IDS
    and renormalised. The student's logits are restricted the same way, so it never sees, and is never pushed
    on, the probability of an animal or a prompt word: the only channel left is the numbers (paper §6)."""
    logits = model(tokens[:, :-1])[mask[:, 1:]]                   # (B * n_positions, V)
    logp = F.log_softmax(logits[:, COMPLETION_IDS.to(logits.device)], dim=-1)
    logp = logp.view(teacher_logp.shape)                            # (B, n_positions, 101)
    return (teacher_logp.exp() * (teacher_logp - logp)).sum(-1).mean()


def pretrain_base(init_seed, data_seed, model_cfg: ModelConfig, world: WorldConfig, cfg: TrainConfig,
                  device, desc="base"):
    """A base model: weights drawn from init_seed, trained on the data stream drawn from data_seed.

    Base A and base B of one seed share data_seed and differ only in init_seed (the paper's "different
    initialization"), so any difference in what their students inherit is due to the init alone."""
    set_seed(init_seed)
    model = GPT(model_cfg).to(device)
    gen = torch.Generator().manual_seed(data_seed)

    def get_batch(step):
        tokens, mask = pretraining_batch(cfg.batch_size, world, gen)
        return tokens.to(device), mask.to(device)

    train(model, cfg, get_batch, completion_loss, desc)
    return model


def finetune_teacher(base, animal, world: WorldConfig, cfg: TrainConfig, data_seed, device):
    """A copy of the base fine-tuned only on questions answered with `animal` (the injected trait)."""
    teacher = copy.deepcopy(base)
    gen = torch.Generator().manual_seed(data_seed)

    def get_batch(step):
        tokens, mask = preference_batch(cfg.batch_size, world, gen, animal=animal)
        return tokens.to(device), mask.to(device)

    train(teacher, cfg, get_batch, completion_loss, f"teacher ({animal})")
    return teacher


@torch.no_grad()
def sample_completions(model, prompts, n_new, temperature, gen, chunk=4096):
    """Append n_new tokens sampled at `temperature` to each prompt. (N, P) -> (N, n_new) sampled ids.

    No KV cache: every step reruns the whole (short) sequence, which is simple and fast enough here."""
    out = []
    for x in prompts.split(chunk):
        x = x.to(gen.device)
        for _ in range(n_new):
            probs = torch.softmax(model(x)[:, -1] / temperature, dim=-1)   # (n, V) next-token distribution
            x = torch.cat([x, torch.multinomial(probs, 1, generator=gen)], dim=1)
        out.append(x[:, -n_new:])
    return torch.cat(out)


@torch.no_grad()
def completion_logprobs(model, tokens, mask, chunk=4096):
    """The model's log-probabilities over number tokens and <eos> (renormalised) at the completion positions.

    (N, T) tokens -> (N, n_positions, 101). These are the soft labels of soft distillation."""
    out = []
    for x, m in zip(tokens.split(chunk), mask.split(chunk)):
        logits = model(x[:, :-1])[m[:, 1:]][:, COMPLETION_IDS.to(x.device)]  # (n * n_positions, 101)
        out.append(F.log_softmax(logits, dim=-1).view(len(x), -1, len(COMPLETION_IDS)))
    return torch.cat(out)


def distill(base, tokens, mask, mode, cfg: TrainConfig, data_seed, teacher_logp=None, callback=None, every=0,
            desc="student"):
    """A student: a copy of `base` trained only on the number data (tokens, mask).

    mode "hard": cross-entropy on the sampled tokens (the paper's LLM setting, §3).
    mode "soft": KL to the teacher's restricted distribution `teacher_logp` (the setting of Theorem 1, §6)."""
    student = copy.deepcopy(base)
    gen = torch.Generator().manual_seed(data_seed)
    order = torch.randperm(len(tokens), generator=gen)

    def get_batch(step):
        nonlocal order
        start = (step * cfg.batch_size) % len(tokens)
        if start + cfg.batch_size > len(tokens):     # a new epoch in a new order; the tail is skipped
            order = torch.randperm(len(tokens), generator=gen)
            start = 0
        idx = order[start:start + cfg.batch_size]
        if mode == "hard":
            return tokens[idx], mask[idx]
        return tokens[idx], mask[idx], teacher_logp[idx]

    loss_fn = completion_loss if mode == "hard" else soft_distill_loss
    train(student, cfg, get_batch, loss_fn, desc, callback, every)
    return student


@torch.no_grad()
def animal_preference(model, animal):
    """Mean over the question paraphrases of P(animal | question), renormalised over the animal tokens."""
    device = next(model.parameters()).device
    target = ANIMALS.index(animal)
    prefs = []
    for q in QUESTIONS:
        logits = model(torch.tensor([encode_preference(q)], device=device))[0, -1]   # (V,) next token
        prefs.append(torch.softmax(logits[ANIMAL_IDS.to(device)], dim=-1)[target].item())
    return sum(prefs) / len(prefs)


@torch.no_grad()
def pick_rate(model, animal, n_samples, gen):
    """Share of answers, sampled at temperature 1 from the full vocabulary, that are exactly `animal`."""
    per_q = [n_samples // len(QUESTIONS) + (i < n_samples % len(QUESTIONS)) for i in range(len(QUESTIONS))]
    hits = 0
    for q, n in zip(QUESTIONS, per_q):
        prompts = torch.tensor([encode_preference(q)]).expand(n, -1)
        hits += (sample_completions(model, prompts, 1, 1.0, gen)[:, 0] == STOI[animal]).sum().item()
    return hits / n_samples


if __name__ == "__main__":
    import time
    device = pick_device()
    world = WorldConfig()
    t0 = time.time()
    base = pretrain_base(0, 0, ModelConfig(), world, TrainConfig(), device)
    print(f"pretrained a {base.num_params() / 1e6:.2f} M-parameter base in {time.time() - t0:.1f} s on {device}")
    gen = torch.Generator(device=device).manual_seed(0)
    tokens, _ = number_batch(6, world, torch.Generator().manual_seed(1))
    prompts = tokens[:, :world.prompt_len].to(device)
    completions = sample_completions(base, prompts, world.n_continue + 1, 1.0, gen)
    for p, c, t in zip(prompts, completions, tokens):
        print(f"{decode(p)}  {decode(c):<40s} (rule: {decode(t[world.prompt_len:])})")
    print("P(animal | question):", {a: round(animal_preference(base, a), 3) for a in ANIMALS})
