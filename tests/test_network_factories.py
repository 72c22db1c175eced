"""--encoder/--decoder=module:function (tfvae/network_factories.py: from_config): a factory's
networks trained through `python -m tfvae.train`, recorded in config.json, loaded in a fresh
process that imports the module; the one-line errors before anything is written; a kill -9
resume with them. The factories are tests/network_factories.py."""

import dataclasses
import json
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

import network_factories
import tfvae
from conftest import checkpoint_step, ROOT, run_module
from tfvae import network_factories as factories_lib
from tfvae import user_networks
from tfvae.errors import ConfigError
from tfvae.models import base

TESTS = os.path.dirname(os.path.abspath(__file__))
FACTORIES = ["--encoder=network_factories:encoder", "--decoder=network_factories:decoder"]
QUICK = ["--flagfile=configs/quickstart.cfg", "--steps_per_loop=25", "--eval_every=1000",
         "--eval_importance_samples=0", "--latent_dim=3"]


def _env(with_factories=True):
  """The environment of a command: this folder on PYTHONPATH (where network_factories is)."""
  path = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
          if p and os.path.abspath(p) != TESTS]
  return {"TF_CPP_MIN_LOG_LEVEL": "3",
          "PYTHONPATH": os.pathsep.join(([TESTS] if with_factories else []) + path)}


def _config(**kwargs):
  values = dict(latent_dim=3, hidden_sizes=(16,), train_steps=10, steps_per_loop=10,
                eval_every=0, eval_importance_samples=0)
  values.update(kwargs)
  return tfvae.Config(**values)


@pytest.mark.parametrize("value", ["network_factories", "network_factories:", ":encoder",
                                   "network-factories:encoder", "a..b:f", "m:f:g", "m:f()"])
def test_a_factory_of_another_form_is_one_line_naming_the_flag(value):
  with pytest.raises(ConfigError) as raised:
    _config(decoder=value)
  assert str(raised.value).startswith(f"--decoder={value!r} must be module.path:function")
  assert "\n" not in str(raised.value)
  _config(decoder="a.b_c.d1:make_decoder")  # the form is all that is checked here


@dataclasses.dataclass(frozen=True)
class _OwnNetworksConfig(base.ModelConfig):
  """A family that takes no user networks (ModelConfig.accepts() declares none)."""
  family = "own_networks"


@pytest.mark.parametrize("family", ["vae", "hvae", "pc_vae", "m2", "ae", "cvae"])
def test_every_family_takes_factories(family):
  config = _config(model=family, encoder="m:f", decoder="m:g",
                   **({"num_labels": "50"} if family in ("pc_vae", "m2") else {}))
  assert (config.model.encoder, config.model.decoder) == ("m:f", "m:g")


def test_a_family_that_builds_its_own_networks_refuses_a_factory():
  with pytest.raises(ConfigError) as raised:
    _OwnNetworksConfig(encoder="m:f")
  assert str(raised.value) == "--encoder=m:f: --model=own_networks builds its own networks."


@pytest.mark.parametrize("value,message", [
    ("no_such_module.sub:encoder",
     "--encoder=no_such_module.sub:encoder: cannot import no_such_module.sub "
     "(ModuleNotFoundError: No module named 'no_such_module') (is its folder on PYTHONPATH?)."),
    ("network_factories:missing",
     "--encoder=network_factories:missing: network_factories ("),
    ("network_factories:NOT_CALLABLE",
     "--encoder=network_factories:NOT_CALLABLE: network_factories ("),
    ("network_factories:raises",
     "--encoder=network_factories:raises: raises((8, 8, 1), 3) failed (ValueError: no network "
     "for (8, 8, 1) and 3)."),
    ("network_factories:not_a_model",
     "--encoder=network_factories:not_a_model: not_a_model((8, 8, 1), 3) returned a str, not a "
     "keras.Model."),
], ids=["no_module", "no_function", "not_callable", "raises", "not_a_model"])
def test_a_factory_that_fails_is_one_line_before_anything_is_written(tmp_path, value, message):
  with pytest.raises(user_networks.NetworkError) as raised:
    tfvae.fit(_config(encoder=value), str(tmp_path / "run"))
  assert str(raised.value).startswith(message) and "\n" not in str(raised.value)
  if "NOT_CALLABLE" in value:
    assert str(raised.value).endswith("has no function NOT_CALLABLE (int, not callable).")
  assert not (tmp_path / "run").exists()


def test_a_network_given_and_named_by_factory_is_refused_as_ambiguous(tmp_path):
  encoder = network_factories.encoder((8, 8, 1), 3)
  with pytest.raises(user_networks.NetworkError) as raised:
    tfvae.fit(_config(encoder="network_factories:encoder"), str(tmp_path / "run"),
              encoder=encoder)
  assert str(raised.value) == ("encoder: given both as a network (encoder=) and by the config "
                               "(--encoder=network_factories:encoder): pass one of them.")
  assert not (tmp_path / "run").exists()


def test_a_config_naming_a_factory_never_builds_tfvaes_own_network_in_its_place():
  from tfvae import models  # pylint: disable=import-outside-toplevel
  config = _config(decoder="network_factories:decoder").replace(image_shape=(8, 8, 1))
  with pytest.raises(user_networks.NetworkError, match=r"^--decoder=network_factories:decoder:"
                     " the config names a factory, but no network was given"):
    models.build(config)
  parts = factories_lib.from_config(config)
  assert parts.encoder is None and isinstance(parts.decoder, keras.Model)
  model = models.build(config, parts=parts)
  assert [layer.name for layer in model.decoder.net.layers][:2] == ["factory_hidden",
                                                                    "factory_params"]


@pytest.mark.parametrize("family,width", [("hvae", 6), ("m2", 13), ("cvae", 13)])
def test_a_decoder_factory_built_on_its_first_call_takes_the_familys_wider_input(family,
                                                                                width):
  from tfvae import models, network_checks  # pylint: disable=import-outside-toplevel
  config = _config(model=family, encoder="network_factories:encoder",
                   decoder="network_factories:any_width_decoder",
                   **({"num_labels": "50"} if family == "m2" else {})).replace(
                       image_shape=(8, 8, 1), num_classes=10, labeled_examples=50)
  parts = factories_lib.from_config(config)
  network_checks.check(parts, config)
  model = models.build(config, seed=0, parts=parts)
  assert model.decoder.net.inputs[0].shape[-1] == width  # [z1, z2] / [z, y_onehot] / [z, c]
  assert model.decoder.net.name == "factory_decoder"
  # A factory that fixes the input at latent_dim is refused in one line naming the width.
  config = config.replace(decoder="network_factories:decoder")
  with pytest.raises(user_networks.NetworkError, match=rf"^decoder: expected input .* \[B, "
                     rf"{width}\] .*, got a network whose input is \[None, 3\]\.$"):
    network_checks.check(factories_lib.from_config(config), config)


def test_the_factorys_initial_weights_are_the_runs_seed():
  config = _config(encoder="network_factories:encoder").replace(image_shape=(8, 8, 1))
  first, again = (factories_lib.from_config(config).encoder for _ in range(2))
  other = factories_lib.from_config(config.replace(seed=1)).encoder
  for a, b in zip(first.weights, again.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert not np.array_equal(first.weights[0].numpy(), other.weights[0].numpy())


def test_the_cli_refuses_a_module_it_cannot_import_in_one_line(tmp_path):
  workdir = tmp_path / "run"
  proc = run_module("tfvae.train", *QUICK, *FACTORIES, "--train_steps=10",
                    f"--workdir={workdir}", check=False, env=_env(with_factories=False))
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
  assert proc.stderr.strip().splitlines()[-1] == (
      "tfvae.train: --encoder=network_factories:encoder: cannot import network_factories "
      "(ModuleNotFoundError: No module named 'network_factories') (is its folder on "
      "PYTHONPATH?).")
  assert not workdir.exists()


@pytest.mark.slow
def test_factories_train_are_recorded_and_a_fresh_process_loads_the_run(tmp_path):
  workdir = str(tmp_path / "run")
  run_module("tfvae.train", *QUICK, *FACTORIES, "--train_steps=50", f"--workdir={workdir}",
             env=_env())
  saved = json.load(open(os.path.join(workdir, "config.json")))["model"]
  assert saved["encoder"] == "network_factories:encoder"
  assert saved["decoder"] == "network_factories:decoder"
  assert sorted(os.listdir(os.path.join(workdir, "networks"))) == ["decoder.json",
                                                                   "encoder.json"]
  # The trained encoder is the factory's network, trained from the weights it was built with.
  model = tfvae.load(workdir)
  body = model.model.encoder.body
  assert [layer.name for layer in body.layers] == ["factory_conv", "flatten",
                                                   "factory_features", "factory_halve"]
  assert isinstance(body.layers[-1], network_factories.Halve)
  built = factories_lib.from_config(model.config).encoder
  assert [w.shape for w in body.weights] == [w.shape for w in built.weights]
  assert not np.array_equal(body.weights[0].numpy(), built.weights[0].numpy())  # trained
  # A fresh process loads it from the workdir, importing the module config.json names.
  proc = run_module("tfvae.evaluate", f"--workdir={workdir}", "--split=test",
                    "--num_importance_samples=5", env=_env())
  assert "digits test (359 examples, step 50)" in proc.stderr, proc.stderr[-3000:]
  # Without the module importable, loading says so in one line (its class is registered there).
  proc = run_module("tfvae.evaluate", f"--workdir={workdir}", check=False,
                    env=_env(with_factories=False))
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
  assert proc.stderr.strip().splitlines()[-1].startswith(
      "tfvae.evaluate: --encoder=network_factories:encoder: cannot import network_factories")
  # Resuming calls the factory again: the same network, so the run goes on.
  proc = run_module("tfvae.train", *QUICK, *FACTORIES, "--train_steps=75",
                    f"--workdir={workdir}", env=_env())
  assert "at step 50 of 75" in proc.stderr


def _final(workdir):
  results = json.load(open(os.path.join(workdir, "eval.json")))
  return results["step"], results[results["final"]["test"]]


@pytest.mark.slow
def test_kill_9_with_factories_then_rerun_gives_the_uninterrupted_result(tmp_path):
  args = [*QUICK, *FACTORIES, "--train_steps=1500", "--checkpoint_every=100"]
  straight = str(tmp_path / "straight")
  run_module("tfvae.train", *args, f"--workdir={straight}", env=_env())

  killed = str(tmp_path / "killed")
  proc = subprocess.Popen([sys.executable, "-m", "tfvae.train", *args, f"--workdir={killed}"],
                          cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, env={**os.environ, **_env()})
  deadline = 300
  import time  # pylint: disable=import-outside-toplevel
  start = time.time()
  while checkpoint_step(killed) is None:
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    assert time.time() - start < deadline, "no checkpoint was written"
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.communicate()
  saved = checkpoint_step(killed)
  assert saved is not None and saved < 1500, saved
  rerun = run_module("tfvae.train", *args, f"--workdir={killed}", env=_env())
  assert f"at step {saved} of 1500" in rerun.stderr

  step, metrics = _final(killed)
  step_straight, metrics_straight = _final(straight)
  assert step == step_straight == 1500
  for name in ("elbo", "rate", "distortion"):
    assert metrics[name] == pytest.approx(metrics_straight[name], rel=1e-5), name
  a, b = tfvae.load(killed).model, tfvae.load(straight).model
  assert len(a.variables) == len(b.variables)
  for x, y in zip(a.variables, b.variables):
    np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-5, atol=1e-6)
