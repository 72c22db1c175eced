"""Links inside a run folder (the policy in tfvae/workdir.py): nothing is written or deleted
through a link tfvae did not make; a link where tfvae writes a lock or deletes is refused in one
line."""

import errno
import json
import os
import shutil

import pytest
import tensorflow as tf

from conftest import run_module, tiny_model
from tfvae import atomic
from tfvae import config as config_lib
from tfvae import lock
from tfvae import serving
from tfvae import workdir as workdir_lib
from tfvae.errors import ForeignLink
from tfvae.training import trainer as trainer_lib

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


# F2: the export link.


def test_leftovers_refuse_an_export_link_tfvae_did_not_make(tmp_path):
  outside = _victim(tmp_path)
  run = tmp_path / "run"
  run.mkdir()
  os.symlink(outside, run / "export")
  with pytest.raises(ForeignLink, match=f"{run / 'export'} is a link to {outside}, not to a "
                     "folder export.<digits> that tfvae made"):
    workdir_lib.remove_leftovers(str(run))
  assert _intact(outside)


@pytest.mark.parametrize("link", ["absolute", "relative", "own name, itself a link"])
def test_an_export_link_elsewhere_is_refused_before_saving_and_its_target_kept(tmp_path, link):
  outside = _victim(tmp_path)
  run = tmp_path / "run"
  run.mkdir()
  if link == "absolute":
    os.symlink(outside, run / "export")
  elif link == "relative":
    os.symlink(os.path.join("..", "outside"), run / "export")
  else:
    os.symlink(outside, run / "export.1796150000000000000")
    os.symlink("export.1796150000000000000", run / "export")
  with pytest.raises(ForeignLink, match="a new export would delete the folder it links to"):
    serving.export(tiny_model(), str(run / "export"))
  assert _intact(outside)
  assert not [n for n in os.listdir(run) if n.startswith("export.") and n[7:].isdigit()
              and not os.path.islink(run / n)]  # nothing saved


def test_an_export_removes_only_its_own_folders(tmp_path):
  run = tmp_path / "run"
  (run / "export.17").mkdir(parents=True)  # a save interrupted by kill -9: removed
  mine = _victim(run, "export.backup")  # the user's
  (run / "export.1.txt").write_text("the user's")
  config = config_lib.Config(hidden_sizes=(8,), latent_dim=2, image_shape=(8, 8, 1))
  model = trainer_lib.Trainer(config, tf.distribute.OneDeviceStrategy("/cpu:0")).model
  target = serving.export(model, str(run / "export"))
  assert sorted(os.listdir(run)) == sorted([lock.LOCK_FILENAME, "export", "export.1.txt",
                                            "export.backup", os.path.basename(target)])
  assert _intact(mine) and workdir_lib.export_target(str(run / "export")) == target


# F3: the lock file.


@pytest.mark.parametrize("dangling", [False, True])
def test_a_lock_file_that_is_a_link_is_refused_and_nothing_written_through_it(tmp_path,
                                                                            dangling):
  outside = _victim(tmp_path)
  run = tmp_path / "run"
  run.mkdir()
  pointee = outside / ("created_anywhere" if dangling else "precious.txt")
  os.symlink(pointee, run / lock.LOCK_FILENAME)
  with pytest.raises(ForeignLink, match=f"{run / lock.LOCK_FILENAME} is a link \\(to "
                     f"{pointee}\\): tfvae writes its lock only into a plain file"):
    with lock.hold(str(run)):
      pass
  assert _intact(outside) and sorted(os.listdir(outside)) == ["precious.txt"]


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


@pytest.mark.slow
@pytest.mark.parametrize("module,args", [("tfvae.export", []), ("tfvae.train", QUICK)])
def test_export_and_train_refuse_an_export_link_elsewhere_in_one_line(finished_run, workdir,
                                                                      tmp_path_factory,
                                                                      module, args):
  _copy(finished_run, workdir)
  outside = _victim(tmp_path_factory.mktemp("elsewhere"))
  os.remove(os.path.join(workdir, "export"))
  os.symlink(outside, os.path.join(workdir, "export"))
  proc = run_module(module, *args, f"--workdir={workdir}", check=False)
  assert proc.returncode == 2, proc.stderr[-3000:]
  line = _last_line(proc)
  assert line.startswith(f"{module}: ") and line.endswith(
      f"/export is a link to {outside}, not to a folder export.<digits> that tfvae made beside "
      f"it: a new export would delete the folder it links to, so tfvae refuses. Remove the "
      f"link (rm {os.path.abspath(workdir) if module == 'tfvae.export' else workdir}/export "
      "keeps its target) and re-run."), line
  assert _intact(outside)


@pytest.mark.slow
def test_a_command_refuses_a_lock_link_in_one_line(finished_run, tmp_path):
  workdir = str(tmp_path / "run")
  _copy(finished_run, workdir)
  outside = _victim(tmp_path)
  os.remove(os.path.join(workdir, lock.LOCK_FILENAME))
  os.symlink(outside / "precious.txt", os.path.join(workdir, lock.LOCK_FILENAME))
  proc = run_module("tfvae.evaluate", "--num_importance_samples=10", f"--workdir={workdir}",
                    check=False)
  assert proc.returncode == 2
  assert _last_line(proc) == (
      f"tfvae.evaluate: {workdir}/{lock.LOCK_FILENAME} is a link (to {outside}/precious.txt): "
      f"tfvae writes its lock only into a plain file, never through a link. Remove the link (rm "
      f"{workdir}/{lock.LOCK_FILENAME} keeps its target) and re-run.")
  assert _intact(outside)
