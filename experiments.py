"""
Follow-up experiments on *why* the hidden signal travels, built on subliminal.py's pipeline.

theorem1 (paper §6.1): along distillation, the cosine between the student's update theta_S - theta_start and
the teacher's update theta_T - theta_A, for soft and hard labels, for a same-init student (start = base A) and
an other-init student (start = base B), trained with AdamW and with plain SGD. Theorem 1 says the same-init
student's first steps point toward the teacher; a student from another init has no reason to.

Run (about 2 minutes on a 2-core CPU; writes runs/theorem1/results.json and theorem1.png):
    python experiments.py theorem1
    python experiments.py theorem1 --quick --out runs/theorem1_smoke
    python experiments.py theorem1 --plot runs/theorem1          # redraw the figure only
"""
import argparse
import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from data import number_prompts
from subliminal import (ExperimentConfig, OneLineParser, make_quick, number_data, pretrain_bases, summary)
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


def plot(run_dir, fig_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    res = json.loads((run_dir / "results.json").read_text())
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    styles = {"soft": "-", "hard": "--"}
    colors = {"same_init": "#1f77b4", "other_init": "#9ecae1"}
    for ax, optimizer in zip(axes, ["adamw", "sgd"]):
        for mode in ["soft", "hard"]:
            for name in ["same_init", "other_init"]:
                runs = torch.tensor(res["curves"][f"{mode} {optimizer} {name}"])  # (seeds, points)
                mean = runs.mean(0)
                ax.plot(res["steps"], mean, styles[mode], color=colors[name], label=f"{mode}, {name}")
                if len(runs) > 1:
                    half = 2 * runs.std(0) / len(runs) ** 0.5
                    ax.fill_between(res["steps"], mean - half, mean + half, color=colors[name], alpha=0.15)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_title(f"students trained with {optimizer}", fontsize=10)
        ax.set_xlabel("distillation step")
    axes[0].set_ylabel("cosine(student update, teacher update)\n(mean over seeds, band: ±2 s.e.)")
    axes[1].legend(fontsize=8)
    fig.suptitle("Theorem 1 along distillation: does the student move the way the teacher moved?")
    fig.tight_layout()
    fig_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(fig_dir / "theorem1.png", dpi=120)
    plt.close(fig)
    print(f"figure written to {fig_dir}/theorem1.png")


def main(argv=None):
    p = OneLineParser(description="follow-up experiments", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("experiment", choices=["theorem1"], help="which experiment")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument("--quick", action="store_true", help="tiny configuration for smoke runs and tests")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="where to train")
    p.add_argument("--out", help="run folder (default: runs/<experiment>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder's results")
    p.add_argument("--plot", metavar="RUN_DIR", help="only redraw the figure of an existing run folder")
    p.add_argument("--figures", metavar="DIR", help="where the figure goes (default: the run folder)")
    args = p.parse_args(argv)
    if args.plot:
        if not (Path(args.plot) / "results.json").is_file():
            raise SystemExit(f"error: no results.json in {args.plot}; run the experiment first")
        return plot(Path(args.plot), Path(args.figures or args.plot))
    if args.seeds <= 0 or not 0 <= args.seed < 2 ** 31:
        raise SystemExit("error: --seeds must be positive and --seed in 0 .. 2**31 - 1")
    out = Path(args.out or f"runs/{args.experiment}")
    if (out / "results.json").exists() and not args.overwrite:
        raise SystemExit(f"error: {out} already holds a run; pick another --out or pass --overwrite")
    cfg = ExperimentConfig(seeds=args.seeds, seed=args.seed, device=args.device)
    if args.quick:
        make_quick(cfg)
    device = pick_device(cfg.device)
    workers = min(os.cpu_count() or 1, 2 * cfg.seeds) if device.type == "cpu" else 1
    print(f"device: {device}\n{json.dumps(asdict(cfg))}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({**asdict(cfg), "sgd_lr": SGD_LR}, indent=1))
    t0 = time.time()
    res = theorem1(cfg, device, workers)
    res["seconds"] = round(time.time() - t0, 1)
    (out / "results.json").write_text(json.dumps(res, indent=1))
    print(f"cosine(student update, teacher update), mean [95% CI] over {cfg.seeds} seeds, after "
          f"{res['steps'][0]} and {res['steps'][-1]} steps:")
    for key in res["final"]:
        f, s = res["first"][key], res["final"][key]
        ci = lambda x: f"[{x['ci95'][0]:+.3f}, {x['ci95'][1]:+.3f}]" if x["ci95"] else ""   # noqa: E731
        print(f"  {key:22s} {f['mean']:+.3f} {ci(f):18s} {s['mean']:+.3f} {ci(s)}")
    print(f"{res['seconds']} s; results in {out}/results.json")
    plot(out, Path(args.figures or out))


if __name__ == "__main__":
    main()
