"""experiments/collapse.py: the table of named configurations (from recorded probes) and a short real run."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import collapse

REPO_ROOT = Path(__file__).resolve().parents[1]


def _records(config, spreads):
    return [{"config": config, "step": 100 * i, "dead/s5": 0.2 + 0.01 * i, "xyz_spread": s, "grad/s1": 1.0 + i}
            for i, s in enumerate(spreads)]


@pytest.mark.parametrize("spreads, cell", [
    ([0.24, 0.01, 0.004, 0.009], "never"),                  # collapsed and stayed
    ([0.24, 0.01, 0.004, 0.05, 0.2], "step 300"),           # collapsed, then followed the image again
    ([0.24, 0.12, 0.11, 0.19], "did not collapse"),         # never below model.monitor.COLLAPSED_SPREAD
])
def test_summary_row_says_when_the_cloud_follows_the_image(spreads, cell):
    summary = collapse.summarise(_records("baseline", spreads))
    assert summary["lowest"]["xyz_spread"] == min(spreads[1:])  # the random initial net (step 0) is not counted
    row = collapse.table([summary]).splitlines()[2].strip("| ")
    first, lowest = spreads[1], min(spreads[1:])
    lowest_step = 100 * spreads.index(lowest)
    assert row.split(" | ")[1:5] == ["20 % → " + f"{100 * (0.2 + 0.01 * (len(spreads) - 1)):.0f} %",
                                     f"{first:.3g} / {lowest:.3g} ({lowest_step}) / {spreads[-1]:.3g}", cell,
                                     f"{2.0:.3g} → {float(len(spreads)):.3g}"]


@pytest.mark.slow
def test_a_short_run_writes_its_probes_and_the_table_reads_them_back(tiny_dataset, tmp_path):
    out = tmp_path / "probes.jsonl"
    command = [sys.executable, "-m", "experiments.collapse", f"--data_dir={tiny_dataset}", "--categ=all",
               "--config=baseline", "--config=supervised", "--steps=4", "--probe_n=2", "--probe_images=4",
               f"--out={out}"]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["config"], r["step"]) for r in records] == [(c, s) for c in ("baseline", "supervised")
                                                           for s in (0, 2, 4)]
    assert all(0.0 <= r["dead/s5"] <= 1.0 and r["xyz_spread"] >= 0.0 for r in records)
    assert all(r["train_chamfer"] > 0 and "test_shuffled" in r for r in records if r["config"] == "supervised")
    again = subprocess.run([sys.executable, "-m", "experiments.collapse", f"--table_from={out}"], cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    rows = [line for line in again.stdout.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == ["baseline", "supervised"]
    assert all(row.strip("| ").count(" | ") == 6 for row in rows)  # the supervised columns: own GT / shuffled, train and test
