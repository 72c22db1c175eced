"""The entry points as a user meets them: one-line errors with status 2, --help, quiet logs,
progress without a terminal."""

import os
import re

from absl import logging
import pytest
import tensorflow_datasets as tfds

from conftest import run_module
from tfvae.training import progress
from tfvae.data import sources

QUICK = ["--flagfile=configs/quickstart.cfg", "--train_steps=40", "--eval_every=40",
         "--steps_per_loop=20"]


def _one_line_error(proc, program, text):
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr[-3000:]
  assert lines[0].startswith(f"{program}: ") and text in lines[0], lines[0]


@pytest.mark.parametrize("module", ["tfvae.evaluate", "tfvae.export", "tfvae.visualize"])
@pytest.mark.slow
def test_a_mistyped_workdir_is_one_line_and_status_2(module, tmp_path):
  proc = run_module(module, f"--workdir={tmp_path / 'no_such_run'}", check=False)
  _one_line_error(proc, module, "config.json does not exist: is --workdir=")
  assert not os.path.exists(tmp_path / "no_such_run")


@pytest.mark.parametrize("module", ["tfvae.evaluate", "tfvae.export", "tfvae.visualize"])
@pytest.mark.slow
def test_a_run_without_a_checkpoint_is_one_line_and_status_2(module, tmp_path):
  from tfvae import config as config_lib  # pylint: disable=import-outside-toplevel
  from tfvae import config_io  # pylint: disable=import-outside-toplevel
  config_io.save(config_lib.Config(image_shape=(8, 8, 1), pixel_levels=17), str(tmp_path))
  before = sorted(os.listdir(tmp_path))
  proc = run_module(module, f"--workdir={tmp_path}", check=False)
  _one_line_error(proc, module, f"No checkpoint in {tmp_path / 'ckpt'}: train first.")
  after = sorted(os.listdir(tmp_path))
  if ".tfvae.lock" in after:  # taken (export, visualize) and released
    assert os.path.getsize(tmp_path / ".tfvae.lock") == 0
    after.remove(".tfvae.lock")
  assert after == before


@pytest.mark.parametrize("module,args,text", [
    ("tfvae.train", ["--latent_dim=abc"], "flag --latent_dim=abc"),
    ("tfvae.train", ["--no_such_flag=1"], "Unknown command line flag 'no_such_flag'"),
    ("tfvae.train", ["--flagfile=configs/no_such.cfg"], "no_such.cfg"),
    ("tfvae.train", ["positional"], "unexpected arguments: positional"),
    ("tfvae.evaluate", [], "--workdir"),  # required
    ("tfvae.tune", ["--max_trials=x"], "flag --max_trials=x"),
    ("tfvae.gmm", ["--num_components=0"], "--num_components"),
])
@pytest.mark.slow
def test_flag_errors_are_one_line_and_status_2(module, args, text):
  _one_line_error(run_module(module, *args, check=False), module, text)


@pytest.mark.parametrize("dataset,text", [
    ("fashion-mnist", "is neither 'digits', a TFDS dataset name (see "
                      "https://www.tensorflow.org/datasets/catalog) nor an existing folder or "
                      ".npz, .npy or .csv file. Did you mean fashion_mnist"),
    ("/tmp/some/folder", "--dataset=/tmp/some/folder does not exist (a folder of images, or an "
                         ".npz, .npy or .csv file)."),
])
@pytest.mark.slow
def test_a_mistyped_dataset_or_a_missing_path_is_one_line(dataset, text, tmp_path):
  proc = run_module("tfvae.train", *QUICK, f"--dataset={dataset}",
                    f"--workdir={tmp_path / 'run'}", check=False)
  _one_line_error(proc, "tfvae.train", text)
  assert not os.path.exists(tmp_path / "run")


def test_offline_a_dataset_to_download_fails_before_tfds_tries(tmp_path, monkeypatch):
  monkeypatch.setattr(sources, "can_reach_download_host", lambda timeout=3.0: False)

  def no_download(*args, **kwargs):
    raise AssertionError("tfds.load was called: it would retry the download for minutes")

  monkeypatch.setattr(tfds, "load", no_download)
  with pytest.raises(sources.DataError, match=r"--dataset=mnist is not prepared in --data_dir="
                     r".* and TFDS's download host storage.googleapis.com cannot be reached"):
    sources.tfds_dataset("mnist", str(tmp_path))


def test_the_download_host_probe_answers(monkeypatch):
  import socket  # pylint: disable=import-outside-toplevel

  def refused(*args, **kwargs):
    raise OSError("unreachable")

  monkeypatch.setattr(socket, "create_connection", refused)
  assert not sources.can_reach_download_host()


@pytest.mark.slow
def test_help_lists_the_model_flags():
  proc = run_module("tfvae.train", "--help")
  for flag in ("--latent_dim", "--beta", "--dataset", "--workdir", "--[no]overwrite"):
    assert flag in proc.stdout, flag
  assert "--xla_" not in proc.stdout and "--test_srcdir" not in proc.stdout  # not --helpfull
  tune = run_module("tfvae.tune", "--help").stdout
  assert "--max_trials" in tune and "--latent_dim" in tune


@pytest.mark.slow
def test_a_default_run_prints_tfvae_lines_only_and_verbosity_brings_the_rest(tmp_path):
  quiet = run_module("tfvae.train", *QUICK, f"--workdir={tmp_path / 'quiet'}")
  lines = quiet.stderr.strip().splitlines()
  tfvae_line = re.compile(r"^[IWE]\d{4} [\d:.]+ +\d+ (run|train|progress)\.py:\d+\] ")
  assert lines and all(tfvae_line.match(line) for line in lines), quiet.stderr[-3000:]
  assert "Training from step 0 to 40" in quiet.stderr and "Done: test" in quiet.stderr
  loud = run_module("tfvae.train", *QUICK, "--verbosity=1", f"--workdir={tmp_path / 'loud'}")
  assert "absl::InitializeLog" in loud.stderr or "port.cc" in loud.stderr
  assert "Sharding callback duration" in loud.stderr  # TF's INFO lines are back


def test_without_a_terminal_progress_is_a_line_every_interval(caplog):
  now = [0.0]
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.INFO)
  try:
    with caplog.at_level("INFO"):
      shown = progress.Progress(total=1000, start=100, batch_size=64, interval_s=30, bar=False,
                                clock=lambda: now[0])
      for step in range(200, 1001, 100):  # 100 steps every 10 s
        now[0] += 10
        shown.update(step)
  finally:
    logging.set_verbosity(verbosity)
  lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("progress:")]
  assert lines == ["progress: step 400/1000 (40%)  640 examples/s  ETA 0:01:00",
                   "progress: step 700/1000 (70%)  640 examples/s  ETA 0:00:30",
                   "progress: step 1000/1000 (100%)  640 examples/s  ETA 0:00:00"]


def test_every_command_goes_through_the_python_api():
  """Issue 34 step 2: the commands (and the tuner) call tfvae.fit / tfvae.load / TrainedModel,
  never the trainer, the restore or the exporter directly."""
  import os  # pylint: disable=import-outside-toplevel
  from conftest import ROOT  # pylint: disable=import-outside-toplevel
  for name in ("train", "evaluate", "export", "visualize", "tune", "tuning/search"):
    with open(os.path.join(ROOT, "tfvae", f"{name}.py")) as f:
      source = f.read()
    for reach in ("tfvae.training", "import serving", "restore_model", "train_and_evaluate"):
      assert reach not in source, f"tfvae/{name}.py: {reach}"
