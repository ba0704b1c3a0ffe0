"""experiments.py: a --quick smoke run of each experiment, and the claims its code relies on."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from data import NUMBER_IDS, ANIMALS, WorldConfig, encode_numbers
from experiments import count_features, cv_accuracy

ROOT = Path(__file__).resolve().parents[1]


def quick(experiment, out):
    proc = subprocess.run([sys.executable, str(ROOT / "experiments.py"), experiment, "--quick", "--seeds", "1",
                           "--workers", "1", "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / f"{experiment}.png").stat().st_size > 10_000
    return json.loads((out / "results.json").read_text())


def test_theorem1_quick(tmp_path):
    res = quick("theorem1", tmp_path / "t1")
    keys = {f"{m} {o} {i}" for m in ["soft", "hard"] for o in ["adamw", "sgd"] for i in ["same_init", "other_init"]}
    assert set(res["curves"]) == keys == set(res["final"]) and res["experiment"] == "theorem1"
    for curves in res["curves"].values():
        assert len(curves) == 1 and len(curves[0]) == len(res["steps"])
        assert all(-1 <= x <= 1 for x in curves[0])


def test_detection_quick(tmp_path):
    res = quick("detection", tmp_path / "det")
    assert set(res["detector_accuracy"]) == {"owl_vs_base", "owl_vs_dolphin"}
    assert all(0 <= s["mean"] <= 1 for s in res["detector_accuracy"].values())
    assert set(res["entangled_numbers"]) == set(ANIMALS)
    assert all(len(top) == 5 and all(0 <= n < 100 for n, _ in top) for top in res["entangled_numbers"].values())
    assert set(res["number_counts"]) == {"base", *ANIMALS}


def test_count_features_counts_numbers_and_pairs():
    world = WorldConfig()
    seq = torch.tensor([encode_numbers([1, 2, 3, 4], [7, 7, 8, 9, 10, 11, 12, 7])])
    f = count_features(seq, world.prompt_len)
    assert f.shape == (1, 100 + 100 * 100) and f[0, :100].sum() == 8
    assert f[0, 7] == 3 and f[0, 1] == 0                      # the seed numbers are not counted
    assert f[0, 100 + 7 * 100 + 7] == 1 and f[0, 100 + 12 * 100 + 7] == 1 and f[0, 100:].sum() == 7
    assert NUMBER_IDS[0] + 7 == seq[0, world.prompt_len]      # number ids are contiguous, as count_features assumes


def test_detector_separates_separable_data_and_not_noise():
    rng = np.random.default_rng(0)
    x = rng.poisson(0.5, (400, 50)).astype(np.float32)
    y = np.zeros(400, dtype=np.float32)
    y[:200] = 1
    x[:200, 3] += 4                                              # class 1 writes "3" far more often
    assert cv_accuracy(x, y, rng) > 0.9
    assert abs(cv_accuracy(x, rng.permutation(y), rng) - 0.5) < 0.1
