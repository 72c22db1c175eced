"""Semi-supervised learning: the balanced labeled subset, the mixed batches, M1, M2 and PC-VAE."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import run_module, saved_config
from tfvae import config as config_lib
from tfvae import config_flags
from tfvae import data as data_lib
from tfvae.evaluation import evaluator as evaluator_lib
from tfvae import models
from tfvae import noise
from tfvae import objectives
from tfvae.training import run
from tfvae.evaluation import ssl
from tfvae import summaries


@pytest.fixture(scope="module")
def digits():
  return data_lib.load(config_lib.Config())


def test_balanced_subset_has_n_over_k_per_class_and_depends_only_on_the_seed(digits):
  config = config_lib.Config(num_labels="50", label_seed=3)
  chosen = data_lib.labeled_indices(digits, config)
  assert len(chosen) == 50 and len(set(chosen.tolist())) == 50
  np.testing.assert_array_equal(np.bincount(digits.train.labels[chosen], minlength=10), [5] * 10)
  np.testing.assert_array_equal(chosen, data_lib.labeled_indices(digits, config))
  other = data_lib.labeled_indices(digits, config_lib.Config(num_labels="50", label_seed=4))
  assert set(chosen.tolist()) != set(other.tolist())


def test_labeled_subset_is_disjoint_from_the_test_set(digits):
  chosen = data_lib.labeled_indices(digits, config_lib.Config(num_labels="100"))
  train_images = digits.train.images[chosen].reshape(100, -1)
  test_images = {row.tobytes() for row in digits.test.images.reshape(len(digits.test), -1)}
  # Chosen from the train split only (digits has a few duplicate images across splits: compare
  # positions in the original data instead of pixels where they collide).
  assert chosen.max() < len(digits.train)
  assert sum(row.tobytes() in test_images for row in train_images) <= 2


def test_num_labels_errors_name_the_flag(digits):
  with pytest.raises(data_lib.DataError, match="--num_labels=55"):
    data_lib.labeled_indices(digits, config_lib.Config(num_labels="55"))
  with pytest.raises(config_lib.ConfigError, match="--num_labels"):
    config_lib.Config(num_labels="some")
  with pytest.raises(config_lib.ConfigError, match="--labeled_batch_size"):
    config_lib.Config(model="m2", num_labels="50", labeled_batch_size=64, batch_size=64)
  assert config_lib.Config(num_labels="all").data.labels_known is None


@pytest.mark.slow
def test_an_epoch_is_one_pass_of_the_unlabeled_rows_for_every_consumer(digits, tmp_path):
  config = config_lib.Config(model="pc_vae", num_labels="50", labeled_batch_size=16,
                             batch_size=64, hidden_sizes=(16,), latent_dim=2, epochs=1,
                             eval_importance_samples=0, strategy="one_device")
  per_epoch = len(digits.train) // (64 - 16)  # 1198 // 48 = 24, not 1198 // 64 = 18
  assert data_lib.steps_per_epoch(digits, config) == per_epoch == 24
  assert data_lib.TrainBatches(digits, config).steps_per_epoch == per_epoch
  plain = config_lib.Config(batch_size=64)
  assert data_lib.steps_per_epoch(digits, plain) == 1198 // 64
  assert run.train_and_evaluate(config, str(tmp_path))["step"] == per_epoch  # --epochs=1


def test_mixed_batches_are_labeled_rows_then_unlabeled_rows_and_resume_identically(digits):
  config = config_lib.Config(model="pc_vae", num_labels="50", labeled_batch_size=8,
                             batch_size=32)
  chosen = set(data_lib.labeled_indices(digits, config).tolist())
  chosen_images = {digits.train.images[i].tobytes() for i in chosen}
  batches = list(data_lib.train_dataset(digits, config).take(5))
  for b in batches:
    labels = b["label"].numpy()
    assert b["image"].shape[0] == 32
    assert (labels[:8] >= 0).all() and (labels[8:] == -1).all()
  resumed = list(data_lib.train_dataset(digits, config, start_step=3).take(2))
  for a, b in zip(batches[3:], resumed):
    np.testing.assert_array_equal(a["label"], b["label"])
  # Labeled rows come from the labeled subset (static binarization keeps the pixels).
  static = config_lib.Config(model="pc_vae", num_labels="50", labeled_batch_size=8,
                             batch_size=32, binarization="none")
  none_data = data_lib.load(static)
  batch = next(iter(data_lib.train_dataset(none_data, static)))
  for row in np.round(batch["image"].numpy()[:8] * 16).astype(np.uint8):
    assert row.tobytes() in chosen_images
  # Models that are not semi-supervised get the plain batches with every label.
  plain = next(iter(data_lib.train_dataset(digits, config_lib.Config(num_labels="50",
                                                                     batch_size=32))))
  assert (plain["label"].numpy() >= 0).all()


@pytest.mark.slow
def test_m1_library_and_entry_point(tmp_path):
  workdir = str(tmp_path)
  run_module("tfvae.train", "--flagfile=configs/quickstart.cfg", "--train_steps=300",
             "--eval_every=300", "--checkpoint_every=300", "--steps_per_loop=100",
             "--eval_importance_samples=0", f"--workdir={workdir}")
  proc = run_module("tfvae.evaluate", f"--workdir={workdir}", "--m1_labels=50",
                    "--label_seed=1")
  metrics = json.loads(proc.stdout[proc.stdout.index("{"):])
  assert metrics["num_labels"] == 50 and metrics["label_seed"] == 1
  assert 0.4 < metrics["accuracy"] <= 1.0  # chance is 0.1
  with open(os.path.join(workdir, "eval.json")) as f:
    assert json.load(f)["m1_test_50labels_seed1"]["accuracy"] == metrics["accuracy"]


def test_logistic_regression_accuracy_on_separable_data():
  rng = np.random.default_rng(0)
  x = np.concatenate([rng.normal(-3, 1, [50, 2]), rng.normal(3, 1, [50, 2])])
  y = np.repeat([0, 1], 50)
  assert ssl.logistic_regression_accuracy(x, y, x, y) > 0.95


SEED = tf.constant([7, 8], tf.int32)
STEP = tf.constant(0, tf.int64)


def _build(**kwargs):
  keras.utils.set_random_seed(0)
  values = dict(hidden_sizes=(16,), latent_dim=3, image_shape=(8, 8, 1), num_classes=10)
  values.update(kwargs)
  return models.build(config_lib.Config(**values))


def _batch(n=6):
  x = tf.cast(tf.random.stateless_uniform([n, 8, 8, 1], [1, 2]) < 0.5, tf.float32)
  return {"image": x, "label": tf.constant([3, -1, 0, -1, 9, 2][:n], tf.int64)}


def test_pc_vae_loss_is_the_vae_loss_plus_lambda_times_the_labeled_cross_entropy():
  model, batch = _build(model="pc_vae", prediction_weight=2.5), _batch()
  terms = model.losses(batch, SEED, STEP)
  vae_terms = models.vae.VAE.losses_and_posterior(model, batch, SEED, STEP)[0]
  ce = terms["classification_loss"].numpy()
  assert ce[1] == 0 and ce[3] == 0 and (ce[[0, 2, 4, 5]] > 0).all()
  np.testing.assert_allclose(terms["loss"], vae_terms["loss"] + 2.5 * ce, rtol=1e-6)
  evaluation = model.losses(batch, SEED, STEP, training=False)
  predicted = np.argmax(model.classify(batch["image"]).logits.numpy(), -1)
  labels = batch["label"].numpy()
  np.testing.assert_array_equal(evaluation["accuracy"], (predicted == labels) & (labels >= 0))
  # The classifier gets gradients from the labeled rows only.
  unlabeled = {"image": batch["image"], "label": tf.fill([6], tf.constant(-1, tf.int64))}
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(model.losses(unlabeled, SEED, STEP)["loss"])
  grads = tape.gradient(loss, model.classifier.trainable_variables)
  assert all(g is None or not np.any(g) for g in grads)


SSL_MODELS = ["pc_vae", "m2"]


@pytest.mark.parametrize("model", SSL_MODELS)
@pytest.mark.slow
def test_ssl_model_trains_with_50_labels_exports_and_classifies(tmp_path, model):
  config = config_lib.Config(model=model, hidden_sizes=(32,), latent_dim=4, train_steps=6,
                             steps_per_loop=3, eval_every=3, batch_size=32, num_labels="50",
                             labeled_batch_size=8, eval_importance_samples=2,
                             strategy="one_device")
  workdir = str(tmp_path)
  results = run.train_and_evaluate(config, workdir)
  assert results["step"] == 6
  assert np.isfinite(results["test"]["loss"])
  from tfvae import loading  # pylint: disable=import-outside-toplevel
  _, restored, step = loading.restore_model(workdir)
  assert step == 6
  # The reported accuracy is the classifier's on the whole test split (was: 0 <= accuracy <= 1).
  x_test, y_test = ssl.split_arrays(data_lib.load(config), "test")[:2]
  predicted = np.argmax(restored.classify(tf.constant(x_test)).probs_parameter(), -1)
  assert len(y_test) == 359 and np.all(y_test >= 0)  # digits: 1797 * 0.2
  np.testing.assert_allclose(results["test"]["accuracy"], np.mean(predicted == y_test),
                             atol=1e-6)
  loaded = tf.saved_model.load(os.path.join(workdir, "export"))
  assert "classify" in loaded.signatures
  x = tf.constant(np.asarray(ssl.split_arrays(data_lib.load(config), "test")[0][:5]))
  out = loaded.signatures["classify"](x=x)
  np.testing.assert_allclose(np.sum(out["probabilities"], -1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(out["probabilities"], restored.classify(x).probs_parameter(),
                             rtol=1e-5, atol=1e-6)
  evals = summaries.read_scalars(os.path.join(workdir, "tensorboard", "eval"), ["accuracy"])
  assert list(evals["accuracy"][0]) == [3, 6]
  # Figures: every one for PC-VAE; M2 (no q(z|x)) skips the latent ones instead of failing.
  proc = run_module("tfvae.visualize", f"--workdir={workdir}", check=False)
  assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
  drawn = set(n[:-4] for n in os.listdir(os.path.join(workdir, "figures")))
  if model == "m2":
    assert drawn == {"reconstructions", "samples", "class_samples", "curves"}  # one row per class
    assert ("--what=interpolation,traversals,manifold,latent_pca,histograms: model m2 has no "
            "q(z|x)") in proc.stderr
  else:
    assert len(drawn) == 8


def test_m2_unlabeled_loss_is_the_expected_labeled_loss_minus_the_entropy():
  model, batch = _build(model="m2", num_labels="50", classifier_weight=0.7), _batch()
  unlabeled = {"image": batch["image"], "label": tf.fill([6], tf.constant(-1, tf.int64))}
  with tf.GradientTape() as tape:
    terms = model.losses(unlabeled, SEED, STEP)
    total = tf.reduce_sum(terms["loss"])
  q_y = model.classify(batch["image"])
  probs = q_y.probs_parameter().numpy()
  per_class = np.stack([model.losses({"image": batch["image"],
                                      "label": tf.fill([6], tf.constant(k, tf.int64))},
                                     SEED, STEP)["labeled_loss"].numpy() for k in range(10)], 1)
  entropy = -np.sum(probs * np.log(probs), -1)
  np.testing.assert_allclose(terms["loss"], np.sum(probs * per_class, -1) - entropy, rtol=1e-5)
  np.testing.assert_allclose(terms["unlabeled_loss"], terms["loss"], rtol=1e-6)
  np.testing.assert_allclose(terms["elbo"], -(terms["distortion"] + terms["rate"]), rtol=1e-5)
  grads = tape.gradient(total, model.classifier.trainable_variables)
  assert all(g is not None and np.any(g.numpy()) for g in grads)
  # Labeled rows: -ELBO(x, y) + alpha * (-log q(y|x)), with ELBO(x, y) by hand for one row.
  mixed = model.losses(batch, SEED, STEP)
  labels = batch["label"].numpy()
  for b in range(6):
    if labels[b] >= 0:
      expected = per_class[b, labels[b]] - 0.7 * np.log(probs[b, labels[b]])
      np.testing.assert_allclose(mixed["loss"][b], expected, rtol=1e-5)
    else:
      np.testing.assert_allclose(mixed["loss"][b], terms["loss"][b], rtol=1e-5)
  # ELBO(x, y) = log p(x|y,z) + log p(y) - KL, with z ~ q(z|x,y) from class y's noise.
  y = tf.one_hot([labels[0]], 10)
  q_z = model.encoder(batch["image"][:1], y)
  eps = noise.replica_normal_noise(1, 6, 3, tf.random.experimental.stateless_fold_in(
      SEED, int(labels[0])))[:, :1]
  z = q_z.bijector.forward(eps)[0]
  log_px = model.decode(z, y).log_prob(batch["image"][:1])
  kl = objectives.rate(q_z, model.prior())
  np.testing.assert_allclose(per_class[0, labels[0]], -(log_px + np.log(0.1) - kl)[0], rtol=1e-5)


def test_m2_generative_accuracy_is_that_of_argmax_y_elbo_over_the_labeled_rows():
  model, batch = _build(model="m2", num_labels="50"), _batch()
  seed = tf.constant(evaluator_lib.EVAL_SEED, tf.int32)
  negative_elbo = np.stack([model.losses({"image": batch["image"],
                                          "label": tf.fill([6], tf.constant(k, tf.int64))},
                                         seed, STEP, training=False)["labeled_loss"].numpy()
                            for k in range(10)], 1)  # [B, K], -ELBO(x, k) at the eval noise
  predicted = np.argmin(negative_elbo, 1)
  # Rows 0 and 2 labeled with the generative prediction, 4 and 5 with another class, 1 and 3
  # unlabeled: generative_accuracy = 2 / 4 (the unlabeled rows do not count).
  labels = np.array([predicted[0], -1, predicted[2], -1, (predicted[4] + 1) % 10,
                     (predicted[5] + 3) % 10])
  dataset = tf.data.Dataset.from_tensors({"image": batch["image"],
                                          "label": tf.constant(labels, tf.int64)})
  metrics = evaluator_lib.Evaluator(model, tf.distribute.get_strategy())(dataset)
  assert metrics["generative_accuracy"] == pytest.approx(0.5)
  classified = np.argmax(model.classify(batch["image"]).logits_parameter().numpy(), -1)
  labeled = labels >= 0
  assert metrics["accuracy"] == pytest.approx(np.mean(classified[labeled] == labels[labeled]))


def test_m2_default_alpha_is_a_tenth_of_the_number_of_labels():
  assert _build(model="m2", num_labels="50").alpha == pytest.approx(5.0)
  assert _build(model="m2", num_labels="50", classifier_weight=2.0).alpha == 2.0


def test_m2_conditional_samples_and_style_transfer_have_the_right_shapes():
  model = _build(model="m2")
  mean, p_x = model.sample_images(4, SEED, label=3)
  assert mean.shape == (4, 8, 8, 1) and p_x.batch_shape == (4,)
  assert model.style_transfer(_batch()["image"]).shape == (6, 10, 8, 8, 1)


def test_m2_export_samples_a_chosen_class_and_transfers_style(tmp_path):
  config = config_lib.Config(model="m2", hidden_sizes=(16,), latent_dim=3, image_shape=(8, 8, 1),
                             num_classes=10, num_labels="50")
  keras.utils.set_random_seed(0)
  model = models.build(config)
  from tfvae import serving  # pylint: disable=import-outside-toplevel
  serving.export(model, str(tmp_path / "export"))
  loaded = tf.saved_model.load(str(tmp_path / "export"))
  assert set(loaded.signatures) == {"serving_default", "classify", "encode", "decode", "sample",
                                    "style_transfer", "reconstruct", "elbo"}
  out = loaded.signatures["sample"](n=tf.constant(5), seed=tf.constant([1, 2]),
                                    label=tf.constant(7))
  assert out["mean"].shape == (5, 8, 8, 1) and (out["label"].numpy() == 7).all()
  expected, _ = model.sample_images(5, tf.unstack(tf.random.experimental.stateless_split(
      tf.constant([1, 2]), 2))[0], label=7)
  np.testing.assert_allclose(out["mean"], expected, rtol=1e-5, atol=1e-6)
  drawn = loaded.signatures["sample"](n=tf.constant(50), seed=tf.constant([1, 2]),
                                      label=tf.constant(-1))["label"].numpy()
  assert len(set(drawn.tolist())) > 3
  x = _batch()["image"]
  np.testing.assert_allclose(loaded.signatures["style_transfer"](x=x)["images"],
                             model.style_transfer(x), rtol=1e-5, atol=1e-6)
  y = tf.constant([0, 1, 2, 3, 4, 5], tf.int64)
  np.testing.assert_allclose(loaded.signatures["encode"](x=x, y=y)["loc"],
                             model.encoder(x, tf.one_hot(y, 10)).mean(), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_ssl_table_tool_prints_every_row(tmp_path):
  proc = run_module_script("tools/ssl_table.py", "--dataset=digits", "--num_labels=50",
                           "--label_seeds=1", "--nowith_all", "--train_steps=6",
                           "--nn_epochs=1", "--hidden_sizes=16", "--latent_dim=2",
                           "--batch_size=32", "--labeled_batch_size=8",
                           "--binarization=none", "--likelihood=continuous_bernoulli",
                           f"--workdir={tmp_path}", f"--output={tmp_path / 'table.md'}")
  table = (tmp_path / "table.md").read_text()
  assert "binarization none, continuous_bernoulli likelihood" in table
  rows = [line for line in table.splitlines() if line.startswith("| ") and "(1 seed)" in line]
  assert "| 50 labels |" in table and len(rows) == 7
  assert "M2: classifier" in proc.stdout
  cell = json.loads((tmp_path / "labels_50" / "seed0.json").read_text())
  assert all(0 <= cell[k] <= 1
             for k in ("raw_lr", "raw_nn", "m1", "pc_vae_lr", "pc_vae", "m2", "m2_generative"))
  for model_name in ("vae", "pc_vae", "m2"):  # the data flags reach every trained model
    saved = saved_config(tmp_path / "labels_50" / f"{model_name}_seed0")
    assert (saved["binarization"], saved["likelihood"]) == ("none", "continuous_bernoulli")
  m2_eval = json.loads((tmp_path / "labels_50" / "m2_seed0" / "eval.json").read_text())
  assert cell["m2"] == m2_eval["test"]["accuracy"]
  assert cell["m2_generative"] == m2_eval["test"]["generative_accuracy"]
  assert cell["flags"]["binarization"] == "none" and cell["flags"]["latent_dim"] == 2
  # The cached cell is not reused for other data flags: a clear error, nothing overwritten.
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  from conftest import ROOT  # pylint: disable=import-outside-toplevel
  before = (tmp_path / "labels_50" / "seed0.json").read_text()
  again = subprocess.run([sys.executable, "tools/ssl_table.py", "--dataset=digits",
                          "--num_labels=50", "--label_seeds=1", "--nowith_all",
                          f"--workdir={tmp_path}"], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
  assert again.returncode != 0
  assert "--binarization=none, not --binarization=dynamic" in again.stderr + again.stdout
  assert (tmp_path / "labels_50" / "seed0.json").read_text() == before


def run_module_script(script, *args):
  """Runs `python SCRIPT args...` from the repository root; raises on a non-zero exit."""
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  from conftest import ROOT  # pylint: disable=import-outside-toplevel
  proc = subprocess.run([sys.executable, script, *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=1200)
  assert proc.returncode == 0, proc.stderr[-5000:]
  return proc


@pytest.mark.parametrize("model_name", ["m2", "pc_vae"])
def test_per_example_losses_do_not_depend_on_the_number_of_replicas(model_name):
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  with strategy.scope():
    model = _build(model=model_name, num_labels="50")
  batch = _batch()
  dataset = tf.data.Dataset.from_tensors(batch)
  distributed = next(iter(strategy.experimental_distribute_dataset(dataset)))
  per_replica = strategy.run(lambda b: model.losses(b, SEED, STEP)["loss"], args=(distributed,))
  two = np.concatenate([t.numpy() for t in strategy.experimental_local_results(per_replica)])
  one = model.losses(batch, SEED, STEP)["loss"].numpy()
  np.testing.assert_allclose(two, one, rtol=1e-5)


@pytest.mark.slow
def test_m2_trains_on_two_replicas_from_the_command_line(tmp_path):
  # A fresh process: two MirroredStrategy trainings in one process can reuse collective keys.
  workdir = str(tmp_path)
  run_module("tfvae.train", "--model=m2", "--num_labels=50", "--labeled_batch_size=8",
             "--batch_size=32", "--hidden_sizes=16", "--latent_dim=2", "--train_steps=4",
             "--steps_per_loop=2", "--eval_every=2", "--num_cpu_devices=2",
             "--strategy=mirrored", f"--workdir={workdir}")
  with open(os.path.join(workdir, "eval.json")) as f:
    results = json.load(f)
  assert results["step"] == 4 and 0 <= results["test"]["accuracy"] <= 1
  assert np.isfinite(results["test"]["elbo"])


@pytest.mark.parametrize("name", ["mnist_m2.cfg", "mnist_pc_vae.cfg", "cifar10_m2.cfg"])
@pytest.mark.slow
def test_online_ssl_configs_train_on_mocked_tfds_data(name, tmp_path, monkeypatch):
  """The MNIST/CIFAR-10 configs (TFDS, online users) run end to end on tfds mock data."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  from absl import flags  # pylint: disable=import-outside-toplevel
  monkeypatch.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  fv = flags.FlagValues()
  flags.DEFINE_string("workdir", "", "", flag_values=fv)
  config_flags.define_flags(fv)
  fv(["prog", f"--flagfile=configs/{name}"])
  config = config_flags.from_flags(fv)
  small = dict(data_dir=str(tmp_path / "tfds"), num_labels="20", train_steps=2,
               steps_per_loop=1, eval_every=2, batch_size=32, labeled_batch_size=8,
               eval_batch_size=50, eval_importance_samples=0, strategy="one_device",
               validation_fraction=0.25)
  config = config.replace(**{**small})
  with tfds.testing.mock_data(num_examples=200):
    results = run.train_and_evaluate(config, str(tmp_path / "run"))
  assert results["step"] == 2 and 0 <= results["test"]["accuracy"] <= 1
  assert os.path.exists(tmp_path / "run" / "export" / "saved_model.pb")
