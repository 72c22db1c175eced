"""A full disk and a read-only workdir, through the real commands.

A full disk is simulated with a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored): every write past
it fails with EFBIG, in Python's writes and in TensorFlow's C++ ones, as a full disk fails them
with ENOSPC; or with a temporary file linked to /dev/full (ENOSPC itself). A read-only workdir is one without write permission, for a process that cannot
override permissions (as root: CAP_DAC_OVERRIDE dropped from its bounding set before exec).
"""

import ctypes
import os
import re
import resource
import signal
import subprocess
import sys

import pytest

from conftest import checkpoint_step, ROOT

QUICK = ["--flagfile=configs/quickstart.cfg", "--hidden_sizes=64", "--steps_per_loop=25",
         "--eval_every=1000", "--eval_importance_samples=0"]


def _limits(file_size_limit=None, read_only=False):
  """A preexec_fn: the file-size limit, and no permission override (read_only, as root)."""
  def prepare():
    if file_size_limit is not None:
      signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, no signal
      resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))
    if read_only and os.geteuid() == 0:
      libc = ctypes.CDLL(None, use_errno=True)
      for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0):  # PR_CAPBSET_DROP
          raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
  return prepare


def _run(module, *args, file_size_limit=None, read_only=False):
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                        text=True, preexec_fn=_limits(file_size_limit, read_only), timeout=600,
                        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def _last_line(proc):
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
  return proc.stderr.strip().splitlines()[-1]


def _files(workdir):
  """{relative path: bytes} of every file under workdir but the lock file."""
  out = {}
  for root, _, names in os.walk(workdir):
    for name in names:
      path = os.path.join(root, name)
      if name != ".tfvae.lock" and not os.path.islink(path):
        with open(path, "rb") as f:
          out[os.path.relpath(path, workdir)] = f.read()
  return out


@pytest.mark.slow
def test_a_full_disk_during_a_checkpoint_is_one_line_and_the_run_resumes_after(tmp_path):
  workdir = str(tmp_path)
  first = _run("tfvae.train", *QUICK, "--train_steps=50", "--checkpoint_every=50",
               f"--workdir={workdir}")
  assert first.returncode == 0, first.stderr[-3000:]
  # Resumed with too little room for a checkpoint (the model's weights and Adam's are ~150 KB).
  full = _run("tfvae.train", *QUICK, "--train_steps=100", "--checkpoint_every=50",
              f"--workdir={workdir}", file_size_limit=60_000)
  assert full.returncode == 1
  line = _last_line(full)
  # (the best checkpoint of step 100 is the first written: ckpt/best/ckpt-100_temp/...)
  assert re.match(f"tfvae.train: writing {re.escape(os.path.join(workdir, 'ckpt'))}/(best/)?"
                  r"ckpt-100_temp/", line), line
  assert "failed: File too large. Free space there" in line
  assert "what was written before is intact" in line
  assert checkpoint_step(workdir) == 50
  again = _run("tfvae.train", *QUICK, "--train_steps=100", "--checkpoint_every=50",
               f"--workdir={workdir}")
  assert again.returncode == 0, again.stderr[-3000:]
  assert "Resuming from " + os.path.join(workdir, "ckpt") + " at step 50 of 100" in again.stderr
  assert checkpoint_step(workdir) == 100
  for folder in ("ckpt", os.path.join("ckpt", "best")):  # the partial writes are gone
    assert not [n for n in os.listdir(os.path.join(workdir, folder)) if "_temp" in n]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("finished"))
  proc = _run("tfvae.train", *QUICK, "--train_steps=50", f"--workdir={workdir}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  return workdir


# Runs `python -m MODULE ARGS` with the writes of eval.json's temporary file on /dev/full: they
# fail with ENOSPC, as on a full disk (tfvae/atomic.py writes to a fresh name from mkstemp).
_EVAL_JSON_ON_DEV_FULL = """
import os, runpy, stat, sys, tempfile
mkstemp, fchmod = tempfile.mkstemp, os.fchmod
def on_dev_full(*args, **kwargs):
  fd, name = mkstemp(*args, **kwargs)
  if os.path.basename(name).startswith("eval.json."):
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, fd)
    os.close(full)
  return fd, name
tempfile.mkstemp = on_dev_full
# Never the mode of /dev/full itself (tfvae/atomic.py sets its temporary file's mode by its fd).
os.fchmod = lambda fd, mode: fchmod(fd, mode) if stat.S_ISREG(os.fstat(fd).st_mode) else None
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
def test_a_full_disk_when_evaluate_writes_eval_json_is_one_line_and_keeps_it(finished_run):
  # A file-size limit would also stop AutoGraph's temporary files; /dev/full fails exactly the
  # write of eval.json's temporary file, with ENOSPC, as a full disk does.
  before = _files(finished_run)
  proc = subprocess.run(
      [sys.executable, "-c", _EVAL_JSON_ON_DEV_FULL, "tfvae.evaluate", f"--workdir={finished_run}",
       "--num_importance_samples=20"], cwd=ROOT, capture_output=True, text=True, timeout=600,
      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
  assert proc.returncode == 1, proc.stderr[-3000:]
  assert _last_line(proc).startswith(
      f"tfvae.evaluate: writing {os.path.join(finished_run, 'eval.json')} failed: No space left "
      "on device. Free space there")
  assert _files(finished_run) == before  # eval.json whole, no temporary file left


def _make_read_only(workdir):
  for root, _, names in os.walk(workdir):
    for name in names:
      if not os.path.islink(os.path.join(root, name)):
        os.chmod(os.path.join(root, name), 0o444)
    os.chmod(root, 0o555)


def _make_writable(workdir):
  for root, _, names in os.walk(workdir):
    os.chmod(root, 0o755)
    for name in names:
      if not os.path.islink(os.path.join(root, name)):
        os.chmod(os.path.join(root, name), 0o644)


def _skip_unless_permissions_hold(tmp):
  probe = os.path.join(os.path.dirname(tmp), "read_only_probe")
  os.makedirs(probe, exist_ok=True)
  os.chmod(probe, 0o555)
  try:
    proc = subprocess.run([sys.executable, "-c", f"open({os.path.join(probe, 'x')!r}, 'w')"],
                          capture_output=True, preexec_fn=_limits(read_only=True), check=False)
  except OSError as e:  # no capability to drop capabilities
    pytest.skip(f"cannot run a process that respects permissions here ({e})")
  finally:
    os.chmod(probe, 0o755)
  if proc.returncode == 0:
    pytest.skip("a process here writes into folders without write permission")


@pytest.mark.parametrize("module,args", [
    ("tfvae.evaluate", ["--num_importance_samples=100000"]),  # minutes, were it to start
    ("tfvae.export", []),
    ("tfvae.visualize", []),
    ("tfvae.train", QUICK + ["--train_steps=100"]),
])
@pytest.mark.slow
def test_a_read_only_workdir_is_refused_at_once_in_one_line(finished_run, module, args):
  _skip_unless_permissions_hold(finished_run)
  before = _files(finished_run)
  _make_read_only(finished_run)
  try:
    proc = _run(module, *args, f"--workdir={finished_run}", read_only=True)
  finally:
    _make_writable(finished_run)
  assert proc.returncode == 2
  assert _last_line(proc) == (
      f"{module}: --workdir={finished_run} is not writable (Permission denied): the command "
      "writes its results and a lock file there. Copy the run to a folder you can write "
      "(cp -rL) and run it there.")
  assert _files(finished_run) == before
