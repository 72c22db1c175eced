"""The docs that run: the generated references are current, and the tutorial works as written."""

import importlib
import os
import re
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
  queried and evaluated from Python, then your own networks (a residual conv net on colour
  patches, a Student-t likelihood on the table); a plain script shows tfvae's log and progress
  lines."""
  proc = _python("docs/tutorial.py", str(tmp_path), "--train_steps=40")
  assert proc.returncode == 0, proc.stderr[-5000:]
  out = proc.stdout
  assert "data: (1797, 8, 8, 1) ('digit_0', 'digit_1', 'digit_2')" in out
  assert "test nll" in out and "SavedModel:" in out and "iwae bound" in out
  assert "Training from step 0 to 40" in proc.stderr and "progress: step 40/40" in proc.stderr
  assert "Function `reconstruct` contains input name(s)" not in proc.stderr  # TF INFO filtered
  for run in ("digits_vae", "cancer_vae", "patches_resnet", "cancer_student_t"):
    assert os.path.exists(tmp_path / run / "eval.json")
    assert os.path.islink(tmp_path / run / "export")
  # Part 3, your own networks: stored with the runs, and the model rebuilt from them.
  assert "patches (520, 32, 32, 3): test elbo" in out and "reconstructions: (4, 32, 32, 3)" in out
  assert "table, test elbo: Student-t" in out
  assert sorted(os.listdir(tmp_path / "patches_resnet" / "networks")) == [
      "decoder.json", "encoder.json"]
  assert os.listdir(tmp_path / "cancer_student_t" / "networks") == ["likelihood.json"]


_SOURCES = ("README.md", "docs", "tfvae", "tools", "configs")
# A file named in prose or code: a path under one of the repository's folders, a bare module or
# config name, or a bare NAME.md in capitals (README.md).
_CITED_PATH = re.compile(r"(?<![\w/.-])((?:docs|tfvae|tools|configs|tests|\.ci)/[\w./-]*\w)")
_CITED_BARE = re.compile(r"(?<![\w/.*-])([\w-]+\.(?:py|cfg)|[A-Z_]{2,}\.md)\b")
_PLACEHOLDER = re.compile(r"NAME|FILE|WORKDIR")
# A tfvae module or attribute named in prose: tfvae.a.b (resolved by import, then getattr).
_CITED_NAME = re.compile(r"(?<![\w.])(tfvae(?:\.[A-Za-z_]\w*)+)")


def _texts():
  """(path relative to ROOT, text) of the README and every doc, module, tool and config."""
  for top in _SOURCES:
    paths = [top] if os.path.isfile(os.path.join(ROOT, top)) else sorted(
        os.path.relpath(os.path.join(folder, name), ROOT)
        for folder, _, names in os.walk(os.path.join(ROOT, top)) for name in names
        if name.endswith((".md", ".py", ".cfg")))
    for path in paths:
      with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        yield path, f.read()


def _repository_files():
  return {os.path.relpath(os.path.join(folder, name), ROOT)
          for folder, _, names in os.walk(ROOT) if "/.git" not in folder + "/"
          for name in names}


def _missing_files():
  files = _repository_files()
  folders = {os.path.dirname(f) for f in files}
  basenames = {os.path.basename(f) for f in files}
  missing = set()
  for path, text in _texts():
    for cited in _CITED_PATH.findall(text):
      cited = cited.rstrip(".")
      if not _PLACEHOLDER.search(cited) and cited.rstrip("/") not in files | folders:
        missing.add(f"{path}: {cited}")
    for cited in _CITED_BARE.findall(text):
      if not _PLACEHOLDER.search(cited) and cited not in basenames:
        missing.add(f"{path}: {cited}")
  return sorted(missing)


def test_every_file_cited_by_the_docs_and_the_code_exists():
  """E.g. the code cited a STACK.md that is not in the repository (issue 33, item 8)."""
  missing = _missing_files()
  assert not missing, "\n".join(missing)


def _resolves(name):
  parts = name.split(".")
  for i in range(len(parts), 0, -1):
    try:
      target = importlib.import_module(".".join(parts[:i]))
    except ImportError:
      continue
    try:
      for part in parts[i:]:
        target = getattr(target, part)
    except AttributeError:
      return False
    return True
  return False


def test_every_tfvae_module_named_by_the_docs_and_the_code_exists():
  """E.g. config.py named `tfvae.flags`, a module that moved (issue 33, item 8)."""
  missing = sorted({f"{path}: {name}" for path, text in _texts()
                    for name in _CITED_NAME.findall(text)
                    if name != "tfvae.json" and not _PLACEHOLDER.search(name)
                    and not _resolves(name.rstrip("."))})
  assert not missing, "\n".join(missing)
