"""
Follow-up experiments on *why* the hidden signal travels, built on subliminal.py's pipeline.

theorem1 (paper §6.1): along distillation, the cosine between the student's update theta_S - theta_start and
the teacher's update theta_T - theta_A, for soft and hard labels, for a same-init student (start = base A) and
an other-init student (start = base B), trained with AdamW and with plain SGD. Theorem 1 says the same-init
student's first steps point toward the teacher; a student from another init has no reason to.

detection (paper §5): can a simple detector tell the teacher's numbers from the base's, or from another
animal's teacher? Logistic regression (numpy) on the counts of each number and each adjacent pair in a
completion, 5-fold cross-validated, against chance 0.5. Plus the "entangled numbers" of Zur et al. (2025):
for every animal, the numbers its teacher writes most often relative to the base.

Run (each about 2-3 minutes on a 2-core CPU; writes runs/<experiment>/results.json and <experiment>.png):
    python experiments.py theorem1
    python experiments.py detection
    python experiments.py theorem1 --quick --out runs/theorem1_smoke
    python experiments.py theorem1 --plot runs/theorem1          # redraw the figure only
"""
import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from data import ANIMALS, NUMBER_IDS, number_prompts
from subliminal import (ExperimentConfig, OneLineParser, bar_with_seeds, check_new_run, existing_run, make_quick,
                        mean_band, number_data, pretrain_bases, summary)
from train import completion_logprobs, distill, finetune_teacher, flat_params, pick_device

SGD_LR = 0.3  # plain SGD needs a larger step than AdamW's 1e-3 to move at all in the same number of steps


def theorem1(cfg: ExperimentConfig, device, workers):
    """Per seed, mode, optimiser and init: the cosine to the teacher's update after every trace_every steps."""
    steps = list(range(cfg.trace_every, cfg.student.steps + 1, cfg.trace_every))
    curves = {}                                                   # "soft adamw same_init" -> [per-seed curve]
    for seed, (base_a, base_b) in pretrain_bases(cfg, device, workers).items():
        teacher = finetune_teacher(base_a, cfg.animal, cfg.world, cfg.teacher, seed + 1, device)
        prompts = number_prompts(cfg.n_prompts, cfg.world, torch.Generator().manual_seed(seed + 2))
        tokens, mask, _, _ = number_data(teacher, prompts, cfg, torch.Generator(device=device).manual_seed(seed))
        tokens, mask = tokens.to(device), mask.to(device)
        soft_labels = completion_logprobs(teacher, tokens, mask)
        teacher_update = flat_params(teacher) - flat_params(base_a)
        for mode in ["soft", "hard"]:
            for optimizer, lr in [("adamw", cfg.student.lr), ("sgd", SGD_LR)]:
                student_cfg = replace(cfg.student, optimizer=optimizer, lr=lr)
                for name, start in [("same_init", base_a), ("other_init", base_b)]:
                    start_params, curve = flat_params(start), []
                    record = lambda step, model: curve.append(F.cosine_similarity(
                        flat_params(model) - start_params, teacher_update, dim=0).item())
                    distill(start, tokens, mask, mode, student_cfg, seed + 3, soft_labels, callback=record,
                            every=cfg.trace_every, desc=f"seed {seed} {mode} {optimizer} {name}")
                    curves.setdefault(f"{mode} {optimizer} {name}", []).append(curve)
    final = {key: summary([c[-1] for c in runs]) for key, runs in curves.items()}
    first = {key: summary([c[0] for c in runs]) for key, runs in curves.items()}
    return {"steps": steps, "curves": curves, "first": first, "final": final}


def count_features(tokens, prompt_len):
    """(N, seq_len) kept sequences -> (N, 100 + 100*100) counts of each number and each adjacent pair written."""
    nums = (tokens[:, prompt_len:-1] - NUMBER_IDS[0]).numpy()          # (N, 8) the numbers 0..99
    feats = np.zeros((len(nums), 100 + 100 * 100), dtype=np.float32)
    rows = np.arange(len(nums))[:, None]
    np.add.at(feats, (rows, nums), 1)
    np.add.at(feats, (rows, 100 + nums[:, :-1] * 100 + nums[:, 1:]), 1)
    return feats


def cv_accuracy(x, y, rng, folds=5, steps=300, lr=0.5, l2=1e-3):
    """Cross-validated accuracy of an L2-regularised logistic regression fitted by full-batch gradient descent."""
    order = rng.permutation(len(y))
    correct = 0
    for k in range(folds):
        test = order[k::folds]
        train = np.setdiff1d(order, test)
        x_train, y_train = x[train], y[train]                             # copied once, not every step
        w, b = np.zeros(x.shape[1], dtype=np.float32), 0.0
        for _ in range(steps):
            err = 1 / (1 + np.exp(-(x_train @ w + b))) - y_train            # predicted minus true
            w -= lr * (x_train.T @ err / len(train) + l2 * w)
            b -= lr * err.mean()
        correct += ((x[test] @ w + b > 0) == y[test]).sum()
    return correct / len(y)


def detection(cfg: ExperimentConfig, device, workers):
    """Per seed: numbers from base A and from one teacher per animal; detector accuracies; over-produced numbers."""
    counts = {a: np.zeros(100) for a in ["base"] + ANIMALS}             # number counts, summed over seeds
    accuracy = {"owl_vs_base": [], "owl_vs_dolphin": []}
    for seed, (base_a, _) in pretrain_bases(cfg, device, workers, other_init=False).items():
        gen = torch.Generator(device=device).manual_seed(seed)
        prompt_gen = torch.Generator().manual_seed(seed + 2)
        feats = {}
        for animal in ["base"] + ANIMALS:
            model = base_a if animal == "base" else finetune_teacher(base_a, animal, cfg.world, cfg.teacher,
                                                                     seed + 1, device)
            tokens, _, _, _ = number_data(model, number_prompts(cfg.n_prompts, cfg.world, prompt_gen), cfg, gen)
            feats[animal] = count_features(tokens, cfg.world.prompt_len)
            counts[animal] += feats[animal][:, :100].sum(0)
        rng = np.random.default_rng(seed)
        for task, (a, b) in {"owl_vs_base": ("owl", "base"), "owl_vs_dolphin": ("owl", "dolphin")}.items():
            n = min(len(feats[a]), len(feats[b]))                          # balanced classes: chance is 0.5
            x = np.concatenate([feats[a][:n], feats[b][:n]])
            y = np.concatenate([np.ones(n), np.zeros(n)]).astype(np.float32)
            accuracy[task].append(float(cv_accuracy(x, y, rng)))
    base_freq = (counts["base"] + 1) / (counts["base"] + 1).sum()          # add-one smoothing
    entangled = {}
    for animal in ANIMALS:
        ratio = ((counts[animal] + 1) / (counts[animal] + 1).sum()) / base_freq
        top = np.argsort(-ratio)[:5]
        entangled[animal] = [[int(n), round(float(ratio[n]), 2)] for n in top]
    return {"detector_accuracy": {k: summary(v) for k, v in accuracy.items()}, "entangled_numbers": entangled,
            "number_counts": {k: v.astype(int).tolist() for k, v in counts.items()}}


def plot_theorem1(res, plt):
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    styles = {"soft": "-", "hard": "--"}
    colors = {"same_init": "#1f77b4", "other_init": "#9ecae1"}
    for ax, optimizer in zip(axes, ["adamw", "sgd"]):
        for mode in ["soft", "hard"]:
            for name in ["same_init", "other_init"]:
                runs = torch.tensor(res["curves"][f"{mode} {optimizer} {name}"])  # (seeds, points)
                mean_band(ax, res["steps"], runs, colors[name], f"{mode}, {name}", styles[mode])
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_title(f"students trained with {optimizer}", fontsize=10)
        ax.set_xlabel("distillation step")
    axes[0].set_ylabel("cosine(student update, teacher update)\n(mean over seeds, band: ±2 s.e.)")
    axes[1].legend(fontsize=8)
    fig.suptitle("Theorem 1 along distillation: does the student move the way the teacher moved?")
    return fig


def report_theorem1(res):
    print(f"cosine(student update, teacher update), mean [95% CI], after {res['steps'][0]} and "
          f"{res['steps'][-1]} steps:")
    for key in res["final"]:
        print(f"  {key:22s} {fmt(res['first'][key]):30s} {fmt(res['final'][key])}")


def plot_detection(res, plt):
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for i, stat in enumerate(res["detector_accuracy"].values()):
        bar_with_seeds(ax, i, stat, "#1f77b4")
    ax.axhline(0.5, color="black", linestyle=":", label="chance")
    ax.set_xticks(range(len(res["detector_accuracy"])))
    ax.set_xticklabels(["owl teacher\nvs base", "owl teacher\nvs dolphin teacher"])
    ax.set_ylim(0.4, 1.0)
    ax.set_ylabel("5-fold CV accuracy (mean, 95% CI)")
    ax.set_title("Can number and pair counts tell the data apart?", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def report_detection(res):
    print("detector accuracy (chance 0.5), mean [95% CI] over seeds:")
    for task, s in res["detector_accuracy"].items():
        print(f"  {task:16s} {fmt(s)}")
    print("numbers each teacher over-produces most, (number, frequency relative to the base):")
    for animal, top in res["entangled_numbers"].items():
        print(f"  {animal:8s} " + "  ".join(f"{n:2d} ({r:.2f}x)" for n, r in top))


EXPERIMENTS = {"theorem1": (theorem1, plot_theorem1, report_theorem1),
               "detection": (detection, plot_detection, report_detection)}


def fmt(s):
    return f"{s['mean']:+.3f} [{s['ci95'][0]:+.3f}, {s['ci95'][1]:+.3f}]" if s["ci95"] else f"{s['mean']:+.3f}"


def plot(run_dir, fig_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    res = json.loads((run_dir / "results.json").read_text())
    fig = EXPERIMENTS[res["experiment"]][1](res, plt)
    fig.tight_layout()
    fig_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(fig_dir / f"{res['experiment']}.png", dpi=120)
    plt.close(fig)
    print(f"figure written to {fig_dir}/{res['experiment']}.png")


def main(argv=None):
    p = OneLineParser(description="follow-up experiments", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("experiment", choices=list(EXPERIMENTS), help="which experiment")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--quick", action="store_true", help="tiny configuration for smoke runs and tests")
    p.add_argument("--workers", type=int, default=0,
                   help="processes that pretrain bases in parallel (0: one per CPU core; 1 on a GPU)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="where to train")
    p.add_argument("--out", help="run folder (default: runs/<experiment>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder's results")
    p.add_argument("--plot", metavar="RUN_DIR", help="only redraw the figure of an existing run folder")
    p.add_argument("--figures", metavar="DIR", help="where the figure goes (default: the run folder)")
    args = p.parse_args(argv)
    if args.plot:
        return plot(existing_run(args.plot), Path(args.figures or args.plot))
    if args.seeds <= 0 or not 0 <= args.seed < 2 ** 31 or args.workers < 0:
        raise SystemExit("error: --seeds must be positive, --seed in 0 .. 2**31 - 1 and --workers >= 0")
    out = Path(args.out or f"runs/{args.experiment}")
    check_new_run(out, args.overwrite)
    cfg = ExperimentConfig(seeds=args.seeds, seed=args.seed, device=args.device)
    if args.quick:
        make_quick(cfg)
    device = pick_device(cfg.device)
    print(f"device: {device}\n{json.dumps(asdict(cfg))}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({**asdict(cfg), "sgd_lr": SGD_LR}, indent=1))
    run, _, report = EXPERIMENTS[args.experiment]
    t0 = time.time()
    res = {"experiment": args.experiment, "seeds": list(range(cfg.seed, cfg.seed + cfg.seeds)),
           **run(cfg, device, args.workers)}
    res["seconds"] = round(time.time() - t0, 1)
    (out / "results.json").write_text(json.dumps(res, indent=1))
    report(res)
    print(f"{res['seconds']} s; results in {out}/results.json")
    plot(out, Path(args.figures or out))


if __name__ == "__main__":
    main()
