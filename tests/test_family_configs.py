"""Each family's config (tfvae/models/<family>.py): only the knobs it reads, checked; knobs
another knob turns off (`inactive`) warned about, kept out of config.json and truly without
effect; another family's knobs refused from Python and ignored with a warning on the command
line."""

import dataclasses
import json
import os

from absl import flags
import numpy as np
import pytest
import tensorflow as tf

from conftest import run_module, tiny_model
from tfvae import config as config_lib
from tfvae import config_io
from tfvae import config_flags
from tfvae import models
from tfvae.models import base
from tfvae.models import interface

# A value other than the default for every knob that some run does not read, valid on its own.
_OTHER = {
    "num_flows": 3, "num_pseudo_inputs": 7, "num_mixture_components": 4, "free_bits": 0.5,
    "warmup_steps": 5, "num_cycles": 2, "conv_filters": (8,), "labeled_batch_size": 16,
}
_LABELED = {"num_classes": 10, "labeled_examples": 100}


def test_the_registry_names_each_family_by_its_config():
  for name, model in models.MODELS.items():
    assert model.config_class.family == name
    assert dataclasses.is_dataclass(model.config_class)
    assert issubclass(model.config_class, base.ModelConfig)
  fv = flags.FlagValues()
  config_flags.define_flags(fv)
  assert set(fv["model"].parser.enum_values) == set(models.MODELS)
  for model in models.MODELS.values():  # every family's knob is a flag
    assert {f.name for f in dataclasses.fields(model.config_class)} <= set(fv)


def test_another_familys_knob_is_refused_from_python_naming_the_families_that_read_it():
  with pytest.raises(config_lib.ConfigError) as raised:
    config_lib.Config(model="ae", beta=4.0)
  assert str(raised.value) == ("--beta is not an option of --model=ae (it is one of "
                               "--model=vae, hvae, pc_vae, cvae).")
  with pytest.raises(config_lib.ConfigError, match="Unknown config key: betta"):
    config_lib.Config(betta=4.0)


def test_on_the_command_line_another_familys_knob_is_ignored_with_one_warning(caplog):
  fv = flags.FlagValues()
  config_flags.define_flags(fv)
  fv(["prog", "--model=ae", "--beta=4", "--latent_dim=5"])
  config = config_flags.from_flags(fv)
  assert config == config_lib.Config(model="ae", latent_dim=5)
  assert [r.getMessage() for r in caplog.records if "has no effect" in r.getMessage()] == [
      "--beta=4.0 has no effect with --model=ae: ignored (the run is recorded without it)."]


def test_a_knob_turned_off_by_another_goes_back_to_its_default_and_one_turned_on_is_kept():
  config = config_lib.Config(training_objective="iwae", free_bits=1.0, num_pseudo_inputs=9,
                             warmup_steps=100, conv_filters=(8,))
  cleaned, messages = config.normalized()
  assert cleaned == config_lib.Config(training_objective="iwae")
  assert sorted(m.split(" has no effect with ")[1].split(":")[0] for m in messages) == [
      "--architecture=mlp", "--beta_schedule=constant", "--prior=standard_normal",
      "--training_objective=iwae"]
  kept = config_lib.Config(prior="vampprior", num_pseudo_inputs=9, beta_schedule="linear",
                           warmup_steps=100, architecture="conv", conv_filters=(8,))
  assert kept.normalized() == (kept, [])
  assert config_lib.Config(model="m2", labeled_batch_size=16).normalized()[0] == (
      config_lib.Config(model="m2"))  # --num_labels=all: every row is labeled


def test_checks_between_knobs_apply_to_the_family_that_reads_them():
  with pytest.raises(config_lib.ConfigError, match="--free_bits=2.0 needs"):
    config_lib.Config(model="vae", free_bits=2.0, prior="vampprior")
  with pytest.raises(config_lib.ConfigError, match="--free_bits=2.0 needs"):
    config_lib.Config(model="hvae", free_bits=2.0)
  with pytest.raises(config_lib.ConfigError, match="--warmup_steps >= 1"):
    config_lib.Config(model="vae", beta_schedule="linear")
  with pytest.raises(config_lib.ConfigError, match="--model=hvae supports"):
    config_lib.Config(model="hvae", posterior="iaf")
  with pytest.raises(config_lib.ConfigError, match="--corruption_level=1.5 must be in"):
    config_lib.Config(model="denoising_ae", corruption_level=1.5)
  config_lib.Config(model="denoising_ae", corruption="gaussian", corruption_level=1.5)


def test_changing_the_family_keeps_the_shared_knobs():
  vae = config_lib.Config(latent_dim=5, hidden_sizes=(32,), beta=4.0, train_steps=9)
  ae = vae.replace(model="sparse_ae", sparsity_weight=0.5)
  assert ae == config_lib.Config(model="sparse_ae", latent_dim=5, hidden_sizes=(32,),
                                 sparsity_weight=0.5, train_steps=9)
  assert ae.replace(model="vae").model.beta == 1.0  # the ae had none: the default


def test_a_run_with_inactive_knobs_resumes_one_without_them_and_back():
  saved = config_lib.Config(num_pseudo_inputs=9, image_shape=(8, 8, 1))  # an old config
  config_io.check_resumable(saved, config_lib.Config(image_shape=(8, 8, 1)))
  config_io.check_resumable(saved.normalized()[0], saved)
  with pytest.raises(config_lib.ConfigError, match="--model: 'vae' in the workdir, 'ae' now"):
    config_io.check_resumable(saved, saved.replace(model="ae"))
  with pytest.raises(config_lib.ConfigError, match="--beta"):
    config_io.check_resumable(saved, saved.replace(beta=0.5))


def _loss(model, batch):
  terms = model.losses(batch, tf.constant([3, 4]), tf.constant(2, tf.int64), training=True)
  return terms["loss"].numpy()


def _batch():
  images = (np.random.default_rng(0).random([6, 8, 8, 1]) > 0.5).astype(np.float32)
  return {"image": tf.constant(images), "label": tf.constant([0, 1, -1, 3, -1, 5], tf.int64),
          "index": tf.range(6)}


@pytest.mark.parametrize("family", sorted(models.MODELS))
@pytest.mark.slow
def test_a_knob_a_family_does_not_read_changes_nothing_it_computes(family):
  """Built with each inactive knob at another value, the model has the same variables and, with
  the same weights, the same training loss on the same batch: `inactive` says what the models
  read."""
  semi = issubclass(models.MODELS[family].config_class, base.SemiSupervisedConfig)
  labeled = semi or issubclass(models.MODELS[family], interface.LabelConditional)  # cvae
  values = dict(model=family, **(_LABELED if labeled else {}))
  reference = tiny_model(**values)
  expected = _loss(reference, _batch())
  config = config_lib.Config(**values)
  inactive = [n for n in config.model.inactive(config) if n != "labeled_batch_size"]
  assert inactive  # conv_filters at least (an MLP)
  for name in inactive:
    model = tiny_model(**values, **{name: _OTHER[name]})
    assert [v.shape for v in model.variables] == [v.shape for v in reference.variables], name
    for mine, theirs in zip(model.variables, reference.variables):
      mine.assign(theirs)
    np.testing.assert_array_equal(_loss(model, _batch()), expected, err_msg=name)


def test_a_knob_the_vae_reads_does_change_the_loss():
  """The check above can fail: a knob the VAE reads changes its loss."""
  reference, model = tiny_model(model="vae"), tiny_model(model="vae", beta=3.0)
  for mine, theirs in zip(model.variables, reference.variables):
    mine.assign(theirs)
  assert not np.allclose(_loss(model, _batch()), _loss(reference, _batch()))


@pytest.mark.slow
def test_train_warns_records_the_run_without_them_and_resumes_without_them(tmp_path):
  workdir = str(tmp_path / "run")
  common = ["--flagfile=configs/quickstart.cfg", "--model=ae", "--train_steps=40",
            "--steps_per_loop=20", "--eval_every=40", "--checkpoint_every=40",
            "--hidden_sizes=32", f"--workdir={workdir}"]
  first = run_module("tfvae.train", *common, "--beta=4", "--free_bits=2")
  for flag in ("--beta=4.0", "--free_bits=2.0"):
    assert f"{flag} has no effect with --model=ae: ignored" in first.stderr
  with open(os.path.join(workdir, "config.json")) as f:
    saved = json.load(f)
  assert saved["model"]["family"] == "ae" and "beta" not in saved["model"]
  again = run_module("tfvae.train", *common)  # without them: the same run, finished
  assert "Nothing left to train" in again.stderr, again.stderr[-2000:]
  assert "has no effect" not in again.stderr


_SCHEDULED = sorted(name for name, model in models.MODELS.items()
                    if issubclass(model.config_class, base.RateScheduleConfig))


def test_the_rate_schedule_is_one_set_of_knobs_shared_by_the_families_that_weight_the_rate():
  assert {"vae", "hvae", "pc_vae", "cvae"} <= set(_SCHEDULED)
  for name, model in models.MODELS.items():  # those without it refuse its knobs
    if name not in _SCHEDULED:
      with pytest.raises(Exception, match="beta"):
        config_lib.Config(model=name, beta=2.0)


@pytest.mark.parametrize("family", _SCHEDULED)
def test_each_family_with_a_rate_schedule_follows_it(family):
  model = tiny_model(model=family, beta=2.0, beta_schedule="linear", warmup_steps=10,
                     **_LABELED)
  assert model.config.model.warmup_end() == 10
  for step, beta in [(0, 0.0), (5, 1.0), (10, 2.0), (99, 2.0)]:
    assert float(model.beta(tf.constant(step, tf.int64))) == beta
  cyclical = config_lib.Config(model=family, beta_schedule="cyclical", warmup_steps=3,
                               num_cycles=2, **_LABELED)
  assert cyclical.model.warmup_end() == 12
  constant = config_lib.Config(model=family, **_LABELED)
  assert constant.model.warmup_end() == 0
  assert {"warmup_steps", "num_cycles"} <= set(constant.model.inactive(constant))
  with pytest.raises(Exception, match="--warmup_steps"):
    config_lib.Config(model=family, beta_schedule="linear", **_LABELED)
