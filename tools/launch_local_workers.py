"""Runs a multi-worker command as N worker processes on this machine (tests and demos).

  python tools/launch_local_workers.py --num_workers=2 -- \\
      python -m tfvae.train --strategy=multi_worker --workdir=/tmp/tfvae/mw [--flag=value ...]

Picks N free ports on 127.0.0.1 and starts the command N times, each with its own TF_CONFIG
(a cluster of N "worker" tasks; worker 0 is the chief) and, by default, one TF intra-op and one
inter-op thread (TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS; N workers share the cores).
Each output line is prefixed with `[worker I]` (stdout to stdout, stderr to stderr).

SIGTERM/SIGINT to the launcher is forwarded to every worker (tfvae.train then checkpoints and
exits with 128 + signal); a second one kills them (SIGKILL). If a worker exits with a nonzero
status, the others get SIGTERM and, after --grace_period_s, SIGKILL. The launcher exits with the
first nonzero worker status (128 + N for a worker killed by signal N), else 0.
"""

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

from absl import app
from absl import flags

flags.DEFINE_integer("num_workers", 2, "Number of worker processes.", lower_bound=1)
flags.DEFINE_integer("threads_per_worker", 1,
                     "TF intra-op and inter-op threads of each worker (sets "
                     "TF_NUM_INTRAOP_THREADS and TF_NUM_INTEROP_THREADS); 0: TF's default.",
                     lower_bound=0)
flags.DEFINE_float("grace_period_s", 10.0,
                   "After a worker failed: seconds the others get after SIGTERM before SIGKILL.",
                   lower_bound=0.0)
FLAGS = flags.FLAGS

_PROGRAM = "launch_local_workers"


def free_ports(num):
  """`num` distinct TCP ports on 127.0.0.1 that were free a moment ago."""
  sockets = []
  try:
    for _ in range(num):
      s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
      s.bind(("127.0.0.1", 0))
      sockets.append(s)
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def tf_config(ports, index):
  """The TF_CONFIG JSON string of worker `index` in a cluster of workers on 127.0.0.1:ports."""
  return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                     "task": {"type": "worker", "index": index}})


def exit_status(returncode):
  """A Popen returncode as a shell exit status: -N (killed by signal N) becomes 128 + N."""
  return 128 - returncode if returncode < 0 else returncode


def _pump(stream, out, prefix, lock):
  for line in iter(stream.readline, b""):
    with lock:
      out.write(prefix + line.decode(errors="replace"))
      out.flush()
  stream.close()


def _signal_all(workers, signum):
  for worker in workers:
    if worker.poll() is None:
      try:
        worker.send_signal(signum)
      except ProcessLookupError:
        pass


def launch(command, num_workers, threads_per_worker, grace_period_s):
  """Runs `command` as `num_workers` local workers; returns the launcher's exit status."""
  ports = free_ports(num_workers)
  lock = threading.Lock()
  workers, pumps = [], []
  for index in range(num_workers):
    env = {**os.environ, "TF_CONFIG": tf_config(ports, index)}
    if threads_per_worker:
      env.update(TF_NUM_INTRAOP_THREADS=str(threads_per_worker),
                 TF_NUM_INTEROP_THREADS=str(threads_per_worker))
    worker = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    workers.append(worker)
    print(f"{_PROGRAM}: worker {index} (pid {worker.pid}) TF_CONFIG={env['TF_CONFIG']}",
          file=sys.stderr, flush=True)
    for stream, out in ((worker.stdout, sys.stdout), (worker.stderr, sys.stderr)):
      pumps.append(threading.Thread(target=_pump, args=(stream, out, f"[worker {index}] ", lock),
                                    daemon=True))
      pumps[-1].start()

  exits = queue.Queue()  # (index, returncode), in the order the workers exit
  for index, worker in enumerate(workers):
    threading.Thread(target=lambda i=index, w=worker: exits.put((i, w.wait())),
                     daemon=True).start()
  received = []

  def forward(signum, frame):
    del frame
    received.append(signum)
    _signal_all(workers, signum if len(received) == 1 else signal.SIGKILL)

  previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
  status, kill_at, running = 0, None, num_workers
  try:
    while running:
      try:
        index, returncode = exits.get(timeout=0.1)
      except queue.Empty:
        pass
      else:
        running -= 1
        if returncode and not status:
          status = exit_status(returncode)
          print(f"{_PROGRAM}: worker {index} exited with status {status}; stopping the others",
                file=sys.stderr, flush=True)
          _signal_all(workers, signal.SIGTERM)
          kill_at = time.monotonic() + grace_period_s
      if kill_at is not None and time.monotonic() > kill_at:
        _signal_all(workers, signal.SIGKILL)
  finally:
    for signum, handler in previous.items():
      signal.signal(signum, handler)
  for pump in pumps:
    pump.join()
  return status


def main(argv):
  command = argv[1:]
  if not command:
    raise app.UsageError("Give the worker command after --, e.g. launch_local_workers.py "
                         "--num_workers=2 -- python -m tfvae.train --strategy=multi_worker ...")
  sys.exit(launch(command, FLAGS.num_workers, FLAGS.threads_per_worker, FLAGS.grace_period_s))


if __name__ == "__main__":
  app.run(main)
