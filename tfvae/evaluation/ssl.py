"""Semi-supervised evaluation: M1 (a linear classifier on posterior means) and classifier accuracy.

M1 is the "latent-feature discriminative model" of Kingma, Rezende, Mohamed & Welling,
"Semi-supervised learning with deep generative models", NeurIPS 2014: a VAE trained on all train
images (labels unused), then a classifier fit on the posterior means E_q[z|x] of the N labeled
examples. Here the classifier is scikit-learn's LogisticRegression on the posterior means as they
are (not standardized: see logistic_regression_accuracy).
The labeled subset is `data.labeled_indices` (balanced, --label_seed), so M1, M2 and the PC-VAE
see the same labels for the same seed.
"""

import numpy as np


def embed(model, images, batch_size=1000):
  """Posterior means E_q[z|x] of float images, in batches.

  Args:
    model: a tfvae model with `encoder` (x -> q(z|x)).
    images: float32 [N, H, W, C] in [0, 1].
    batch_size: images encoded at once.

  Returns:
    float64 [N, latent_dim] numpy array.
  """
  out = [np.asarray(model.encoder(images[i:i + batch_size]).mean(), np.float64)
         for i in range(0, len(images), batch_size)]
  return np.concatenate(out)


def split_arrays(data, split):
  """(images float32 [N, H, W, C] in [0, 1], labels int64 [N]) of a split, as evaluation sees it
  (binarized/dequantized once with the split's fixed seed; see data.eval_dataset)."""
  from tfvae import data as data_lib  # pylint: disable=import-outside-toplevel
  images, labels = [], []
  for batch in data_lib.eval_dataset(data, split, 1000):
    images.append(batch["image"].numpy())
    labels.append(batch["label"].numpy())
  return np.concatenate(images), np.concatenate(labels)


def logistic_regression_accuracy(train_features, train_labels, test_features, test_labels):
  """Fits sklearn LogisticRegression (default L2, C=1) on the features as they are; returns the
  test accuracy.

  The features are not standardized: posterior means are already on the prior's unit scale for
  active latent dimensions, while collapsed (inactive) ones barely vary; standardizing gave
  those noise dimensions the same weight and, with 100 labels on Fashion-MNIST, dropped M1
  from 64% to 51% test accuracy (posterior means of a 32-dim VAE with 12 active units). Pixels
  are in [0, 1].

  Args:
    train_features: float [N, ...]; train_labels: int [N].
    test_features: float [M, ...]; test_labels: int [M].

  Returns:
    float accuracy in [0, 1] on the test examples.
  """
  from sklearn import linear_model  # pylint: disable=import-outside-toplevel
  classifier = linear_model.LogisticRegression(max_iter=5000)
  classifier.fit(np.reshape(train_features, [len(train_features), -1]), train_labels)
  predicted = classifier.predict(np.reshape(test_features, [len(test_features), -1]))
  return float(np.mean(predicted == np.asarray(test_labels)))


def m1_accuracy(model, data, config, num_labels=None, label_seed=None, split="test"):
  """M1 (Kingma et al. 2014): logistic regression on the posterior means of the labeled examples.

  Args:
    model: a trained tfvae model with an encoder.
    data: data.Data of the run.
    config: the run's Config (binarization; num_labels and label_seed when not given).
    num_labels: int N, or None for config.data.num_labels ('all': every train label).
    label_seed: int, or None for config.data.label_seed.
    split: the split scored ("test" or "validation").

  Returns:
    dict: accuracy (in [0, 1]), num_labels (int), label_seed, split, num_examples.

  Raises:
    data.DataError: if N is not a multiple of the number of classes or too large.
  """
  import dataclasses  # pylint: disable=import-outside-toplevel
  from tfvae import data as data_lib  # pylint: disable=import-outside-toplevel
  overrides = {}
  if num_labels is not None:
    overrides["num_labels"] = str(num_labels)
  if label_seed is not None:
    overrides["label_seed"] = label_seed
  config = config.replace(**overrides)
  chosen = data_lib.labeled_indices(data, config)
  train_x, train_y = split_arrays(data_lib.fixed_train(data, config), "train")
  test_x, test_y = split_arrays(data, split)
  accuracy = logistic_regression_accuracy(embed(model, train_x[chosen]), train_y[chosen],
                                          embed(model, test_x), test_y)
  return {"accuracy": accuracy, "num_labels": int(len(chosen)),
          "label_seed": config.data.label_seed,
          "split": split, "num_examples": int(len(test_y))}


def supervised_network_accuracy(train_images, train_labels, test_images, test_labels, config,
                                epochs=200, batch_size=32, seed=0):
  """A network with the encoder's architecture (its body + a softmax layer) trained on the labeled
  images only, with Adam and cross-entropy (Keras `fit`); returns its test accuracy.

  Args:
    train_images: float32 [N, H, W, C]; train_labels: int [N].
    test_images: float32 [M, H, W, C]; test_labels: int [M].
    config: Config; uses architecture, hidden_sizes, conv_filters, learning_rate, num_classes
      (else 1 + the largest label).
    epochs: passes over the N labeled images.
    batch_size: examples per step.
    seed: weight initialization and shuffling.

  Returns:
    float accuracy in [0, 1].
  """
  import keras  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from tfvae import keras_scope  # pylint: disable=import-outside-toplevel
  from tfvae import networks  # pylint: disable=import-outside-toplevel
  num_classes = config.data.num_classes or int(max(np.max(train_labels), np.max(test_labels))) + 1
  with keras_scope.building("float32", seed):  # no global seed is set
    net = keras.Sequential([keras.Input(train_images.shape[1:])]
                           + networks.image_body(config.model.architecture,
                                                 config.model.hidden_sizes,
                                                 config.model.conv_filters)
                           + [keras.layers.Dense(num_classes)])
  net.compile(keras.optimizers.Adam(config.training.learning_rate),
              keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  # Shuffled by an op seed (a new order each epoch), not by the global generators fit would use.
  batches = tf.data.Dataset.from_tensor_slices(
      (np.asarray(train_images, np.float32), np.asarray(train_labels))).shuffle(
          len(train_labels), seed=seed).batch(batch_size)
  net.fit(batches, epochs=epochs, verbose=0)
  predicted = np.argmax(net.predict(test_images, batch_size=1000, verbose=0), -1)
  return float(np.mean(predicted == np.asarray(test_labels)))
