"""Does a label-conditional model generate the class it is given? The per-class accuracy of a
classifier trained on real data, on samples generated for each class.

If conditioning works, the accuracy on samples of class k approaches the classifier's test
accuracy on real images of class k; a model that ignores the class scores about 1/K.
"""

from typing import Any, Callable

import numpy as np


def _draw(model: Any, num: int, seed: int, label: int, use: str) -> np.ndarray:
  """`num` images of class `label`, float32 numpy [num, *image_shape], from a TrainedModel
  (its `sample`) or a tfvae model (its `sample(n, seed, label)` with Tensors); images clipped to
  [0, 1] (a normal likelihood's means may leave it), as sample_quality's samples."""
  from tfvae import trained  # pylint: disable=import-outside-toplevel
  if isinstance(model, trained.TrainedModel):  # raw units, its checks
    x = np.asarray(model.sample(num, seed, label=label)[use])
  else:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    x = np.asarray(model.sample(tf.constant(num, tf.int32), tf.constant([seed, 0], tf.int32),
                                tf.constant(label, tf.int64))[use])
  return np.clip(x, 0, 1) if x.ndim == 4 else x  # images in the range classifiers saw


def conditional_sample_accuracy(model: Any, classify: Callable[[np.ndarray], np.ndarray],
                                num_per_class: int = 100, seed: int = 0,
                                use: str = "mean") -> dict[str, Any]:
  """The accuracy of `classify` on samples generated for each class.

  For every class k, `num_per_class` images are drawn with label=k (the same seed for every
  class) and classified; the accuracy of class k is the fraction classified as k.

  Args:
    model: a label-conditional model (interface.LabelConditional: m2, cvae), as a
      tfvae.TrainedModel (`tfvae.load`, `tfvae.fit`) or the model object itself.
    classify: images float32 [N, *image_shape] in the data's units ([0, 1] pixels; raw
      features under --standardize for a TrainedModel) -> predicted classes int [N]; e.g. a
      scikit-learn classifier's `lambda x: clf.predict(x.reshape(len(x), -1))`, trained on
      real data.
    num_per_class: int >= 1, images drawn per class.
    seed: int, the seed of the draws (int32).
    use: "mean" (the decoder means, the usual choice for Bernoulli pixels) or "sample" (pixels
      drawn from p(x|z, c)).

  Returns:
    {"accuracy": float, the mean of the per-class accuracies (= the accuracy over all samples);
    "per_class": list of K floats in [0, 1]; "num_per_class": int; "chance": 1 / K}.

  Raises:
    ValueError: for a model that does not sample given a class, num_per_class < 1, `use` not
      "mean" or "sample", or classify returning other than N predictions.
  """
  from tfvae import trained  # pylint: disable=import-outside-toplevel
  from tfvae.models import interface  # pylint: disable=import-outside-toplevel
  inner = model.model if isinstance(model, trained.TrainedModel) else model
  if not isinstance(inner, interface.LabelConditional):
    raise ValueError(f"{type(inner).__name__} does not sample given a class (m2 and cvae do).")
  if isinstance(num_per_class, bool) or not isinstance(num_per_class, int) or num_per_class < 1:
    raise ValueError(f"num_per_class={num_per_class!r}: expected an int >= 1.")
  if use not in ("mean", "sample"):
    raise ValueError(f"use={use!r}: expected 'mean' or 'sample'.")
  per_class = []
  for k in range(inner.num_classes):
    predicted = np.asarray(classify(_draw(model, num_per_class, seed, k, use))).reshape(-1)
    if predicted.shape != (num_per_class,):
      raise ValueError(f"classify returned shape {predicted.shape} for {num_per_class} images; "
                       f"expected [{num_per_class}] class indices.")
    per_class.append(float(np.mean(predicted == k)))
  return {"accuracy": float(np.mean(per_class)), "per_class": per_class,
          "num_per_class": num_per_class, "chance": 1.0 / inner.num_classes}
