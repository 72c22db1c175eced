"""Training speed of tfvae's trainer against the standard Keras `model.fit` VAE, side by side.

  python tools/benchmark.py [--quick] [--output=FILE.json] [--markdown=FILE.md]

Every row runs in a fresh process (so the logical-CPU split, the dtype policy and the peak
memory belong to that row alone), first tfvae's `Trainer` (the code `python -m tfvae.train`
runs), then the reference in tools/keras_reference_vae.py with the same architecture,
objective, batch size, XLA setting, dtype policy and replicas. Reported per row:
  - examples/s: median over --repeats timed chunks of --steps train steps (at batch 128; as
    many examples per chunk at other batch sizes), after warm-up;
  - step time (ms): global batch / examples/s;
  - time to first step (s): from the start of the row's process (imports, data, model build,
    tracing/compilation) to the end of the first train step;
  - peak memory (MiB): the process's peak resident set (ru_maxrss), or the GPU's peak
    allocation when the row ran on a GPU;
and the ratio tfvae / reference. With --quality_epochs > 0 both are also trained that many
epochs (MLP, batch 128) and their test ELBO is compared (nats, same fixed-binarized test set).

The defaults time Fashion-MNIST (real data; offline it is prepared from Debian's
dataset-fashion-mnist) with the issue's MLP 784-512-256-32 and a conv net 32-64, latent 32.
Timing lives here, never in a unit test.
"""

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

_STARTED = time.perf_counter()  # the row's process start, for the time to first step

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position

flags.DEFINE_bool("quick", False, "A few rows (MLP only), fewer steps: a smoke run.")
flags.DEFINE_string("output", "", "Write every measurement and the machine as JSON here.")
flags.DEFINE_string("markdown", "", "Also write the markdown table here.")
flags.DEFINE_string("dataset", "fashion_mnist", "Dataset (tfvae --dataset).")
flags.DEFINE_string("data_dir", "", "TFDS data_dir (tfvae --data_dir).")
flags.DEFINE_integer("steps", 200, "Train steps per timed chunk.", lower_bound=1)
flags.DEFINE_integer("repeats", 5, "Timed chunks per row (the median is reported).", lower_bound=1)
flags.DEFINE_integer("quality_epochs", 5, "Epochs of the test-ELBO comparison (0: skip).",
                     lower_bound=0)
flags.DEFINE_list("only", [], "Run only these row names (see the table's first column).")
flags.DEFINE_string("from_json", "", "Print the table of a saved --output file and exit.")
flags.DEFINE_string("row", "", "Internal: run one row (JSON) in this process.")
FLAGS = flags.FLAGS

ARCH = {"hidden_sizes": (512, 256), "conv_filters": (32, 64), "latent_dim": 32}
_RESULT = "BENCHMARK_RESULT "


def _rows(quick, on_gpu):
  """The table's rows: a base setting per architecture and one change at a time."""
  del on_gpu  # the same rows everywhere; tfvae's mixed policy is bfloat16 (no loss scaling)
  mixed = "mixed_bfloat16"
  rows = []
  for arch in (("mlp",) if quick else ("mlp", "conv")):
    base = {"architecture": arch, "batch_size": 128, "jit_compile": False,
            "dtype_policy": "float32", "replicas": 1}
    changes = [{}, {"replicas": 2}] if quick else [
        {}, {"batch_size": 1024}, {"jit_compile": True}, {"dtype_policy": mixed},
        {"replicas": 2}, {"batch_size": 1024, "jit_compile": True}]
    for change in changes:
      row = {**base, **change}
      row["name"] = "-".join([arch, str(row["batch_size"])] + (["xla"] if row["jit_compile"]
                                                               else [])
                             + ([row["dtype_policy"]] if row["dtype_policy"] != "float32"
                                else []) + [f"{row['replicas']}rep"])
      rows.append(row)
  return rows


def _machine():
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  cpu = platform.processor() or "cpu"
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  gpus = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
          for g in tf.config.list_physical_devices("GPU")]
  return {"cpu": cpu, "cpu_cores": os.cpu_count(), "gpus": gpus, "tensorflow": tf.__version__,
          "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}


def _peak_mib(on_gpu):
  if on_gpu:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _config(row, **overrides):
  from tfvae import config as config_lib  # pylint: disable=import-outside-toplevel
  return config_lib.Config(
      dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, architecture=row["architecture"],
      batch_size=row["batch_size"], jit_compile=row["jit_compile"],
      dtype_policy=row["dtype_policy"], num_cpu_devices=row["replicas"],
      eval_importance_samples=0, **ARCH, **overrides)


def _tfvae_row(row, steps, repeats, epochs):
  """Times tfvae's Trainer as `python -m tfvae.train` runs it."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  from tfvae import data as data_lib  # pylint: disable=import-outside-toplevel
  from tfvae.training import distribute  # pylint: disable=import-outside-toplevel
  from tfvae.training import trainer as trainer_lib  # pylint: disable=import-outside-toplevel
  distribute.split_cpu(row["replicas"])
  config = _config(row)
  data = data_lib.load(config)
  config = config.replace(image_shape=data.image_shape)
  strategy = distribute.make_strategy(config)
  trainer = trainer_lib.Trainer(config, strategy)
  iterator = trainer.train_iterator(data)
  trainer.train(iterator, 1)
  first_step_s = time.perf_counter() - _STARTED
  chunk = config.execution.steps_per_loop
  steps = max(chunk, steps // chunk * chunk)
  times = []
  for _ in range(repeats + 1):  # the first chunk is warm-up
    began = time.perf_counter()
    for _ in range(steps // chunk):
      trainer.train(iterator, chunk)
    times.append(time.perf_counter() - began)
  out = {"examples_per_s": steps * config.training.batch_size / statistics.median(times[1:]),
         "first_step_s": first_step_s, "steps_per_loop": chunk}
  if epochs:
    total = epochs * data_lib.steps_per_epoch(data, config)
    done = int(trainer.step.numpy())
    while done < total:
      num = min(chunk, total - done)
      trainer.train(iterator, num)
      done += num
    test = trainer.evaluate(data_lib.eval_dataset(data, "test", config.execution.eval_batch_size))
    out["test_elbo"] = test["elbo"]
    out["train_steps"] = done
  return out


def _keras_row(row, steps, repeats, epochs):
  """Times the reference: tools/keras_reference_vae.py with model.fit."""
  import keras  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import keras_reference_vae  # pylint: disable=import-outside-toplevel
  from tfvae import data as data_lib  # pylint: disable=import-outside-toplevel
  from tfvae.training import distribute  # pylint: disable=import-outside-toplevel
  distribute.split_cpu(row["replicas"])
  keras.config.set_dtype_policy(row["dtype_policy"])
  keras.utils.set_random_seed(0)
  data = data_lib.load(_config(row))
  x = data.train.images.astype(np.float32) / data.max_value
  batch = row["batch_size"]
  devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
  strategy = (tf.distribute.MirroredStrategy([d.name for d in devices])
              if row["replicas"] > 1 else tf.distribute.get_strategy())
  with strategy.scope():
    vae = keras_reference_vae.build(data.image_shape, ARCH["latent_dim"], row["architecture"],
                                    ARCH["hidden_sizes"], ARCH["conv_filters"])
    vae.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=row["jit_compile"])
  vae.fit(x[:batch], batch_size=batch, epochs=1, verbose=0)
  first_step_s = time.perf_counter() - _STARTED

  class EpochTimes(keras.callbacks.Callback):
    """Wall time of every epoch (no per-batch hook, so no host sync in the timed loop)."""

    def __init__(self):
      super().__init__()
      self.times, self.began = [], None

    def on_epoch_begin(self, epoch, logs=None):
      self.began = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
      self.times.append(time.perf_counter() - self.began)

  timer = EpochTimes()
  x_timed = np.resize(x, (steps * batch, *x.shape[1:]))  # `steps` full batches per epoch
  vae.fit(x_timed, batch_size=batch, epochs=repeats + 1, shuffle=True, verbose=0,
          callbacks=[timer])
  out = {"examples_per_s": steps * batch / statistics.median(timer.times[1:]),
         "first_step_s": first_step_s, "jit_compile": bool(vae.jit_compile)}
  if epochs:
    keras.utils.set_random_seed(0)
    with strategy.scope():
      vae = keras_reference_vae.build(data.image_shape, ARCH["latent_dim"],
                                      row["architecture"], ARCH["hidden_sizes"],
                                      ARCH["conv_filters"])
    vae.fit(x[:len(data.train) // batch * batch], batch_size=batch, epochs=epochs,
            shuffle=True, verbose=0)
    test_x = data.test.images.astype(np.float32) / data.max_value  # binarized once, as tfvae's
    out["test_elbo"] = -float(vae.evaluate(test_x, batch_size=1000, verbose=0,
                                           return_dict=True)["loss"])
  return out


def _run_row(spec):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  row = spec["row"]
  on_gpu = bool(tf.config.list_physical_devices("GPU"))
  runner = _tfvae_row if spec["runner"] == "tfvae" else _keras_row
  out = runner(row, spec["steps"], spec["repeats"], spec["epochs"])
  out["step_ms"] = 1000 * row["batch_size"] / out["examples_per_s"]
  out["peak_mib"] = _peak_mib(on_gpu)
  print(_RESULT + json.dumps(out), flush=True)


def _spawn(runner, row, steps, repeats, epochs=0):
  spec = {"runner": runner, "row": row, "steps": steps, "repeats": repeats, "epochs": epochs}
  argv = [sys.executable, os.path.abspath(__file__), "--row=" + json.dumps(spec),
          "--dataset=" + FLAGS.dataset, "--data_dir=" + FLAGS.data_dir]
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
  lines = [l for l in proc.stdout.splitlines() if l.startswith(_RESULT)]
  if proc.returncode or not lines:
    return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:300]}
  return json.loads(lines[-1][len(_RESULT):])


def _fmt(value, spec):
  return format(value, spec) if isinstance(value, (int, float)) else "error"


def table(results, machine):
  """The markdown table of `results` (one dict per row with "tfvae" and "keras" results)."""
  lines = [f"Machine: {machine['cpu']}, {machine['cpu_cores']} cores"
           + (f", GPU {', '.join(machine['gpus'])}" if machine["gpus"] else ", no GPU")
           + f"; TensorFlow {machine['tensorflow']}; {machine['date']}.", "",
           "| row | tfvae examples/s | Keras fit examples/s | ratio | tfvae step ms | "
           "Keras step ms | first step s (tfvae / Keras) | peak MiB (tfvae / Keras) |",
           "|---|---|---|---|---|---|---|---|"]
  for result in results:
    ours, ref = result["tfvae"], result["keras"]
    ratio = (ours["examples_per_s"] / ref["examples_per_s"]
             if "error" not in ours and "error" not in ref else None)
    lines.append(
        f"| {result['row']['name']} | {_fmt(ours.get('examples_per_s'), ',.0f')} | "
        f"{_fmt(ref.get('examples_per_s'), ',.0f')} | {_fmt(ratio, '.2f') + ('x' if ratio else '')} | "
        f"{_fmt(ours.get('step_ms'), '.2f')} | {_fmt(ref.get('step_ms'), '.2f')} | "
        f"{_fmt(ours.get('first_step_s'), '.1f')} / {_fmt(ref.get('first_step_s'), '.1f')} | "
        f"{_fmt(ours.get('peak_mib'), ',.0f')} / {_fmt(ref.get('peak_mib'), ',.0f')} |")
  by_name = {r["row"]["name"]: r for r in results}
  ours, ref = by_name.get("mlp-128-xla-1rep", {}), by_name.get("mlp-128-1rep", {})
  if "examples_per_s" in ours.get("tfvae", {}) and "examples_per_s" in ref.get("keras", {}):
    jit = ref["keras"].get("jit_compile")
    lines += ["", "Defaults against defaults (MLP, batch 128): tfvae "
              f"{ours['tfvae']['examples_per_s']:,.0f} examples/s (XLA on, data on device) vs "
              f"Keras fit {ref['keras']['examples_per_s']:,.0f} (compile() defaults: "
              f"jit_compile='auto'{', which resolved to ' + str(jit) if jit is not None else ''})"
              f": {ours['tfvae']['examples_per_s'] / ref['keras']['examples_per_s']:.2f}x."]
  return "\n".join(lines)


def _quality_line(quality, epochs):
  return (f"Test ELBO after {epochs} epochs (mlp-128-1rep, each side's defaults otherwise, nats, "
          f"same binarized test set): tfvae {_fmt(quality['tfvae'].get('test_elbo'), '.2f')}, "
          f"Keras fit {_fmt(quality['keras'].get('test_elbo'), '.2f')}.")


def main(argv):
  del argv
  if FLAGS.row:
    _run_row(json.loads(FLAGS.row))
    return
  if FLAGS.from_json:
    with open(FLAGS.from_json) as f:
      saved = json.load(f)
    text = table(saved["results"], saved["machine"])
    if saved.get("quality"):
      text += "\n\n" + _quality_line(saved["quality"], saved["flags"].get("quality_epochs", "?"))
    print(text)
    return
  machine = _machine()
  steps, repeats = (50, 2) if FLAGS.quick else (FLAGS.steps, FLAGS.repeats)
  results = []
  for row in _rows(FLAGS.quick, bool(machine["gpus"])):
    if FLAGS.only and row["name"] not in FLAGS.only:
      continue
    result = {"row": row}
    row_steps = max(10, steps * 128 // row["batch_size"])  # about the same examples per chunk
    for runner in ("tfvae", "keras"):
      result[runner] = _spawn(runner, row, row_steps, repeats)
    print(json.dumps(result), flush=True)
    results.append(result)
  text = table(results, machine)
  quality = None
  if FLAGS.quality_epochs and not FLAGS.quick:
    row = _rows(True, bool(machine["gpus"]))[0]
    quality = {runner: _spawn(runner, row, 50, 1, FLAGS.quality_epochs)
               for runner in ("tfvae", "keras")}
    text += "\n\n" + _quality_line(quality, FLAGS.quality_epochs)
  print(text)
  if FLAGS.output:
    with open(FLAGS.output, "w") as f:
      json.dump({"machine": machine, "results": results, "quality": quality,
                 "flags": {"steps": steps, "repeats": repeats, "dataset": FLAGS.dataset,
                           "quality_epochs": FLAGS.quality_epochs}}, f,
                indent=2)
  if FLAGS.markdown:
    with open(FLAGS.markdown, "w") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  app.run(main)
