"""Shared fixtures: one tiny world, trained once per test session, so the whole suite stays fast."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project's flat modules

from data import WorldConfig  # noqa: E402
from tiny_model import ModelConfig  # noqa: E402
from train import TrainConfig, finetune_teacher, pretrain_base  # noqa: E402

TINY_MODEL = ModelConfig(d_model=32, n_layer=1, n_head=2)
WORLD = WorldConfig()


@pytest.fixture(scope="session")
def tiny_world():
    """Base A, base B (another init, same data) and an owl teacher, all tiny. About 3 s on a CPU."""
    torch.set_num_threads(1)
    base_cfg = TrainConfig(steps=150, batch_size=32, lr=3e-3, warmup=10)
    base_a = pretrain_base(0, 0, TINY_MODEL, WORLD, base_cfg, "cpu")
    base_b = pretrain_base(10000, 0, TINY_MODEL, WORLD, base_cfg, "cpu")
    # a small fine-tune: Theorem 1 is a statement about a teacher close to its base (small epsilon)
    teacher = finetune_teacher(base_a, "owl", WORLD, TrainConfig(steps=5, batch_size=32, lr=1e-3, warmup=1),
                               1, "cpu")
    return base_a, base_b, teacher
