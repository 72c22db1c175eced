"""--strategy=multi_worker: TF_CONFIG, tools/launch_local_workers.py, chief-only writes, resume.

Every worker is its own process (MultiWorkerMirroredStrategy needs collective ops configured at
program startup), so everything here runs in subprocesses on 127.0.0.1.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT
from conftest import run_module
from tfvae import config as config_lib
from tfvae import config_io
from tfvae import data as data_lib
from tfvae.training import distribute
from tfvae.evaluation import evaluator as evaluator_lib
from tfvae import loading
from tfvae.training import trainer as trainer_lib

TINY = ["--dataset=digits", "--hidden_sizes=32", "--latent_dim=4", "--batch_size=64",
        "--eval_importance_samples=0", "--steps_per_loop=5"]
LAUNCHER = [sys.executable, "tools/launch_local_workers.py", "--num_workers=2",
            "--grace_period_s=2", "--"]
TIMEOUT_S = 600  # a hang guard, not a timing assertion


def _launch(tmp_path, name, *args):
  """Starts the launcher with 2 tfvae.train workers; output goes to tmp_path/NAME.{out,err}.

  The workers' TMPDIR is tmp_path/NAME_tmp, so the test sees any temporary folder they leave.
  """
  os.makedirs(tmp_path / f"{name}_tmp")
  env = {**os.environ, "TMPDIR": str(tmp_path / f"{name}_tmp")}
  with open(tmp_path / f"{name}.out", "w") as out, open(tmp_path / f"{name}.err", "w") as err:
    return subprocess.Popen(
        [*LAUNCHER, sys.executable, "-m", "tfvae.train", "--strategy=multi_worker", *TINY,
         *args], cwd=ROOT, stdout=out, stderr=err, env=env)


def _stderr(tmp_path, name):
  with open(tmp_path / f"{name}.err") as f:
    return f.read()


def _wait_for(condition, proc, what):
  deadline = time.monotonic() + TIMEOUT_S
  while not condition():
    assert proc.poll() is None, f"the launcher exited ({proc.returncode}) before {what}"
    assert time.monotonic() < deadline, f"no {what} after {TIMEOUT_S} s"
    time.sleep(0.05)


def _latest_step(workdir):
  latest = tf.train.latest_checkpoint(os.path.join(workdir, "ckpt"))
  return int(latest.rsplit("-", 1)[1]) if latest else 0


def _worker_pid(tmp_path, name, index):
  return int(re.search(rf"worker {index} \(pid (\d+)\)", _stderr(tmp_path, name)).group(1))


def _worker_lines(stderr, index, text):
  return [line for line in stderr.splitlines()
          if line.startswith(f"[worker {index}]") and text in line]


def _files(workdir):
  """Every file under workdir (relative paths), with time stamps, host and pid removed."""
  out = set()
  for parent, _, names in os.walk(workdir):
    for name in names:
      path = re.sub(r"export\.\d+", "export.T", os.path.relpath(os.path.join(parent, name),
                                                                  workdir))
      out.add(re.sub(r"tfevents\..*\.\d+\.(\d+)\.v2$", r"tfevents.T.H.P.\1.v2", path))
  return out


def _event_file_pids(workdir):
  return {int(name.split(".")[-3]) for folder in ("train", "eval")
          for name in os.listdir(os.path.join(workdir, "tensorboard", folder))}


def _validation_elbo(workdir):
  """Validation elbo of the chief's checkpoint, evaluated here in one process."""
  config, model, _ = loading.restore_model(workdir)
  data = data_lib.load(config)
  metrics = evaluator_lib.Evaluator(model, tf.distribute.get_strategy())(
      data_lib.eval_dataset(data, "validation", config.execution.eval_batch_size))
  return metrics["elbo"]


@pytest.mark.slow
def test_two_workers_train_the_weights_of_one_process_and_only_the_chief_writes(tmp_path):
  steps = ["--train_steps=20", "--checkpoint_every=10", "--eval_every=10", "--seed=3"]
  multi, single = tmp_path / "multi", tmp_path / "single"
  # The workers read their batches from the tf.data pipeline, DATA-sharded (each takes its
  # half of every global batch); the single process builds them on the device
  # (--data_on_device, the default): both give the same global batches. The resume test below
  # runs the workers on the on-device path.
  launcher = _launch(tmp_path, "multi", *steps, f"--workdir={multi}", "--nodata_on_device")
  assert launcher.wait(TIMEOUT_S) == 0, _stderr(tmp_path, "multi")[-5000:]
  run_module("tfvae.train", "--strategy=one_device", *TINY, *steps, f"--workdir={single}",
             "--data_on_device")
  assert not config_io.load(str(multi)).execution.data_on_device
  assert config_io.load(str(single)).execution.data_on_device
  stderr = _stderr(tmp_path, "multi")
  for index in (0, 1):
    assert _worker_lines(stderr, index, "2 replicas")
    assert _worker_lines(stderr, index, "Training from step 0 to 20")

  # Worker i trained on the i-th half of every global batch, with the noise of those rows.
  _, model_multi, step_multi = loading.restore_model(str(multi))
  _, model_single, step_single = loading.restore_model(str(single))
  assert step_multi == step_single == 20 and len(model_multi.variables) > 4
  for a, b in zip(model_multi.variables, model_single.variables):
    assert a.name == b.name
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5, err_msg=a.name)
  assert not np.allclose(model_multi.variables[0].numpy(),
                         trainer_lib.Trainer(config_io.load(str(single)),
                                             tf.distribute.get_strategy()).model.variables[0])

  # Evaluation over both workers saw every example once, on the chief's weights everywhere.
  results = json.load(open(multi / "eval.json"))
  assert results["step"] == 20
  assert results["validation"]["num_examples"] == 240 and results["test"]["num_examples"] == 359
  assert results["validation"]["elbo"] == pytest.approx(_validation_elbo(str(multi)), rel=1e-5)

  # The workdir holds what one process writes (one event file per folder: the chief's), and
  # the other worker's temporary saves are gone.
  assert _files(multi) == _files(single)
  assert _event_file_pids(multi) == {_worker_pid(tmp_path, "multi", 0)}
  assert os.path.islink(multi / "export") and os.path.exists(multi / "export" / "saved_model.pb")
  assert not os.listdir(tmp_path / "multi_tmp")

  # Later commands run in one process on the run (no TF_CONFIG needed).
  assert "TF_CONFIG" not in os.environ
  proc = run_module("tfvae.evaluate", f"--workdir={multi}", "--split=test",
                    "--num_importance_samples=5")
  assert "digits test (359 examples, step 20)" in proc.stderr


@pytest.mark.slow
def test_a_killed_run_resumes_from_the_chiefs_checkpoint(tmp_path):
  workdir = str(tmp_path / "run")
  command = ["--train_steps=1000", "--checkpoint_every=10", "--eval_every=1000",
             f"--workdir={workdir}"]

  # 1. kill -9 of a worker: the launcher stops the other (unless its next collective already
  # failed, status 1: "tasks are unhealthy") and exits with the first failure's status.
  launcher = _launch(tmp_path, "kill", *command)
  _wait_for(lambda: _latest_step(workdir) > 0, launcher, "a first checkpoint")
  os.kill(_worker_pid(tmp_path, "kill", 1), signal.SIGKILL)
  assert launcher.wait(TIMEOUT_S) in (128 + signal.SIGKILL, 1)
  killed_at = _latest_step(workdir)
  assert 0 < killed_at < 1000

  # 2. The same command resumes from the chief's checkpoint; SIGTERM to the non-chief alone
  # stops both workers at the same step, after the chief wrote a checkpoint there.
  launcher = _launch(tmp_path, "resume", *command)
  _wait_for(lambda: _latest_step(workdir) > killed_at, launcher, "a checkpoint after resuming")
  # The chief (worker 0) holds the workdir's lock: another training there is refused, naming it.
  with open(os.path.join(workdir, ".tfvae.lock")) as f:
    holder = json.load(f)
  assert holder["pid"] == _worker_pid(tmp_path, "resume", 0)
  second = run_module("tfvae.train", *command, *TINY, check=False)
  assert second.returncode == 2, second.stderr[-3000:]
  assert f"--workdir={workdir} is in use by pid {holder['pid']} on " in second.stderr
  os.kill(_worker_pid(tmp_path, "resume", 1), signal.SIGTERM)
  assert launcher.wait(TIMEOUT_S) == 128 + signal.SIGTERM
  stderr = _stderr(tmp_path, "resume")
  for index in (0, 1):
    assert _worker_lines(stderr, index, f"at step {killed_at} of 1000")
  stopped = [int(re.search(r"Stopped by SIGTERM at step (\d+)", line).group(1))
             for index in (0, 1) for line in _worker_lines(stderr, index, "Stopped by SIGTERM")]
  assert len(stopped) == 2 and stopped[0] == stopped[1]  # both workers, the same step
  assert killed_at < _latest_step(workdir) == stopped[0] < 1000
  assert "Traceback" not in stderr

  # 3. And again: it finishes, with every worker on the chief's weights.
  stopped_at = _latest_step(workdir)
  launcher = _launch(tmp_path, "finish", *command)
  assert launcher.wait(TIMEOUT_S) == 0, _stderr(tmp_path, "finish")[-5000:]
  stderr = _stderr(tmp_path, "finish")
  for index in (0, 1):
    assert _worker_lines(stderr, index, f"at step {stopped_at} of 1000")
  results = json.load(open(os.path.join(workdir, "eval.json")))
  assert results["step"] == _latest_step(workdir) == 1000
  assert results["validation"]["elbo"] == pytest.approx(_validation_elbo(workdir), rel=1e-5)
  assert not os.listdir(tmp_path / "resume_tmp") and not os.listdir(tmp_path / "finish_tmp")


@pytest.mark.parametrize("tf_config, message", [
    ("", "--strategy=multi_worker needs the TF_CONFIG environment variable"),
    ("{not json", "TF_CONFIG is not valid JSON"),
    ('{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", '
     '"index": 2}}', "TF_CONFIG's task (type and index) is not one of its cluster's tasks"),
    ('{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", '
     '"index": 1}}', "--batch_size=63 is not divisible by the 2 replicas of "
     "--strategy=multi_worker (2 workers in TF_CONFIG)"),
])
@pytest.mark.slow
def test_a_bad_cluster_gives_one_line_and_status_2(tmp_path, tf_config, message):
  proc = run_module("tfvae.train", "--strategy=multi_worker", *TINY, "--batch_size=63",
                    "--train_steps=5", f"--workdir={tmp_path / 'run'}", check=False,
                    env={"TF_CONFIG": tf_config})
  assert proc.returncode == 2 and message in proc.stderr
  assert "Traceback" not in proc.stderr and not os.path.exists(tmp_path / "run")
  assert len([line for line in proc.stderr.splitlines() if "TF_CONFIG" in line]) == 1


def test_parse_tf_config_reads_the_cluster_and_this_task():
  cluster = {"chief": ["a:1"], "worker": ["b:1", "c:1"]}
  environ = {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker",
                                                                   "index": 1}})}
  assert distribute.parse_tf_config(environ) == (cluster, "worker", 1)
  for bad in ({}, {"TF_CONFIG": "[]"}, {"TF_CONFIG": '{"cluster": {"worker": "a:1"}}'},
              {"TF_CONFIG": '{"cluster": {"ps": ["a:1"], "worker": ["b:1"]}, '
                            '"task": {"type": "worker", "index": 0}}'},
              {"TF_CONFIG": '{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief"}}'}):
    with pytest.raises(config_lib.ConfigError, match="TF_CONFIG"):
      distribute.parse_tf_config(bad)


_FAKE_WORKER = """
import json, os, signal, sys, time
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
print("threads", os.environ["TF_NUM_INTRAOP_THREADS"], os.environ["TF_CONFIG"], flush=True)
if sys.argv[1] == "fail":
  marker = os.path.join(os.path.dirname(__file__), "worker1_printed")
  if index == 0:
    while not os.path.exists(marker):
      time.sleep(0.01)
    sys.exit(3)
  open(marker, "w").close()
  time.sleep(3600)  # the launcher must stop it
signal.signal(signal.SIGTERM, lambda *_: (print("got SIGTERM", flush=True), sys.exit(42)))
print("ready", flush=True)
time.sleep(3600)
"""


def _fake_launch(tmp_path, mode):
  script = tmp_path / "fake_worker.py"
  script.write_text(_FAKE_WORKER)
  return subprocess.Popen([*LAUNCHER, sys.executable, str(script), mode], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_the_launcher_stops_every_worker_when_one_fails_and_exits_with_its_status(tmp_path):
  launcher = _fake_launch(tmp_path, "fail")
  out, err = launcher.communicate(timeout=TIMEOUT_S)
  assert launcher.returncode == 3, err
  assert "worker 0 exited with status 3; stopping the others" in err
  configs = [json.loads(line.split(" ", 4)[4]) for line in out.splitlines()]
  assert sorted(c["task"]["index"] for c in configs) == [0, 1]
  ports = configs[0]["cluster"]["worker"]
  assert len(set(ports)) == 2 and all(c["cluster"]["worker"] == ports for c in configs)
  assert all(line.split(" ", 4)[3] == "1" for line in out.splitlines())  # one thread each
  assert {line.split("]")[0] for line in out.splitlines()} == {"[worker 0", "[worker 1"}


def test_the_launcher_forwards_sigterm_to_every_worker(tmp_path):
  launcher = _fake_launch(tmp_path, "wait")
  lines = []
  while len([line for line in lines if "ready" in line]) < 2:
    line = launcher.stdout.readline()
    assert line, "a worker exited before it was ready"
    lines.append(line)
  launcher.send_signal(signal.SIGTERM)
  out, _ = launcher.communicate(timeout=TIMEOUT_S)
  assert launcher.returncode == 42
  assert sorted(line for line in out.splitlines() if "got SIGTERM" in line) == [
      "[worker 0] got SIGTERM", "[worker 1] got SIGTERM"]
