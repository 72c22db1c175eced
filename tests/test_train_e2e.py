"""End to end: the real `python -m tfvae.train` / `tfvae.export` entry points on real data."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_module, saved_config
import tfvae
from tfvae import data as data_lib
from tfvae import loading

QUICK = ["--flagfile=configs/quickstart.cfg", "--train_steps=120", "--eval_every=60",
         "--checkpoint_every=60", "--steps_per_loop=20"]


def _scalars(event_dir):
  """{tag: [(step, value), ...]} read back from TensorBoard event files."""
  out = {}
  for path in sorted(glob.glob(os.path.join(event_dir, "events.out.tfevents.*"))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        out.setdefault(value.tag, []).append(
            (event.step, float(tf.make_ndarray(value.tensor)) if value.tensor.dtype == 1
             else None))
  return out


def _config(workdir):
  from tfvae import config_io  # pylint: disable=import-outside-toplevel
  return config_io.load(workdir)


def _untrained_model(workdir):
  """The run's model with fresh (seeded) weights."""
  import keras  # pylint: disable=import-outside-toplevel
  from tfvae import models  # pylint: disable=import-outside-toplevel
  keras.utils.set_random_seed(0)
  return models.build(_config(workdir))


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("quickstart"))
  proc = run_module("tfvae.train", *QUICK, f"--workdir={workdir}")
  return workdir, proc


@pytest.mark.slow
def test_quickstart_writes_config_events_eval_and_export(quickstart_run):
  workdir, proc = quickstart_run
  assert "validation elbo" in proc.stderr and "test elbo" in proc.stderr
  assert saved_config(workdir)["image_shape"] == [8, 8, 1]
  results = json.load(open(os.path.join(workdir, "eval.json")))
  assert results["step"] == 120 and results["test_K10"]["elbo"] < 0
  # Learned, not just finite (an untrained model met the old band of -60 < elbo < 0): 120 steps
  # take the test ELBO well above the untrained model's and the mean train ELBO of steps 1-20.
  untrained = tfvae.TrainedModel(_config(workdir), _untrained_model(workdir), 0)
  test_images = data_lib.load(_config(workdir)).test.images
  untrained_elbo = float(np.mean(untrained.elbo(test_images)))
  first_train_elbo = _scalars(os.path.join(workdir, "tensorboard", "train"))["elbo"][0][1]
  assert results["test_K10"]["elbo"] > untrained_elbo + 10, (results, untrained_elbo)
  assert results["test_K10"]["elbo"] > first_train_elbo + 5, (results, first_train_elbo)
  assert results["test_K10"]["step"] == 120 and results["validation_K10"]["split"] == "validation"
  train = _scalars(os.path.join(workdir, "tensorboard", "train"))
  for tag in ("loss", "elbo", "rate", "distortion", "beta", "learning_rate",
              "examples_per_second"):
    assert [s for s, _ in train[tag]] == [20, 40, 60, 80, 100, 120], tag
  evals = _scalars(os.path.join(workdir, "tensorboard", "eval"))
  assert [s for s, _ in evals["elbo"]] == [60, 120]
  assert evals["elbo"][-1][1] > train["elbo"][0][1]  # it learned
  assert {"reconstructions", "samples"} <= set(evals)
  assert os.path.exists(os.path.join(workdir, "export", "saved_model.pb"))


@pytest.mark.slow
def test_export_in_a_fresh_process_reproduces_the_model(quickstart_run, tmp_path):
  workdir, _ = quickstart_run
  run_module("tfvae.export", f"--workdir={workdir}")
  _, model, step = loading.restore_model(workdir)
  assert step == 120
  x = np.random.default_rng(0).integers(0, 2, [4, 8, 8, 1]).astype(np.float32)
  np.save(tmp_path / "x.npy", x)
  script = ("import sys, numpy as np, tensorflow as tf\n"
            "m = tf.saved_model.load(sys.argv[1])\n"
            "r = m.signatures['reconstruct'](x=tf.constant(np.load(sys.argv[2])))\n"
            "np.save(sys.argv[3], r['reconstruction'].numpy())\n"
            "assert 'tensorflow_probability' not in sys.modules\n")
  subprocess.run([sys.executable, "-c", script, os.path.join(workdir, "export"),
                  str(tmp_path / "x.npy"), str(tmp_path / "r.npy")], check=True)
  np.testing.assert_allclose(np.load(tmp_path / "r.npy"),
                             model.decoder(model.encoder(x).mean()).mean(), rtol=1e-5,
                             atol=1e-6)


@pytest.mark.slow
def test_evaluate_cli_adds_the_importance_weighted_bound_to_eval_json(quickstart_run):
  workdir, _ = quickstart_run
  proc = run_module("tfvae.evaluate", f"--workdir={workdir}", "--split=test",
                    "--num_importance_samples=200", "--chunk_size=50")
  assert "iwae_bound(K=200)" in proc.stderr
  results = json.load(open(os.path.join(workdir, "eval.json")))
  test = results["test_K200"]
  # The K = 10 entries of training are kept beside it, under their own keys.
  assert results["test_K10"]["num_importance_samples"] == 10 and "validation_K10" in results
  assert test["num_importance_samples"] == 200 and test["num_examples"] == 359
  assert test["step"] == 120 and test["split"] == "test" and test["binarization"] == "dynamic"
  assert test["elbo"] < test["iwae_bound"] == -test["nll"] < 0
  assert len(test["rate_per_dimension"]) == 8 and 0 <= test["active_units"] <= 8
  evals = _scalars(os.path.join(workdir, "tensorboard", "eval"))
  assert evals["test_K200/nll"] == [(120, pytest.approx(test["nll"], rel=1e-5))]


@pytest.mark.slow
def test_visualize_cli_writes_every_figure_as_png_and_to_tensorboard(quickstart_run):
  workdir, _ = quickstart_run
  run_module("tfvae.visualize", f"--workdir={workdir}")
  names = ("reconstructions", "samples", "interpolation", "traversals", "manifold",
           "latent_pca", "histograms", "curves")
  for name in names:
    png = tf.io.read_file(os.path.join(workdir, "figures", f"{name}.png"))
    height, width, _ = tf.image.decode_png(png).shape
    assert height > 300 and width > 300, name
  tags = set()
  for path in glob.glob(os.path.join(workdir, "tensorboard", "eval", "events.*")):
    for event in tf.compat.v1.train.summary_iterator(path):
      tags |= {v.tag for v in event.summary.value}
  assert {f"figures/{n}" for n in names} <= tags


@pytest.mark.slow
def test_visualize_rejects_an_unknown_figure_and_writes_nothing(quickstart_run):
  workdir, _ = quickstart_run
  before = set(os.listdir(os.path.join(workdir, "figures"))) if os.path.exists(
      os.path.join(workdir, "figures")) else set()
  proc = run_module("tfvae.visualize", f"--workdir={workdir}", "--what=samples,bogus",
                    check=False)
  assert proc.returncode != 0 and "--what=bogus: unknown figure" in proc.stderr
  after = set(os.listdir(os.path.join(workdir, "figures"))) if os.path.exists(
      os.path.join(workdir, "figures")) else set()
  assert before == after


@pytest.mark.slow
def test_rerunning_resumes_from_the_checkpoint_and_refuses_another_model(workdir):
  proc = run_module("tfvae.train", *QUICK, "--train_steps=60", f"--workdir={workdir}")
  assert "Training from step 0 to 60" in proc.stderr
  # Numbers other commands added to eval.json survive the extension of the training.
  run_module("tfvae.evaluate", f"--workdir={workdir}", "--num_importance_samples=20")
  run_module("tfvae.evaluate", f"--workdir={workdir}", "--m1_labels=50")
  proc = run_module("tfvae.train", *QUICK, f"--workdir={workdir}")
  assert f"Resuming from {os.path.join(workdir, 'ckpt')} at step 60 of 120" in proc.stderr
  results = json.load(open(os.path.join(workdir, "eval.json")))
  assert results["step"] == 120 and results["test_K10"]["step"] == 120
  assert results["test_K20"]["step"] == 60 and results["test_K20"]["num_importance_samples"] == 20
  assert results["m1_test_50labels_seed0"]["step"] == 60
  assert results["final"] == {"validation": "validation_K10", "test": "test_K10"}
  steps = [s for s, _ in _scalars(os.path.join(workdir, "tensorboard", "train"))["loss"]]
  assert steps == [20, 40, 60, 80, 100, 120]  # nothing trained twice
  # A finished run is not evaluated or exported again.
  before = open(os.path.join(workdir, "eval.json")).read(), os.readlink(
      os.path.join(workdir, "export"))
  proc = run_module("tfvae.train", *QUICK, f"--workdir={workdir}")
  assert f"Nothing left to train: {workdir} holds a finished run at step 120" in proc.stderr
  assert "raise --train_steps or --epochs to train on" in proc.stderr
  assert before == (open(os.path.join(workdir, "eval.json")).read(),
                    os.readlink(os.path.join(workdir, "export")))
  bad = run_module("tfvae.train", *QUICK, "--latent_dim=3", f"--workdir={workdir}", check=False)
  assert bad.returncode != 0 and "--latent_dim: 8 in the workdir, 3 now" in bad.stderr
  assert "Traceback" not in bad.stderr
  assert saved_config(workdir)["latent_dim"] == 8


@pytest.mark.slow
def test_two_cpu_replicas_from_the_command_line(tmp_path):
  proc = run_module("tfvae.train", *QUICK, "--train_steps=40", "--num_cpu_devices=2",
                    f"--workdir={tmp_path}")
  assert "2 replicas" in proc.stderr
  assert json.load(open(tmp_path / "eval.json"))["step"] == 40


@pytest.mark.slow
def test_bad_flag_value_exits_with_a_message_naming_it(tmp_path):
  proc = run_module("tfvae.train", *QUICK, "--latent_dim=0", f"--workdir={tmp_path}",
                    check=False)
  assert proc.returncode != 0 and "--latent_dim=0 must be a positive integer" in proc.stderr
  assert "Traceback" not in proc.stderr and not os.listdir(tmp_path)


@pytest.mark.slow
def test_a_dataset_that_cannot_be_had_gives_one_clear_message(tmp_path):
  proc = run_module("tfvae.train", *QUICK, "--dataset=no_such_dataset",
                    f"--workdir={tmp_path}", check=False)
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert "--dataset=no_such_dataset is neither 'digits', a TFDS dataset name" in proc.stderr


@pytest.mark.slow
def test_real_fashion_mnist_end_to_end(fashion_mnist_dir, tmp_path):
  proc = run_module("tfvae.train", "--flagfile=configs/fashion_mnist_mlp.cfg",
                    f"--data_dir={fashion_mnist_dir}", "--train_steps=300", "--eval_every=100",
                    f"--workdir={tmp_path}")
  assert "50000 train / 10000 validation / 10000 test images (28, 28, 1)" in proc.stderr
  evals = _scalars(os.path.join(tmp_path, "tensorboard", "eval"))["elbo"]
  assert [s for s, _ in evals] == [100, 200, 300]
  assert evals[-1][1] > evals[0][1]
  results = json.load(open(tmp_path / "eval.json"))
  assert -330 < results["test_K10"]["elbo"] < -230  # a few hundred steps: far from converged
  assert os.path.exists(tmp_path / "export" / "saved_model.pb")


@pytest.mark.slow
def test_a_deterministic_autoencoder_from_the_command_line(tmp_path):
  proc = run_module("tfvae.train", "--flagfile=configs/quickstart.cfg", "--model=ae",
                    "--train_steps=40", "--eval_every=40", f"--workdir={tmp_path}")
  assert "Done: test distortion" in proc.stderr and "elbo" not in proc.stderr
  test = json.load(open(os.path.join(tmp_path, "eval.json")))["test"]
  assert "elbo" not in test and test["squared_error"] > 0
