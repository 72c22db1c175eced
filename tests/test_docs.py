"""The docs that run: the generated references are current, and the tutorial works as written."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT


def _python(*args, timeout=1200):
  env = {**os.environ, "PYTHONPATH": ROOT}  # this checkout's tfvae, whatever is installed
  return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                        env=env, timeout=timeout)


@pytest.mark.slow
def test_the_generated_references_match_the_code():
  """docs/flags.md and docs/savedmodel.md are what tools/make_docs.py makes from the code."""
  proc = _python("tools/make_docs.py", "--check")
  assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_the_tutorial_runs_from_a_plain_script_with_logs_and_progress(tmp_path):
  """docs/tutorial.py: own images from a folder and a table from arrays, trained, loaded,
  queried and evaluated from Python; a plain script shows tfvae's log and progress lines."""
  proc = _python("docs/tutorial.py", str(tmp_path), "--train_steps=40")
  assert proc.returncode == 0, proc.stderr[-5000:]
  out = proc.stdout
  assert "data: (1797, 8, 8, 1) ('digit_0', 'digit_1', 'digit_2')" in out
  assert "test nll" in out and "SavedModel:" in out and "iwae bound" in out
  assert "Training from step 0 to 40" in proc.stderr and "progress: step 40/40" in proc.stderr
  assert "Function `reconstruct` contains input name(s)" not in proc.stderr  # TF INFO filtered
  for run in ("digits_vae", "cancer_vae"):
    assert os.path.exists(tmp_path / run / "eval.json")
    assert os.path.islink(tmp_path / run / "export")
