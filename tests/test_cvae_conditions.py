"""The conditional VAE on real conditions (docs/conditional.md): conditions in the data
(from_arrays, CSV --condition_columns), in every batch, in the fingerprint; the CovariateCVAE
(tfvae/models/cvae.py), the Python API's condition= (tfvae/model_inputs.py) and the SavedModel's
condition inputs (tfvae/serving_conditions.py)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from sklearn import datasets

import tfvae
from tfvae import config as config_lib
from tfvae import config_io
from tfvae import data as data_lib
from tfvae import models
from tfvae import serving
from tfvae.errors import DataError
from tfvae.models import cvae
from tfvae.models import interface
from tfvae.trained import TrainedModel
from tfvae.training import workdir_setup
from tfvae.training import trainer as trainer_lib


def _digits():
  """sklearn digits: uint8 images [N, 8, 8] in 0..16, labels, and 2 covariates per image
  (label / 9, mean intensity in [0, 1])."""
  d = datasets.load_digits()
  images = d.images.astype(np.uint8)
  conditions = np.stack([d.target / 9.0, images.reshape(len(images), -1).mean(1) / 16.0], 1)
  return images, d.target, conditions.astype(np.float32)


def _csv(path, rows=None):
  """A table of the 64 digits pixels (p0..p63, 0..16), the label and the 2 covariates."""
  images, labels, conditions = _digits()
  rows = len(images) if rows is None else rows
  header = [f"p{i}" for i in range(64)] + ["label", "digit9", "intensity"]
  with open(path, "w") as f:
    f.write(",".join(header) + "\n")
    for x, y, c in zip(images[:rows].reshape(rows, -1), labels, conditions):
      f.write(",".join([*map(str, x), str(y), f"{c[0]:.6f}", f"{c[1]:.6f}"]) + "\n")
  return str(path)


def test_conditions_reach_every_batch_with_their_examples_and_the_fingerprint():
  images, labels, conditions = _digits()
  source = data_lib.from_arrays(images, labels, max_value=16, conditions=conditions)
  assert source.condition_dim == 2
  config = config_lib.Config(dataset=data_lib.IN_MEMORY, binarization="none", batch_size=50)
  data = data_lib.build(source, config)
  assert data.condition_dim == 2
  assert sum(len(getattr(data, s).conditions) for s in ("train", "validation", "test")) == len(
      images)

  def intensity(batch):  # the second covariate is the mean pixel: it follows its image
    return batch["image"].numpy().reshape(len(batch["image"]), -1).mean(1)

  batch = next(iter(data_lib.train_dataset(data, config)))
  assert batch["condition"].shape == (50, 2) and batch["condition"].dtype == tf.float32
  np.testing.assert_allclose(batch["condition"][:, 1], intensity(batch), atol=1e-5)
  np.testing.assert_allclose(batch["condition"][:, 0] * 9, batch["label"], atol=1e-5)
  test = next(iter(data_lib.eval_dataset(data, "test", 64)))
  np.testing.assert_allclose(test["condition"][:, 1], intensity(test), atol=1e-5)
  batches = data_lib.TrainBatches(data, config)  # the --data_on_device path
  rows = batches.rows(tf.constant(3, tf.int64), batches.epoch_order(0)[3],
                      tf.constant(batches.images), tf.constant(batches.labels), 10, 20,
                      tf.constant(batches.conditions))
  np.testing.assert_allclose(rows["condition"][:, 1], intensity(rows), atol=1e-5)
  # The fingerprint counts the conditions; data without them are as before (no new key).
  changed = conditions.copy()
  changed[0, 0] += 1  # (row 0 is among the rows the fingerprint hashes)
  assert data_lib.from_arrays(images, labels, max_value=16,
                              conditions=changed).fingerprint() != source.fingerprint()
  assert data_lib.from_arrays(images, labels, max_value=16, conditions=conditions[:, ::-1]
                              ).fingerprint() != source.fingerprint()
  plain = data_lib.from_arrays(images, labels, max_value=16)
  assert "+" not in plain.fingerprint() and plain.fingerprint() != source.fingerprint()
  plain_data = data_lib.build(plain, config)
  assert plain_data.condition_dim == 0 and plain_data.train.conditions is None
  assert set(next(iter(data_lib.train_dataset(plain_data, config)))) == {"image", "label"}
  assert set(next(iter(data_lib.eval_dataset(plain_data, "test", 8)))) == {"image", "label",
                                                                         "index"}


def test_from_arrays_refuses_conditions_that_do_not_fit():
  images, labels, conditions = _digits()
  bad = conditions.copy()
  bad[7, 1] = np.nan
  for kwargs, match in [
      (dict(conditions=bad), r"conditions: condition 1 of example 7 is nan"),
      (dict(conditions=conditions[:10]), r"conditions have shape \(10, 2\); expected \[1797"),
      (dict(conditions=conditions, x_test=images[:5]), "conditions_test is missing"),
      (dict(x_test=images[:5], conditions_test=conditions[:5]), "conditions_test is given"),
      (dict(conditions=conditions, x_test=images[:5], conditions_test=conditions[:5, :1]),
       r"conditions_test: conditions have shape \(5, 1\); expected \[5, 2\]")]:
    with pytest.raises(DataError, match=match) as raised:
      data_lib.from_arrays(images, labels, max_value=16, **kwargs)
    assert "\n" not in str(raised.value)


def test_csv_condition_columns_are_taken_out_of_the_features_and_checked(tmp_path):
  path = _csv(tmp_path / "digits.csv", rows=60)
  source = data_lib.from_file(path, label_column="label", condition_columns="digit9,intensity")
  x, y, c = source.train
  assert x.shape == (60, 64) and c.shape == (60, 2) and c.dtype == np.float32
  _, labels, conditions = _digits()
  np.testing.assert_array_equal(y, labels[:60])
  np.testing.assert_allclose(c, conditions[:60], atol=1e-6)
  assert source.reader_options["condition_columns"] == "digit9,intensity"
  one = data_lib.from_file(path, condition_columns="intensity")  # the label stays a feature
  assert one.train[0].shape == (60, 66) and one.condition_dim == 1
  for kwargs, match in [
      (dict(condition_columns="digit9,age"),
       r"--condition_columns=digit9,age: 'age' is not a column"),
      (dict(condition_columns="digit9,digit9"), "'digit9' is named twice"),
      (dict(label_column="label", condition_columns="label"), "'label' is the --label_column")]:
    with pytest.raises(DataError, match=match) as raised:
      data_lib.from_file(path, **kwargs)
    assert "\n" not in str(raised.value)
  with open(path) as f:
    lines = f.read().splitlines()
  lines[3] = lines[3].rsplit(",", 1)[0] + ",inf"
  with open(tmp_path / "bad.csv", "w") as f:
    f.write("\n".join(lines) + "\n")
  with pytest.raises(DataError, match=r"bad.csv: column 'intensity', row 4: 'inf'"):
    data_lib.from_file(str(tmp_path / "bad.csv"), condition_columns="intensity")
  for dataset in ("digits", str(tmp_path)):  # a name, a folder: no columns to take
    with pytest.raises(DataError, match="--condition_columns=intensity: --dataset=.* is"):
      data_lib.load(config_lib.Config(dataset=dataset, condition_columns="intensity"))


def _config(**overrides):
  values = dict(model="cvae", hidden_sizes=(16,), latent_dim=3, image_shape=(64,),
                condition_dim=2, likelihood="normal", binarization="none")
  values.update(overrides)
  return config_lib.Config(**values)


def test_the_registry_builds_a_covariate_cvae_that_reads_the_batch_conditions():
  model = models.build(_config(), seed=0)
  assert isinstance(model, cvae.CovariateCVAE) and isinstance(model, interface.Conditional)
  assert not isinstance(model, interface.LabelConditional)
  assert cvae.condition_dim(model.config) == model.condition_dim == 2
  assert isinstance(models.build(_config(condition_dim=0, num_classes=4), seed=0), cvae.CVAE)
  for v in model.prior_network.trainable_variables:  # off its N(0, I) start
    v.assign(0.5 * tf.random.stateless_normal(v.shape, [1, 2]))
  rng = np.random.default_rng(0)
  x = tf.constant(rng.normal(size=[6, 64]), tf.float32)
  c = tf.constant(rng.normal(size=[6, 2]), tf.float32)
  batch = {"image": x, "label": tf.fill([6], tf.constant(-1, tf.int64)), "condition": c}
  seed, step = tf.constant([1, 2]), tf.constant(0, tf.int64)
  terms = model.losses(batch, seed, step, training=False)
  expected = model.elbo(x, seed, c)
  np.testing.assert_allclose(terms["elbo"], expected["elbo"], rtol=1e-5)
  other = model.losses({**batch, "condition": c + 1.0}, seed, step, training=False)
  assert not np.allclose(other["elbo"], terms["elbo"])  # the batch's condition is read
  drawn = model.sample(tf.constant(4), tf.constant([3, 4]), tf.constant([0.5, -1.0]))
  assert drawn["mean"].shape == (4, 64)
  with pytest.raises(ValueError, match="needs the distribution of c"):
    model.prior()
  assert models.build(_config(conditional_prior="standard"), seed=0).prior().event_shape == [3]
  with pytest.raises(tfvae.ConfigError, match="--condition_columns") as raised:
    _config(condition_dim=0, num_classes=0)
  assert "\n" not in str(raised.value)


def test_the_python_api_takes_condition_and_refuses_what_does_not_fit():
  config = _config()
  model = models.build(config, seed=0)
  trained = TrainedModel(config, model, 0)
  rng = np.random.default_rng(1)
  x, c = rng.normal(size=[5, 64]), rng.normal(size=[5, 2])
  assert trained.sample(7, seed=2, condition=[0.1, 0.2])["mean"].shape == (7, 64)
  assert trained.elbo(x, condition=c).shape == (5,)
  np.testing.assert_allclose(trained.elbo(x, condition=c[0]),
                             trained.elbo(x, condition=np.tile(c[:1], [5, 1])))
  assert trained.iwae_bound(x, 4, condition=c).shape == (5,)
  assert trained.reconstruct(x, condition=c).shape == (5, 64)
  np.testing.assert_allclose(trained.encode(x, condition=c).mean(),
                             model.encode(tf.constant(x, tf.float32), c).mean(), rtol=1e-6)
  assert trained.decode(np.zeros([5, 3]), condition=c).mean().shape == (5, 64)
  nan = c.copy()
  nan[2, 1] = np.nan
  for call, match in [
      (lambda: trained.elbo(x), r"condition: .*expected finite real numbers \[5, 2\]"),
      (lambda: trained.elbo(x, condition=c[:3]), r"got shape \(3, 2\)"),
      (lambda: trained.elbo(x, condition=nan), r"row 2, column 1"),
      (lambda: trained.elbo(x, condition=np.array(["a"] * 10).reshape(5, 2)), "dtype <U1"),
      (lambda: trained.elbo(x, label=0, condition=c), "label=0: this --model=cvae is "
       "conditioned on real conditions"),
      (lambda: trained.sample(3), r"condition: .*\[3, 2\]"),
      (lambda: trained.sample(3, label=1, condition=c[0]), "this cvae takes condition="),
      (lambda: trained.encode(x, condition=c[:, :1]), r"got shape \(5, 1\)")]:
    with pytest.raises(ValueError, match=match) as raised:
      call()
    assert "\n" not in str(raised.value)
  classes = _config(condition_dim=0, num_classes=4)
  labelled = TrainedModel(classes, models.build(classes, seed=0), 0)
  with pytest.raises(ValueError, match="conditioned on classes: give label="):
    labelled.elbo(x, label=0, condition=c)


_SAVED = """
import json, sys
import numpy as np
import tensorflow as tf
from tfvae import exported
m = exported.load(sys.argv[1])
x = tf.constant(np.load(sys.argv[2]))
c = tf.constant(np.load(sys.argv[3]))
s = m.signatures
refused = {}
bad = c.numpy().copy(); bad[1, 0] = np.nan
for name, call in [("elbo", lambda: s["elbo"](x=x, condition=tf.constant(bad))),
                   ("sample", lambda: s["sample"](n=tf.constant(2), seed=tf.constant([1, 2]),
                                                  condition=tf.constant([[np.inf, 0.0]]))),
                   ("rows", lambda: s["encode"](x=x, condition=c[:2]))]:
  try:
    call()
  except tf.errors.InvalidArgumentError as e:
    refused[name] = str(e).splitlines()[0]
print(json.dumps({
    "signatures": sorted(s),
    "elbo": s["elbo"](x=x, condition=c)["elbo"].numpy().tolist(),
    "loc": s["encode"](x=x, condition=c)["loc"].numpy().tolist(),
    "sample": s["sample"](n=tf.constant(3), seed=tf.constant([4, 2]),
                          condition=c[:1])["mean"].numpy().tolist(),
    "refused": refused, "tfp_imported": "tensorflow_probability" in sys.modules}))
"""


@pytest.mark.slow
def test_a_cvae_trained_on_csv_conditions_end_to_end_and_its_saved_model(tmp_path):
  path = _csv(tmp_path / "digits.csv")
  config = tfvae.Config(model="cvae", dataset=path, condition_columns="digit9,intensity",
                        label_column="label", hidden_sizes=(32,), latent_dim=4,
                        likelihood="normal", binarization="none", standardize=True,
                        batch_size=64, learning_rate=3e-3)
  data = data_lib.load(config)
  config = workdir_setup.resolve(config, data)
  assert config.data.condition_dim == 2
  trainer = trainer_lib.Trainer(config, tf.distribute.OneDeviceStrategy("/cpu:0"))
  before = [v.numpy().copy() for v in trainer.model.trainable_variables]
  trainer.train(trainer.train_iterator(data), 30)
  changed = [not np.array_equal(b, v.numpy())
             for b, v in zip(before, trainer.model.trainable_variables)]
  assert all(changed)  # encoder, decoder and prior network all trained
  # Through the front door: fit reads the CSV with its columns, records them, trains.
  run = str(tmp_path / "run")
  fitted = tfvae.fit(config.replace(train_steps=30, eval_every=30), run)
  assert isinstance(fitted.model, cvae.CovariateCVAE)
  saved = config_io.load(run)
  assert saved.data.condition_columns == "digit9,intensity" and saved.data.condition_dim == 2
  trained = tfvae.load(run)
  test = trained.data().test
  x, c = test.images[:20] * np.asarray(saved.data.feature_scale) + np.asarray(
      saved.data.feature_mean), test.conditions[:20]
  elbo = trained.elbo(x, condition=c)
  assert np.all(np.isfinite(elbo))
  assert not np.allclose(elbo, trained.elbo(x, condition=c[::-1]))  # the condition matters
  assert trained.sample(5, seed=1, condition=c[0])["mean"].shape == (5, 64)
  paths = tfvae.draw(run, what=("reconstructions", "samples", "class_samples", "manifold",
                                "curves"))
  assert set(paths) == {"curves"}  # vectors: no pictures of images; no q(z|x) alone
  # The SavedModel, in a fresh process without TFP.
  folder = trained.export()
  np.save(tmp_path / "x.npy", x.astype(np.float32))
  np.save(tmp_path / "c.npy", c.astype(np.float32))
  proc = subprocess.run([sys.executable, "-c", _SAVED, folder, str(tmp_path / "x.npy"),
                         str(tmp_path / "c.npy")], capture_output=True, text=True, check=True,
                        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  assert not out["tfp_imported"]
  assert out["signatures"] == sorted(["serving_default", "encode", "decode", "sample",
                                      "reconstruct", "elbo"])
  expected = trained.model.elbo(tf.constant(test.images[:20]),
                                tf.constant(serving._ELBO_SEED), c)  # pylint: disable=protected-access
  np.testing.assert_allclose(out["elbo"], expected["elbo"], rtol=1e-4, atol=1e-3)
  assert np.array(out["sample"]).shape == (3, 64)
  assert "signature elbo expects condition finite" in out["refused"]["elbo"]
  assert "signature sample expects condition finite" in out["refused"]["sample"]
  assert "signature encode expects condition float32 [N, 2]" in out["refused"]["rows"]
  with open(os.path.join(folder, "assets.extra", "tfvae.json")) as f:
    assert json.load(f)["condition_dim"] == 2


@pytest.mark.slow
def test_images_with_conditions_train_draw_their_figures_and_refuse_what_needs_a_prior(
    tmp_path):
  images, labels, conditions = _digits()
  source = data_lib.from_arrays(images, labels, max_value=16, conditions=conditions)
  run = str(tmp_path / "run")
  trained = tfvae.fit(tfvae.Config(model="cvae", hidden_sizes=(16,), latent_dim=2,
                                   train_steps=20, eval_every=20, batch_size=64), run,
                      data=source)  # its eval writes reconstructions and samples given c
  assert isinstance(trained.model, cvae.CovariateCVAE)
  assert trained.sample(4, condition=conditions[:4])["mean"].shape == (4, 8, 8, 1)
  paths = tfvae.draw(run, what=("reconstructions", "samples", "class_samples", "manifold"),
                     data=source)
  assert set(paths) == {"reconstructions", "samples"}  # no classes, no q(z|x) without c
  with pytest.raises(tfvae.ConfigError, match="depend on the condition"):
    trained.fit_sampler("gmm", data=source)
  with pytest.raises(tfvae.ConfigError, match="--sample_quality: condition:") as raised:
    trained.sample_quality(num_samples=10, data=source, write=False)
  assert "\n" not in str(raised.value)


@pytest.mark.slow
def test_on_device_and_tf_data_batches_give_the_same_training_with_conditions():
  images, labels, conditions = _digits()
  source = data_lib.from_arrays(images, labels, max_value=16, conditions=conditions)
  weights = {}
  for on_device in (True, False):
    config = tfvae.Config(model="cvae", hidden_sizes=(16,), latent_dim=2, batch_size=32,
                          dataset=data_lib.IN_MEMORY, data_on_device=on_device)
    data = data_lib.build(source, config)
    config = workdir_setup.resolve(config, data)
    trainer = trainer_lib.Trainer(config, tf.distribute.OneDeviceStrategy("/cpu:0"))
    trainer.train(trainer.train_iterator(data), 5)
    weights[on_device] = [v.numpy() for v in trainer.model.trainable_variables]
  for a, b in zip(weights[True], weights[False]):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
