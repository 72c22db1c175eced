"""Damaged workdir state (tfvae/training/checkpoints.py, workdir.remove_leftovers), through the
real commands: each case is the damage a torn write or a user's mistake leaves."""

import json
import os

import pytest
import tensorflow as tf

from conftest import run_module
from tfvae.training import early_stopping

QUICK = ["--flagfile=configs/quickstart.cfg", "--steps_per_loop=25", "--eval_every=1000",
         "--eval_importance_samples=0", "--checkpoint_every=100"]


def _train(workdir, steps, *args, check=True):
  return run_module("tfvae.train", *QUICK, f"--train_steps={steps}", f"--workdir={workdir}",
                    *args, check=check)


def _last_line(proc):
  return proc.stderr.strip().splitlines()[-1]


def _truncate(prefix):
  data = prefix + ".data-00000-of-00001"
  with open(data, "r+b") as f:
    f.truncate(os.path.getsize(data) // 2)


@pytest.mark.slow
def test_a_truncated_latest_checkpoint_is_skipped_for_the_newest_that_restores(tmp_path):
  workdir = str(tmp_path)
  _train(workdir, 300)
  ckpt = os.path.join(workdir, "ckpt")
  _truncate(os.path.join(ckpt, "ckpt-300"))
  _truncate(early_stopping.best_checkpoint(workdir))  # the best one (step 300) too
  export = run_module("tfvae.export", f"--workdir={workdir}")
  assert "Exported the step-200 model" in export.stdout
  assert "Skipped checkpoint" in export.stderr and "ckpt-300" in export.stderr
  assert "Read less bytes than requested" in export.stderr
  rerun = _train(workdir, 300)
  assert "Resuming from" in rerun.stderr and "at step 200 of 300" in rerun.stderr
  assert json.load(open(os.path.join(workdir, "eval.json")))["step"] == 300
  assert tf.train.latest_checkpoint(ckpt).endswith("ckpt-300")
  tf.train.load_checkpoint(os.path.join(ckpt, "ckpt-300"))  # rewritten whole


@pytest.mark.parametrize("damage", ["deleted", "garbage"])
@pytest.mark.slow
def test_a_lost_checkpoint_index_is_rebuilt_from_the_files(tmp_path, damage):
  workdir = str(tmp_path)
  _train(workdir, 200)
  index = os.path.join(workdir, "ckpt", "checkpoint")
  if damage == "deleted":
    os.remove(index)
  else:
    with open(index, "w") as f:
      f.write("\x00garbage {")
  evaluate = run_module("tfvae.evaluate", f"--workdir={workdir}", "--num_importance_samples=2",
                        "--num_examples=50")
  assert '"step": 200' in evaluate.stdout  # read-only commands find the files too
  rerun = _train(workdir, 300)
  assert "rebuilt it from the checkpoints on disk: ckpt-200, ckpt-100" in rerun.stderr
  assert "at step 200 of 300" in rerun.stderr  # not a silent restart from step 0
  assert tf.train.get_checkpoint_state(os.path.join(workdir, "ckpt")) is not None


@pytest.mark.slow
def test_checkpoints_without_config_json_are_refused_before_anything_is_written(tmp_path):
  workdir = str(tmp_path)
  _train(workdir, 100)
  os.remove(os.path.join(workdir, "config.json"))
  before = sorted(os.listdir(os.path.join(workdir, "ckpt")))
  other = _train(workdir, 200, "--latent_dim=7", check=False)
  assert other.returncode == 2, other.stderr[-3000:]
  assert _last_line(other).startswith(
      f"tfvae.train: No checkpoint in {os.path.join(workdir, 'ckpt')} restores into this "
      "model: ckpt-100: ")
  assert "restore it, or train elsewhere" in _last_line(other)
  assert not os.path.exists(os.path.join(workdir, "config.json"))
  assert sorted(os.listdir(os.path.join(workdir, "ckpt"))) == before
  same = _train(workdir, 200)  # the run's own flags: resumed, config.json written again
  assert "had checkpoints but no config.json" in same.stderr
  assert "at step 100 of 200" in same.stderr
  assert json.load(open(os.path.join(workdir, "config.json")))["latent_dim"] != 7


@pytest.mark.parametrize("bad,message", [
    ("--batch_size=5000", "--batch_size=5000 is larger than the 1198 train examples"),
    ("--validation_fraction=0.9995", "--batch_size=64 is larger than the 1 train examples"),
])
@pytest.mark.slow
def test_input_that_does_not_fit_the_data_leaves_no_config_behind(tmp_path, bad, message):
  workdir = str(tmp_path)
  proc = _train(workdir, 20, bad, check=False)
  assert proc.returncode == 2 and message in _last_line(proc), proc.stderr[-3000:]
  assert not os.path.exists(os.path.join(workdir, "config.json"))
  _train(workdir, 20)  # the corrected command is not refused as "a different config"


@pytest.mark.slow
def test_what_interrupted_writes_left_is_removed_at_the_next_start(tmp_path):
  workdir = str(tmp_path)
  _train(workdir, 100)
  export = os.path.realpath(os.path.join(workdir, "export"))
  leftovers = ["ckpt/ckpt-200_temp/part-00000-of-00001", "ckpt/checkpoint.tmp3f2a9c",
               "ckpt/best/best.json.tmp", "config.json.tmp", "eval.json.tmp",
               "export.1796150000000000000/saved_model.pb", "figures/samples.png.tmp"]
  for name in leftovers:
    os.makedirs(os.path.dirname(os.path.join(workdir, name)), exist_ok=True)
    with open(os.path.join(workdir, name), "w") as f:
      f.write("partial")
  rerun = _train(workdir, 100)
  assert "Nothing left to train" in rerun.stderr
  assert "Removed what interrupted writes left in" in rerun.stderr
  for name in leftovers:
    top = name.split("/")[0] if name.startswith("export.") else name.replace("/part-00000-of-"
                                                                               "00001", "")
    assert not os.path.exists(os.path.join(workdir, top)), top
  assert os.path.realpath(os.path.join(workdir, "export")) == export
  assert "reconstruct" in tf.saved_model.load(os.path.join(workdir, "export")).signatures


def test_an_eval_json_with_nan_from_an_older_run_is_rewritten_as_strict_json(tmp_path):
  from tfvae import workdir as workdir_lib  # pylint: disable=import-outside-toplevel
  (tmp_path / "eval.json").write_text(  # what json.dump wrote before (allow_nan)
      '{"test": {"elbo": NaN, "per_class": {"a": Infinity}, "rate": 1.5}, "step": 3}')
  workdir_lib.merge_eval_json(str(tmp_path), {"validation": {"elbo": -2.0}})
  def refuse(constant):
    raise AssertionError(constant)
  merged = json.loads((tmp_path / "eval.json").read_text(), parse_constant=refuse)
  assert merged["test"]["elbo"] is None and merged["test"]["per_class"] == {"a": None}
  assert merged["test"]["rate"] == 1.5 and merged["test"]["nonfinite"]["elbo"] == "nan"
  assert merged["validation"] == {"elbo": -2.0} and merged["step"] == 3
  assert not (tmp_path / "eval.json.tmp").exists()
