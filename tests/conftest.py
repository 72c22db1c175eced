"""Test setup: two logical CPU devices (multi-replica tests), quiet TF, shared data fixtures."""

import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_model(**kwargs):
  """A small model of the Config with these overrides, on 8x8x1 images, seeded weights."""
  import keras  # pylint: disable=import-outside-toplevel
  from tfvae import config as config_lib  # pylint: disable=import-outside-toplevel
  from tfvae import models  # pylint: disable=import-outside-toplevel
  keras.utils.set_random_seed(0)
  values = dict(hidden_sizes=(16,), latent_dim=3, image_shape=(8, 8, 1))
  values.update(kwargs)
  return models.build(config_lib.Config(**values))


def saved_config(workdir):
  """WORKDIR/config.json as one flat dict of flag names (the family as "model"; lists for
  tuples), whatever its format."""
  from tfvae import config_io  # pylint: disable=import-outside-toplevel
  return {k: list(v) if isinstance(v, tuple) else v
          for k, v in config_io.load(str(workdir)).flat().items()}


def checkpoint_step(workdir):
  """The step of the checkpoint CheckpointManager's index points at (None if there is none)."""
  latest = tf.train.latest_checkpoint(os.path.join(workdir, "ckpt"))
  return int(latest.rsplit("-", 1)[1]) if latest else None


def run_module(module, *args, check=True, env=None):
  """Runs `python -m module args...` from the repo root; returns the CompletedProcess."""
  proc = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                        text=True, env={**os.environ, **(env or {})}, timeout=1200)
  if check and proc.returncode != 0:
    raise AssertionError(f"{module} {' '.join(args)} exited {proc.returncode}:\n"
                         f"{proc.stderr[-5000:]}")
  return proc


@pytest.fixture(params=["absolute", "relative"])
def workdir(request, tmp_path, monkeypatch):
  """A run folder as an absolute path, and as a path relative to the current directory (ROOT,
  where run_module starts the commands), as the README's examples give it."""
  if request.param == "absolute":
    return str(tmp_path)
  monkeypatch.chdir(ROOT)
  return os.path.relpath(tmp_path, ROOT)


# Where the tests look for Debian's Fashion-MNIST files (default: where the apt package puts them).
FASHION_MNIST_SOURCE = "TFVAE_TEST_FASHION_MNIST_SOURCE"
_NO_FASHION_MNIST = ("Debian's dataset-fashion-mnist is not installed: the tests that read real "
                     "Fashion-MNIST are skipped. Install it (apt-get install dataset-fashion-mnist)"
                     ", or run `bash .ci/run`, which installs everything and runs the tests.")


@pytest.fixture(scope="session")
def fashion_mnist_dir(tmp_path_factory):
  """A TFDS data_dir with the real fashion_mnist prepared from Debian's files. Without them the
  test is skipped, loudly (a banner at the end of the run); under CI (CI=true) it fails."""
  from tfvae.data import fashion_mnist_local  # pylint: disable=import-outside-toplevel
  source = os.environ.get(FASHION_MNIST_SOURCE) or fashion_mnist_local.DEBIAN_DIR
  if not fashion_mnist_local.available(source):
    if os.environ.get("CI", "").lower() in ("1", "true"):
      pytest.fail("CI=true and Debian's dataset-fashion-mnist is not installed: .ci/run installs "
                  "it before the tests (apt-get install dataset-fashion-mnist).")
    pytest.skip(_NO_FASHION_MNIST)
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  fashion_mnist_local.prepare(data_dir, source)
  return data_dir


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter):
  """A passing run that skipped the real-data tests says so in its last lines."""
  skipped = [r for r in terminalreporter.stats.get("skipped", [])
             if "dataset-fashion-mnist is not installed" in str(r.longrepr)]
  if skipped:
    terminalreporter.write_sep("!", f"{len(skipped)} TESTS SKIPPED: NO REAL FASHION-MNIST",
                               red=True, bold=True)
    terminalreporter.write_line(_NO_FASHION_MNIST, red=True, bold=True)
