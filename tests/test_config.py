import json
import os

from absl import flags
import pytest

from tfvae import config as config_lib
from tfvae import config_io
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
  assert config.model.latent_dim == 5  # command line wins over the included file
  assert config.model.beta == 3.0  # the including file wins over the included one
  assert config.model.hidden_sizes == (64, 32)


@pytest.mark.parametrize("argv, flag", [
    (["--latent_dim=0"], "--latent_dim"),
    (["--beta=-1"], "--beta"),
    (["--hidden_sizes=64,x"], "--hidden_sizes"),
    (["--hidden_sizes=64,-3"], "--hidden_sizes"),
    (["--validation_fraction=1.5"], "--validation_fraction"),
    (["--beta_schedule=linear"], "--beta_schedule"),  # needs --warmup_steps
    (["--free_bits=-0.1"], "--free_bits"),
    (["--model=denoising_ae", "--corruption_level=1.0"], "--corruption_level"),  # must be < 1
    (["--model=contractive_ae", "--contraction_weight=-1"], "--contraction_weight"),
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
  config_io.save(config, str(tmp_path))
  assert json.loads((tmp_path / "config.json").read_text())["model"]["hidden_sizes"] == [10, 20]
  assert config_io.load(str(tmp_path)) == config


def test_load_missing_config_names_the_path(tmp_path):
  with pytest.raises(FileNotFoundError, match="config.json"):
    config_io.load(str(tmp_path))


def test_check_resumable_allows_longer_training_but_not_another_model():
  saved = config_lib.Config(train_steps=100)
  config_io.check_resumable(saved, config_lib.Config(train_steps=500))
  with pytest.raises(ValueError, match="--latent_dim"):
    config_io.check_resumable(saved, config_lib.Config(train_steps=100, latent_dim=3))


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
  assert config.training.epochs > 0 or config.training.train_steps > 0
  assert config_lib.likelihood_mismatch(config) is None  # no shipped config warns


def test_every_field_has_a_role_and_help_and_the_rules_follow_from_the_roles():
  """What may change on resume (RESUMABLE_ROLES) and on continuing a search
  (CONTINUABLE_ROLES) is read off the fields' roles, and the flag help is the field's."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  fields = [f for cls in (*config_lib.SHARED.values(), *config_lib.families().values())
            for f in dataclasses.fields(cls)]
  for f in fields:
    assert f.metadata["role"] in config_lib.ROLES and len(f.metadata["help"]) > 10, f.name
  saved = config_lib.Config(image_shape=(8, 8, 1))
  for name, value in (("epochs", 20), ("eval_every", 5), ("strategy", "one_device"),
                      ("jit_compile", False), ("clip_grad_norm", 1.0), ("num_classes", 3)):
    config_io.check_resumable(saved, saved.replace(**{name: value}))
  for name, value in (("latent_dim", 3), ("learning_rate", 0.1), ("dataset", "mnist"),
                      ("test_fraction", 0.3), ("image_shape", (28, 28, 1))):
    with pytest.raises(config_lib.ConfigError, match=f"--{name}: "):
      config_io.check_resumable(saved, saved.replace(**{name: value}))
  continued = saved.replace(strategy="one_device", epochs=20, latent_dim=3)
  assert [n for n, _, _ in config_lib.differences(saved, continued,
                                                  config_lib.CONTINUABLE_ROLES)] == [
                                                      "latent_dim", "epochs"]
  fv = flags.FlagValues()
  config_flags.define_flags(fv)
  assert fv["standardize"].help == {f.name: f for f in fields}["standardize"].metadata["help"]
  assert fv["beta"].help == {f.name: f for f in fields}["beta"].metadata["help"]
  assert "image_shape" not in fv and "data_fingerprint" not in fv  # resolved, not flags


@pytest.mark.parametrize("values, text", [
    (dict(latent_dim="16"), "--latent_dim='16' must be an integer, not str"),
    (dict(latent_dim=16.5), "--latent_dim=16.5 must be an integer, not float"),
    (dict(latent_dim=True), "--latent_dim=True must be an integer, not bool"),
    (dict(num_labels=5), "--num_labels=5 must be a string ('all' or a positive integer"),
    (dict(beta="2"), "--beta='2' must be a number, not str"),
    (dict(standardize=1), "--standardize=1 must be true or false, not int"),
    (dict(hidden_sizes=(64, 2.5)), "--hidden_sizes=(64, 2.5) must be a list of integers"),
    (dict(hidden_sizes=64), "--hidden_sizes=64 must be a list of ints, not int"),
    (dict(feature_mean=(0.0, float("nan"))), "--feature_mean=(0.0, nan) must be a list of "
                                              "finite numbers"),
])
def test_python_arguments_of_another_type_are_refused_naming_the_argument(values, text):
  with pytest.raises(config_lib.ConfigError) as raised:
    config_lib.Config(**values)
  assert str(raised.value).startswith(text)


def test_numpy_numbers_and_lists_are_stored_as_python_numbers_and_tuples(tmp_path):
  import numpy as np  # pylint: disable=import-outside-toplevel
  config = config_lib.Config(latent_dim=np.int64(4), beta=np.float32(2.0), hidden_sizes=[8, 4],
                             image_shape=(np.int64(8), 8, 1))
  assert isinstance(config.model.latent_dim, int) and isinstance(config.model.beta, float)
  assert config.model.hidden_sizes == (8, 4) and config.data.image_shape == (8, 8, 1)
  assert config == config_lib.Config(latent_dim=4, beta=2.0, hidden_sizes=(8, 4),
                                     image_shape=(8, 8, 1))
  config_io.save(config, str(tmp_path))  # JSON takes them
  assert config_io.load(str(tmp_path)) == config


@pytest.mark.parametrize("argv, text", [
    (["--learning_rate=nan"], "--learning_rate=nan must be a finite number."),
    (["--learning_rate=inf"], "--learning_rate=inf must be a finite number."),
    (["--beta=nan"], "--beta=nan must be a finite number."),
    (["--beta=inf"], "--beta=inf must be a finite number."),
    (["--free_bits=inf"], "--free_bits=inf must be a finite number."),
    (["--seed=-1"], "--seed=-1 must be in 0..2147483647"),
    ([f"--seed={2**40}"], f"--seed={2**40} must be in 0..2147483647"),
    (["--label_seed=-1"], "--label_seed=-1 must be in 0..2147483647"),
])
def test_non_finite_rates_and_seeds_out_of_range_are_refused_naming_the_flag(argv, text):
  with pytest.raises(config_lib.ConfigError) as raised:
    _parse(argv)
  assert str(raised.value) == text or str(raised.value).startswith(text)
  _parse([argv[0].split("=")[0] + "=1"])  # the flag itself is fine


def test_a_config_json_holding_a_value_of_another_type_is_refused_naming_file_and_key(tmp_path):
  config_io.save(config_lib.Config(image_shape=(8, 8, 1)), str(tmp_path))
  path = tmp_path / "config.json"
  for section, key, value, text in (
      ("model", "latent_dim", 16.5, "--latent_dim=16.5 must be an integer"),
      ("training", "learning_rate", float("nan"), "--learning_rate=nan must be a finite number")):
    values = json.loads(path.read_text())
    changed = {**values, section: {**values[section], key: value}}
    path.write_text(json.dumps(changed))  # json.dumps writes NaN as NaN
    with pytest.raises(config_lib.ConfigError) as raised:
      config_io.load(str(tmp_path))
    assert str(raised.value).startswith(f"{path} is not a tfvae config (ConfigError: {text}")
    path.write_text(json.dumps(values))
    config_io.load(str(tmp_path))


@pytest.mark.parametrize("flag", ["--seed=-1", "--seed=1099511627776", "--learning_rate=nan",
                                  "--learning_rate=inf", "--beta=nan", "--free_bits=inf"])
@pytest.mark.slow
def test_train_refuses_them_in_one_line_before_anything_is_written(tmp_path, flag):
  from conftest import run_module  # pylint: disable=import-outside-toplevel
  workdir = tmp_path / "run"
  proc = run_module("tfvae.train", "--flagfile=configs/quickstart.cfg", "--train_steps=20",
                    f"--workdir={workdir}", flag, check=False)
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-3000:]
  assert lines[0].startswith(f"tfvae.train: {flag}") and "must be" in lines[0], lines[0]
  assert not workdir.exists()  # no lock, no config.json (with a NaN token) written
