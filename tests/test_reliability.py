"""Interruption, numerical faults and bad input, through the real `python -m tfvae.train`."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import checkpoint_step, ROOT, run_module, saved_config
from tfvae import summaries
from tfvae.training import failures
from tfvae import loading

QUICK = ["--flagfile=configs/quickstart.cfg", "--steps_per_loop=25", "--eval_every=1000",
         "--eval_importance_samples=0"]


def _start(*args):
  return subprocess.Popen([sys.executable, "-m", "tfvae.train", *QUICK, *args], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def _wait_for_checkpoint(workdir, proc, timeout=120):
  deadline = time.time() + timeout
  while checkpoint_step(workdir) is None:
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    assert time.time() < deadline, "no checkpoint was written"
    time.sleep(0.05)


def _snapshot(workdir):
  """{relative path: (size, mtime)} of everything under workdir but the lock file (which every
  command takes and releases: tfvae/lock.py)."""
  out = {}
  for root, _, files in os.walk(workdir):
    for name in files:
      if name == ".tfvae.lock":
        continue
      path = os.path.join(root, name)
      out[os.path.relpath(path, workdir)] = (os.path.getsize(path), os.path.getmtime(path))
  return out


@pytest.mark.parametrize("delay,relative", [(0.0, False), (0.6, False), (1.5, False),
                                             (0.6, True)])
@pytest.mark.slow
def test_kill_9_then_rerun_resumes_from_the_last_complete_checkpoint(tmp_path, monkeypatch,
                                                                     delay, relative):
  workdir = str(tmp_path)
  if relative:  # --workdir=runs/mine, as in the README
    monkeypatch.chdir(ROOT)
    workdir = os.path.relpath(tmp_path, ROOT)
  args = ["--train_steps=2500", "--checkpoint_every=100", f"--workdir={workdir}"]
  proc = _start(*args)
  _wait_for_checkpoint(workdir, proc)
  time.sleep(delay)
  proc.send_signal(signal.SIGKILL)
  proc.communicate()
  saved = checkpoint_step(workdir)
  assert saved is not None and saved % 100 == 0
  rerun = run_module("tfvae.train", *QUICK, *args)
  assert f"at step {saved} of 2500" in rerun.stderr
  assert json.load(open(tmp_path / "eval.json"))["step"] == 2500
  assert checkpoint_step(workdir) == 2500
  assert "reconstruct" in tf.saved_model.load(str(tmp_path / "export")).signatures


@pytest.mark.slow
def test_a_half_written_checkpoint_is_never_picked_up(tmp_path):
  workdir = str(tmp_path)
  run_module("tfvae.train", *QUICK, "--train_steps=100", "--checkpoint_every=50",
             f"--workdir={workdir}")
  # What a kill between writing checkpoint files and updating the index leaves behind.
  (tmp_path / "ckpt" / "ckpt-150.index").write_bytes(b"\x00" * 10)
  (tmp_path / "ckpt" / "ckpt-150.data-00000-of-00001").write_bytes(b"truncated")
  rerun = run_module("tfvae.train", *QUICK, "--train_steps=200", "--checkpoint_every=50",
                     f"--workdir={workdir}")
  assert "at step 100 of 200" in rerun.stderr
  assert checkpoint_step(workdir) == 200


@pytest.mark.slow
def test_sigterm_writes_a_checkpoint_at_the_current_step_and_says_how_to_resume(tmp_path):
  workdir = str(tmp_path)
  args = ["--train_steps=100000", "--checkpoint_every=100", f"--workdir={workdir}"]
  proc = _start(*args)
  _wait_for_checkpoint(workdir, proc)
  time.sleep(1.0)
  proc.send_signal(signal.SIGTERM)
  _, stderr = proc.communicate(timeout=60)
  assert proc.returncode == 128 + signal.SIGTERM
  match = re.search(r"Stopped by SIGTERM at step (\d+); a checkpoint was written to (\S+)\. "
                    r"Re-run the same command to resume from it\.", stderr)
  assert match and "Traceback" not in stderr, stderr[-2000:]
  assert checkpoint_step(workdir) == int(match.group(1))
  assert int(match.group(1)) % 25 == 0  # the loop in flight was finished


@pytest.mark.slow
def test_a_nan_batch_is_skipped_counted_and_training_continues(tmp_path):
  proc = run_module("tfvae.train", *QUICK, "--train_steps=100", "--checkpoint_every=50",
                    "--inject_nan_at_steps=3,4,60", f"--workdir={tmp_path}")
  assert "skipped 2 of the last 25 updates" in proc.stderr
  assert "skipped 1 of the last 25 updates" in proc.stderr
  steps, skipped = summaries.read_scalars(str(tmp_path / "tensorboard" / "train"),
                                          ["skipped_updates"])["skipped_updates"]
  assert skipped[-1] == 3 and steps[-1] == 100
  _, loss = summaries.read_scalars(str(tmp_path / "tensorboard" / "train"), ["loss"])["loss"]
  assert np.all(np.isfinite(loss))
  assert np.isfinite(json.load(open(tmp_path / "eval.json"))["test"]["elbo"])


def _poisoned_run(workdir, first_nan_step, checkpoint_every):
  """400 steps whose batches are NaN from `first_nan_step` on, 30 skips in a row allowed."""
  poisoned = ",".join(str(s) for s in range(first_nan_step, 400))
  return run_module("tfvae.train", *QUICK, "--train_steps=400",
                    f"--checkpoint_every={checkpoint_every}", "--max_consecutive_skips=30",
                    f"--inject_nan_at_steps={poisoned}", f"--workdir={workdir}", check=False)


@pytest.mark.slow
def test_nan_in_every_batch_stops_with_a_clear_error_and_the_last_good_checkpoint(tmp_path):
  proc = _poisoned_run(tmp_path, 100, checkpoint_every=50)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert "updates in a row had a non-finite loss or gradient (--max_consecutive_skips=30)" \
      in proc.stderr
  assert "The last checkpoint, of step 100 (before the updates that failed), is intact in " \
      + os.path.join(str(tmp_path), "ckpt") in proc.stderr
  assert checkpoint_step(str(tmp_path)) == 100  # nothing saved after the faults began
  _, model, step = loading.restore_model(str(tmp_path))
  assert step == 100
  assert all(np.all(np.isfinite(v.numpy())) for v in model.variables)


@pytest.mark.slow
def test_a_run_that_fails_before_its_first_checkpoint_does_not_claim_one(tmp_path):
  proc = _poisoned_run(tmp_path, 0, checkpoint_every=200)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().endswith("No checkpoint was written before it (nothing to resume "
                                      "from). Try a lower --learning_rate or --clip_grad_norm.")
  assert not (tmp_path / "ckpt").exists() or checkpoint_step(str(tmp_path)) is None


def _strict_json(path):
  def refuse(constant):
    raise AssertionError(f"{path} holds {constant}: not strict JSON")
  with open(path) as f:
    return json.load(f, parse_constant=refuse)


@pytest.mark.slow
def test_a_diverged_model_fails_the_run_and_its_metrics_are_null_with_the_reason(tmp_path):
  # One finite update at this learning rate wrecks the model; with many skips allowed the run
  # used to end with status 0, export the broken model and write Infinity into eval.json.
  proc = run_module("tfvae.train", *QUICK, "--train_steps=100", "--learning_rate=1e6",
                    "--max_consecutive_skips=1000", "--eval_importance_samples=10",
                    f"--workdir={tmp_path}", check=False)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
  line = proc.stderr.strip().splitlines()[-1]
  assert line.startswith("tfvae.train: The final evaluation at step 100 is not finite "
                         "(validation: ")
  assert "the model diverged, so it was not exported" in line
  results = _strict_json(tmp_path / "eval.json")
  test = results[results["final"]["test"]]
  assert test["elbo"] is None and test["nonfinite"]["elbo"] in ("-inf", "nan")
  assert not (tmp_path / "export").exists()
  again = run_module("tfvae.train", *QUICK, "--train_steps=100", "--learning_rate=1e6",
                     "--max_consecutive_skips=1000", "--eval_importance_samples=10",
                     f"--workdir={tmp_path}", check=False)
  assert again.returncode == 1  # not "Nothing left to train": the run is not a finished one


BAD_INPUTS = [
    (["--dataset=no_such_set"], "--dataset=no_such_set is neither 'digits', a TFDS dataset name"),
    (["--model=gan"], "flag --model=gan: value should be one of <vae|hvae|ae|"),
    (["--latent_dim=0"], "--latent_dim=0 must be a positive integer"),
    (["--hidden_sizes=64,-1"], "--hidden_sizes=64,-1 must be positive integers"),
    (["--batch_size=-4"], "--batch_size=-4 must be a positive integer"),
    (["--beta=-1"], "--beta=-1.0 must be >= 0"),
    (["--flagfile=/no/such.cfg"], "Unable to open flagfile: [Errno 2] No such file"),
    (["--flagfile=tests"], "Unable to open flagfile: [Errno 21] Is a directory"),
    (["--flagfile={unknown_flag_cfg}"], "Unknown command line flag 'no_such_flag'"),
    (["--batch_size=65", "--num_cpu_devices=2"],
     "--batch_size=65 is not divisible by the 2 replicas of --strategy=mirrored"),
    (["--latent_dim=3"], "--latent_dim: 8 in the workdir, 3 now"),
]


@pytest.fixture(scope="module")
def existing_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("existing")
  run_module("tfvae.train", *QUICK, "--train_steps=25", f"--workdir={workdir}")
  cfg = workdir / "unknown.cfg"
  cfg.write_text("--latent_dim=4\n--no_such_flag=3\n")
  return workdir, str(cfg)


@pytest.mark.parametrize("args,message", BAD_INPUTS, ids=[a[0] for a, _ in BAD_INPUTS])
@pytest.mark.slow
def test_bad_input_exits_before_training_with_one_message_and_changes_nothing(
    existing_run, args, message):
  workdir, unknown_cfg = existing_run
  args = [a.format(unknown_flag_cfg=unknown_cfg) for a in args]
  before = _snapshot(workdir)
  proc = run_module("tfvae.train", *QUICK, "--train_steps=50", *args, f"--workdir={workdir}",
                    check=False)
  assert proc.returncode != 0
  assert message in proc.stderr, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr
  assert _snapshot(workdir) == before


@pytest.mark.slow
def test_overwrite_replaces_a_run_with_another_config(tmp_path):
  run_module("tfvae.train", *QUICK, "--train_steps=25", f"--workdir={tmp_path}")
  proc = run_module("tfvae.train", *QUICK, "--train_steps=25", "--latent_dim=3", "--overwrite",
                    f"--workdir={tmp_path}")
  assert "Training from step 0 to 25" in proc.stderr
  assert saved_config(tmp_path)["latent_dim"] == 3
  assert len(os.listdir(tmp_path / "tensorboard" / "train")) == 1  # old events are gone


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.slow
def test_a_signal_during_an_evaluation_is_one_line_and_leaves_eval_json_intact(tmp_path, signum):
  # Before: SIGTERM killed tfvae.evaluate silently (status 143), SIGINT printed a ~100-line
  # KeyboardInterrupt traceback.
  workdir = str(tmp_path)
  run_module("tfvae.train", *QUICK, "--train_steps=50", f"--workdir={workdir}")
  before = (tmp_path / "eval.json").read_bytes()
  # A signal is handled between TF calls: one example per batch keeps each call short (a
  # batch of 100 at K = 200000 is one call of minutes), the whole evaluation long.
  proc = subprocess.Popen([sys.executable, "-m", "tfvae.evaluate", f"--workdir={workdir}",
                           "--num_importance_samples=200000", "--batch_size=1"], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  lock_file = tmp_path / ".tfvae.lock"
  deadline = time.time() + 120
  while not (lock_file.exists() and lock_file.stat().st_size):  # evaluating, lock held
    assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-3000:]
    time.sleep(0.05)
  time.sleep(1.0)
  proc.send_signal(signum)
  _, stderr = proc.communicate(timeout=120)
  assert proc.returncode == 128 + signum, stderr[-3000:]
  assert "Traceback" not in stderr
  assert stderr.strip().splitlines()[-1] == (
      f"tfvae.evaluate: Stopped by {signal.Signals(signum).name} before it finished. What it had "
      "written is intact (each file is replaced whole, or not at all); re-run the same command "
      "to finish.")
  assert (tmp_path / "eval.json").read_bytes() == before
  assert lock_file.stat().st_size == 0  # released


@pytest.mark.slow
def test_a_garbage_config_json_is_one_line_naming_the_file(tmp_path):
  workdir = str(tmp_path)
  run_module("tfvae.train", *QUICK, "--train_steps=20", f"--workdir={workdir}")
  (tmp_path / "config.json").write_text('{"latent_dim": 8, "model": ')
  for module in ("tfvae.train", "tfvae.evaluate", "tfvae.export"):
    args = QUICK if module == "tfvae.train" else []
    proc = run_module(module, *args, f"--workdir={workdir}", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"{module}: {tmp_path / 'config.json'} is not a tfvae config (JSONDecodeError: ")


@pytest.mark.parametrize("args", [["--inject_nan_at_steps=" + ",".join(map(str, range(50)))],
                                  ["--beta=1e38"]], ids=["nan_batches", "huge_beta"])
@pytest.mark.slow
def test_a_run_whose_every_update_was_skipped_fails_and_is_not_exported(tmp_path, args):
  # Before: fewer skips than --max_consecutive_skips in a row, so the run exited 0 and exported
  # its initialization as a trained model.
  proc = run_module("tfvae.train", *QUICK, "--train_steps=50", *args, f"--workdir={tmp_path}",
                    check=False)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
  message = proc.stderr.strip().splitlines()[-1]
  assert message.startswith(
      "tfvae.train: 50 of the 50 updates up to step 50 were skipped for a non-finite loss or "
      "gradient, so only 0 changed the weights: the model has not trained")
  assert not (tmp_path / "export").exists()
  assert _strict_json(tmp_path / "eval.json")["skipped_updates"] == {
      "step": 50, "skipped": 50, "updates": 50}
  # The same command again (nothing left to train) is refused the same way, not exported.
  again = run_module("tfvae.train", *QUICK, "--train_steps=50", *args, f"--workdir={tmp_path}",
                     check=False)
  assert again.returncode == 1 and again.stderr.strip().splitlines()[-1] == message
  assert not (tmp_path / "export").exists()


def test_untrained_needs_nearly_all_updates_skipped(tmp_path):
  def record(skipped, updates):
    return failures.skips(str(tmp_path), 100, skipped, updates)
  assert failures.untrained(record(89, 100), "w") is None
  assert failures.untrained(record(0, 0), "w") is None  # nothing trained, nothing recorded
  error = failures.untrained(record(90, 100), "w")
  assert isinstance(error, failures.TrainingError)
  assert "90 of the 100 updates up to step 100" in str(error)
  (tmp_path / "eval.json").write_text(
      json.dumps({"skipped_updates": {"step": 100, "skipped": 100, "updates": 100}}))
  assert failures.untrained(record(0, 0), "w") is not None  # what the training recorded
  assert failures.skips(str(tmp_path), 200, 0, 0)["updates"] == 0  # of another step: not used


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.slow
def test_a_signal_during_the_last_validation_stops_the_run_and_keeps_its_checkpoint(
    tmp_path, signum):
  # Before: the signal was ignored, the run reported Done and exited 0. The last loop's
  # validation is made long (K = 20000 per example, one example per call) so that the signal
  # surely arrives during it.
  log = tmp_path / "stderr.txt"
  workdir = tmp_path / "run"
  with open(log, "w") as stderr:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tfvae.train", *QUICK, "--train_steps=25", "--eval_every=25",
         "--eval_importance_samples=20000", "--eval_batch_size=1", f"--workdir={workdir}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
  deadline = time.time() + 120
  while "progress: step 25/25" not in log.read_text():  # trained; validating now
    assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
    time.sleep(0.05)
  time.sleep(1.0)
  proc.send_signal(signum)
  proc.wait(timeout=300)
  stderr = log.read_text()
  assert proc.returncode == 128 + signum, stderr[-3000:]
  assert "Traceback" not in stderr and "Done:" not in stderr
  assert f"Stopped by {signal.Signals(signum).name} at step 25" in stderr
  assert checkpoint_step(str(workdir)) == 25  # the checkpoint written is kept
  assert not (workdir / "export").exists()


@pytest.mark.parametrize("damage", ["truncate", "delete"])
@pytest.mark.slow
def test_a_finished_run_with_a_damaged_export_exports_it_again(tmp_path, damage):
  # Before: "Nothing left to train ... its SavedModel in .../export", exit 0, export unusable.
  args = [*QUICK, "--train_steps=25", f"--workdir={tmp_path}"]
  run_module("tfvae.train", *args)
  saved_model = tmp_path / "export" / "saved_model.pb"
  if damage == "truncate":
    saved_model.write_bytes(saved_model.read_bytes()[:1000])
  else:
    saved_model.unlink()
  proc = run_module("tfvae.train", *args)
  assert "does not load" in proc.stderr and "Nothing left to train" not in proc.stderr
  assert "reconstruct" in tf.saved_model.load(str(tmp_path / "export")).signatures
  again = run_module("tfvae.train", *args)  # now whole: nothing to do
  assert "Nothing left to train" in again.stderr
