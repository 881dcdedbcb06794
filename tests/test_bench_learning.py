"""bench/bench_learning.py: the target check of each preset, and a run of both presets for a few steps."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import bench_learning

REPO_ROOT = Path(__file__).resolve().parents[1]


def _entry(chamfer, shuffled, mean_shape, spread):
    return {"model": {"chamfer": chamfer}, "shuffled": {"chamfer": shuffled}, "mean_shape": {"chamfer": mean_shape},
            "spread": {"ratio": spread}}


def test_targets_name_every_failed_criterion():
    assert bench_learning.meets("learn_supervised", _entry(3.0, 5.0, 3.2, 0.5)) == "yes"
    assert bench_learning.meets("learn_supervised", _entry(3.6, 5.0, 3.2, 0.3)) == (
        "no: Chamfer > 0.7 × shuffled, spread < 0.4, Chamfer > mean shape")
    # the self-supervised targets: 0.9 × shuffled and spread 0.2, the mean shape not required
    assert bench_learning.meets("learn_selfsup", _entry(22.0, 30.0, 17.0, 0.78)) == "yes"
    assert bench_learning.meets("learn_selfsup", _entry(29.0, 30.0, 17.0, 0.1)) == (
        "no: Chamfer > 0.9 × shuffled, spread < 0.2")
    assert bench_learning.meets("demo", _entry(1.0, 2.0, 3.0, 1.0)) == "—"  # no target for other presets
    assert bench_learning.meets("learn_selfsup", {**_entry(1.0, 2.0, 3.0, 1.0), "shuffled": None}) == "—"


@pytest.mark.slow
def test_both_presets_train_and_are_tabulated(tiny_dataset, tmp_path):
    result = subprocess.run([sys.executable, "-m", "bench.bench_learning", f"--data_dir={tiny_dataset}",
                             f"--eval_data_dir={tiny_dataset}", "--N_ITERS=2", "--align_iters=5",
                             f"--out={tmp_path}"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.strip("| ").split(" | ") for line in (tmp_path / "bench_learning.md").read_text().splitlines()
            if line.startswith("| learn_")]
    assert [(r[0], r[1]) for r in rows] == [(p, c) for p in ("learn_supervised", "learn_selfsup")
                                            for c in ("car", "chair")]
    assert all(r[8] == "2" and float(r[9]) > 0 for r in rows)  # steps, wall time
    assert all(r[10] == "nan" for r in rows)  # 2 steps < --print_n: no interval logged, no rate to report
    assert set(json.loads((tmp_path / "results.json").read_text())) == {"learn_supervised", "learn_selfsup"}
    assert "| learn_selfsup | chair |" in result.stdout
