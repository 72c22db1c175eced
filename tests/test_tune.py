"""Hyperparameter search: the real `python -m tfvae.tune` on digits, tiny models, few steps."""

import csv
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import keras_tuner as kt
import pytest
import tensorflow as tf
from tensorboard.plugins.hparams import plugin_data_pb2

from conftest import ROOT, run_module, saved_config
from tfvae import config as config_lib
from tfvae.tuning import search as tune
from tfvae.tuning import report as tune_report

TINY = ["--flagfile=configs/tune_digits.cfg", "--hidden_sizes=32", "--latent_dims=2,4",
        "--train_steps=30", "--steps_per_loop=10", "--eval_every=30", "--checkpoint_every=10",
        "--eval_batch_size=100"]


def _rows(workdir):
  with open(os.path.join(workdir, "trials.csv")) as f:
    return list(csv.DictReader(f))


def _started(stderr):
  """Names of the trials a run started (tune logs 'trial_NNN: beta ...' as a trial begins)."""
  return [line.split("trial_")[1][:3] for line in stderr.splitlines()
          if "search.py" in line and ": beta " in line]


def _train_steps(trial_dir):
  steps = []
  for path in sorted(glob.glob(os.path.join(trial_dir, "tensorboard", "train", "events.*"))):
    for event in tf.compat.v1.train.summary_iterator(path):
      steps += [event.step for v in event.summary.value if v.tag == "loss"]
  return sorted(steps)


@pytest.fixture(scope="module")
def random_search(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("tune"))
  proc = run_module("tfvae.tune", *TINY, "--max_trials=3", f"--workdir={workdir}")
  return workdir, proc


@pytest.mark.slow
def test_random_search_writes_trials_csv_and_exports_the_best(random_search):
  workdir, proc = random_search
  rows = _rows(workdir)
  assert [r["trial"] for r in rows] == ["trial_000", "trial_001", "trial_002"]
  assert all(r["status"] == "COMPLETED" and r["step"] == "30" for r in rows)
  assert len({r["beta"] for r in rows}) == 3
  assert all(0.1 <= float(r["beta"]) <= 10 and r["latent_dim"] in ("2", "4") for r in rows)
  for r in rows:
    assert float(r["objective"]) == float(r["nll"]) > 0 and float(r["elbo"]) < -float(r["nll"])
    config = saved_config(os.path.join(workdir, r["trial"]))
    assert config["beta"] == pytest.approx(float(r["beta"]))
    assert config["latent_dim"] == int(r["latent_dim"]) and config["hidden_sizes"] == [32]
    assert 0 <= int(r["active_units"]) <= int(r["latent_dim"])
    assert float(r["wall_time_s"]) > 0
  best = min(rows, key=lambda r: float(r["nll"]))
  assert os.readlink(os.path.join(workdir, "best")) == best["trial"]
  exported = tf.saved_model.load(os.path.join(workdir, "best", "export"))
  z = exported.signatures["encode"](x=tf.zeros([1, 8, 8, 1]))["loc"]
  assert z.shape == [1, int(best["latent_dim"])]
  # The table printed at the end, best first.
  table = [line for line in proc.stdout.splitlines() if line.startswith("| trial_")]
  assert len(table) == 3 and table[0].startswith(f"| {best['trial']} |")


@pytest.mark.slow
def test_objective_equals_what_tfvae_evaluate_reports(random_search, tmp_path):
  workdir, _ = random_search
  row = _rows(workdir)[1]
  trial_dir = str(tmp_path / row["trial"])  # a copy: evaluate writes into eval.json
  shutil.copytree(os.path.join(workdir, row["trial"]), trial_dir, symlinks=True)
  # --batch_size = the trials' --eval_batch_size: evaluation noise is drawn per batch.
  proc = run_module("tfvae.evaluate", f"--workdir={trial_dir}", "--split=validation",
                    "--num_importance_samples=10", "--batch_size=100")
  metrics = json.loads(proc.stdout)
  assert metrics["step"] == 30 and metrics["num_examples"] == 240
  assert float(row["objective"]) == pytest.approx(metrics["nll"], rel=1e-6)
  assert float(row["elbo"]) == pytest.approx(metrics["elbo"], rel=1e-6)
  assert int(row["active_units"]) == metrics["active_units"]


@pytest.mark.slow  # the random_search fixture trains for ~44 s: not the fast tier
def test_hparams_dashboard_lists_every_trial(random_search):
  workdir, _ = random_search
  experiment, sessions, scalars = None, {}, {}
  for path in glob.glob(os.path.join(workdir, "tensorboard", "**", "events.*"), recursive=True):
    run_name = os.path.relpath(os.path.dirname(path), os.path.join(workdir, "tensorboard"))
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.metadata.plugin_data.plugin_name == "hparams":
          data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
          if data.HasField("experiment"):
            experiment = data.experiment
          if data.HasField("session_start_info"):
            sessions[run_name] = data.session_start_info
        elif value.tag == "nll":
          scalars[run_name] = float(tf.make_ndarray(value.tensor))
  assert {h.name for h in experiment.hparam_infos} == {"beta", "latent_dim", "learning_rate"}
  assert {m.name.tag for m in experiment.metric_infos} == set(tune_report.METRICS)
  for row in _rows(workdir):
    info = sessions[row["trial"]]
    assert info.hparams["beta"].number_value == pytest.approx(float(row["beta"]))
    assert info.hparams["latent_dim"].number_value == int(row["latent_dim"])
    assert scalars[row["trial"]] == pytest.approx(float(row["nll"]), rel=1e-6)


@pytest.mark.slow
def test_rerunning_the_same_command_runs_no_new_trial(random_search):
  workdir, _ = random_search
  before = _rows(workdir)
  proc = run_module("tfvae.tune", *TINY, "--max_trials=3", f"--workdir={workdir}")
  assert _started(proc.stderr) == [] and "steps 0 ->" not in proc.stderr
  assert _rows(workdir) == before


@pytest.mark.slow
def test_raising_max_trials_runs_only_the_new_ones_and_repeats_the_search(random_search,
                                                                          tmp_path):
  workdir = str(tmp_path)
  first = run_module("tfvae.tune", *TINY, "--max_trials=2", f"--workdir={workdir}")
  assert _started(first.stderr) == ["000", "001"]
  second = run_module("tfvae.tune", *TINY, "--max_trials=3", f"--workdir={workdir}")
  assert _started(second.stderr) == ["002"]
  # Same tune seed, same trials as the 3-trial search run in one process.
  for ours, theirs in zip(_rows(workdir), _rows(random_search[0]), strict=True):
    assert (ours["beta"], ours["latent_dim"]) == (theirs["beta"], theirs["latent_dim"])
    assert float(ours["nll"]) == pytest.approx(float(theirs["nll"]), rel=1e-5)


@pytest.mark.slow
def test_a_workdir_holding_another_search_is_refused(random_search):
  workdir, _ = random_search
  before = _rows(workdir)
  proc = run_module("tfvae.tune", *TINY, "--max_trials=3", "--beta_max=5",
                    f"--workdir={workdir}", check=False)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert "--beta_max: 10.0 in the workdir, 5.0 now" in proc.stderr
  assert _rows(workdir) == before


@pytest.mark.parametrize("damage", ["torn oracle.json", "garbage tune.json"])
@pytest.mark.slow
def test_a_torn_search_state_is_one_line_saying_what_to_do(random_search, tmp_path, damage):
  # keras-tuner writes its state in place: a kill mid-write used to stop every later run with
  # a JSONDecodeError traceback.
  workdir = str(tmp_path / "copy")
  shutil.copytree(random_search[0], workdir, symlinks=True)
  if damage == "torn oracle.json":
    path = os.path.join(workdir, "keras_tuner", "oracle.json")
    with open(path, "r+") as f:
      f.truncate(os.path.getsize(path) // 2)
    expected = ("tfvae.tune: keras-tuner's state is torn (keras_tuner/oracle.json do not "
                "parse: a write was interrupted), so this search cannot continue. The trials' "
                f"runs are intact in {workdir}/trial_*")
  else:
    with open(os.path.join(workdir, "tune.json"), "w") as f:
      f.write("{not json")
    expected = (f"tfvae.tune: {workdir}/tune.json is not a tfvae search record "
                "(JSONDecodeError: ")
  proc = run_module("tfvae.tune", *TINY, "--max_trials=3", f"--workdir={workdir}", check=False)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
  assert proc.stderr.strip().splitlines()[-1].startswith(expected)


@pytest.mark.slow
def test_hyperband_promotes_a_trial_and_continues_its_checkpoint(tmp_path):
  workdir = str(tmp_path)
  # 1198 digits / batch 256 = 4 steps per epoch. With max_epochs 3 and factor 3, Hyperband first
  # runs 3 trials of 1 epoch, then continues the best of them to 3 epochs (trial 3).
  proc = run_module("tfvae.tune", *TINY, "--tuner=hyperband", "--hyperband_max_epochs=3",
                    "--hyperband_factor=3", "--max_trials=4", "--batch_size=256",
                    "--steps_per_loop=2", "--checkpoint_every=4", "--eval_every=0",
                    f"--workdir={workdir}")
  rows = _rows(workdir)
  assert len(rows) == 4 and all(r["status"] == "COMPLETED" for r in rows)
  assert [r["step"] for r in rows[:3]] == ["4", "4", "4"]
  child = rows[3]
  parent = next(r for r in rows if r["trial"] == child["parent"])
  assert child["step"] == "12" and (child["beta"], child["latent_dim"]) == (
      parent["beta"], parent["latent_dim"])
  assert "at step 4 of 12" in proc.stderr  # continued, not retrained from step 0
  # The child's curves: the parent's steps, then its own, each step once.
  assert _train_steps(os.path.join(workdir, child["trial"])) == [2, 4, 6, 8, 10, 12]
  assert _train_steps(os.path.join(workdir, parent["trial"])) == [2, 4]
  assert saved_config(os.path.join(workdir, child["trial"]))["epochs"] == 3


@pytest.mark.slow
def test_sigterm_mid_trial_stops_the_search_and_a_rerun_resumes_the_trial(workdir):
  args = [*TINY, "--max_trials=1", "--train_steps=4000", "--checkpoint_every=100",
          "--eval_every=4000", f"--workdir={workdir}"]
  proc = subprocess.Popen([sys.executable, "-m", "tfvae.tune", *args], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  ckpt = os.path.join(workdir, "trial_000", "ckpt")
  deadline = time.time() + 120
  while tf.train.latest_checkpoint(ckpt) is None:
    assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-3000:]
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  _, stderr = proc.communicate()
  assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
  assert "Stopped by SIGTERM at step" in stderr and "Traceback" not in stderr
  saved = int(tf.train.latest_checkpoint(ckpt).rsplit("-", 1)[1])
  assert 0 < saved < 4000
  rerun = run_module("tfvae.tune", *args)
  assert _started(rerun.stderr) == ["000"] and f"at step {saved} of 4000" in rerun.stderr
  assert [(r["trial"], r["status"], r["step"]) for r in _rows(workdir)] == [
      ("trial_000", "COMPLETED", "4000")]


@pytest.mark.parametrize("flag, message", [
    ("--beta_min=0", "--beta_min=0.0 must be > 0"),
    ("--objective=loss", "--objective='loss' is not one of nll, elbo, m1_accuracy"),
    ("--objective=m1_accuracy", "--objective=m1_accuracy needs --num_labels=N"),
    ("--model=ae", "--model=ae: the search is over beta and latent size"),
    ("--strategy=multi_worker", "--strategy=multi_worker: tfvae.tune runs its trials in one"),
])
@pytest.mark.slow
def test_bad_input_exits_with_a_message_naming_the_flag(tmp_path, flag, message):
  proc = run_module("tfvae.tune", *TINY, flag, f"--workdir={tmp_path}", check=False)
  assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
  assert not os.listdir(tmp_path)


@pytest.mark.parametrize("changes, message", [
    ({"beta_min": -1.0}, "--beta_min=-1.0 must be > 0"),
    ({"beta_min": 2.0, "beta_max": 1.0}, "--beta_min=2.0 is larger than --beta_max=1.0"),
    ({"latent_dims": ()}, "--latent_dims is empty"),
    ({"latent_dims": (4, 0)}, "--latent_dims=4,0 must be distinct positive integers"),
    ({"tuner": "grid"}, "--tuner='grid' is not one of random, hyperband, bayesian"),
    ({"objective": "accuracy"}, "--objective='accuracy' is not one of nll, elbo, m1_accuracy"),
    ({"learning_rate_min": 1e-4}, "--learning_rate_min=0.0001 and --learning_rate_max=0.0"),
    ({"max_trials": 0}, "--max_trials=0 must be a positive integer"),
    ({"hyperband_factor": 1}, "--hyperband_factor=1 must be >= 2"),
])
def test_tune_settings_reject_bad_values(changes, message):
  with pytest.raises(config_lib.ConfigError, match="^" + message.replace("(", r"\(")):
    tune.TuneSettings(**changes)


def test_search_needs_importance_samples_for_the_nll_objective(tmp_path):
  base = config_lib.Config(eval_importance_samples=0)
  with pytest.raises(config_lib.ConfigError, match="--objective=nll needs "
                     "--eval_importance_samples"):
    tune.search(base, tune.TuneSettings(), str(tmp_path))
  assert not os.listdir(tmp_path)


def test_trial_config_replaces_only_the_searched_fields():
  base = config_lib.Config(beta=1.0, latent_dim=16, epochs=5, train_steps=100)
  config = tune.trial_config(base, {"beta": 0.25, "latent_dim": 4, "learning_rate": 3e-4,
                                    "tuner/epochs": 3, "tuner/trial_id": "1"})
  model, training = config.model, config.training
  assert (model.beta, model.latent_dim, training.learning_rate) == (0.25, 4, 3e-4)
  assert (training.epochs, training.train_steps) == (3, 0)  # Hyperband's budget, in epochs
  assert config.model.hidden_sizes == base.model.hidden_sizes and config.training.seed == base.training.seed
  assert tune.trial_config(base, {"beta": 2.0, "latent_dim": 8}).training.train_steps == 100
  assert tune.trial_name("03") == tune.trial_name("3") == "trial_003"


def test_hyperband_oracle_proposes_trials_from_the_declared_space(tmp_path):
  settings = tune.TuneSettings(tuner="hyperband", hyperband_max_epochs=3,
                               learning_rate_min=1e-4, learning_rate_max=1e-2)
  oracle = tune._make_oracle(settings)  # pylint: disable=protected-access
  oracle._set_project_dir(str(tmp_path), "kt")  # pylint: disable=protected-access
  trial = oracle.create_trial("tuner0")
  assert trial.status == kt.engine.trial.TrialStatus.RUNNING
  values = trial.hyperparameters.values
  assert 0.1 <= values["beta"] <= 10 and values["latent_dim"] in (2, 8, 32)
  assert 1e-4 <= values["learning_rate"] <= 1e-2 and values["tuner/epochs"] == 1


@pytest.mark.slow
def test_trials_that_cannot_train_are_failed_and_three_in_a_row_stop_the_search(tmp_path):
  proc = run_module("tfvae.tune", *TINY, "--max_trials=5", "--train_steps=2",
                    "--steps_per_loop=2", "--inject_nan_at_steps=0,1",
                    "--max_consecutive_skips=1", f"--workdir={tmp_path}", check=False)
  assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
  assert "keras-tuner stopped the search: Number of consecutive failures" in proc.stderr
  assert "--max_consecutive_skips=1" in proc.stderr  # the trial's own message
  assert [r["status"] for r in _rows(tmp_path)] == ["FAILED"] * 3


@pytest.mark.slow
def test_m1_accuracy_objective_equals_what_tfvae_evaluate_reports(tmp_path):
  workdir = str(tmp_path)
  run_module("tfvae.tune", *TINY, "--max_trials=2", "--objective=m1_accuracy",
             "--num_labels=50", "--label_seed=1", f"--workdir={workdir}")
  rows = _rows(workdir)
  assert len(rows) == 2 and all(0 < float(r["m1_accuracy"]) <= 1 for r in rows)
  assert all(r["objective"] == r["m1_accuracy"] for r in rows)
  best = max(rows, key=lambda r: float(r["objective"]))
  assert os.path.realpath(os.path.join(workdir, "best")) == os.path.join(workdir, best["trial"])
  proc = run_module("tfvae.evaluate", f"--workdir={os.path.join(workdir, best['trial'])}",
                    "--m1_labels=50", "--label_seed=1", "--split=validation")
  assert json.loads(proc.stdout)["accuracy"] == pytest.approx(float(best["objective"]), abs=1e-9)


def _row(trial, nll, elbo, objective):
  return {"trial": trial, "status": "COMPLETED", "beta": 1.0, "latent_dim": 2,
          "learning_rate": 1e-3, "parent": "", "step": 30, "objective": objective, "nll": nll,
          "elbo": elbo, "m1_accuracy": None, "active_units": 2, "wall_time_s": 5.0}


@pytest.mark.parametrize("objective, maximize", [("nll", False), ("elbo", True),
                                                 ("m1_accuracy", True)])
def test_the_table_shows_each_metric_once_and_the_objective_first(objective, maximize):
  """The table showed nll twice, as the objective and as 'validation nll' (issue 33, item 5)."""
  rows = [_row("trial_000", 90.5, -95.25, {"nll": 90.5, "elbo": -95.25, "m1_accuracy": 0.5}[
              objective]),
          _row("trial_001", 80.5, -85.25, {"nll": 80.5, "elbo": -85.25, "m1_accuracy": 0.75}[
              objective]),
          {**_row("trial_002", None, None, None), "status": "FAILED"}]
  header, rule, best, second, failed = tune_report.format_table(rows, objective,
                                                                maximize).splitlines()
  columns = [c.strip() for c in header.strip("|").split("|")]
  assert columns[5] == f"validation {objective} (objective)"
  assert len(columns) == len(set(c.replace(" (objective)", "") for c in columns))
  assert ("validation nll" in columns) == (objective != "nll")
  assert ("validation elbo" in columns) == (objective != "elbo")
  assert rule.count("|---") == len(columns)
  assert best.startswith("| trial_001 |") and second.startswith("| trial_000 |")
  cells = [c.strip() for c in best.strip("|").split("|")]
  assert len(cells) == len(columns)
  assert dict(zip(columns, cells))[columns[5]] == {"nll": "80.5", "elbo": "-85.25",
                                                   "m1_accuracy": "0.75"}[objective]
  assert "80.50" in cells if objective != "nll" else "-85.25" in cells
  assert failed.startswith("| trial_002 |") and failed.count("|") == len(columns) + 1
