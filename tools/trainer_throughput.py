"""Steady-state examples/s of tfvae's Trainer for one setting, in this process (A/B studies).

  python tools/trainer_throughput.py --data_dir=D [--batch_size=128] [--nojit_compile]
      [--dtype_policy=mixed_bfloat16] [--whole_loop_xla] [--chunks=3]

Builds the Trainer `python -m tfvae.train` uses (MLP 784-512-256-32 on Fashion-MNIST, data on
the device), runs 10 steps (tracing and compilation, reported as first_s), then --chunks calls
of one epoch's steps each, and prints one JSON line: the setting, first_s, examples/s of each
chunk, the last chunk's mean loss. Run settings in separate processes, interleaved (A B A B),
and record lscpu's model name with the numbers. --whole_loop_xla jit-compiles the whole train
loop (Adam and the finite check included) instead of the gradient only. Timing lives here,
never in a unit test.
"""

import dataclasses
import json
import os
import time

from absl import app
from absl import flags

flags.DEFINE_string("data_dir", "", "TFDS data_dir holding fashion_mnist.")
flags.DEFINE_integer("batch_size", 128, "Global batch size.")
flags.DEFINE_bool("jit_compile", True, "tfvae's --jit_compile (XLA for the gradient).")
flags.DEFINE_string("dtype_policy", "float32", "tfvae's --dtype_policy.")
flags.DEFINE_bool("whole_loop_xla", False, "XLA-compile the whole train loop.")
flags.DEFINE_integer("chunks", 3, "Timed calls of one epoch's steps.", lower_bound=1)
FLAGS = flags.FLAGS


def main(argv):
  del argv
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tfvae import config as config_lib  # pylint: disable=import-outside-toplevel
  from tfvae import data as data_lib  # pylint: disable=import-outside-toplevel
  from tfvae.training import distribute  # pylint: disable=import-outside-toplevel
  from tfvae.training import trainer as trainer_lib  # pylint: disable=import-outside-toplevel
  config = config_lib.Config(dataset="fashion_mnist", data_dir=FLAGS.data_dir,
                             hidden_sizes=(512, 256), latent_dim=32, batch_size=FLAGS.batch_size,
                             jit_compile=FLAGS.jit_compile, dtype_policy=FLAGS.dtype_policy)
  data = data_lib.load(config)
  config = config.replace(image_shape=data.image_shape)
  trainer = trainer_lib.Trainer(config, distribute.make_strategy(config))
  if FLAGS.whole_loop_xla:
    trainer._train_loop = tf.function(trainer._train_loop_fn, autograph=False,  # pylint: disable=protected-access
                                      jit_compile=True)
  source = trainer.train_iterator(data)
  began = time.perf_counter()
  trainer.train(source, 10)
  first_s = time.perf_counter() - began
  steps = len(data.train) // FLAGS.batch_size
  rates = []
  for _ in range(FLAGS.chunks):
    began = time.perf_counter()
    result = trainer.train(source, steps)
    rates.append(round(steps * FLAGS.batch_size / (time.perf_counter() - began)))
  print(json.dumps({"batch_size": FLAGS.batch_size, "jit_compile": FLAGS.jit_compile,
                    "dtype_policy": FLAGS.dtype_policy, "whole_loop_xla": FLAGS.whole_loop_xla,
                    "first_s": round(first_s, 2), "examples_per_second": rates,
                    "loss": result["loss"]}))


if __name__ == "__main__":
  app.run(main)
