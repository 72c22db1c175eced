"""A new model family is one file and one registry line: docs/examples/capped_rate_vae.py,
registered here with that line, gets its flags, its config.json section, training, resume and
loading without a change anywhere else."""

import json
import os
import subprocess
import sys

from absl import flags
import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT
import tfvae
from tfvae import config as config_lib
from tfvae import config_flags
from tfvae import models

sys.path.insert(0, os.path.join(ROOT, "docs", "examples"))
import capped_rate_vae  # noqa: E402  pylint: disable=wrong-import-position

TINY = dict(hidden_sizes=(16,), latent_dim=3, image_shape=(8, 8, 1))


@pytest.fixture(name="registered")
def _registered(monkeypatch):
  monkeypatch.setitem(models.MODELS, "capped_rate_vae", capped_rate_vae.CappedRateVAE)


def test_its_knobs_are_flags_and_config_fields_checked_like_the_others(registered):
  del registered
  fv = flags.FlagValues()
  config_flags.define_flags(fv)
  fv(["prog", "--model=capped_rate_vae", "--rate_floor=3", "--beta=2"])
  config = config_flags.from_flags(fv)
  assert config.family == "capped_rate_vae"
  assert (config.model.rate_floor, config.model.beta) == (3.0, 2.0)
  with pytest.raises(config_lib.ConfigError, match="--rate_floor=-1.0 must be >= 0"):
    config_lib.Config(model="capped_rate_vae", rate_floor=-1.0)
  with pytest.raises(config_lib.ConfigError, match="--rate_floor is not an option of --model=vae"):
    config_lib.Config(model="vae", rate_floor=1.0)


def test_its_loss_is_the_distortion_plus_beta_times_the_rate_above_the_floor(registered):
  del registered
  images = (np.random.default_rng(0).random([6, 8, 8, 1]) > 0.5).astype(np.float32)
  batch = {"image": tf.constant(images), "index": tf.range(6)}
  seed, step = tf.constant([1, 2]), tf.constant(0, tf.int64)
  model = models.build(config_lib.Config(model="capped_rate_vae", rate_floor=0.5, beta=2.0,
                                         **TINY), seed=0)
  terms = model.losses(batch, seed, step, training=True)
  excess = np.maximum(terms["rate"].numpy() - 0.5, 0.0)
  np.testing.assert_allclose(terms["loss"], terms["distortion"].numpy() + 2.0 * excess,
                             rtol=1e-6)
  assert (excess > 0).any() and (terms["rate"].numpy() > 0).all()
  evaluation = model.losses(batch, seed, step, training=False)  # evaluated as every VAE
  np.testing.assert_allclose(evaluation["loss"], -evaluation["elbo"].numpy(), rtol=1e-6)


def test_it_trains_records_its_section_and_loads(registered, tmp_path):
  del registered
  workdir = str(tmp_path / "run")
  config = tfvae.Config(model="capped_rate_vae", rate_floor=1.5, hidden_sizes=(16,),
                        latent_dim=3, train_steps=20, steps_per_loop=10,
                        eval_importance_samples=0)
  trained = tfvae.fit(config, workdir)
  with open(os.path.join(workdir, "config.json")) as f:
    saved = json.load(f)["model"]
  assert (saved["family"], saved["rate_floor"]) == ("capped_rate_vae", 1.5)
  loaded = tfvae.load(workdir)
  assert isinstance(loaded.model, capped_rate_vae.CappedRateVAE)
  assert loaded.evaluate(split="test")["elbo"] == pytest.approx(trained.results["test"]["elbo"])


@pytest.mark.slow
def test_the_command_line_trains_it_once_the_registry_has_its_line(tmp_path):
  workdir = str(tmp_path / "run")
  register = ("import runpy, sys; sys.path.insert(0, 'docs/examples'); import capped_rate_vae; "
              "from tfvae import models; models.MODELS['capped_rate_vae'] = "
              "capped_rate_vae.CappedRateVAE; sys.argv[0] = 'tfvae.train'; "
              "runpy.run_module('tfvae.train', run_name='__main__')")
  args = ["--model=capped_rate_vae", "--rate_floor=2", "--hidden_sizes=16", "--latent_dim=3",
          "--steps_per_loop=10", "--eval_importance_samples=0", f"--workdir={workdir}"]
  for steps in (10, 20):
    proc = subprocess.run([sys.executable, "-c", register, f"--train_steps={steps}", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
  assert "at step 10 of 20" in proc.stderr, proc.stderr[-2000:]
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f)["model"]["rate_floor"] == 2.0
