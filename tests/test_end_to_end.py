"""The command line as a user runs it: a --quick run, a redraw, and one clear line for each bad input."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import subliminal

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    return subprocess.run([sys.executable, str(ROOT / "subliminal.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "quick"
    proc = run("--quick", "--seeds", "2", "--out", str(out), "--device", "cpu")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out, proc


def test_quick_run_writes_complete_results(quick_run):
    out, proc = quick_run
    res = json.loads((out / "results.json").read_text())
    for metric in ["preference", "pick_rate"]:
        assert set(res[metric]) == {"soft", "hard"}
        for mode in ["soft", "hard"]:
            assert set(res[metric][mode]) == {"base", "base_other_init", "teacher", "student_same_init",
                                              "student_other_init", "student_control"}
            for s in res[metric][mode].values():
                assert 0 <= s["mean"] <= 1 and len(s["per_seed"]) == 2
                assert s["ci95"][0] <= s["mean"] <= s["ci95"][1]
    assert set(res["paired_difference"]) == {"soft", "hard"}
    assert all(k >= 0 for k in res["filter"]["teacher"]["kept"])
    assert res["filter"]["teacher"]["generated"] == [160, 160]
    assert len(res["trace"]["soft"]["student_same_init"]) == 2
    assert res["timings_s"]["total"] > 0
    config = json.loads((out / "config.json").read_text())
    assert config["animal"] == "owl" and config["student"]["steps"] == 10
    numbers = (out / "teacher_numbers.txt").read_text()
    assert "<bos> continue :" in numbers and "owl" not in numbers.split("Dropped")[0].split("\n", 1)[1]
    for fig in ["subliminal.png", "distillation.png"]:
        assert (out / fig).stat().st_size > 10_000
    assert "student_same_init" in proc.stdout     # the results table


def test_plot_redraws_without_training(quick_run, tmp_path):
    out, _ = quick_run
    subliminal.main(["--plot", str(out), "--figures", str(tmp_path)])
    assert (tmp_path / "subliminal.png").exists() and (tmp_path / "distillation.png").exists()


def test_existing_run_is_never_overwritten(quick_run):
    out, _ = quick_run
    before = (out / "results.json").read_text()
    proc = run("--quick", "--out", str(out))
    assert proc.returncode != 0 and "--overwrite" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert (out / "results.json").read_text() == before


@pytest.mark.parametrize("args, message", [
    (["--animal", "unicorn"], "invalid choice"),
    (["--seeds", "0"], "--seeds must be positive"),
    (["--seed", "-1"], "--seed must be in"),
    (["--n-prompts", "-5"], "--n-prompts must be positive"),
    (["--student-steps", "0"], "--student-steps must be positive"),
    (["--workers", "-1"], "--workers"),
    (["--random-frac", "1.5"], "--random-frac"),
    (["--banned", "7,x"], "--banned"),
    (["--banned", "150"], "--banned"),
    (["--plot", "no/such/run"], "no results.json"),
    (["--device", "cuda" if not torch.cuda.is_available() else "mps"], "not available"),
])
def test_bad_input_is_one_clear_line(args, message, tmp_path, capsys):
    # in-process for speed; the subprocess test above shows such an exit prints no traceback
    with pytest.raises(SystemExit) as exit_:
        subliminal.main(args + ["--out", str(tmp_path / "never")])
    assert exit_.value.code not in (0, None)
    said = capsys.readouterr().err + (exit_.value.code if isinstance(exit_.value.code, str) else "")
    assert message in said and len(said.strip().splitlines()) == 1
    assert not (tmp_path / "never").exists()


def test_summary_is_a_t_interval():
    s = subliminal.summary([1.0, 2.0, 3.0])
    half = 4.303 * 1.0 / 3 ** 0.5                  # t(0.975, df=2) * sd / sqrt(n)
    assert s["mean"] == 2.0 and abs(s["ci95"][0] - (2 - half)) < 1e-9 and abs(s["ci95"][1] - (2 + half)) < 1e-9
    assert subliminal.summary([0.5])["ci95"] is None

