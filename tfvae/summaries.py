"""TensorBoard I/O: scalars and image grids written during training, scalars read back."""

import numpy as np
import tensorflow as tf
from tfvae.models import interface


GRID_PADDING = 1  # pixels of PAD_VALUE between the tiles of a grid
PAD_VALUE = 0.5


def image_grid(images, columns, pad=GRID_PADDING, pad_value=PAD_VALUE):
  """Tiles images [N, H, W, C] into one image [1, rows*(H+pad)-pad, columns*(W+pad)-pad, C].

  Tiles are separated by `pad` pixels of `pad_value` (mid-gray: visible between black and
  white digits), so neighbouring images never merge into stripes; blank cells pad the last
  row. Values are clipped to [0, 1]. Tile (r, c) starts at row r*(H+pad), column c*(W+pad).
  """
  images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
  n, h, w, c = images.shape
  rows = -(-n // columns)
  padded = np.full([rows * columns, h + pad, w + pad, c], pad_value, np.float32)
  padded[:, :h, :w] = 0.0  # blank cells
  padded[:n, :h, :w] = images
  grid = padded.reshape(rows, columns, h + pad, w + pad, c).transpose(0, 2, 1, 3, 4)
  grid = grid.reshape(rows * (h + pad), columns * (w + pad), c)
  return grid[None, :rows * (h + pad) - pad, :columns * (w + pad) - pad]


def given(labels=None, conditions=None):
  """The part of a batch a Conditional model's `condition(batch)` reads: {"label": int [N]}
  and/or {"condition": float32 [N, C]}, of those given."""
  out = {} if labels is None else {"label": tf.constant(np.asarray(labels), tf.int64)}
  if conditions is not None:
    out["condition"] = tf.constant(np.asarray(conditions), tf.float32)
  return out


def reconstruction_grid(model, images, labels=None, conditions=None):
  """Inputs [N, H, W, C] beside the model's reconstructions: a grid of N rows, 2 columns
  (a Conditional model's given the images' classes `labels` int [N], or their real
  `conditions` float32 [N, C] for a cvae on conditions)."""
  if isinstance(model, interface.Conditional):
    recon = model.reconstruct(images, model.condition(given(labels, conditions)))
  else:
    recon = model.reconstruct(images)
  pairs = np.stack([np.asarray(images), np.asarray(recon)], axis=1)
  return image_grid(pairs.reshape(-1, *pairs.shape[2:]), columns=2)


def sample_grid(model, num, seed, columns=8, conditions=None):
  """Decoder means of `num` draws of `model.sample` with stateless `seed`, as one grid image;
  a model given `conditions` float32 [n, C] (a cvae on conditions, which samples only given
  them) draws one image per row of them instead."""
  if conditions is not None and isinstance(model, interface.Conditional):
    c = tf.constant(np.asarray(conditions), tf.float32)
    return image_grid(model.sample_given(c, seed)["mean"], columns)
  return image_grid(model.sample(num, seed)["mean"], columns)


def write_scalars(writer, step, values):
  """Writes numbers as scalars and lists (e.g. rate_per_dimension) as histograms."""
  with writer.as_default(step=step):
    for name, value in values.items():
      if isinstance(value, (list, tuple)):
        tf.summary.histogram(name, value)
      else:
        tf.summary.scalar(name, value)


def write_images(writer, step, model, images, seed, labels=None, conditions=None):
  """Reconstructions of `images` and samples (given `conditions`, the images' own, for a
  cvae on conditions) as TensorBoard images at `step`."""
  with writer.as_default(step=step):
    tf.summary.image("reconstructions", reconstruction_grid(model, images, labels, conditions))
    if isinstance(model, interface.LatentVariableModel):  # AEs have no prior to sample
      tf.summary.image("samples", sample_grid(model, 32, seed, conditions=conditions))


def read_scalars(event_dir, tags=None):
  """Reads scalars back with TensorBoard's own EventAccumulator (what TensorBoard shows).

  Args:
    event_dir: a folder of event files (e.g. WORKDIR/tensorboard/eval).
    tags: scalar tags to read; None reads all.

  Returns:
    {tag: (steps int64 [n], values float64 [n])}, in step order.

  Raises:
    ValueError: naming the tag and folder, if a requested tag is not there.
  """
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  acc = event_accumulator.EventAccumulator(event_dir, size_guidance={"tensors": 0})
  acc.Reload()
  available = [t for t in acc.Tags()["tensors"]
               if acc.Tensors(t) and acc.Tensors(t)[0].tensor_proto.tensor_shape.dim == []]
  missing = sorted(set(tags or []) - set(available))
  if missing:
    raise ValueError(f"No scalar {missing} in {event_dir}; it has {sorted(available)}.")
  out = {}
  for tag in tags or available:
    events = sorted(acc.Tensors(tag), key=lambda e: e.step)
    out[tag] = (np.array([e.step for e in events]),
                np.array([float(tf.make_ndarray(e.tensor_proto)) for e in events]))
  return out
