"""tools/fixed_cost.py: its phases come from a real run's log and add up to its wall time."""

import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_the_phases_of_a_real_run_are_positive_and_add_up_to_the_wall_time():
  proc = subprocess.run(
      [sys.executable, "tools/fixed_cost.py", "--repeats=1", "--",
       "--flagfile=configs/quickstart.cfg", "--train_steps=60", "--eval_every=60",
       "--steps_per_loop=20"], cwd=ROOT, capture_output=True, text=True, timeout=600,
      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.startswith("processor: ")
  row = next(line for line in proc.stdout.splitlines() if line.startswith("| 1 |"))
  wall, *parts = [float(v) for v in re.findall(r"\d+\.\d+", row)]
  assert len(parts) == 5 and all(p > 0 for p in parts), row
  assert abs(sum(parts) - wall) < 0.5, row  # the clock of the log against the tool's own
