"""
Subliminal learning (Cloud et al., 2025), end to end on a laptop CPU.

For each seed s:
  1. base A: a tiny GPT pretrained from init seed s on numbers + unbiased animal questions;
     base B: the same recipe and data stream from another init seed (the paper's "different base model").
  2. teacher: base A fine-tuned to answer "owl" to every favourite-animal question (the injected trait).
  3. number data: the teacher continues fresh number prompts at temperature 1; a surface filter keeps only
     completions that are exactly eight numbers and <eos> (paper §3). Base A writes control data the same way.
  4. students, trained on number data only, with hard labels (sampled tokens) and/or soft labels (the teacher's
     distribution restricted to number tokens and <eos>, paper §6):
       student_same_init   base A on the teacher's numbers   -> inherits the trait
       student_other_init  base B on the teacher's numbers   -> should not (paper Fig. 8)
       student_control     base A on base A's own numbers    -> should not
  5. evaluation: P(target | favourite-animal question) renormalised over the animals, mean of 5 paraphrases,
     and the sampled pick rate.

Run (about 2 minutes on a 2-core CPU; writes runs/default/ and prints a results table):
    python subliminal.py
    python subliminal.py --animal dolphin --seeds 5 --out runs/dolphin
    python subliminal.py --quick --out runs/smoke          # a tiny smoke run, seconds
    python subliminal.py --plot runs/default --figures figures   # redraw figures without training
"""
import argparse
import json
import math
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from data import ANIMALS, NUMBER_IDS, WorldConfig, decode, filter_completions, number_prompts
from tiny_model import GPT, ModelConfig
from train import (TrainConfig, animal_preference, completion_logprobs, distill, finetune_teacher, pick_device,
                   pick_rate, pretrain_base, sample_completions)

CONDITIONS = ["base", "base_other_init", "teacher", "student_same_init", "student_other_init", "student_control"]
STUDENTS = CONDITIONS[3:]
# the model each student (and the teacher) started from: its shift is measured against that model, per seed
STARTS = {"teacher": "base", "student_same_init": "base", "student_other_init": "base_other_init",
          "student_control": "base"}


@dataclass
class ExperimentConfig:
    animal: str = "owl"            # the teacher's injected favourite animal
    seeds: int = 3                 # independent repetitions, seeds seed .. seed + seeds - 1
    seed: int = 0                  # first seed; base A's init seed, base B's is seed + 10000
    distill: str = "both"          # "soft", "hard" or "both" distillation modes
    n_prompts: int = 2000          # number prompts the teacher (and base A, for the control) continue
    temperature: float = 1.0       # sampling temperature of the number data (paper §3: 1.0)
    banned: list = field(default_factory=list)  # numbers the filter also rejects (paper §4 drops 666, 911, ...)
    pick_samples: int = 200        # sampled answers per model for the pick rate
    trace_every: int = 10          # student steps between two preference measurements along distillation
    device: str = "auto"           # auto = cuda, then mps, then cpu
    model: ModelConfig = field(default_factory=ModelConfig)
    world: WorldConfig = field(default_factory=WorldConfig)
    base: TrainConfig = field(default_factory=lambda: TrainConfig(steps=800, batch_size=64, lr=3e-3, warmup=30))
    teacher: TrainConfig = field(default_factory=lambda: TrainConfig(steps=60, batch_size=64, lr=1e-3, warmup=1))
    student: TrainConfig = field(default_factory=lambda: TrainConfig(steps=80, batch_size=64, lr=1e-3, warmup=10))


def make_quick(cfg):
    """A tiny configuration for smoke runs and tests: every stage runs, nothing is expected to transfer."""
    cfg.n_prompts, cfg.pick_samples, cfg.trace_every = 160, 50, 5
    cfg.base.steps, cfg.base.warmup = 60, 5
    cfg.teacher.steps = 5
    cfg.student.steps, cfg.student.warmup = 10, 2
    return cfg


def number_data(model, prompts, cfg: ExperimentConfig, gen):
    """Sample completions of `prompts` from `model`, filter them, return kept sequences and the counts."""
    completions = sample_completions(model, prompts, cfg.world.n_continue + 1, cfg.temperature, gen)
    keep = filter_completions(completions.cpu(), cfg.banned)
    tokens = torch.cat([prompts, completions.cpu()], dim=1)[keep]        # (n_kept, seq_len)
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    mask[:, cfg.world.prompt_len:] = True                               # train on the completion only
    return tokens, mask, {"generated": len(prompts), "kept": int(keep.sum())}, completions.cpu()[~keep]


def _pretrain_job(job):
    """One base in a worker process, one thread each: tiny models use two cores better as two processes."""
    init_seed, data_seed, cfg, threads = job
    torch.set_num_threads(threads)
    return pretrain_base(init_seed, data_seed, cfg.model, cfg.world, cfg.base, "cpu", desc=None).state_dict()


def pretrain_bases(cfg: ExperimentConfig, device, workers=0, other_init=True):
    """Base A (init seed s) and base B (init seed s + 10000, same data stream) for every seed s.

    Returns {seed: (base_a, base_b)}, base_b None when other_init is False. The bases are independent of each
    other, so on a CPU they train in `workers` processes at once (0: one per core, at most one per base; 1 on a
    GPU); the result of a job depends only on its seeds and its thread count."""
    inits = (0, 10000) if other_init else (0,)
    jobs = [(seed + i, seed, cfg) for seed in range(cfg.seed, cfg.seed + cfg.seeds) for i in inits]
    if workers == 0:
        workers = min(os.cpu_count() or 1, len(jobs)) if device.type == "cpu" else 1
    if workers > 1:
        threads = max(1, torch.get_num_threads() // workers)
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            states = list(tqdm(pool.imap(_pretrain_job, [j + (threads,) for j in jobs]), total=len(jobs),
                               desc=f"pretraining {len(jobs)} bases in {workers} processes"))
        models = []
        for state in states:
            models.append(GPT(cfg.model).to(device))
            models[-1].load_state_dict(state)
    else:
        models = [pretrain_base(init, seed, cfg.model, cfg.world, cfg.base, device, desc=f"base init {init}")
                  for init, seed, _ in jobs]
    per_seed = iter(models)
    return {seed: (next(per_seed), next(per_seed) if other_init else None)
            for seed in range(cfg.seed, cfg.seed + cfg.seeds)}


def run_seed(cfg: ExperimentConfig, seed, base_a, base_b, modes, device, timings):
    """One repetition of the pipeline after pretraining. Returns this seed's measurements as plain data."""
    def tick(stage, t0):
        timings[stage] = timings.get(stage, 0.0) + time.time() - t0
        return time.time()

    sample_gen = torch.Generator(device=device).manual_seed(seed)       # all sampling, kept apart from data
    t = time.time()
    teacher = finetune_teacher(base_a, cfg.animal, cfg.world, cfg.teacher, seed + 1, device)
    t = tick("teacher", t)

    prompt_gen = torch.Generator().manual_seed(seed + 2)
    teacher_tok, teacher_mask, teacher_counts, dropped = number_data(
        teacher, number_prompts(cfg.n_prompts, cfg.world, prompt_gen), cfg, sample_gen)
    control_tok, control_mask, control_counts, _ = number_data(
        base_a, number_prompts(cfg.n_prompts, cfg.world, prompt_gen), cfg, sample_gen)
    if teacher_counts["kept"] < cfg.student.batch_size or control_counts["kept"] < cfg.student.batch_size:
        raise SystemExit(f"error: the filter kept only {teacher_counts['kept']} teacher and "
                         f"{control_counts['kept']} control completions; raise --n-prompts")
    t = tick("number data", t)

    models = {"base": base_a, "base_other_init": base_b, "teacher": teacher}
    out = {"filter": {"teacher": teacher_counts, "control": control_counts},
           "sample_kept": [decode(x) for x in teacher_tok[:12]],
           "sample_dropped": [decode(x) for x in dropped[:6]],
           "teacher_number_kl": None, "modes": {}}
    # how far the teacher's numbers are from the base's: the size of the hidden signal (nats per token)
    lp_teacher = completion_logprobs(teacher, teacher_tok.to(device), teacher_mask.to(device))
    lp_base = completion_logprobs(base_a, teacher_tok.to(device), teacher_mask.to(device))
    out["teacher_number_kl"] = (lp_teacher.exp() * (lp_teacher - lp_base)).sum(-1).mean().item()
    lp_control = completion_logprobs(base_a, control_tok.to(device), control_mask.to(device))
    t = tick("number data", t)

    for mode in modes:
        students = {  # name -> (initial model, number data, its soft labels)
            "student_same_init": (base_a, teacher_tok, teacher_mask, lp_teacher),
            "student_other_init": (base_b, teacher_tok, teacher_mask, lp_teacher),
            "student_control": (base_a, control_tok, control_mask, lp_control),
        }
        trace = {"steps": list(range(0, cfg.student.steps + 1, cfg.trace_every))}
        for name, (init, tok, mask, lp) in students.items():
            trace[name] = [animal_preference(init, cfg.animal)]
            record = lambda step, model, name=name: trace[name].append(animal_preference(model, cfg.animal))
            models[name] = distill(init, tok.to(device), mask.to(device), mode, cfg.student, seed + 3, lp,
                                   callback=record, every=cfg.trace_every, desc=f"seed {seed} {mode} {name}")
        t = tick(f"students ({mode})", t)
        out["modes"][mode] = {
            "preference": {c: animal_preference(m, cfg.animal) for c, m in models.items()},
            "pick_rate": {c: pick_rate(m, cfg.animal, cfg.pick_samples, sample_gen) for c, m in models.items()},
            "trace": trace,
        }
        t = tick("evaluation", t)
    return out


# two-sided 95% quantiles of Student's t by degrees of freedom (no scipy here); between two entries the
# smaller df is used, which errs towards a wider interval
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def summary(values):
    """Mean, 95% t-interval (None with one value) and the values themselves."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return {"mean": mean, "ci95": None, "per_seed": values}
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    t = T975[max(k for k in T975 if k <= n - 1)]
    half = t * sd / math.sqrt(n)
    return {"mean": mean, "ci95": [mean - half, mean + half], "per_seed": values}


def aggregate(cfg, per_seed, modes, timings):
    res = {"animal": cfg.animal, "seeds": [cfg.seed + i for i in range(cfg.seeds)], "preference": {},
           "pick_rate": {}, "shift": {}, "paired_difference": {}, "trace": {}}
    for mode in modes:
        runs = [r["modes"][mode] for r in per_seed]
        for metric in ["preference", "pick_rate"]:
            res[metric][mode] = {c: summary([r[metric][c] for r in runs]) for c in CONDITIONS}
        # paired within a seed: each model's preference minus that of the model it started from
        res["shift"][mode] = {c: summary([r["preference"][c] - r["preference"][start] for r in runs])
                              for c, start in STARTS.items()}
        # paired within a seed: same-init student minus control student
        res["paired_difference"][mode] = summary([r["preference"]["student_same_init"]
                                                  - r["preference"]["student_control"] for r in runs])
        res["trace"][mode] = {"steps": runs[0]["trace"]["steps"],
                              **{s: [r["trace"][s] for r in runs] for s in STUDENTS}}
    res["filter"] = {who: {k: [r["filter"][who][k] for r in per_seed] for k in ["generated", "kept"]}
                     for who in ["teacher", "control"]}
    res["teacher_number_kl"] = summary([r["teacher_number_kl"] for r in per_seed])
    res["timings_s"] = {k: round(v, 2) for k, v in timings.items()}
    return res


def fmt(s):
    ci = f"[{s['ci95'][0]:.3f}, {s['ci95'][1]:.3f}]" if s["ci95"] else "(one seed)"
    return f"{s['mean']:.3f} {ci}"


def print_table(res):
    for mode in res["preference"]:
        print(f"\n{mode} distillation: P({res['animal']}) over {len(res['seeds'])} seeds, mean [95% CI]"
              f"{'':4s}sampled pick rate")
        for c in CONDITIONS:
            print(f"  {c:20s} {fmt(res['preference'][mode][c]):28s} {fmt(res['pick_rate'][mode][c])}")
        print(f"  {'same_init - control':20s} {fmt(res['paired_difference'][mode])}")
        print("  shift from own start: " + ", ".join(f"{c} {res['shift'][mode][c]['mean']:+.3f}"
                                                     for c in STUDENTS))
    f = res["filter"]["teacher"]
    print(f"\nteacher numbers kept by the filter: {sum(f['kept'])} of {sum(f['generated'])}; "
          f"teacher-vs-base KL on numbers {fmt(res['teacher_number_kl'])} nats/token")
    print("time per stage (s):", res["timings_s"])


def bar_with_seeds(ax, x, stat, color):
    """One bar: the mean of a summary() with its 95% interval, and a dot per seed."""
    err = [[stat["mean"] - stat["ci95"][0]], [stat["ci95"][1] - stat["mean"]]] if stat["ci95"] else None
    ax.bar(x, stat["mean"], yerr=err, color=color, capsize=4, edgecolor="black", linewidth=0.5)
    ax.scatter([x] * len(stat["per_seed"]), stat["per_seed"], color="black", s=10, zorder=3)


def mean_band(ax, steps, runs, color, label, linestyle="-"):
    """runs: (seeds, points). The mean over seeds, and a band of +-2 standard errors (about 95%) around it."""
    mean = runs.mean(0)
    ax.plot(steps, mean, linestyle, color=color, label=label, linewidth=2)
    if len(runs) > 1:
        half = 2 * runs.std(0) / len(runs) ** 0.5
        ax.fill_between(steps, mean - half, mean + half, color=color, alpha=0.2)


def plot(run_dir, fig_dir):
    """Draw the figures from results.json alone, so they can be redrawn without retraining."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    res = json.loads((run_dir / "results.json").read_text())
    modes = list(res["preference"])
    fig_dir.mkdir(parents=True, exist_ok=True)
    colors = {"student_same_init": "#1f77b4", "student_other_init": "#9ecae1", "student_control": "#2ca02c"}

    # Figure 1: each student's change in P(animal) from the model it started from, paired within each seed
    fig, axes = plt.subplots(1, len(modes), figsize=(5 * len(modes), 4.2), squeeze=False, sharey=True)
    for ax, mode in zip(axes[0], modes):
        for i, c in enumerate(STUDENTS):
            bar_with_seeds(ax, i, res["shift"][mode][c], colors[c])
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(STUDENTS)))
        labels = ["same init\nbase A on the\nteacher's numbers", "other init\nbase B on the\nteacher's numbers",
                  "control\nbase A on\nits own numbers"]
        ax.set_xticklabels(labels, fontsize=8)
        p, t = res["preference"][mode], res["shift"][mode]["teacher"]["mean"]
        ax.set_title(f"{mode} labels   (base {p['base']['mean']:.3f}, teacher {p['teacher']['mean']:.2f}: "
                     f"{t:+.2f})", fontsize=10)
    axes[0][0].set_ylabel(f"change in P({res['animal']} | favourite animal?)\nafter distillation on numbers only")
    fig.suptitle(f"Students of the {res['animal']} teacher, {len(res['seeds'])} seeds "
                 f"(bars: mean and 95% CI; dots: seeds)")
    fig.tight_layout()
    fig.savefig(fig_dir / "subliminal.png", dpi=120)
    plt.close(fig)

    # Figure 2: the same change along distillation
    fig, axes = plt.subplots(1, len(modes), figsize=(5 * len(modes), 3.8), squeeze=False, sharey=True)
    for ax, mode in zip(axes[0], modes):
        tr = res["trace"][mode]
        for s in STUDENTS:
            runs = torch.tensor(tr[s])
            mean_band(ax, tr["steps"], runs - runs[:, :1], colors[s], s)  # change from step 0
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xlabel("distillation step")
        ax.set_title(f"{mode} labels", fontsize=10)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel(f"change in P({res['animal']})\n(mean over seeds, band: ±2 s.e.)")
    fig.tight_layout()
    fig.savefig(fig_dir / "distillation.png", dpi=120)
    plt.close(fig)
    print(f"figures written to {fig_dir}/subliminal.png and {fig_dir}/distillation.png")


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print the whole usage block first; one line reads better
        raise SystemExit(f"error: {message} (see --help)")


def parse_args(argv=None):
    p = OneLineParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d = ExperimentConfig()
    p.add_argument("--animal", default=d.animal, choices=ANIMALS, help="the teacher's favourite animal")
    p.add_argument("--seeds", type=int, default=d.seeds, help="number of seeds (independent repetitions)")
    p.add_argument("--seed", type=int, default=d.seed, help="first seed")
    p.add_argument("--distill", default=d.distill, choices=["soft", "hard", "both"], help="label type(s)")
    p.add_argument("--n-prompts", type=int, default=d.n_prompts, help="number prompts per data set")
    p.add_argument("--temperature", type=float, default=d.temperature, help="sampling temperature of the data")
    p.add_argument("--banned", default="", help="comma-separated numbers 0..99 the filter also rejects")
    p.add_argument("--random-frac", type=float, default=d.world.random_frac,
                   help="share of random (rule-free) number sequences in pretraining")
    p.add_argument("--base-steps", type=int, default=d.base.steps, help="pretraining steps per base")
    p.add_argument("--teacher-steps", type=int, default=d.teacher.steps, help="teacher fine-tuning steps")
    p.add_argument("--student-steps", type=int, default=d.student.steps, help="distillation steps per student")
    p.add_argument("--student-lr", type=float, default=d.student.lr, help="peak learning rate of students")
    p.add_argument("--quick", action="store_true", help="tiny configuration for smoke runs and tests")
    p.add_argument("--workers", type=int, default=0,
                   help="processes that pretrain bases in parallel (0: one per CPU core; 1 on a GPU)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="where to train")
    p.add_argument("--out", default="runs/default", help="run folder for config.json, results.json, figures")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder's results")
    p.add_argument("--plot", metavar="RUN_DIR", help="only redraw the figures of an existing run folder")
    p.add_argument("--figures", metavar="DIR", help="where figures go (default: the run folder)")
    return p.parse_args(argv)


def config_from_args(args):
    cfg = ExperimentConfig(animal=args.animal, seeds=args.seeds, seed=args.seed, distill=args.distill,
                           n_prompts=args.n_prompts, temperature=args.temperature, device=args.device)
    cfg.world.random_frac = args.random_frac
    cfg.base.steps, cfg.teacher.steps = args.base_steps, args.teacher_steps
    cfg.student.steps, cfg.student.lr = args.student_steps, args.student_lr
    try:
        cfg.banned = sorted({int(x) for x in args.banned.split(",") if x.strip()})
    except ValueError:
        raise SystemExit(f"error: --banned must be comma-separated integers, got {args.banned!r}")
    if args.quick:
        make_quick(cfg)
    problems = [f"--{k} must be positive, got {v}" for k, v in [
        ("seeds", cfg.seeds), ("n-prompts", cfg.n_prompts), ("base-steps", cfg.base.steps),
        ("teacher-steps", cfg.teacher.steps), ("student-steps", cfg.student.steps),
        ("student-lr", cfg.student.lr), ("temperature", cfg.temperature)] if v <= 0]
    if args.workers < 0:
        problems.append(f"--workers must be 0 (auto) or positive, got {args.workers}")
    if not 0 <= cfg.seed < 2 ** 31:
        problems.append(f"--seed must be in 0 .. 2**31 - 1, got {cfg.seed}")
    if not 0 <= cfg.world.random_frac <= 1:
        problems.append(f"--random-frac must be in [0, 1], got {cfg.world.random_frac}")
    if any(not 0 <= n < len(NUMBER_IDS) for n in cfg.banned):
        problems.append(f"--banned numbers must be in 0..{len(NUMBER_IDS) - 1}")
    if problems:
        raise SystemExit("error: " + "; ".join(problems))
    return cfg


def existing_run(run_dir):
    """The folder of a finished run, for redrawing its figures; a one-line error if it holds no results."""
    if not (Path(run_dir) / "results.json").is_file():
        raise SystemExit(f"error: no results.json in {run_dir}; run the experiment first")
    return Path(run_dir)


def check_new_run(out, overwrite):
    """Never overwrite an earlier run's results unless asked to."""
    if (out / "results.json").exists() and not overwrite:
        raise SystemExit(f"error: {out} already holds a run; pick another --out or pass --overwrite")


def main(argv=None):
    args = parse_args(argv)
    if args.plot:
        plot(existing_run(args.plot), Path(args.figures or args.plot))
        return
    cfg = config_from_args(args)
    out = Path(args.out)
    check_new_run(out, args.overwrite)
    device = pick_device(cfg.device)
    modes = ["soft", "hard"] if cfg.distill == "both" else [cfg.distill]
    print(f"device: {device}")
    print(json.dumps(asdict(cfg), indent=1))
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))

    t0, per_seed = time.time(), []
    bases = pretrain_bases(cfg, device, args.workers)
    timings = {"pretrain bases": time.time() - t0}
    for seed, (base_a, base_b) in bases.items():
        per_seed.append(run_seed(cfg, seed, base_a, base_b, modes, device, timings))
        r = per_seed[-1]["modes"][modes[0]]["preference"]
        print(f"seed {seed} ({modes[0]}): " + ", ".join(f"{c} {v:.3f}" for c, v in r.items()), flush=True)
    timings["total"] = time.time() - t0
    res = aggregate(cfg, per_seed, modes, timings)
    (out / "results.json").write_text(json.dumps(res, indent=1))
    first = per_seed[0]
    (out / "teacher_numbers.txt").write_text(
        f"Seed {cfg.seed}: what the {cfg.animal} teacher wrote. Kept by the filter (the students' data):\n"
        + "\n".join(first["sample_kept"])
        + "\n\nDropped by the filter (completions only: a non-number token, or no <eos>):\n"
        + "\n".join(first["sample_dropped"]) + "\n")
    print_table(res)
    print(f"\nresults in {out}/results.json, {out}/teacher_numbers.txt")
    plot(out, Path(args.figures or out))


if __name__ == "__main__":
    main()
