import json
import os

from absl import flags
import pytest

from tfvae import config as config_lib
from tfvae import config_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parse(argv):
  fv = flags.FlagValues()
  flags.DEFINE_string("workdir", "/tmp/x", "", flag_values=fv)
  config_flags.define_flags(fv)
  fv(["prog", *argv])
  return config_flags.from_flags(fv)


def test_flags_match_dataclass_defaults():
  assert _parse([]) == config_lib.Config()


def test_flagfile_includes_another_and_command_line_overrides(tmp_path):
  base = tmp_path / "base.cfg"
  base.write_text("--latent_dim=7\n--hidden_sizes=64,32\n--beta=2.0\n")
  child = tmp_path / "child.cfg"
  child.write_text(f"--flagfile={base}\n--beta=3.0\n")
  config = _parse([f"--flagfile={child}", "--latent_dim=5"])
  assert config.latent_dim == 5  # command line wins over the included file
  assert config.beta == 3.0  # the including file wins over the included one
  assert config.hidden_sizes == (64, 32)


@pytest.mark.parametrize("argv, flag", [
    (["--latent_dim=0"], "--latent_dim"),
    (["--beta=-1"], "--beta"),
    (["--hidden_sizes=64,x"], "--hidden_sizes"),
    (["--hidden_sizes=64,-3"], "--hidden_sizes"),
    (["--validation_fraction=1.5"], "--validation_fraction"),
    (["--beta_schedule=linear"], "--beta_schedule"),  # needs --warmup_steps
    (["--free_bits=-0.1"], "--free_bits"),
    (["--model=denoising_ae", "--corruption_level=1.0"], "--corruption_level"),  # must be < 1
    (["--contraction_weight=-1"], "--contraction_weight"),
    (["--num_cycles=0"], "--num_cycles"),
])
def test_invalid_values_name_the_flag(argv, flag):
  with pytest.raises(ValueError, match=flag):
    _parse(argv)


def test_unknown_choice_is_rejected_by_flag_parsing():
  with pytest.raises(flags.IllegalFlagValueError, match="likelihood"):
    _parse(["--likelihood=gamma"])


def test_json_round_trip(tmp_path):
  config = config_lib.Config(latent_dim=3, hidden_sizes=(10, 20), image_shape=(8, 8, 1))
  config_lib.save(config, str(tmp_path))
  assert json.loads((tmp_path / "config.json").read_text())["hidden_sizes"] == [10, 20]
  assert config_lib.load(str(tmp_path)) == config


def test_load_missing_config_names_the_path(tmp_path):
  with pytest.raises(FileNotFoundError, match="config.json"):
    config_lib.load(str(tmp_path))


def test_check_resumable_allows_longer_training_but_not_another_model():
  saved = config_lib.Config(train_steps=100)
  config_lib.check_resumable(saved, config_lib.Config(train_steps=500))
  with pytest.raises(ValueError, match="--latent_dim"):
    config_lib.check_resumable(saved, config_lib.Config(train_steps=100, latent_dim=3))


@pytest.mark.parametrize("likelihood, binarization, warns", [
    ("bernoulli", "dynamic", False), ("bernoulli", "static", False),
    ("bernoulli", "none", True), ("bernoulli", "dequantize", True),
    ("normal", "dynamic", True), ("laplace", "static", True),
    ("normal", "dequantize", False), ("continuous_bernoulli", "none", False),
    ("normal_per_pixel", "none", False),
])
def test_likelihood_mismatch_warns_in_one_line_saying_why(likelihood, binarization, warns):
  message = config_lib.likelihood_mismatch(
      config_lib.Config(likelihood=likelihood, binarization=binarization))
  assert (message is not None) == warns
  if warns:
    assert "\n" not in message and f"--likelihood={likelihood}" in message
    assert "not a log-likelihood" in message or "not log-likelihoods" in message


TRAIN_CONFIGS = sorted(
    name for name in os.listdir(os.path.join(ROOT, "configs"))
    if name.endswith(".cfg") and not name.startswith(("gmm_", "tune_")))


@pytest.mark.parametrize("name", TRAIN_CONFIGS)
def test_every_shipped_training_config_parses(name, monkeypatch):
  monkeypatch.chdir(ROOT)  # flagfiles include each other by repo-relative paths
  config = _parse([f"--flagfile=configs/{name}"])
  assert config.epochs > 0 or config.train_steps > 0
  assert config_lib.likelihood_mismatch(config) is None  # no shipped config warns


def test_every_field_has_a_role_and_help_and_the_rules_follow_from_the_roles():
  """What may change on resume (RESUMABLE_ROLES) and on continuing a search
  (CONTINUABLE_ROLES) is read off the fields' roles, and the flag help is the field's."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  for f in dataclasses.fields(config_lib.Config):
    assert f.metadata["role"] in config_lib.ROLES and len(f.metadata["help"]) > 10, f.name
  saved = config_lib.Config(image_shape=(8, 8, 1))
  for name, value in (("epochs", 20), ("eval_every", 5), ("strategy", "one_device"),
                      ("jit_compile", False), ("clip_grad_norm", 1.0), ("num_classes", 3)):
    config_lib.check_resumable(saved, dataclasses.replace(saved, **{name: value}))
  for name, value in (("latent_dim", 3), ("learning_rate", 0.1), ("dataset", "mnist"),
                      ("test_fraction", 0.3), ("image_shape", (28, 28, 1))):
    with pytest.raises(config_lib.ConfigError, match=f"--{name}: "):
      config_lib.check_resumable(saved, dataclasses.replace(saved, **{name: value}))
  continued = dataclasses.replace(saved, strategy="one_device", epochs=20, latent_dim=3)
  assert [n for n, _, _ in config_lib.differences(saved, continued,
                                                  config_lib.CONTINUABLE_ROLES)] == [
                                                      "latent_dim", "epochs"]
  fv = flags.FlagValues()
  config_flags.define_flags(fv)
  assert fv["standardize"].help == config_lib.Config.__dataclass_fields__[
      "standardize"].metadata["help"]
  assert "image_shape" not in fv and "data_fingerprint" not in fv  # resolved, not flags
