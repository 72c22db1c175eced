"""Keras's process-wide settings that model building reads (the dtype policy and the seeds of
weight initializers), set for the duration of a build only and then restored, so that building
a tfvae model leaves the caller's Keras, Python, NumPy and TensorFlow random state as it was.

Keras 3 layers take the global dtype policy when they are created. An initializer made without
a seed takes one from Python's `random` module (keras.src.random.seed_generator.
make_default_seed), and unseeded keras.random ops draw from Keras's global SeedGenerator.
`keras.utils.set_random_seed` would reseed Python, NumPy, TensorFlow and Keras for the rest of
the process; `building` seeds Python's `random` and resets Keras's generator as it does (so the
same seed gives the same weights as tfvae's earlier global seeding), then puts back the
caller's state.
"""

import contextlib
import random

import keras
from keras.src.backend.common import global_state
from keras.src.random import seed_generator


@contextlib.contextmanager
def building(dtype_policy: str = "float32", seed: int | None = None):
  """Within: Keras's global dtype policy is `dtype_policy` and, with a `seed`, layers created
  get initial weights determined by it. Keras's policy and seed generator and Python's `random`
  state are restored on exit (NumPy and TensorFlow are not touched).

  Args:
    dtype_policy: a Keras dtype policy name ("float32", "mixed_bfloat16", ...).
    seed: int, or None to leave the initial weights random.
  """
  previous_policy = keras.config.dtype_policy()
  previous_generator = global_state.get_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR)
  previous_random = random.getstate()
  keras.config.set_dtype_policy(dtype_policy)
  if seed is not None:
    random.seed(seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)  # made anew
  try:
    yield
  finally:
    keras.config.set_dtype_policy(previous_policy)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, previous_generator)
    random.setstate(previous_random)
