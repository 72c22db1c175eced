"""One writer per workdir (tfvae/lock.py): a second command is refused, naming the first."""

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import checkpoint_step, ROOT, run_module
from tfvae import lock
from tfvae.errors import ConfigError

QUICK = ["--flagfile=configs/quickstart.cfg", "--steps_per_loop=25", "--eval_every=1000",
         "--eval_importance_samples=0"]

_HOLDER = ("import sys; from tfvae import lock; held = lock.hold(sys.argv[1], 'the holder'); "
           "held.__enter__(); print('held', flush=True); sys.stdin.read()")


@pytest.fixture
def holder(tmp_path):
  """A process that holds tmp_path/run's lock until it is killed."""
  workdir = str(tmp_path / "run")
  proc = subprocess.Popen([sys.executable, "-c", _HOLDER, workdir], cwd=ROOT,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
  assert proc.stdout.readline().strip() == "held"
  yield workdir, proc
  proc.kill()
  proc.wait()


def test_a_second_holder_is_refused_with_the_first_ones_pid_host_and_command(holder):
  workdir, proc = holder
  with pytest.raises(lock.WorkdirInUse) as refused:
    with lock.hold(workdir):
      pass
  message = str(refused.value)
  assert f"--workdir={workdir} is in use by pid {proc.pid} on " in message
  assert "(the holder), since 20" in message


def test_loading_a_run_whose_training_has_not_written_config_json_names_the_holder(holder):
  # Before: "config.json does not exist: is --workdir a tfvae run?", with a training running.
  import tfvae  # pylint: disable=import-outside-toplevel
  workdir, proc = holder
  with pytest.raises(lock.WorkdirInUse, match=rf"--workdir={workdir} has no config.json or "
                     rf"checkpoint yet: it is in use by pid {proc.pid} on .*\(the holder\)"):
    tfvae.load(workdir)
  assert lock.holder(workdir).startswith(f"pid {proc.pid} on ")
  proc.kill()
  proc.wait()
  assert lock.holder(workdir) is None
  with pytest.raises(FileNotFoundError, match="is --workdir=.* a tfvae run"):
    tfvae.load(workdir)  # no holder: not a run


@pytest.mark.slow
def test_evaluate_before_the_training_wrote_config_json_names_the_holder(holder):
  workdir, proc = holder
  result = run_module("tfvae.evaluate", f"--workdir={workdir}", check=False)
  assert result.returncode == 2
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith(f"tfvae.evaluate: --workdir={workdir} has no config.json yet: it is "
                         f"in use by pid {proc.pid} on ")
  assert "(the holder)" in last and "a tfvae run" not in last


def test_the_lock_of_a_killed_process_is_taken_over_with_a_warning(holder, caplog):
  workdir, proc = holder
  proc.kill()  # SIGKILL: no clean release, the kernel drops the flock
  proc.wait()
  with caplog.at_level(logging.WARNING):
    with lock.hold(workdir, "the second"):
      info = json.load(open(os.path.join(workdir, lock.LOCK_FILENAME)))
      assert info["pid"] == os.getpid() and info["command"] == "the second"
  assert f"left by pid {proc.pid} on" in caplog.text and "that process is gone" in caplog.text
  caplog.clear()
  with caplog.at_level(logging.WARNING):  # a clean release leaves nothing to take over
    with lock.hold(workdir):
      pass
  assert "Took over" not in caplog.text
  assert os.path.getsize(os.path.join(workdir, lock.LOCK_FILENAME)) == 0


def test_nested_holds_in_one_process_share_the_lock_until_the_outer_one_ends(tmp_path):
  workdir = str(tmp_path / "run")
  with lock.hold(workdir):
    with lock.hold(workdir + "/"):  # the same folder, spelled differently
      pass
    probe = subprocess.run([sys.executable, "-c", _HOLDER, workdir], cwd=ROOT, input="",
                           capture_output=True, text=True)
    assert probe.returncode == 1 and "WorkdirInUse" in probe.stderr  # still held
  probe = subprocess.run([sys.executable, "-c", _HOLDER, workdir], cwd=ROOT, input="",
                         capture_output=True, text=True)
  assert probe.returncode == 0 and probe.stdout.strip() == "held"


def test_a_workdir_that_is_a_file_or_cannot_be_created_is_one_clear_error(tmp_path):
  path = tmp_path / "a_file"
  path.write_text("")
  with pytest.raises(ConfigError, match="is a file, not a folder"):
    with lock.hold(str(path)):
      pass
  with pytest.raises(ConfigError, match=r"--workdir=.*a_file/run is not writable"):
    with lock.hold(str(path / "run"), "tfvae.train"):
      pass


@pytest.mark.slow
def test_a_training_started_twice_is_refused_while_the_first_one_runs(workdir):
  # Before the lock both copies trained to the end in one ckpt/ (the failure): here the
  # first is frozen with SIGSTOP right after its first checkpoint, so the second's refusal does
  # not depend on timing.
  args = [*QUICK, "--train_steps=100000", "--checkpoint_every=100", f"--workdir={workdir}"]
  first = subprocess.Popen([sys.executable, "-m", "tfvae.train", *args], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 120
  while checkpoint_step(workdir) is None:
    assert first.poll() is None and time.time() < deadline, first.communicate()[1][-3000:]
    time.sleep(0.05)
  first.send_signal(signal.SIGSTOP)
  try:
    saved = checkpoint_step(workdir)
    events = sorted(os.listdir(os.path.join(workdir, "tensorboard", "train")))
    second = run_module("tfvae.train", *args, check=False)
    assert second.returncode == 2, second.stderr[-3000:]
    assert second.stderr.strip().splitlines()[-1].startswith(
        f"tfvae.train: --workdir={workdir} is in use by pid {first.pid} on ")
    assert "Traceback" not in second.stderr
    assert checkpoint_step(workdir) == saved  # the second wrote nothing
    assert sorted(os.listdir(os.path.join(workdir, "tensorboard", "train"))) == events
  finally:
    first.send_signal(signal.SIGCONT)
  time.sleep(1.0)
  first.send_signal(signal.SIGTERM)
  _, stderr = first.communicate(timeout=120)
  assert first.returncode == 128 + signal.SIGTERM, stderr[-3000:]
  assert checkpoint_step(workdir) > saved
  # Released at exit: the next command takes it.
  export = run_module("tfvae.export", f"--workdir={workdir}")
  assert "Exported the step-" in export.stdout


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("trained"))
  run_module("tfvae.train", *QUICK, "--train_steps=50", f"--workdir={workdir}")
  return workdir


@pytest.mark.parametrize("module,args", [
    ("tfvae.evaluate", ["--num_importance_samples=10", "--num_examples=100"]),
    ("tfvae.export", []),
    ("tfvae.visualize", ["--what=samples"]),
])
@pytest.mark.slow
def test_every_writing_command_is_refused_at_once_on_a_held_workdir(trained_run, module, args):
  held = subprocess.Popen([sys.executable, "-c", _HOLDER, trained_run], cwd=ROOT,
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
  try:
    assert held.stdout.readline().strip() == "held"
    before = {name: os.path.getmtime(os.path.join(trained_run, name))
              for name in os.listdir(trained_run)}
    proc = run_module(module, f"--workdir={trained_run}", *args, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"{module}: --workdir={trained_run} is in use by pid {held.pid} on "
        f"{os.uname().nodename} (the holder), since "
        + json.load(open(os.path.join(trained_run, lock.LOCK_FILENAME)))["since"]
        + ": one command at a time writes a run folder. Wait for it to end (or stop it), or "
        "use another --workdir.")
    after = {name: os.path.getmtime(os.path.join(trained_run, name))
             for name in os.listdir(trained_run)}
    assert after == before
  finally:
    held.kill()
    held.wait()


@pytest.mark.slow
def test_tune_is_refused_on_a_held_search_folder(holder):
  workdir, proc = holder
  tune = run_module("tfvae.tune", "--flagfile=configs/quickstart.cfg", "--train_steps=20",
                    "--max_trials=1", f"--workdir={workdir}", check=False)
  assert tune.returncode == 2, tune.stderr[-3000:]
  assert f"is in use by pid {proc.pid}" in tune.stderr.strip().splitlines()[-1]
  assert os.listdir(workdir) == [lock.LOCK_FILENAME]
