"""Where the wall time of one `python -m tfvae.train` goes, from its own log's time stamps.

  python tools/fixed_cost.py [--repeats=N] -- --dataset=fashion_mnist --epochs=1 ...

Runs the training command (a fresh workdir each time, fresh processes) and splits its wall time
at the log lines every run prints: start-up (imports, strategy, data, model build, restore) up
to the "N train / N validation" line; the training loop up to its last progress line (tracing
and compilation of the first loop included); the final validation evaluation; the test
evaluation; the export and exit. Prints one row per run and the processor model. The training
loop's steady-state cost is in tools/benchmark.py; this is the fixed cost around it.
"""

import datetime
import os
import re
import subprocess
import sys
import tempfile
import time

_STAMP = re.compile(r"^I(\d{4}) (\d\d:\d\d:\d\d\.\d+) +\d+ (\S+):\d+\] (.*)$")
PHASES = ("start-up", "training loop", "validation eval", "test eval", "export + exit")


def processor():
  """lscpu's "Model name" (the processor every timing is recorded with)."""
  try:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                if line.startswith("Model name"))
  except (OSError, StopIteration):
    return "unknown"


def _seconds(stamp):
  clock = datetime.datetime.strptime(stamp, "%H:%M:%S.%f")
  return clock.hour * 3600 + clock.minute * 60 + clock.second + clock.microsecond / 1e6


def wall_clock_seconds():
  """Local time of day in seconds, the clock absl's log stamps use."""
  now = datetime.datetime.now()
  return now.hour * 3600 + now.minute * 60 + now.second + now.microsecond / 1e6


def phases(stderr, started, ended):
  """{phase: seconds} from a run's log (absl lines with time stamps) and its start/end clock
  times (seconds since midnight, local time as absl writes them)."""
  marks = {}
  for line in stderr.splitlines():
    found = _STAMP.match(line)
    if not found:
      continue
    at, text = _seconds(found.group(2)), found.group(4)
    if " train / " in text and "ready" not in marks:
      marks["ready"] = at
    elif text.startswith("progress:") or "examples/s" in text and "validation" not in text:
      marks["trained"] = at
    elif "validation" in text and text.startswith("step "):
      marks["validated"] = at
    elif text.startswith("step ") and " test " in text:
      marks["tested"] = at
  points = [started, marks.get("ready"), marks.get("trained"), marks.get("validated"),
            marks.get("tested"), ended]
  if None in points:
    raise RuntimeError(f"the log lacks a phase boundary (found {sorted(marks)})")
  return {name: b - a for name, a, b in zip(PHASES, points, points[1:])}


def main(argv):
  repeats = 1
  if argv and argv[0].startswith("--repeats="):
    repeats, argv = int(argv[0].split("=", 1)[1]), argv[1:]
  if argv and argv[0] == "--":
    argv = argv[1:]
  print(f"processor: {processor()}  ({os.cpu_count()} logical CPUs)")
  print("| run | wall s | " + " | ".join(PHASES) + " |")
  print("|---|---|" + "---|" * len(PHASES))
  for run in range(repeats):
    with tempfile.TemporaryDirectory() as workdir:
      started, began = wall_clock_seconds(), time.perf_counter()
      proc = subprocess.run([sys.executable, "-m", "tfvae.train", *argv,
                             f"--workdir={workdir}/run"], capture_output=True, text=True,
                            check=False)
      wall, ended = time.perf_counter() - began, wall_clock_seconds()
    if proc.returncode:
      sys.exit(f"the run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    split = phases(proc.stderr, started, ended)
    print(f"| {run + 1} | {wall:.2f} | " + " | ".join(f"{split[p]:.2f}" for p in PHASES) + " |")


if __name__ == "__main__":
  main(sys.argv[1:])
