"""A user's arguments to a TrainedModel turned into checked tensors: ints, splits, data, inputs x,
and what a conditional model is given with them (a class `label`, or real `condition`s).

One owner for the checks of tfvae/trained.py: each refusal is one ValueError (or DataError, a
ValueError) naming the argument and what is expected, raised before any work. The SavedModel
checks the same things in its graph (tfvae/serving_inputs.py, tfvae/serving_conditions.py).
"""

import os
from typing import Any, Optional, Union

import numpy as np
import tensorflow as tf

from tfvae.data import arrays
from tfvae.models import interface

SPLITS = ("train", "validation", "test")
PathLike = Union[str, "os.PathLike[str]"]
# What `fit`, `evaluate` and `data` take as data: a tfvae.data Source or unlabeled examples.
DataLike = Union[arrays.Source, np.ndarray]


def check_int(name: str, value: Any, low: int, high: Optional[int] = None,
              why: str = "") -> None:
  """ValueError naming the argument unless value is an int (not bool) in [low, high]."""
  if (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer))
      or value < low or (high is not None and value > high)):
    bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
    raise ValueError(f"{name}={value!r}: expected an int {bounds}{why}.")


def check_split(split: str) -> None:
  """ValueError unless `split` is "train", "validation" or "test"."""
  if split not in SPLITS:
    raise ValueError(f"split={split!r}: expected one of {', '.join(map(repr, SPLITS))}.")


def as_source(data: Optional[DataLike]) -> Optional[arrays.Source]:
  """`data` as a tfvae.data Source (None stays None; a numpy array is `from_arrays(data)`).

  Raises:
    TypeError: for anything else.
  """
  if data is None or isinstance(data, arrays.Source):
    return data
  if isinstance(data, np.ndarray):
    return arrays.from_arrays(data)
  raise TypeError(f"data must be a tfvae.data Source (from_arrays, from_directory, from_file) "
                  f"or a numpy array, not {type(data).__name__}.")


def examples(config: Any, x: Any, name: str = "x") -> tf.Tensor:
  """float32 Tensor [N, *image_shape] of x, checked as the SavedModel checks it (images:
  tfvae.data.arrays.unit_pixels; vectors: finite features), raw features standardized under
  --standardize (config.data.feature_mean, feature_scale).

  Raises:
    ValueError: x of another shape; DataError (a ValueError): values that are not pixels or
      finite features, naming `name` and the range found.
  """
  x = np.asarray(x)
  shape = tuple(config.data.image_shape)
  if x.shape[1:] != shape and x.ndim == len(shape) and len(shape) == 3 and shape[-1] == 1:
    x = x[..., None]  # [N, H, W] gray images
  if x.shape[1:] != shape or not x.ndim:
    raise ValueError(f"{name} has shape {x.shape}; this model takes "
                     f"[N, {', '.join(map(str, shape))}].")
  if len(shape) == 3:
    x = arrays.unit_pixels(x, config.data.pixel_levels - 1, name)
  else:
    x = arrays.checked_vectors(x, name)
  if config.data.feature_mean:  # --standardize: raw features in
    x = (x - np.asarray(config.data.feature_mean)) / np.asarray(config.data.feature_scale)
  return tf.constant(x, tf.float32)


def on_conditions(model: Any) -> bool:
  """True for a model conditioned on real covariates (a Conditional model without classes:
  cvae on data with conditions), which takes `condition=` where the class cvae takes `label=`."""
  return (isinstance(model, interface.Conditional)
          and not isinstance(model, interface.LabelConditional))


def labels(model: Any, family: str, label: Optional[Any], num: int) -> tf.Tensor:
  """int64 [num]: the classes given with x to a class-conditional model (cvae on classes;
  required there); -1 (unknown) for other models, which refuse a label.

  Raises:
    ValueError: naming `label`: missing for the class cvae, given to another model, not ints
      in [0, K) of shape [num] or [].
  """
  conditional = isinstance(model, interface.Conditional) and not on_conditions(model)
  if label is None:
    if conditional:
      raise ValueError(f"--model={family} is conditional: give label=, the class of each "
                       f"example (int [N] or one int, in [0, {model.num_classes})).")
    return tf.fill([num], tf.constant(-1, tf.int64))
  if on_conditions(model):
    raise ValueError(f"label={label!r}: this --model={family} is conditioned on real "
                     f"conditions, not classes: give condition=, float [N, "
                     f"{model.condition_dim}] or [{model.condition_dim}].")
  if not conditional:
    raise ValueError(f"label={label!r}: --model={family} is not conditional "
                     "(only cvae takes the class with x).")
  y = np.asarray(label)
  y = np.full([num], y) if y.ndim == 0 else y
  classes = model.num_classes
  if (y.shape != (num,) or (y.size and not np.issubdtype(y.dtype, np.integer))
      or (y.size and (y.min() < 0 or y.max() >= classes))):
    raise ValueError(f"label: expected ints in [0, {classes}), one or one per example "
                     f"[{num}]; got shape {y.shape}, dtype {y.dtype}"
                     + (f", values {y.min()}..{y.max()}."
                        if y.size and np.issubdtype(y.dtype, np.number) else "."))
  return tf.constant(y.astype(np.int64))


def conditions(model: Any, family: str, condition: Optional[Any],
               num: int) -> Optional[tf.Tensor]:
  """float32 [num, C]: the real conditions given with x (or with `num` samples) to a cvae on
  conditions (required there; a row [C] is given to every example); None for other models,
  which refuse a condition.

  Raises:
    ValueError: one line naming `condition` and the expected shape: missing for the cvae on
      conditions, given to another model (the class cvae takes label=), not real numbers of
      shape [num, C] or [C], NaN or infinite.
  """
  if not on_conditions(model):
    if condition is not None:
      raise ValueError(f"condition: --model={family} is not conditioned on real conditions"
                       + (" (this cvae is conditioned on classes: give label=)."
                          if isinstance(model, interface.Conditional) else "."))
    return None
  width = model.condition_dim
  expected = (f"expected finite real numbers [{num}, {width}] (one row per example) or "
              f"[{width}] (one for all)")
  if condition is None:
    raise ValueError(f"condition: --model={family} is conditioned on real conditions; "
                     f"{expected}.")
  c = np.asarray(condition)
  if c.dtype.kind not in "iuf" or c.dtype == np.bool_:
    raise ValueError(f"condition: {expected}; got dtype {c.dtype}.")
  if c.shape == (width,):
    c = np.broadcast_to(c, (num, width))
  if c.shape != (num, width):
    raise ValueError(f"condition: {expected}; got shape {c.shape}.")
  bad = ~np.isfinite(c.astype(np.float64))
  if bad.any():
    row, column = map(int, np.argwhere(bad)[0])
    raise ValueError(f"condition: {expected}; got {c[row, column]} at row {row}, column "
                     f"{column} ({int(bad.sum())} NaN or infinite values).")
  return tf.constant(c, tf.float32)


def given(model: Any, family: str, num: int, label: Optional[Any] = None,
          condition: Optional[Any] = None) -> dict[str, tf.Tensor]:
  """What `num` examples are given with: {"label": int64 [num]} (-1 unless the model takes
  classes) and, for a cvae on conditions, "condition" float32 [num, C]: the part of a batch
  that `model.condition(batch)` reads (Raises as `labels` and `conditions`)."""
  c = conditions(model, family, condition, num)
  out = {"label": labels(model, family, label, num)}
  if c is not None:
    out["condition"] = c
  return out


def sample_arguments(model: Any, family: str, num: int, seed: int, label: Optional[int],
                     condition: Optional[Any],
                     max_samples: int) -> tuple[int, Optional[tf.Tensor]]:
  """(K, c) of `TrainedModel.sample`'s arguments, checked: K the model's classes (0 when it
  samples no class), c float32 [num, C] for a cvae on conditions (else None).

  Raises:
    ValueError: num not an int in [0, max_samples], seed not an int32, a label given to a
      model without classes or outside [0, K), a condition as in `conditions`.
  """
  check_int("num", num, 0, max_samples, " (the outputs are held in memory: call sample "
            "again with another seed for more)")
  check_int("seed", seed, -2 ** 31, 2 ** 31 - 1, " (an int32)")
  classes = model.num_classes if isinstance(model, interface.LabelConditional) else 0
  if label is not None:
    if not classes:
      raise ValueError(f"label={label!r}: --model={family} is not label-conditional (m2 and "
                       "cvae on classes sample a given class"
                       + ("; this cvae takes condition=)." if on_conditions(model) else ")."))
    check_int("label", label, 0, classes - 1,
              f", a class of the {classes} (label=None draws y ~ p(y))")
  return classes, conditions(model, family, condition, num)
