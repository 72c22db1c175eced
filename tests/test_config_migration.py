"""Run folders written before the Config had sections (tests/fixtures/README.md): their flat
config.json loads, and the runs load, evaluate and resume."""

import json
import os
import shutil

import numpy as np
import pytest

from conftest import run_module
from tfvae import config as config_lib
from tfvae import config_io

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
_FLAGS = ["--hidden_sizes=16", "--latent_dim=2", "--eval_every=10", "--checkpoint_every=10"]


def _copy(name, tmp_path):
  target = str(tmp_path / name)
  shutil.copytree(os.path.join(FIXTURES, name), target)
  return target


def _flat(name):
  with open(os.path.join(FIXTURES, name, "config.json")) as f:
    return json.load(f)


def test_a_flat_config_json_becomes_the_sectioned_config_of_the_same_run():
  flat = _flat("flat_config_vae")
  config = config_lib.Config.from_dict(flat)
  assert config == config_lib.Config(
      hidden_sizes=(16,), latent_dim=2, train_steps=20, eval_every=10, checkpoint_every=10,
      eval_importance_samples=2, binarization="dynamic", image_shape=(8, 8, 1),
      pixel_levels=17, num_classes=10, labeled_examples=1198,
      data_fingerprint=flat["data_fingerprint"])
  # Every value of the flat file that the run reads is kept; the others were defaults.
  kept = config.flat()
  for name, value in flat.items():
    if name in kept:
      assert kept[name] == (tuple(value) if isinstance(value, list) else value), name
  ae = config_lib.Config.from_dict(_flat("flat_config_ae"))
  assert ae.family == "ae" and not hasattr(ae.model, "beta")
  assert config_lib.Config.from_dict(config.to_dict()) == config  # and round trips sectioned


def test_a_flat_config_json_with_an_unknown_or_bad_key_is_refused_naming_it(tmp_path):
  workdir = _copy("flat_config_vae", tmp_path)
  path = os.path.join(workdir, "config.json")
  for change, text in (({"latent_dimm": 3}, "Unknown config keys: latent_dimm"),
                       ({"latent_dim": "3"}, "--latent_dim='3' must be an integer")):
    with open(path, "w") as f:
      json.dump({**_flat("flat_config_vae"), **change}, f)
    with pytest.raises(config_lib.ConfigError, match=text):
      config_io.load(workdir)


@pytest.mark.slow
def test_an_old_run_loads_and_evaluates_to_the_numbers_it_recorded(tmp_path):
  import tfvae  # pylint: disable=import-outside-toplevel
  workdir = _copy("flat_config_vae", tmp_path)
  with open(os.path.join(workdir, "eval.json")) as f:
    recorded = json.load(f)["test_K2"]
  model = tfvae.load(workdir)
  assert model.config.family == "vae" and model.config.model.latent_dim == 2
  results = model.evaluate(split="test", num_importance_samples=2)
  np.testing.assert_allclose(results["elbo"], recorded["elbo"], rtol=1e-4)
  np.testing.assert_allclose(results["iwae_bound"], recorded["iwae_bound"], rtol=1e-4)


@pytest.mark.parametrize("name, flags", [("flat_config_vae", ["--eval_importance_samples=2"]),
                                         ("flat_config_ae", ["--model=ae"])])
@pytest.mark.slow
def test_an_old_run_resumes_with_its_flags_and_is_then_recorded_in_sections(tmp_path, name,
                                                                            flags):
  workdir = _copy(name, tmp_path)
  proc = run_module("tfvae.train", f"--workdir={workdir}", "--train_steps=30", *_FLAGS, *flags)
  assert "at step 20 of 30" in proc.stderr, proc.stderr[-2000:]
  with open(os.path.join(workdir, "config.json")) as f:
    saved = json.load(f)
  assert saved["model"]["family"] == name.split("_")[-1]
  assert saved["training"]["train_steps"] == 30
  with open(os.path.join(workdir, "eval.json")) as f:
    assert json.load(f)["step"] == 30
  run_module("tfvae.evaluate", f"--workdir={workdir}", "--split=test")
