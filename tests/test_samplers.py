"""Samplers fitted to the codes (tfvae/samplers): the gmm's stored tensors are scikit-learn's fit,
its TensorFlow sampling is that mixture (Monte Carlo), it is stored with the run and picked up by
`tfvae.load` in another process and by the SavedModel without scikit-learn; the two_stage
second VAE trains; a deterministic AE samples once a sampler is fitted; bad options are one
line naming the flag."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae import samplers
from tfvae.errors import ConfigError
from tfvae.samplers import gmm as gmm_lib

from conftest import ROOT, run_module, tiny_model


def _fit(workdir, **overrides):
  values = dict(dataset="digits", latent_dim=3, hidden_sizes=(32,), train_steps=40,
                steps_per_loop=20, eval_importance_samples=0)
  tfvae.fit(tfvae.Config(**{**values, **overrides}), workdir)
  return tfvae.load(workdir)


@pytest.fixture(scope="module")
def vae(tmp_path_factory):
  """The workdir of a short digits VAE run."""
  workdir = str(tmp_path_factory.mktemp("samplers") / "vae")
  _fit(workdir)
  return workdir


@pytest.fixture(scope="module")
def ae(tmp_path_factory):
  """The workdir of a short digits AE run (no prior)."""
  workdir = str(tmp_path_factory.mktemp("samplers") / "ae")
  _fit(workdir, model="ae")
  return workdir


def _python(script, *args):
  """Runs `script` in a fresh interpreter (this checkout's tfvae); returns its last stdout
  line, parsed as JSON."""
  proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                        cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def _full(gmm):
  """sklearn's covariances_ as [K, D, D], written out per covariance type."""
  k, d = gmm.means_.shape
  return {"full": lambda c: c, "tied": lambda c: np.stack([c] * k),
          "diag": lambda c: np.stack([np.diag(v) for v in c]),
          "spherical": lambda c: np.stack([v * np.eye(d) for v in c])}[gmm.covariance_type](
              gmm.covariances_)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_the_stored_gmm_is_sklearns_fit_of_the_train_codes(vae, covariance_type):
  from sklearn import mixture  # pylint: disable=import-outside-toplevel
  from tfvae.evaluation import ssl  # pylint: disable=import-outside-toplevel
  model = tfvae.load(vae)
  sampler = model.fit_sampler("gmm", num_components=4, covariance_type=covariance_type, seed=3)
  assert model.sampler is sampler and sampler.kind == "gmm"
  data = model.data()
  codes = samplers.codes(model.model, data, model.config)
  assert codes["train"].shape == (len(data.train), 3)
  images = ssl.split_arrays(data, "test")[0][:5]  # as evaluation sees them
  np.testing.assert_allclose(codes["test"][:5], model.encode(images).mean(), rtol=1e-5,
                             atol=1e-6)  # the posterior means
  expected = mixture.GaussianMixture(4, covariance_type=covariance_type,
                                     random_state=3).fit(codes["train"])
  with np.load(os.path.join(vae, "sampler", "gmm.npz")) as stored:
    np.testing.assert_allclose(stored["weights"], expected.weights_, rtol=1e-10)
    np.testing.assert_allclose(stored["means"], expected.means_, rtol=1e-10)
    tril = stored["scale_tril"]
    assert np.all(np.triu(tril, 1) == 0) and np.all(np.diagonal(tril, axis1=1, axis2=2) > 0)
    np.testing.assert_allclose(tril @ np.swapaxes(tril, 1, 2), _full(expected), rtol=1e-8,
                               atol=1e-12)
  with open(os.path.join(vae, "sampler", "sampler.json")) as f:
    info = json.load(f)
  assert info["kind"] == "gmm" and info["step"] == model.step
  assert info["options"] == {"num_components": 4, "covariance_type": covariance_type,
                             "reg_covar": 1e-6, "max_iter": 100, "seed": 3}
  assert info["num_codes"]["train"] == len(data.train)
  np.testing.assert_allclose(info["fit"]["train_log_likelihood"],
                             expected.score(codes["train"]), rtol=1e-8)


def test_tensorflow_sampling_draws_from_the_mixture():
  """Monte Carlo: mean and covariance of 400000 draws against the mixture's closed forms."""
  rng = np.random.default_rng(0)
  weights = np.array([0.2, 0.5, 0.3])
  means = rng.normal(0, 3, [3, 3])
  tril = np.tril(rng.normal(0, 0.7, [3, 3, 3]))
  tril[:, range(3), range(3)] = np.abs(tril[:, range(3), range(3)]) + 0.3
  sampler = gmm_lib.GMM(weights, means, tril, {"options": {"covariance_type": "full"}})
  n = 400000
  z = sampler.sample_codes(tf.constant(n), tf.constant([1, 2])).numpy().astype(np.float64)
  covariances = tril @ np.swapaxes(tril, 1, 2)
  mean = weights @ means
  cov = np.einsum("k,kij->ij", weights, covariances + np.einsum("ki,kj->kij", means, means))
  cov -= np.outer(mean, mean)
  assert z.shape == (n, 3)
  np.testing.assert_allclose(z.mean(0), mean, atol=5 * np.sqrt(np.diag(cov).max() / n))
  np.testing.assert_allclose(np.cov(z.T), cov, atol=0.03 * np.abs(cov).max())
  # Each component's mass: the draws nearest (in its own metric) to its mean.
  distance = np.stack([np.sum(np.linalg.solve(t, (z - m).T) ** 2, 0)
                       for m, t in zip(means, tril)])
  log_density = -0.5 * distance - np.log(np.abs(np.linalg.det(tril)))[:, None]
  posterior = np.exp(log_density - log_density.max(0)) * weights[:, None]
  np.testing.assert_allclose((posterior / posterior.sum(0)).mean(1), weights, atol=0.01)
  again = sampler.sample_codes(tf.constant(5), tf.constant([1, 2])).numpy()
  np.testing.assert_array_equal(again, sampler.sample_codes(tf.constant(5),
                                                            tf.constant([1, 2])).numpy())
  assert not np.allclose(again, sampler.sample_codes(tf.constant(5), tf.constant([1, 3])))


_LOAD_AND_SAMPLE = """
import json, sys
import tfvae
m = tfvae.load(sys.argv[1])
print(json.dumps({"kind": m.sampler.kind, "mean": m.sample(16, seed=5)["mean"].tolist()}))
"""


@pytest.mark.slow
def test_a_stored_gmm_samples_alike_in_a_fresh_process(vae):
  model = tfvae.load(vae)
  model.fit_sampler("gmm", num_components=4, seed=0)
  expected = model.sample(16, seed=5)["mean"]
  out = _python(_LOAD_AND_SAMPLE, vae)
  assert out["kind"] == "gmm"
  np.testing.assert_array_equal(np.array(out["mean"], np.float32), expected)
  prior = model.sample(16, seed=5, sampler="standard")["mean"]
  assert not np.allclose(prior, expected)
  np.testing.assert_array_equal(prior, tfvae.load(vae).sample(16, seed=5, sampler="standard")[
      "mean"])


_SAVED_MODEL_WITHOUT_SKLEARN = """
import json, sys
sys.modules["sklearn"] = None  # any import of scikit-learn fails
sys.modules["tensorflow_probability"] = None  # and of TFP
import tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
out = m.signatures["sample"](n=tf.constant(16), seed=tf.constant([5, 0]))
print(json.dumps({"signatures": sorted(m.signatures), "mean": out["mean"].numpy().tolist()}))
"""


@pytest.mark.slow
def test_the_saved_model_samples_from_the_gmm_without_sklearn(vae):
  model = tfvae.load(vae)
  model.fit_sampler("gmm", num_components=4, seed=0)
  path = model.export()
  with open(os.path.join(path, "assets.extra", "tfvae.json")) as f:
    assert json.load(f)["sampler"]["kind"] == "gmm"
  out = _python(_SAVED_MODEL_WITHOUT_SKLEARN, os.path.join(vae, "export"))
  assert "sample" in out["signatures"] and "elbo" in out["signatures"]
  np.testing.assert_allclose(out["mean"], model.sample(16, seed=5)["mean"], rtol=1e-5,
                             atol=1e-6)
  assert not np.allclose(out["mean"], model.sample(16, seed=5, sampler="standard")["mean"],
                         atol=1e-3)


@pytest.mark.slow
def test_two_stage_trains_a_second_vae_on_the_codes(vae):
  from tfvae import models  # pylint: disable=import-outside-toplevel
  from tfvae import config_io  # pylint: disable=import-outside-toplevel
  from tfvae import summaries  # pylint: disable=import-outside-toplevel
  model = tfvae.load(vae)
  sampler = model.fit_sampler("two_stage", second_hidden_sizes=(32,), train_steps=300,
                              batch_size=64, seed=0)
  second = os.path.join(vae, "sampler", "two_stage")
  assert not os.path.exists(second + ".partial")
  config = config_io.load(second)
  assert config.model.latent_dim == 3 and config.data.image_shape == (3,)
  loss = summaries.read_scalars(os.path.join(second, "tensorboard", "train"), ["loss"])["loss"][1]
  assert loss[-1] < loss[0], loss
  codes = samplers.codes(model.model, model.data(), model.config)["validation"]
  trained = tfvae.TrainedModel(config, sampler.second, 0).elbo(codes).mean()
  untrained = tfvae.TrainedModel(config, models.build(config, seed=0), 0).elbo(codes).mean()
  assert trained > untrained + 0.2, (trained, untrained)
  z = sampler.sample_codes(tf.constant(7), tf.constant([0, 1])).numpy()
  assert z.shape == (7, 3) and np.all(np.isfinite(z))
  drawn = model.sample(7, seed=2)
  assert drawn["mean"].shape == (7, 8, 8, 1)
  loaded = tfvae.load(vae)
  assert loaded.sampler.kind == "two_stage"
  np.testing.assert_allclose(loaded.sample(7, seed=2)["mean"], drawn["mean"], rtol=1e-6)
  saved = tf.saved_model.load(model.export())
  np.testing.assert_allclose(
      saved.signatures["sample"](n=tf.constant(7), seed=tf.constant([2, 0]))["mean"],
      drawn["mean"], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_an_autoencoder_samples_once_a_gmm_is_fitted_to_its_codes(ae):
  model = tfvae.load(ae)
  with pytest.raises(ValueError, match="has no prior p.z. to sample from: fit a sampler"):
    model.sample(4)
  with pytest.raises(ConfigError, match="--sampler=standard: --model=ae has no prior"):
    model.fit_sampler("standard")
  paths = tfvae.draw(ae, what=["samples"])
  assert paths == {}  # skipped: nothing to sample from
  sampler = model.fit_sampler("gmm", num_components=3)
  drawn = model.sample(6, seed=1)
  assert drawn["mean"].shape == drawn["sample"].shape == (6, 8, 8, 1)
  z_seed, _ = tf.unstack(tf.random.experimental.stateless_split(tf.constant([1, 0]), 2))
  codes = sampler.sample_codes(tf.constant(6), z_seed)
  np.testing.assert_allclose(drawn["mean"], model.decode(codes.numpy()).mean(), rtol=1e-5)
  with pytest.raises(ValueError, match="no prior"):
    model.sample(4, sampler="standard")
  assert tfvae.load(ae).sampler.kind == "gmm"
  saved = tf.saved_model.load(model.export())
  assert "sample" in saved.signatures and "elbo" not in saved.signatures
  np.testing.assert_allclose(
      saved.signatures["sample"](n=tf.constant(6), seed=tf.constant([1, 0]))["mean"],
      drawn["mean"], rtol=1e-5, atol=1e-6)
  assert os.path.exists(tfvae.draw(ae, what=["samples"])["samples"])


@pytest.mark.parametrize("family", ["vae", "hvae", "pc_vae", "ae", "contractive_ae"])
def test_every_family_with_an_encoder_decodes_a_samplers_codes(family):
  model = tiny_model(model=family, num_classes=3)
  sampler = gmm_lib.GMM(np.array([0.5, 0.5]), np.array([[0.0] * 3, [1.0] * 3]),
                        np.stack([np.eye(3)] * 2), {"options": {"covariance_type": "full"}})
  out = sampler.draw(model, tf.constant(5), tf.constant([0, 1]))
  assert out["mean"].shape == out["sample"].shape == (5, 8, 8, 1)
  again = sampler.draw(model, tf.constant(5), tf.constant([0, 1]))
  np.testing.assert_array_equal(out["sample"], again["sample"])


def test_m2_is_refused_in_one_line():
  m2 = tiny_model(model="m2", num_classes=3)
  trained = tfvae.TrainedModel(m2.config, m2, 0)
  with pytest.raises(ConfigError, match=r"^--model=m2: its codes depend on the class"):
    trained.fit_sampler("gmm")


def test_bad_options_name_the_flag_before_anything_is_written(vae):
  model = tfvae.load(vae)
  record = os.path.join(vae, "sampler", "sampler.json")
  before = open(record).read() if os.path.exists(record) else None
  for kwargs, message in [
      (dict(kind="bogus"), r"--sampler='bogus' is not one of standard, gmm, two_stage"),
      (dict(kind="gmm", num_components=0), r"--num_components=0 must be an integer >= 1"),
      (dict(kind="gmm", covariance_type="bogus"), r"--covariance_type='bogus' is not one of"),
      (dict(kind="gmm", max_iter=1.5), r"--max_iter=1.5 must be an integer"),
      (dict(kind="gmm", epochs=3), r"--epochs is not an option of --sampler=gmm"),
      (dict(kind="two_stage", second_hidden_sizes=(0,)), r"--second_hidden_sizes=0 must be"),
      (dict(kind="two_stage", batch_size=0), r"--batch_size=0 must be an integer >= 1"),
      (dict(kind="gmm", num_components=100000), r"--num_components=100000 is more than the"),
  ]:
    with pytest.raises(ConfigError, match=message):
      model.fit_sampler(**kwargs)
  assert (open(record).read() if os.path.exists(record) else None) == before
  with pytest.raises(ValueError, match=r"sampler='bogus': expected None"):
    model.sample(3, sampler="bogus")


def test_a_sampler_fitted_to_other_weights_or_damaged_is_not_used(vae):
  model = tfvae.load(vae)
  model.fit_sampler("gmm", num_components=2)
  record = os.path.join(vae, "sampler", "sampler.json")
  with open(record) as f:
    info = json.load(f)
  try:
    with open(record, "w") as f:
      json.dump({**info, "step": info["step"] + 1}, f)
    assert tfvae.load(vae).sampler.kind == "standard"  # fitted to other codes: a warning
    with open(record, "w") as f:
      f.write("{not json")
    assert tfvae.load(vae).sampler.kind == "standard"
  finally:
    with open(record, "w") as f:
      json.dump(info, f)
  assert tfvae.load(vae).sampler.kind == "gmm"
  model.fit_sampler("standard")  # back to the prior: the sampler's files are removed
  assert not os.path.exists(os.path.dirname(record)) and tfvae.load(vae).sampler.kind == "standard"


@pytest.mark.slow
def test_the_command_fits_and_exports_and_refuses_bad_flags_in_one_line(vae):
  proc = run_module("tfvae.fit_sampler", f"--workdir={vae}", "--num_components=3")
  assert "Fitted the gmm sampler" in proc.stdout
  with open(os.path.join(vae, "export", "assets.extra", "tfvae.json")) as f:
    assert json.load(f)["sampler"]["options"]["num_components"] == 3
  for flag, message in [("--num_components=0", "--num_components=0 must be an integer >= 1"),
                        ("--covariance_type=bogus", "--covariance_type='bogus' is not one of"),
                        ("--sampler=bogus", "--sampler='bogus' is not one of"),
                        ("--epochs=3", "--epochs is not an option of --sampler=gmm")]:
    proc = run_module("tfvae.fit_sampler", f"--workdir={vae}", flag, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith(f"tfvae.fit_sampler: {message}"), lines


@pytest.mark.parametrize("kind, option, value, message", [
    ("gmm", "reg_covar", True, r"^--reg_covar=True must be a finite number >= 0\.$"),
    ("gmm", "reg_covar", -1e-3, r"^--reg_covar=-0\.001 must be a finite number >= 0\.$"),
    ("gmm", "reg_covar", float("nan"), r"^--reg_covar=nan must be a finite number >= 0\.$"),
    ("gmm", "reg_covar", float("inf"), r"^--reg_covar=inf must be a finite number >= 0\.$"),
    ("gmm", "reg_covar", "1e-6", r"^--reg_covar='1e-6' must be a finite number >= 0\.$"),
    ("gmm", "num_components", True, r"^--num_components=True must be an integer >= 1\.$"),
    ("gmm", "max_iter", False, r"^--max_iter=False must be an integer >= 1\.$"),
    ("gmm", "covariance_type", ["full"], r"^--covariance_type=\['full'\] is not one of"),
    ("gmm", "seed", -1, r"^--seed=-1 must be an integer in 0\.\.2147483647\.$"),
    ("gmm", "seed", 2 ** 31, r"^--seed=2147483648 must be an integer in 0\.\.2147483647\.$"),
    ("gmm", "seed", True, r"^--seed=True must be an integer in 0\.\.2147483647\.$"),
    ("gmm", "seed", 1.0, r"^--seed=1\.0 must be an integer in 0\.\.2147483647\.$"),
    ("two_stage", "learning_rate", True, r"^--learning_rate=True must be a finite number > 0"),
    ("two_stage", "learning_rate", 0.0, r"^--learning_rate=0\.0 must be a finite number > 0"),
    ("two_stage", "seed", -1, r"^--seed=-1 must be an integer in 0\.\.2147483647\.$"),
    ("two_stage", "epochs", True, r"^--epochs=True must be an integer >= 1\.$"),
    ("two_stage", "second_hidden_sizes", "256", r"^--second_hidden_sizes='256' must be positive"),
])
def test_every_option_is_checked_for_type_and_range_in_one_line(kind, option, value, message):
  with pytest.raises(ConfigError, match=message):
    samplers.options(kind, **{option: value})


def test_numpy_option_values_are_accepted_and_recorded_as_python_numbers():
  chosen = samplers.options("gmm", num_components=np.int64(3), reg_covar=np.float32(0.5),
                            seed=np.int32(7))
  assert (chosen.num_components, chosen.reg_covar, chosen.seed) == (3, 0.5, 7)
  assert [type(v) for v in (chosen.num_components, chosen.reg_covar, chosen.seed)] == [
      int, float, int]
  sizes = samplers.options("two_stage", second_hidden_sizes=[np.int64(8)]).second_hidden_sizes
  assert sizes == (8,) and type(sizes[0]) is int


@pytest.fixture(scope="module")
def other_vae(tmp_path_factory):
  """The workdir of a second digits VAE, as `vae` but another seed: same step, other weights."""
  workdir = str(tmp_path_factory.mktemp("samplers") / "other")
  _fit(workdir, seed=1)
  return workdir


def _copy(workdir, tmp_path, name):
  import shutil  # pylint: disable=import-outside-toplevel
  copy = str(tmp_path / name)
  shutil.copytree(workdir, copy, symlinks=True)  # the export link stays relative
  return copy


def test_a_sampler_fitted_to_other_weights_of_the_same_step_is_stale(vae, tmp_path, caplog):
  mine = _copy(vae, tmp_path, "mine")
  model = tfvae.load(mine)
  model.fit_sampler("gmm", num_components=2)
  assert tfvae.load(mine).sampler.kind == "gmm"  # the same weights, restored again: its own
  changed = tfvae.load(mine)  # the same step, one encoder weight changed (trained again)
  variable = changed.model.encoder.variables[0]
  variable.assign(variable + 1e-3)
  caplog.clear()
  assert samplers.load(mine, changed.step, changed.model).kind == "standard"
  stale = [r.getMessage() for r in caplog.records if "Stale sampler" in r.getMessage()]
  assert len(stale) == 1 and "\n" not in stale[0], stale
  assert f"other step-{changed.step} weights" in stale[0]
  assert f"python -m tfvae.fit_sampler --workdir={mine}" in stale[0]
  assert samplers.load(mine, model.step, model.model).kind == "gmm"
  # A record without the fingerprint, or with another, is not trusted either.
  record = os.path.join(mine, "sampler", "sampler.json")
  with open(record) as f:
    info = json.load(f)
  assert info["encoder_sha256"] == samplers.fingerprint(model.model)
  for edited in ({k: v for k, v in info.items() if k != "encoder_sha256"},
                 {**info, "encoder_sha256": "0" * 64}):
    with open(record, "w") as f:
      json.dump(edited, f)
    assert tfvae.load(mine).sampler.kind == "standard"


@pytest.mark.slow
def test_a_sampler_copied_from_another_run_at_the_same_step_is_stale(vae, other_vae, tmp_path,
                                                                     caplog):
  import shutil  # pylint: disable=import-outside-toplevel
  mine, theirs = _copy(vae, tmp_path, "mine"), _copy(other_vae, tmp_path, "theirs")
  model = tfvae.load(mine)
  model.fit_sampler("gmm", num_components=2)
  shutil.rmtree(os.path.join(theirs, "sampler"), ignore_errors=True)
  shutil.copytree(os.path.join(mine, "sampler"), os.path.join(theirs, "sampler"))
  caplog.clear()
  other = tfvae.load(theirs)
  assert other.step == model.step  # matched by step alone, it would be taken
  assert other.sampler.kind == "standard"  # another run's sampler: not used
  stale = [r.getMessage() for r in caplog.records if "Stale sampler" in r.getMessage()]
  assert len(stale) == 1 and "another run's sampler" in stale[0], stale


@pytest.mark.slow
def test_training_again_keeps_the_fitted_sampler_in_its_export(vae, tmp_path):
  """A finished run trained again (no step left) whose export is evaluated and exported again
  (here: the export link was lost) exports the sampler fitted to these weights, not the prior."""
  mine = _copy(vae, tmp_path, "mine")
  model = tfvae.load(mine)
  fitted = model.fit_sampler("gmm", num_components=2)
  model.export()
  os.remove(os.path.join(mine, "export"))  # the run is no longer finished: exported again
  again = _fit(mine)
  with open(os.path.join(mine, "export", "assets.extra", "tfvae.json")) as f:
    exported = json.load(f)["sampler"]
  assert exported["kind"] == "gmm"
  assert exported["encoder_sha256"] == fitted.info["encoder_sha256"]
  assert again.step == model.step and again.sampler.kind == "gmm"
  # A stale sampler (fitted to other weights) is left out of the export, with a warning.
  record = os.path.join(mine, "sampler", "sampler.json")
  with open(record) as f:
    info = json.load(f)
  with open(record, "w") as f:
    json.dump({**info, "encoder_sha256": "0" * 64}, f)
  os.remove(os.path.join(mine, "export"))
  _fit(mine)
  with open(os.path.join(mine, "export", "assets.extra", "tfvae.json")) as f:
    assert json.load(f)["sampler"]["kind"] == "standard"
