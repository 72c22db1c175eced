import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfvae import config as config_lib
from tfvae import data as data_lib
from tfvae import lock
from tfvae import serving
from tfvae import objectives
from tfvae.training import trainer as trainer_lib

# Runs in a fresh interpreter that imports TensorFlow only.
_LOAD_WITHOUT_TFP = """
import json, sys
import numpy as np
import tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
x = tf.constant(np.load(sys.argv[2]))
out = {
    "signatures": sorted(m.signatures),
    "reconstruction": m.signatures["reconstruct"](x=x)["reconstruction"].numpy().tolist(),
    "serving": m.signatures["serving_default"](x=x)["reconstruction"].numpy().tolist(),
    "loc": m.signatures["encode"](x=x)["loc"].numpy().tolist(),
    "elbo": m.signatures["elbo"](x=x)["elbo"].numpy().tolist(),
    "sample_a": m.signatures["sample"](n=tf.constant(3), seed=tf.constant([4, 2]))["sample"]
                .numpy().tolist(),
    "sample_b": m.signatures["sample"](n=tf.constant(3), seed=tf.constant([4, 2]))["sample"]
                .numpy().tolist(),
    "tfp_imported": "tensorflow_probability" in sys.modules,
}
print(json.dumps(out))
"""


@pytest.mark.parametrize("likelihood,architecture", [("bernoulli", "mlp"), ("normal", "conv")])
@pytest.mark.slow
def test_export_loads_without_tfp_and_matches_the_model(tmp_path, likelihood, architecture):
  config = config_lib.Config(hidden_sizes=(16,), conv_filters=(8, 8), latent_dim=3,
                             likelihood=likelihood, architecture=architecture,
                             image_shape=(8, 8, 1))
  data = data_lib.load(config)
  trainer = trainer_lib.Trainer(config, tf.distribute.OneDeviceStrategy("/cpu:0"))
  trainer.train(iter(data_lib.train_dataset(data, config)), 3)
  model = trainer.model
  path = str(tmp_path / "export")
  serving.export(model, path)
  x = (data.test.images[:5] / 16).astype(np.float32)
  np.save(tmp_path / "x.npy", x)
  proc = subprocess.run([sys.executable, "-c", _LOAD_WITHOUT_TFP, path, str(tmp_path / "x.npy")],
                        capture_output=True, text=True, check=True)
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  assert not out["tfp_imported"]
  assert out["signatures"] == sorted(["serving_default", "encode", "decode", "sample",
                                      "reconstruct", "elbo"])
  expected = model.decoder(model.encoder(x).mean()).mean().numpy()
  np.testing.assert_allclose(out["reconstruction"], expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out["serving"], expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out["loc"], model.encoder(x).mean(), rtol=1e-5, atol=1e-6)
  terms = objectives.elbo_terms(x, model.encoder(x), model.decoder, model.prior(),
                                config.model.num_samples, tf.constant([0, 0], tf.int32))
  np.testing.assert_allclose(out["elbo"], terms["elbo"], rtol=1e-5)
  assert out["sample_a"] == out["sample_b"]  # stateless seed: reproducible samples
  assert np.array(out["sample_a"]).shape == (3, 8, 8, 1)


@pytest.mark.slow
def test_saved_model_cli_lists_signatures_with_shapes(tmp_path):
  config = config_lib.Config(hidden_sizes=(8,), latent_dim=2, image_shape=(8, 8, 1))
  trainer = trainer_lib.Trainer(config, tf.distribute.OneDeviceStrategy("/cpu:0"))
  serving.export(trainer.model, str(tmp_path / "export"))
  cli = shutil.which("saved_model_cli")
  if cli is None:
    pytest.skip("saved_model_cli is not on PATH")
  shown = subprocess.run([cli, "show", "--all", "--dir", str(tmp_path / "export")],
                         capture_output=True, text=True, check=True).stdout
  for name in ("serving_default", "encode", "decode", "sample", "reconstruct", "elbo"):
    assert f"signature_def['{name}']" in shown
  assert "shape: (-1, 8, 8, 1)" in shown and "shape: (-1, 2)" in shown


def test_export_swaps_atomically_and_cleans_up(tmp_path):
  config = config_lib.Config(hidden_sizes=(8,), latent_dim=2, image_shape=(8, 8, 1))
  trainer = trainer_lib.Trainer(config, tf.distribute.OneDeviceStrategy("/cpu:0"))
  path = str(tmp_path / "export")
  first = serving.export(trainer.model, path)
  (tmp_path / "export.123").mkdir()  # as a kill -9 during a save leaves it
  second = serving.export(trainer.model, path)
  assert os.path.islink(path) and os.path.realpath(path) == second != first
  assert sorted(p.name for p in tmp_path.iterdir()) == [
      lock.LOCK_FILENAME, "export", os.path.basename(second)]  # the lock: one export at a time
  assert "reconstruct" in tf.saved_model.load(path).signatures


_WRONG_INPUTS = """
import json, sys
import numpy as np
import tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
cases = [("reconstruct", "x", np.zeros([2, 28, 28, 1], np.float32)),
         ("encode", "x", np.zeros([8, 8, 1], np.float32)),
         ("elbo", "x", np.zeros([2, 8, 8, 3], np.float32)),
         ("decode", "z", np.zeros([2, 5], np.float32)),
         ("reconstruct", "x", np.zeros([2, 8, 8, 1], np.int32)),
         ("encode", "x", np.full([2, 8, 8, 1], 255, np.float32)),
         ("classify" if "classify" in m.signatures else "elbo", "x",
          np.full([1, 8, 8, 1], np.nan, np.float32)),
         ("reconstruct", "x", np.zeros([2, 8, 8, 1], np.float64)),
         ("encode", "x", np.zeros([0, 8, 8, 1], np.float32)),
         ("encode", "x", np.ones([1, 8, 8, 1], np.float32))]
errors = []
for signature, arg, value in cases:
  try:
    m.signatures[signature](**{arg: tf.constant(value)})
    errors.append(None)
  except tf.errors.InvalidArgumentError as e:
    errors.append(e.message)
print(json.dumps(errors))
"""


@pytest.mark.slow
def test_saved_model_in_a_fresh_process_rejects_wrong_inputs_naming_the_signature(tmp_path):
  config = config_lib.Config(hidden_sizes=(8,), latent_dim=2, image_shape=(8, 8, 1),
                             binarization="dynamic")  # as a run on digits resolves auto
  trainer = trainer_lib.Trainer(config, tf.distribute.OneDeviceStrategy("/cpu:0"))
  serving.export(trainer.model, str(tmp_path / "export"), step=0)
  proc = subprocess.run([sys.executable, "-c", _WRONG_INPUTS, str(tmp_path / "export")],
                        capture_output=True, text=True, check=True)
  errors = json.loads(proc.stdout.strip().splitlines()[-1])
  expected = ["signature reconstruct expects x float32 [N, 8, 8, 1]; got shape] [2 28 28 1]",
              "signature encode expects x float32 [N, 8, 8, 1]; got shape] [8 8 1]",
              "signature elbo expects x float32 [N, 8, 8, 1]; got shape] [2 8 8 3]",
              "signature decode expects z float32 [N, 2]; got shape] [2 5]",
              "was expected to be a float tensor but is a int32 tensor",
              "signature encode expects x in [0, 1] (pixel values divided by their maximum, "
              "e.g. uint8 / 255; 0 or 1 if the model was trained on binarized pixels: see "
              "assets.extra/tfvae.json); got values from] [255] [to] [255]",
              "signature elbo expects x in [0, 1]",
              "was expected to be a float tensor but is a double tensor"]
  assert len(errors) == len(expected) + 2
  for error, text in zip(errors, expected):
    assert error is not None and text in error, (text, error)
  assert errors[-2:] == [None, None]  # an empty batch and the ends of [0, 1] are accepted
  with open(tmp_path / "export" / "assets.extra" / "tfvae.json") as f:
    info = json.load(f)
  assert info["step"] == 0 and info["input"]["range"] == [0.0, 1.0]
  assert info["input"]["binarized"] and info["input"]["scaling"] == "pixel / 255"
  assert "encode" in info["signatures"] and info["model"] == "vae"


_OUT_OF_CONTRACT = """
import json, sys
import numpy as np
import tensorflow as tf
vae, m2, vectors = (tf.saved_model.load(p) for p in sys.argv[1:4])
seed = tf.constant([1, 2])
cases = [
    (vae, "decode", dict(z=np.array([[np.nan, 0.0]], np.float32))),
    (vae, "decode", dict(z=np.array([[np.inf, 0.0]], np.float32))),
    (vae, "sample", dict(n=np.int32(10 ** 8), seed=seed)),
    (vae, "sample", dict(n=np.int32(-1), seed=seed)),
    (vectors, "encode", dict(x=np.array([[0.0, np.nan, 1.0]], np.float32))),
    (vectors, "elbo", dict(x=np.array([[0.0, np.inf, 1.0]], np.float32))),
    (m2, "encode", dict(x=np.zeros([2, 8, 8, 1], np.float32), y=np.array([3, 10]))),
    (m2, "decode", dict(z=np.zeros([1, 2], np.float32), y=np.array([-1]))),
    (m2, "sample", dict(n=np.int32(2), seed=seed, label=np.int32(1000))),
    (m2, "encode", dict(x=np.zeros([2, 8, 8, 1], np.float32), y=np.array([3]))),
    (m2, "decode", dict(z=np.zeros([1, 2], np.float32), y=np.array([1, 2, 3]))),
    (vae, "sample", dict(n=np.array([4, 4], np.int32), seed=seed)),
    (vae, "sample", dict(n=np.zeros([0], np.int32), seed=seed)),
    # accepted:
    (vae, "sample", dict(n=np.int32(65536), seed=seed)),
    (vectors, "encode", dict(x=np.array([[-3.0, 250.0, 1.0]], np.float32))),
    (m2, "sample", dict(n=np.int32(2), seed=seed, label=np.int32(-1))),
    (m2, "encode", dict(x=np.zeros([2, 8, 8, 1], np.float32), y=np.array([0, 9]))),
]
errors = []
for model, signature, args in cases:
  try:
    model.signatures[signature](**{k: tf.constant(v) for k, v in args.items()})
    errors.append(None)
  except tf.errors.InvalidArgumentError as e:
    errors.append(e.message)
print(json.dumps(errors))
"""


@pytest.mark.slow
def test_the_saved_model_refuses_nan_codes_huge_samples_and_unknown_classes(tmp_path):
  # Before these checks: NaN codes decoded to a normal-looking image, sample(n=1e8) crashed
  # the serving process, and the M2 export accepted class 1000 with 10 classes.
  paths = []
  for name, values in [("vae", {}), ("m2", dict(model="m2", num_classes=10)),
                       ("vectors", dict(image_shape=(3,), likelihood="normal"))]:
    config = config_lib.Config(**{**dict(hidden_sizes=(8,), latent_dim=2,
                                         image_shape=(8, 8, 1)), **values})
    trainer = trainer_lib.Trainer(config, tf.distribute.OneDeviceStrategy("/cpu:0"))
    paths.append(str(tmp_path / name))
    serving.export(trainer.model, paths[-1], step=0)
  proc = subprocess.run([sys.executable, "-c", _OUT_OF_CONTRACT, *paths], capture_output=True,
                        text=True, check=True)
  errors = json.loads(proc.stdout.strip().splitlines()[-1])
  expected = ["signature decode expects z finite; got NaN or inf",
              "signature decode expects z finite; got NaN or inf",
              f"signature sample expects 0 <= n <= {serving.MAX_SAMPLES} (the outputs of one "
              "call are held in memory: call it again with another seed for more); got n =] "
              "[100000000]",
              "signature sample expects 0 <= n <= 65536",
              "signature encode expects x finite; got NaN or inf",
              "signature elbo expects x finite; got NaN or inf",
              "signature encode expects y in [0, 10), a class index of the 10 classes; got] "
              "[3 10]",
              "signature decode expects y in [0, 10)",
              "signature sample expects label < 10 (a negative value draws y ~ p(y)), a class "
              "index of the 10 classes; got] [1000]",
              # Before: a concat error deep in the encoder, naming neither signature nor y.
              "signature encode expects y [rows] int64, one class per row (rows =] [2] [); got "
              "y of shape] [1]",
              "signature decode expects y [rows] int64, one class per row (rows =] [1]",
              # Before: "In[0] should be a scalar: [2]", naming neither signature nor argument.
              "signature sample expects n int32 [] (one number); got n =] [4 4]",
              "signature sample expects n int32 [] (one number); got n =] []"]
  assert len(errors) == len(expected) + 4
  for error, text in zip(errors, expected):
    assert error is not None and text in error, (text, error)
  assert errors[len(expected):] == [None] * 4


def test_a_refused_input_says_why_on_the_first_line(tmp_path):
  """TensorFlow puts "Graph execution error:" and a node trace before the check's message;
  tfvae.exported raises the same error with the message first (issue 33, item 5)."""
  from tfvae import exported  # pylint: disable=import-outside-toplevel
  config = config_lib.Config(hidden_sizes=(8,), latent_dim=2, image_shape=(8, 8, 1))
  trainer = trainer_lib.Trainer(config, tf.distribute.OneDeviceStrategy("/cpu:0"))
  path = serving.export(trainer.model, str(tmp_path / "export"), step=0)
  pixels = tf.constant(np.full([2, 8, 8, 1], 255, np.float32))
  with pytest.raises(tf.errors.InvalidArgumentError) as raw:
    tf.saved_model.load(path).signatures["encode"](x=pixels)
  assert raw.value.message.splitlines()[0] == "Graph execution error:"  # why this module exists
  model = exported.load(path)
  for call in (lambda: model.signatures["encode"](x=pixels), lambda: model.encode(pixels)):
    with pytest.raises(tf.errors.InvalidArgumentError) as refused:
      call()
    first = refused.value.message.splitlines()[0]
    assert first.startswith("signature encode expects x in [0, 1] (pixel values"), first
    assert first.endswith("got values from] [255] [to] [255]"), first
    assert "Graph execution error:" in refused.value.message  # TensorFlow's text follows
  with pytest.raises(tf.errors.InvalidArgumentError) as refused:
    model.signatures["decode"](z=tf.zeros([1, 3]))
  assert refused.value.message.startswith("signature decode expects z float32 [N, 2]; got shape")
  accepted = model.signatures["reconstruct"](x=tf.zeros([1, 8, 8, 1]))["reconstruction"]
  assert accepted.shape == (1, 8, 8, 1)
  assert exported.reason("no check\nat all") == "no check"
