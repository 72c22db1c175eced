"""Damaged workdir state (tfvae/training/checkpoints.py, workdir.remove_leftovers, a damaged
eval.json, ckpt/best/best.json or config.json), through the real commands: each case is the
damage a torn write, a disk or a user's mistake leaves."""

import json
import os
import shutil

import pytest
import tensorflow as tf

from conftest import run_module, saved_config
from tfvae import workdir as workdir_lib
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


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A finished 200-step run (checkpoints ckpt-100 and ckpt-200, the best at 200, eval.json,
  export), trained once for the tests that damage a copy of it."""
  workdir = str(tmp_path_factory.mktemp("trained") / "run")
  _train(workdir, 200)
  return workdir


@pytest.fixture
def run_copy(trained, tmp_path):
  """A copy of the `trained` run to damage (its export link is relative: it comes along)."""
  workdir = str(tmp_path / "run")
  shutil.copytree(trained, workdir, symlinks=True)
  return workdir


@pytest.mark.parametrize("damage", ["deleted", "garbage", "binary", "moved"])
@pytest.mark.slow
def test_a_lost_checkpoint_index_is_rebuilt_from_the_files(run_copy, damage):
  workdir = run_copy
  index = os.path.join(workdir, "ckpt", "checkpoint")
  if damage == "deleted":
    os.remove(index)
  elif damage == "moved":  # absolute paths of where the run folder was
    gone = os.path.join(os.path.dirname(workdir), "gone", "ckpt")
    tf.compat.v1.train.update_checkpoint_state(
        os.path.join(workdir, "ckpt"), os.path.join(gone, "ckpt-200"),
        all_model_checkpoint_paths=[os.path.join(gone, f"ckpt-{s}") for s in (100, 200)])
  else:
    with open(index, "wb") as f:
      f.write(b"\x00garbage {" if damage == "garbage" else b"\xff\xfe\x00\x9c")  # not UTF-8
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
  assert saved_config(workdir)["latent_dim"] != 7


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
               "export.1796150000000000000/saved_model.pb", "figures/samples.png.tmp",
               "eval.json.k3j2h1a9.tmp", "figures/samples.png.x_9y8z7w.tmp"]
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


@pytest.mark.parametrize("content", [b'{"step": 2', b"\xff\xfe", b"[1, 2]", b""])
def test_merging_into_a_damaged_eval_json_keeps_it_aside(tmp_path, content):
  path = tmp_path / "eval.json"
  path.write_bytes(content)
  (tmp_path / "eval.json.damaged").write_text("an earlier one")
  with pytest.raises(workdir_lib.DamagedEvalJson, match=f"^{path} is damaged"):
    workdir_lib.read_eval_json(str(tmp_path))
  assert workdir_lib.finished_results(str(tmp_path), 2) is None
  assert workdir_lib.merge_eval_json(str(tmp_path), {"test": {"step": 2}}) == {
      "test": {"step": 2}}
  assert (tmp_path / "eval.json.damaged.1").read_bytes() == content
  assert (tmp_path / "eval.json.damaged").read_text() == "an earlier one"


@pytest.mark.parametrize("final", [None, [1], {"validation": ["x"], "test": "test"},
                                   {"validation": "validation", "test": "test"}])
def test_an_eval_json_of_another_shape_is_no_finished_run(tmp_path, final):
  entry = {"step": 2}
  (tmp_path / "eval.json").write_text(json.dumps(
      {"step": 2, "final": final, "validation": 3, "test": entry}))
  assert workdir_lib.finished_results(str(tmp_path), 2) is None


def _evaluate(workdir, check=True):
  return run_module("tfvae.evaluate", f"--workdir={workdir}", "--num_importance_samples=2",
                    "--num_examples=50", check=check)


@pytest.mark.parametrize("command,damage", [
    ("train", "truncated"), ("train", "binary"), ("evaluate", "garbage"), ("evaluate", "list")])
@pytest.mark.slow
def test_a_damaged_eval_json_is_set_aside_whole_and_written_anew(run_copy, command, damage):
  path = os.path.join(run_copy, "eval.json")
  text = open(path, "rb").read()
  damaged = {"truncated": text[:len(text) // 2], "binary": b"\xff\xfe\x00",
             "garbage": b"\x00garbage {", "list": b"[1, 2]"}[damage]
  with open(path, "wb") as f:
    f.write(damaged)
  proc = _train(run_copy, 200) if command == "train" else _evaluate(run_copy)
  assert f"{path} is damaged (" in proc.stderr, proc.stderr[-3000:]
  assert "renamed it to eval.json.damaged, which is kept as it was" in proc.stderr
  assert open(path + ".damaged", "rb").read() == damaged  # nothing lost
  merged = json.load(open(path))
  if command == "train":  # not a finished run: evaluated and exported again
    assert "Nothing left to train" not in proc.stderr
    assert merged["final"] == {"validation": "validation", "test": "test"}
    assert merged["step"] == merged["test"]["step"] == 200
  else:
    assert list(merged) == ["test_K2"] and merged["test_K2"]["step"] == 200


@pytest.mark.slow
def test_an_eval_json_without_its_final_record_is_no_finished_run(run_copy):
  path = os.path.join(run_copy, "eval.json")
  values = json.load(open(path))
  with open(path, "w") as f:
    json.dump({**values, "final": None, "m1_test_10labels_seed0": {"accuracy": 0.5}}, f)
  proc = _train(run_copy, 200)
  assert "is at step 200 of 200: evaluating and exporting it" in proc.stderr, proc.stderr[-3000:]
  merged = json.load(open(path))
  assert merged["final"] == {"validation": "validation", "test": "test"}
  assert merged["m1_test_10labels_seed0"] == {"accuracy": 0.5}  # the other entries are kept
  assert not os.path.exists(path + ".damaged")


@pytest.mark.parametrize("content", [
    b'{"step": 2', b"\xff\xfe", b"[1, 2]", b'{"step": null, "loss": 1.5}',
    b'{"step": 3, "loss": NaN}', b'{"step": 3}'])
def test_a_damaged_best_json_is_refused_naming_it_but_its_checkpoint_stays_usable(tmp_path,
                                                                                 content):
  folder = early_stopping.best_dir(str(tmp_path))
  tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(1.0)), folder,
                             max_to_keep=1).save(checkpoint_number=7)
  path = os.path.join(folder, "best.json")
  with open(path, "wb") as f:
    f.write(content)
  with pytest.raises(early_stopping.DamagedBest) as raised:
    early_stopping.read_best(str(tmp_path))
  message = str(raised.value)
  assert message.startswith(f"{path} is damaged (") and "\n" not in message
  assert f"Restore it from a copy, or delete the folder {folder}" in message
  assert early_stopping.best_checkpoint(str(tmp_path)) == os.path.join(folder, "ckpt-7")
  with open(path, "w") as f:
    f.write('{"step": 7, "loss": 1.5}')
  assert early_stopping.read_best(str(tmp_path)) == {"step": 7, "loss": 1.5}


@pytest.mark.slow
def test_a_damaged_best_json_stops_training_in_one_line_and_the_others_use_its_checkpoint(
    run_copy):
  path = os.path.join(early_stopping.best_dir(run_copy), "best.json")
  with open(path, "w") as f:
    f.write('{"step": 2')
  before = sorted(os.listdir(os.path.join(run_copy, "ckpt"))), sorted(
      os.listdir(early_stopping.best_dir(run_copy)))
  proc = _train(run_copy, 300, check=False)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
  assert _last_line(proc).startswith(f"tfvae.train: {path} is damaged (JSONDecodeError: ")
  assert (sorted(os.listdir(os.path.join(run_copy, "ckpt"))), sorted(
      os.listdir(early_stopping.best_dir(run_copy)))) == before
  assert open(path).read() == '{"step": 2'
  export = run_module("tfvae.export", f"--workdir={run_copy}")
  assert "Exported the step-200 model" in export.stdout and "is damaged" in export.stderr
  assert '"step": 200' in _evaluate(run_copy).stdout


@pytest.mark.parametrize("module", ["tfvae.train", "tfvae.evaluate", "tfvae.export",
                                    "tfvae.visualize"])
@pytest.mark.slow
def test_a_config_json_value_of_another_type_is_one_line_for_every_command(run_copy, module):
  path = os.path.join(run_copy, "config.json")
  values = json.load(open(path))
  with open(path, "w") as f:
    json.dump({**values, "model": {**values["model"], "latent_dim": 16.5}}, f)
  args = QUICK + ["--train_steps=200"] if module == "tfvae.train" else []
  proc = run_module(module, *args, f"--workdir={run_copy}", check=False)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
  assert _last_line(proc) == (
      f"{module}: {path} is not a tfvae config (ConfigError: --latent_dim=16.5 must be an "
      "integer, not float): restore it from a copy, or start the run over with --overwrite "
      "(which deletes it).")
