"""Feature networks for sample quality: a classifier of the dataset's own classes (cached beside
the data) and ImageNet's Inception-v3.

`domain_classifier` trains a small Keras classifier on a dataset's labeled train split (a conv
net for images, an MLP for vectors; fixed seed) and caches it, so that every model evaluated on
that dataset is measured in the same feature space: DIR/<dataset>_<shape>_<key>/ holds
classifier.keras (keras.saving, loaded with safe_mode=True) and classifier.json (architecture,
training settings, train and test accuracy, the data it saw), where key is a SHA-256 of the
training and test arrays, their labels, the architecture and the training settings. DIR is
`default_cache_dir`: DATA_DIR/tfvae_feature_networks, beside the datasets TFDS prepares (and
tfvae's decoded copies of them, tfvae/data/array_cache.py). Its features are the penultimate
layer's activations, [N, 128].

`InceptionFeatures` is keras.applications.InceptionV3 without its top, average-pooled: [N, 2048]
features of images resized to 299 x 299: an Inception-v3 FID (Heusel et al. 2017), with Keras's
weights rather than the reference graph of published FIDs.
Its ImageNet weights are downloaded by Keras (online only); weights=None gives random weights.
"""

import hashlib
import json
import os
import re
import shutil
import tempfile
from typing import Any, Optional

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from tfvae import keras_scope
from tfvae.errors import ConfigError, DataError

FEATURE_NETWORKS = ("domain_classifier", "inception_v3")
CACHE_FOLDER = "tfvae_feature_networks"
MODEL_FILENAME = "classifier.keras"
INFO_FILENAME = "classifier.json"
FEATURE_LAYER = "features"
# The classifier (recorded in classifier.json, and part of the cache key): images go through
# stride-2 3x3 ReLU convs with these filters, vectors through a standardization and Dense ReLU
# layers of these widths; then the feature layer and the logits.
ARCHITECTURE = {"conv_filters": [32, 64], "hidden_units": [256], "feature_units": 128}
# Adam on the cross-entropy, batches drawn by a tf.data shuffle seeded with `seed`: at least
# `epochs` passes over the train split and at least `min_steps` steps (small datasets).
TRAINING = {"epochs": 5, "min_steps": 500, "batch_size": 128, "learning_rate": 1e-3}
INCEPTION_SIZE = 299


def default_cache_dir(data_dir: str = "") -> str:
  """DATA_DIR/tfvae_feature_networks: DATA_DIR is --data_dir, else TFDS's default
  ~/tensorflow_datasets."""
  return os.path.join(os.path.expanduser(data_dir or os.path.join("~", "tensorflow_datasets")),
                      CACHE_FOLDER)


class DomainClassifier:
  """A classifier of a dataset's classes; its penultimate layer gives the features.

  Inputs x: float32 [N, H, W, C] images in [0, 1] or [N, D] raw feature vectors, the shape it
  was trained on (info["input_shape"]).

  Attributes:
    model: keras.Model x -> logits float32 [N, num_classes].
    info: dict, what classifier.json records (architecture, training, train_accuracy and
      test_accuracy in [0, 1], dataset, input_shape, num_classes, key).
    path: the folder it is cached in, or None where it could not be written.
  """

  def __init__(self, model: keras.Model, info: dict, path: Optional[str]):
    self.model = model
    self.info = info
    self.path = path
    self._features = keras.Model(model.inputs, model.get_layer(FEATURE_LAYER).output)

  def _checked(self, x: Any) -> np.ndarray:
    x = np.asarray(x, np.float32)
    shape = tuple(self.info["input_shape"])
    if x.shape[1:] != shape:
      raise ValueError(f"x has shape {x.shape}; the classifier takes [N, "
                       f"{', '.join(map(str, shape))}].")
    return x

  def features(self, x: Any, batch_size: int = 500) -> np.ndarray:
    """float32 [N, 128]: the feature layer's activations (ReLU) for x."""
    return _predict(self._features, self._checked(x), batch_size)

  def logits(self, x: Any, batch_size: int = 500) -> np.ndarray:
    """float32 [N, num_classes]: the logits of p(y|x)."""
    return _predict(self.model, self._checked(x), batch_size)

  def classify(self, x: Any, batch_size: int = 500) -> np.ndarray:
    """int64 [N]: the most probable class of each example."""
    return np.argmax(self.logits(x, batch_size), axis=-1).astype(np.int64)

  def accuracy(self, x: Any, labels: Any) -> float:
    """The fraction in [0, 1] of the examples with a label (label >= 0) classified as labeled."""
    labels = np.asarray(labels)
    known = labels >= 0
    return float(np.mean(self.classify(np.asarray(x)[known]) == labels[known]))


def _predict(model: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
  if not len(x):
    return np.zeros([0, *model.output_shape[1:]], np.float32)
  return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), np.float32)


def _build(input_shape: tuple, num_classes: int, x_train: np.ndarray) -> keras.Model:
  """The classifier of ARCHITECTURE (functional, built-in layers only: safe_mode loads it)."""
  inputs = keras.Input(input_shape, name="x")
  h = inputs
  if len(input_shape) == 3:
    for filters in ARCHITECTURE["conv_filters"]:
      h = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(h)
    h = keras.layers.Flatten()(h)
  else:
    h = keras.layers.Normalization(mean=x_train.mean(0), variance=x_train.var(0))(h)
    for units in ARCHITECTURE["hidden_units"]:
      h = keras.layers.Dense(units, activation="relu")(h)
  h = keras.layers.Dense(ARCHITECTURE["feature_units"], activation="relu", name=FEATURE_LAYER)(h)
  logits = keras.layers.Dense(num_classes, name="logits")(h)
  return keras.Model(inputs, logits, name="domain_classifier")


def _labeled(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  known = np.asarray(labels) >= 0
  return np.asarray(x, np.float32)[known], np.asarray(labels, np.int64)[known]


def _key(train: tuple, test: tuple, seed: int) -> str:
  digest = hashlib.sha256(json.dumps([ARCHITECTURE, TRAINING, seed]).encode())
  for array in (*train, *test):
    digest.update(str(array.shape).encode())
    digest.update(np.ascontiguousarray(array).tobytes())
  return digest.hexdigest()


def _folder_name(dataset: str, shape: tuple, key: str) -> str:
  slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.basename(dataset.rstrip("/")) or "data")
  return f"{slug[:40]}_{'x'.join(map(str, shape))}_{key[:16]}"


def domain_classifier(x_train: Any, y_train: Any, x_test: Any, y_test: Any, dataset: str,
                      cache_dir: Optional[str] = None, seed: int = 0) -> DomainClassifier:
  """The classifier of this train split from the cache, trained and cached on a miss.

  Args:
    x_train, x_test: float32 [N, H, W, C] images in [0, 1] or [N, D] raw vectors: the train
      split it learns from, the test split its recorded accuracy is measured on.
    y_train, y_test: int [N] labels 0..K-1 (-1: unknown, left out).
    dataset: the dataset's name (names the cache folder; recorded).
    cache_dir: the folder of cached classifiers (default `default_cache_dir()`); created. Where
      it cannot be written the classifier is trained and used without being cached (a warning).
    seed: int, the initial weights and the order of the batches.

  Returns:
    DomainClassifier (its info says whether it was trained now: info["loaded"]).

  Raises:
    DataError: if the train split has no labels or a single class.
  """
  train, test = _labeled(x_train, y_train), _labeled(x_test, y_test)
  num_classes = int(max(train[1].max(initial=-1), test[1].max(initial=-1))) + 1
  if len(np.unique(train[1])) < 2:
    raise DataError(f"--feature_network=domain_classifier trains a classifier on the labels of "
                    f"the train split; --dataset={dataset} has {len(np.unique(train[1]))} "
                    "classes there. Use --feature_network=inception_v3 (images, online).")
  key = _key(train, test, seed)
  shape = tuple(int(d) for d in train[0].shape[1:])
  cache_dir = cache_dir or default_cache_dir()
  folder = os.path.join(cache_dir, _folder_name(dataset, shape, key))
  if os.path.exists(os.path.join(folder, INFO_FILENAME)):
    try:
      with open(os.path.join(folder, INFO_FILENAME), encoding="utf-8") as f:
        info = json.load(f)
      if info.get("key") == key:
        model = keras.saving.load_model(os.path.join(folder, MODEL_FILENAME), compile=False,
                                        safe_mode=True)
        logging.info("Loaded the domain classifier of %s from %s (test accuracy %.4f).",
                     dataset, folder, info["test_accuracy"])
        return DomainClassifier(model, {**info, "loaded": True}, folder)
    except Exception as e:  # pylint: disable=broad-except
      logging.warning("Could not load the cached domain classifier %s (%s: %s); training it "
                      "again.", folder, type(e).__name__, e)
  model, info = _train(train, test, num_classes, seed)
  info.update(dataset=dataset, input_shape=list(shape), key=key)
  logging.info("Trained the domain classifier of %s: test accuracy %.4f (%d steps).", dataset,
               info["test_accuracy"], info["training"]["steps"])
  return DomainClassifier(model, {**info, "loaded": False}, _save(model, info, cache_dir, folder))


def _train(train: tuple, test: tuple, num_classes: int, seed: int) -> tuple[keras.Model, dict]:
  x, y = train
  batch = TRAINING["batch_size"]
  steps = max(TRAINING["min_steps"], TRAINING["epochs"] * -(-len(x) // batch))
  with keras_scope.building("float32", seed):
    model = _build(x.shape[1:], num_classes, x)
  model.compile(optimizer=keras.optimizers.Adam(TRAINING["learning_rate"]),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  batches = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(
      len(x), seed=seed, reshuffle_each_iteration=True).repeat().batch(batch)
  model.fit(batches, steps_per_epoch=steps, epochs=1, shuffle=False, verbose=0)
  classifier = DomainClassifier(model, {"input_shape": list(x.shape[1:])}, None)
  info = {"architecture": {**ARCHITECTURE, "kind": "conv" if x.ndim == 4 else "mlp",
                           "layers": [layer.name for layer in model.layers],
                           "num_parameters": int(model.count_params())},
          "training": {**TRAINING, "steps": steps, "seed": seed, "keras": keras.__version__},
          "num_classes": num_classes, "num_train_examples": len(x),
          "num_test_examples": len(test[0]),
          "train_accuracy": classifier.accuracy(x, y),
          "test_accuracy": classifier.accuracy(*test) if len(test[0]) else float("nan")}
  return model, info


def _save(model: keras.Model, info: dict, cache_dir: str, folder: str) -> Optional[str]:
  """Writes the folder whole (a temporary one renamed), or keeps one another process wrote."""
  try:
    os.makedirs(cache_dir, exist_ok=True)
    temporary = tempfile.mkdtemp(prefix=os.path.basename(folder) + ".", dir=cache_dir)
  except OSError as e:
    logging.warning("Could not cache the domain classifier in %s (%s); it is used uncached.",
                    cache_dir, e)
    return None
  try:
    keras.saving.save_model(model, os.path.join(temporary, MODEL_FILENAME))
    with open(os.path.join(temporary, INFO_FILENAME), "w", encoding="utf-8") as f:
      json.dump(info, f, indent=2)
    if os.path.exists(folder):  # a stale or damaged entry: replaced
      shutil.rmtree(folder, ignore_errors=True)
    os.rename(temporary, folder)
    return folder
  except OSError as e:
    logging.warning("Could not cache the domain classifier in %s (%s).", folder, e)
    return None
  finally:
    shutil.rmtree(temporary, ignore_errors=True)


class InceptionFeatures:
  """Inception-v3's average-pooled last features, [N, 2048] (Keras's weights; not the reference
  graph of published FIDs).

  Args:
    weights: "imagenet" (downloaded by keras.applications on first use: online only) or None
      (random weights, seeded: for tests of the plumbing).

  Raises:
    ConfigError: if the ImageNet weights cannot be had (offline), naming the flag.
  """

  def __init__(self, weights: Optional[str] = "imagenet"):
    try:
      with keras_scope.building("float32", 0):
        self.model = keras.applications.InceptionV3(
            include_top=False, pooling="avg", weights=weights,
            input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3))
    except Exception as e:  # pylint: disable=broad-except
      if weights is None:
        raise
      raise ConfigError(f"--feature_network=inception_v3 needs Keras's ImageNet weights, which "
                        f"could not be had ({type(e).__name__}: {str(e).splitlines()[0][:200]}"
                        "); offline, use --feature_network=domain_classifier.") from None
    self._call = tf.function(self._features, autograph=False,
                             input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])

  def _features(self, x: tf.Tensor) -> tf.Tensor:
    x = tf.image.resize(x, (INCEPTION_SIZE, INCEPTION_SIZE), method="bilinear")
    return self.model(x * 2.0 - 1.0, training=False)  # Inception's inputs are in [-1, 1]

  def features(self, x: Any, batch_size: int = 50) -> np.ndarray:
    """float32 [N, 2048] of images x float [N, H, W, C] in [0, 1], C = 1 (gray) or 3.

    Raises:
      ValueError: if x is not [N, H, W, 1 or 3].
    """
    x = np.asarray(x, np.float32)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
      raise ValueError(f"x has shape {x.shape}; inception_v3 takes images [N, H, W, 1 or 3].")
    if x.shape[-1] == 1:  # gray: the same value in R, G and B
      x = np.repeat(x, 3, axis=-1)
    parts = [self._call(tf.constant(x[i:i + batch_size])).numpy()
             for i in range(0, len(x), batch_size)]
    return np.concatenate(parts) if parts else np.zeros([0, 2048], np.float32)
