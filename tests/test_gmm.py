"""The Gaussian-mixture baseline: same test pixels and scale as the VAE, and its entry point."""

import json
import math
import os

import numpy as np
import pytest
from scipy import stats

from conftest import run_module
from tfvae import config as config_lib
from tfvae import data as data_lib
from tfvae.evaluation import evaluator as evaluator_lib
from tfvae.evaluation import gmm


def test_bits_per_dim_of_the_uniform_density_is_log2_of_the_levels():
  # The uniform density on [0, 1)^N has nll 0: every pixel costs log2(L) bits.
  assert math.isclose(evaluator_lib.bits_per_dim(0.0, 784, 256), 8.0)
  assert math.isclose(evaluator_lib.bits_per_dim(0.0, 64, 17), math.log2(17))
  # One nat per dimension less than uniform is 1/ln 2 bits less.
  assert math.isclose(evaluator_lib.bits_per_dim(-64.0, 64, 17), math.log2(17) - 1 / math.log(2))


def test_one_component_mixture_is_the_fitted_gaussian_on_the_vae_test_pixels():
  config = config_lib.Config(dataset="digits")
  model, metrics, shape = gmm.fit_and_evaluate(config, num_components=1, reg_covar=1e-3)
  assert shape == (8, 8, 1) and metrics["pixel_levels"] == 17
  # The test pixels are exactly the dequantized ones a VAE evaluation sees.
  data = data_lib.load(config_lib.Config(dataset="digits", binarization="dequantize"))
  test = np.concatenate([b["image"] for b in data_lib.eval_dataset(data, "test", 100)])
  test = test.reshape(len(test), -1).astype(np.float64)
  gaussian = stats.multivariate_normal(model.means_[0], model.covariances_[0])
  np.testing.assert_allclose(metrics["nll"], -gaussian.logpdf(test).mean(), rtol=1e-6)
  assert metrics["num_test_examples"] == len(data.test)
  np.testing.assert_allclose(metrics["bits_per_dim"],
                             evaluator_lib.bits_per_dim(metrics["nll"], 64, 17))
  # Its mean is the train pixels' mean (the maximum-likelihood fit of one Gaussian).
  train = data.train.images.reshape(len(data.train), -1) / 17 + 0.5 / 17
  np.testing.assert_allclose(model.means_[0], train.mean(0), atol=2e-3)


@pytest.mark.slow
def test_entry_point_writes_metrics_and_samples_and_beats_the_uniform_density(tmp_path):
  workdir = str(tmp_path / "gmm")
  proc = run_module("tfvae.gmm", f"--workdir={workdir}", "--num_components=3",
                    "--covariance_type=diag")
  with open(os.path.join(workdir, "gmm.json")) as f:
    metrics = json.load(f)
  assert metrics["num_components"] == 3 and metrics["converged"]
  assert metrics["bits_per_dim"] < math.log2(17)
  assert "bits/dim" in proc.stdout
  assert os.path.getsize(os.path.join(workdir, "samples.png")) > 1000


@pytest.mark.slow
def test_unknown_dataset_is_one_line_naming_it(tmp_path):
  proc = run_module("tfvae.gmm", f"--workdir={tmp_path}", "--dataset=no_such_set", check=False)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1].startswith("tfvae.gmm:")
  assert "no_such_set" in proc.stderr
  assert not os.path.exists(os.path.join(tmp_path, "gmm.json"))
