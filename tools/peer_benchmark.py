"""tfvae against the same MLP VAE written in JAX + Flax, PyTorch and Keras `fit`, whole commands.

  python tools/peer_benchmark.py --jax_python=VENV/bin/python [--torch_python=VENV/bin/python]
      [--repeats=2] [--batch_sizes=128,1024] [--only=tfvae,jax_scan] [--output=F.json]
      [--markdown=F.md]

Every cell is a whole command in a fresh process, as its users run it: `python -m tfvae.train`
with its defaults (plus the model flags below), tools/peers/jax_vae.py (`--loop=scan`: one
`jax.jit` call per epoch, `lax.scan` over the steps; `--loop=step`: one per step),
tools/peers/torch_vae.py (eager) and tools/peers/keras_fit_vae.py (`model.fit`). The same
model (MLP 784-512-256-32, Bernoulli, analytic KL, Adam 1e-3), the same 50000 Fashion-MNIST
train images with dynamic binarization, 390 steps of 128 per epoch, and a test ELBO at the end.
The peers run in their own environments (--jax_python, --torch_python: a venv with `pip install
jax flax optax numpy` / `torch numpy`); they are never dependencies of tfvae.

Each implementation runs 1 epoch once to warm the file cache, then 1 epoch and 4 epochs,
--repeats times, interleaved (repeat, then epochs, then implementation), so a slow minute of
the machine hits every row alike. Rows: tfvae with its defaults (validation with the K=10
importance-weighted bound every epoch), tfvae_end_eval (validation once, at the end, ELBO
only: what the peers do), tfvae_bf16 (tfvae_end_eval with --dtype_policy=mixed_bfloat16), and
the peers (float32).
  - examples/s = 3 epochs' examples / (wall(4 epochs) - wall(1 epoch)), medians: fixed costs
    cancel;
  - fixed cost = wall(1 epoch) - one epoch at that rate: imports, data, build, tracing and
    compilation, final evaluation, export, exit; split into its parts from each program's own
    time stamps (tfvae's log lines, tools/fixed_cost.py; the peers' PHASE lines);
  - peak memory = the child's peak resident set (wait4), the most over its runs;
  - test ELBO after 4 epochs (nats; tfvae's is its test split's `elbo` in eval.json).
Timing lives here, never in a unit test.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _HERE)
import fixed_cost  # pylint: disable=g-import-not-at-top,wrong-import-position

EXAMPLES_PER_EPOCH = {128: 390 * 128, 1024: 48 * 1024}  # 50000 // batch steps
MODEL_FLAGS = ["--hidden_sizes=512,256", "--latent_dim=32"]
IMPLEMENTATIONS = ("tfvae", "tfvae_end_eval", "tfvae_bf16", "jax_scan", "jax_step", "torch_eager",
                   "keras_fit")
# tfvae's defaults evaluate the validation split every epoch with the K=10 importance-weighted
# bound (10 decoder passes per image: 1.2-1.5 s per epoch here, a third of the epoch's FLOPs);
# the peers evaluate once, at the end, with a one-sample ELBO. This row does what they do.
END_EVAL_FLAGS = ["--eval_every=100000000", "--eval_importance_samples=0"]
_PHASE = re.compile(r"^PHASE (\S+) ([\d.]+)$", re.M)
_RESULT = re.compile(r"^RESULT (\{.*\})$", re.M)


def _command(name, epochs, batch, args, workdir):
  if name.startswith("tfvae"):
    return [sys.executable, "-m", "tfvae.train", "--dataset=fashion_mnist",
            f"--data_dir={args.data_dir}", f"--epochs={epochs}", f"--batch_size={batch}",
            *MODEL_FLAGS, *(END_EVAL_FLAGS if name != "tfvae" else []),
            *(["--dtype_policy=mixed_bfloat16"] if name == "tfvae_bf16" else []),
            f"--workdir={workdir}"]
  python = {"jax_scan": args.jax_python, "jax_step": args.jax_python,
            "torch_eager": args.torch_python, "keras_fit": sys.executable}[name]
  script = {"jax_scan": "jax_vae.py", "jax_step": "jax_vae.py", "torch_eager": "torch_vae.py",
            "keras_fit": "keras_fit_vae.py"}[name]
  extra = [f"--loop={name.split('_')[1]}"] if name.startswith("jax") else []
  return [python, os.path.join(_HERE, "peers", script), f"--epochs={epochs}",
          f"--batch_size={batch}", *extra]


def _run_measured(command, cwd):
  """{wall, peak_mib, stdout, stderr, started, ended} of one child process: wall seconds, its
  own peak resident set (os.wait4's rusage), start and end clock times (for the log stamps)."""
  started, began = fixed_cost.wall_clock_seconds(), time.perf_counter()
  with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
    proc = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=err, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall, ended = time.perf_counter() - began, fixed_cost.wall_clock_seconds()
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read(), err.read()
  if proc.returncode:
    raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}:\n{stderr[-3000:]}")
  return {"wall": wall, "peak_mib": usage.ru_maxrss / 1024, "stdout": stdout,
          "stderr": stderr, "started": started, "ended": ended}


def _parts(name, run, epoch_seconds):
  """The 1-epoch run's fixed cost split into start-up, first-loop overhead (tracing and
  compilation: the loop's time beyond one steady epoch), evaluation, export + exit."""
  if name.startswith("tfvae"):
    split = fixed_cost.phases(run["stderr"], run["started"], run["ended"])
    return {"start-up": split["start-up"], "loop overhead": split["training loop"] - epoch_seconds,
            "evaluation": split["validation eval"] + split["test eval"],
            "export + exit": split["export + exit"]}
  stamps = {k: float(v) for k, v in _PHASE.findall(run["stdout"])}
  return {"start-up": stamps["build"], "loop overhead": stamps["epoch1"] - stamps["build"]
          - epoch_seconds, "evaluation": stamps["evaluate"] - stamps["epoch1"],
          "export + exit": run["wall"] - stamps["evaluate"]}


def _test_elbo(name, run, workdir):
  if name.startswith("tfvae"):
    with open(os.path.join(workdir, "eval.json")) as f:
      results = json.load(f)
    return results[results["final"]["test"]]["elbo"]
  return json.loads(_RESULT.findall(run["stdout"])[-1])["test_elbo"]


def _prepare_data(data_dir):
  """Fashion-MNIST as TFDS prepared from Debian's files, and tfvae's array cache written (a
  user's second run reads it: tfvae/data/array_cache.py)."""
  subprocess.run([sys.executable, "-c", "import sys; from tfvae.data import fashion_mnist_local "
                  "as f; f.prepare(sys.argv[1])", data_dir], check=True, capture_output=True,
                 cwd=os.path.dirname(_HERE))
  with tempfile.TemporaryDirectory() as workdir:
    subprocess.run([sys.executable, "-m", "tfvae.train", "--dataset=fashion_mnist",
                    f"--data_dir={data_dir}", "--train_steps=1", *MODEL_FLAGS,
                    f"--workdir={workdir}/run"], check=True, capture_output=True,
                   cwd=os.path.dirname(_HERE))


def table(results):
  """Markdown rows of the summary."""
  lines = ["| implementation | batch | examples/s | fixed cost s | start-up | loop overhead | "
           "evaluation | export + exit | peak MiB | test ELBO (4 epochs) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  for row in results["rows"]:
    parts = row["fixed_cost_parts"]
    lines.append(f"| {row['implementation']} | {row['batch_size']} | "
                 f"{row['examples_per_second']:,.0f} | {row['fixed_cost_s']:.1f} | "
                 + " | ".join(f"{parts[k]:.1f}" for k in ("start-up", "loop overhead",
                                                         "evaluation", "export + exit"))
                 + f" | {row['peak_mib']:,.0f} | {row['test_elbo']:.2f} |")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--jax_python", default="", help="python of an env with jax, flax, optax")
  parser.add_argument("--torch_python", default="", help="python of an env with torch")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--batch_sizes", default="128")
  parser.add_argument("--only", default=",".join(IMPLEMENTATIONS))
  parser.add_argument("--data_dir", default="", help="TFDS data_dir (default: prepared here)")
  parser.add_argument("--output", default="")
  parser.add_argument("--markdown", default="")
  args = parser.parse_args()
  names = [n for n in args.only.split(",") if n]
  names = [n for n in names if not (n.startswith("jax") and not args.jax_python)
           and not (n == "torch_eager" and not args.torch_python)]
  batches = [int(b) for b in args.batch_sizes.split(",")]
  root = os.path.dirname(_HERE)
  scratch = tempfile.mkdtemp(prefix="peer_benchmark_")
  if not args.data_dir:
    args.data_dir = os.path.join(scratch, "tfds")
  _prepare_data(args.data_dir)
  machine = {"processor": fixed_cost.processor(), "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d"),
             "command": " ".join(sys.argv)}
  print(f"processor: {machine['processor']} ({machine['cpus']} logical CPUs)", flush=True)
  for name in names:  # a first run of each warms the file cache (a cold venv took 30 s more)
    _run_measured(_command(name, 1, batches[0], args, os.path.join(scratch, f"{name}-warm-up")),
                  root)
  runs = {}
  for repeat in range(args.repeats):
    for epochs in (1, 4):
      for batch in batches:
        for name in names:
          workdir = os.path.join(scratch, f"{name}-{batch}-{epochs}-{repeat}")
          run = _run_measured(_command(name, epochs, batch, args, workdir), root)
          run["test_elbo"] = _test_elbo(name, run, workdir) if epochs == 4 else None
          runs.setdefault((name, batch, epochs), []).append(run)
          print(f"{name} batch {batch} {epochs} epoch(s), repeat {repeat + 1}: "
                f"{run['wall']:.2f} s, {run['peak_mib']:.0f} MiB", flush=True)
  results = {"machine": machine, "rows": []}
  for batch in batches:
    for name in names:
      one, four = runs[(name, batch, 1)], runs[(name, batch, 4)]
      extra = statistics.median(b["wall"] - a["wall"] for a, b in zip(one, four))
      rate = 3 * EXAMPLES_PER_EPOCH[batch] / extra
      epoch_seconds = EXAMPLES_PER_EPOCH[batch] / rate
      fixed = statistics.median(r["wall"] for r in one) - epoch_seconds
      parts = [_parts(name, r, epoch_seconds) for r in one]
      results["rows"].append({
          "implementation": name, "batch_size": batch, "examples_per_second": rate,
          "fixed_cost_s": fixed,
          "fixed_cost_parts": {k: statistics.median(p[k] for p in parts) for k in parts[0]},
          "peak_mib": max(r["peak_mib"] for r in one + four),
          "test_elbo": statistics.median(r["test_elbo"] for r in four),
          "walls_1_epoch": [r["wall"] for r in one], "walls_4_epochs": [r["wall"] for r in four]})
  markdown = table(results)
  print(markdown)
  if args.output:
    with open(args.output, "w") as f:
      json.dump(results, f, indent=2)
  if args.markdown:
    with open(args.markdown, "w") as f:
      f.write(f"{machine['date']}, {machine['processor']} ({machine['cpus']} CPUs): "
              f"`{machine['command']}`\n\n{markdown}\n")


if __name__ == "__main__":
  main()
