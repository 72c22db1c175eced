"""An exported SavedModel called from Python, with refusals whose first line says what is wrong.

The signatures of an export (tfvae/serving.py) check their inputs in the graph
(tfvae/serving_inputs.py). When a check fails in a call from Python, TensorFlow rewrites the
InvalidArgumentError's message to begin with "Graph execution error:" and the failing node's
trace; the check's own message ("signature encode expects x in [0, 1] ...") comes four lines
later, and nothing inside the graph can change that (docs/platform.md). `load` returns the
SavedModel with its signatures wrapped so that the same error is raised with the check's message
as its first line (TensorFlow's text follows).

    from tfvae import exported
    m = exported.load("runs/mine/export")
    images = m.signatures["sample"](n=tf.constant(16), seed=tf.constant([0, 1]))["mean"]

It imports TensorFlow only (no TFP, no other tfvae module), as the SavedModel needs.
"""

import re
from typing import Any, Callable

import tensorflow as tf

_ASSERTION = re.compile(r"assertion failed: (.*)")
_TF_PREFIX = "Graph execution error:"


def reason(message: str) -> str:
  """The line that says why a signature refused its input.

  Args:
    message: an InvalidArgumentError's message from a SavedModel call.

  Returns:
    The failed check's message ("signature encode expects x in [0, 1] (...); got values from]
    [255] [to] [255]": the check's text, then its data, each in brackets as tf.debugging.Assert
    prints them); else the first line that is not TensorFlow's "Graph execution error:" or a
    node trace; else the message.
  """
  found = _ASSERTION.search(message)
  if found:
    return found.group(1).removeprefix("[").strip()
  lines = [line.strip() for line in message.splitlines()]
  for line in lines:
    if line and line != _TF_PREFIX and not line.startswith(("Detected at node", "File ", "<")):
      return line
  return message


def _with_reason_first(function: Callable[..., Any]) -> Callable[..., Any]:
  def call(*args: Any, **kwargs: Any) -> Any:
    try:
      return function(*args, **kwargs)
    except tf.errors.InvalidArgumentError as e:
      first = reason(e.message)
      message = e.message if e.message.startswith(first) else f"{first}\n\n{e.message}"
      raise tf.errors.InvalidArgumentError(e.node_def, e.op, message) from None
  call.__doc__ = function.__doc__
  return call


class Exported:
  """A loaded export: `signatures[name](**inputs)` and the restored functions (`encode(x)`, ...)
  as tf.saved_model.load gives them, raising InvalidArgumentError with the reason first.

  Attributes:
    saved_model: what tf.saved_model.load returned.
    signatures: dict, signature name -> callable with keyword tensor arguments, returning a dict
      of tensors (see docs/savedmodel.md).
  """

  def __init__(self, saved_model: Any):
    self.saved_model = saved_model
    self.signatures: dict[str, Callable[..., dict[str, tf.Tensor]]] = {
        name: _with_reason_first(fn) for name, fn in saved_model.signatures.items()}

  def __getattr__(self, name: str) -> Any:
    value = getattr(self.saved_model, name)
    return _with_reason_first(value) if callable(value) else value


def load(path: str) -> Exported:
  """Loads the SavedModel at `path` (e.g. WORKDIR/export) with tf.saved_model.load.

  Raises:
    OSError / ValueError: as tf.saved_model.load, if `path` holds no SavedModel.
  """
  return Exported(tf.saved_model.load(path))
