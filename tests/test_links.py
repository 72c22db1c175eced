"""Links inside a run folder (the policy in tfvae/workdir.py): nothing is written or deleted
through a link tfvae did not make; a link where tfvae writes a lock or deletes is refused in one
line."""

import errno
import json
import os
import shutil

import pytest

from conftest import run_module
from tfvae import atomic
from tfvae import workdir as workdir_lib

QUICK = ["--flagfile=configs/quickstart.cfg", "--hidden_sizes=64", "--steps_per_loop=25",
         "--eval_every=1000", "--eval_importance_samples=0", "--train_steps=50"]


def _victim(tmp_path, name="outside"):
  """A folder outside the run, with a file in it: what a link may point to."""
  folder = tmp_path / name
  folder.mkdir()
  (folder / "precious.txt").write_text("keep me")
  return folder


def _intact(folder):
  return (folder / "precious.txt").read_text() == "keep me"


def _last_line(proc):
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  return proc.stderr.strip().splitlines()[-1]


# F4: whole-file writes.


def test_a_whole_file_write_never_writes_through_a_link(tmp_path):
  run, outside = tmp_path / "run", _victim(tmp_path)
  run.mkdir()
  os.symlink(outside / "precious.txt", run / "eval.json.tmp")  # the old temporary name
  os.symlink(outside / "precious.txt", run / "config.json")
  atomic.write_json(str(run / "eval.json"), {"step": 3})
  atomic.write_json(str(run / "config.json"), {"model": "vae"})
  assert _intact(outside)
  for name, value in (("eval.json", {"step": 3}), ("config.json", {"model": "vae"})):
    assert not os.path.islink(run / name) and json.loads((run / name).read_text()) == value
  assert sorted(os.listdir(run)) == ["config.json", "eval.json", "eval.json.tmp"]
  umask = os.umask(0o022)
  os.umask(umask)
  assert oct(os.stat(run / "eval.json").st_mode & 0o777) == oct(0o666 & ~umask)  # as open()


def test_a_failed_write_names_its_file_leaves_it_unchanged_and_no_temporary(tmp_path,
                                                                             monkeypatch):
  path = tmp_path / "eval.json"
  path.write_text('{"step": 1}')
  real_fsync = os.fsync

  def full(fd):
    real_fsync(fd)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # a full disk, as fsync reports it

  monkeypatch.setattr(os, "fsync", full)
  with pytest.raises(OSError) as failed:
    atomic.write_json(str(path), {"step": 2})
  assert failed.value.errno == errno.ENOSPC and failed.value.filename == str(path)
  assert path.read_text() == '{"step": 1}' and os.listdir(tmp_path) == ["eval.json"]


def test_leftovers_are_removed_by_their_new_names_and_links_only_as_links(tmp_path):
  outside = _victim(tmp_path)
  run = tmp_path / "run"
  for folder in ("figures", "ckpt/best"):
    (run / folder).mkdir(parents=True)
  leftovers = ["eval.json.k3j2h1a9.tmp", "config.json.a_9b8c7d.tmp",
               "figures/samples.png.x1y2z3w4.tmp", "ckpt/best/best.json.q1w2e3r4.tmp"]
  for name in leftovers:
    (run / name).write_text("partial")
  os.symlink(outside / "precious.txt", run / "eval.json.tmp")
  os.symlink(outside, run / "export.17")  # an export.<digits> that is a link: removed as one
  (run / "notes.tmp").write_text("not ours")
  removed = workdir_lib.remove_leftovers(str(run))
  assert sorted(os.path.relpath(p, run) for p in removed) == sorted(
      leftovers + ["eval.json.tmp", "export.17"])
  assert _intact(outside) and (run / "notes.tmp").exists()


# The commands, on a copy of one finished run.


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  run = str(tmp_path_factory.mktemp("finished"))
  run_module("tfvae.train", *QUICK, f"--workdir={run}")
  return run


def _copy(finished_run, workdir):
  shutil.copytree(finished_run, workdir, symlinks=True, dirs_exist_ok=True)


@pytest.mark.slow
@pytest.mark.parametrize("module,args,temporary,written", [
    ("tfvae.evaluate", ["--num_importance_samples=10"], "eval.json.tmp", "eval.json"),
    ("tfvae.visualize", ["--what=samples"], "figures/samples.png.tmp", "figures/samples.png"),
])
def test_evaluate_and_visualize_never_write_through_a_temporary_name_link(
    finished_run, tmp_path, module, args, temporary, written):
  workdir = str(tmp_path / "run")
  _copy(finished_run, workdir)
  outside = _victim(tmp_path)
  os.makedirs(os.path.dirname(os.path.join(workdir, temporary)), exist_ok=True)
  os.symlink(outside / "precious.txt", os.path.join(workdir, temporary))
  run_module(module, *args, f"--workdir={workdir}")
  assert _intact(outside)
  assert os.path.isfile(os.path.join(workdir, written))
  assert not os.path.islink(os.path.join(workdir, written))