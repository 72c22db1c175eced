"""Your own data: folders of images, .npz/.npy/.csv files and arrays (tfvae/data/arrays.py,
files.py), their checks, the fingerprint a run records, and the vector likelihoods."""

import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

import tfvae
from tfvae import config as config_lib
from tfvae import config_io
from tfvae import data as data_lib
from tfvae.errors import DataError
from conftest import run_module, saved_config


def _digits():
  from sklearn import datasets  # pylint: disable=import-outside-toplevel
  d = datasets.load_digits()
  return d.images.astype(np.uint8), d.target.astype(np.int64)  # 0..16


def _write_png_folder(root, images, labels, split=None):
  for i, (image, label) in enumerate(zip(images, labels)):
    folder = os.path.join(root, *([split] if split else []), f"class_{label}")
    os.makedirs(folder, exist_ok=True)
    Image.fromarray(image).save(os.path.join(folder, f"{i:04d}.png"))


def test_a_folder_of_class_subfolders_reads_as_labeled_images(tmp_path):
  images, labels = _digits()
  images = (images[:60] * 15).astype(np.uint8)
  _write_png_folder(tmp_path, images, labels[:60])
  source = data_lib.from_directory(str(tmp_path))
  x, y = source.train
  assert x.shape == (60, 8, 8, 1) and x.dtype == np.uint8 and source.test is None
  assert source.class_names == tuple(f"class_{k}" for k in range(10))
  # Files are read in sorted order within sorted class folders: compare as sets of (image, label).
  expected = sorted((img.tobytes(), int(k)) for img, k in zip(images, labels[:60]))
  assert sorted((img[..., 0].tobytes(), int(k)) for img, k in zip(x, y)) == expected
  assert source.origin == str(tmp_path)


def test_train_and_test_subfolders_give_the_splits(tmp_path):
  images, labels = _digits()
  _write_png_folder(tmp_path, images[:40] * 15, labels[:40], "train")
  _write_png_folder(tmp_path, images[40:60] * 15, labels[40:60], "test")
  data = data_lib.load(config_lib.Config(dataset=str(tmp_path), validation_fraction=0.25))
  assert (len(data.train), len(data.validation), len(data.test)) == (30, 10, 20)
  # Files are listed class by class; the held-out validation tail still mixes the classes.
  assert len(set(data.validation.labels.tolist())) >= 5


def test_mixed_image_sizes_name_two_files_and_image_size_resizes(tmp_path):
  Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
  Image.fromarray(np.zeros((10, 12), np.uint8)).save(tmp_path / "b.png")
  with pytest.raises(DataError, match=r"a.png is 8x8 but .*b.png is 12x10.*--image_size"):
    data_lib.from_directory(str(tmp_path))
  source = data_lib.from_directory(str(tmp_path), image_size=(6, 7))
  assert source.train[0].shape == (2, 6, 7, 1)
  assert (source.train[1] == -1).all()  # a flat folder is unlabeled


def test_rgb_and_gray_mix_reads_as_rgb(tmp_path):
  Image.fromarray(np.full((4, 4), 200, np.uint8)).save(tmp_path / "gray.png")
  Image.fromarray(np.tile(np.array([255, 0, 0], np.uint8), (4, 4, 1))).save(tmp_path / "red.png")
  x = data_lib.from_directory(str(tmp_path)).train[0]
  assert x.shape == (2, 4, 4, 3)
  assert (x[0] == 200).all() and (x[1][..., 0] == 255).all() and (x[1][..., 1:] == 0).all()


@pytest.mark.parametrize("make, message", [
    (lambda p: os.makedirs(p / "empty"), "holds no image files"),
    (lambda p: (p / "empty").write_text("x") and None, "unknown file type"),
])
def test_empty_folders_and_unknown_files_are_one_line(tmp_path, make, message):
  make(tmp_path)
  with pytest.raises(DataError, match=message):
    data_lib.files.from_path(str(tmp_path / "empty"))


def test_npz_keys_dtypes_and_labels(tmp_path):
  images, labels = _digits()
  path = str(tmp_path / "digits.npz")
  np.savez(path, x_train=images[:100].astype(np.int64), y_train=labels[:100],
           x_test=images[100:130].astype(np.int64), y_test=labels[100:130])
  with pytest.raises(DataError,
                     match=r"digits.npz: x_train: int64 images with values 0..16: .*--max_value"):
    data_lib.from_file(path)
  source = data_lib.from_file(path, max_value=16)
  assert source.train[0].shape == (100, 8, 8, 1) and source.test[0].shape == (30, 8, 8, 1)
  np.savez(path, images=images[:10], labels=np.linspace(0, 1, 10))
  with pytest.raises(DataError, match="labels are float64, not integers"):
    data_lib.from_file(path)
  np.savez(path, pixels=images)
  with pytest.raises(DataError, match=r"has keys \['pixels'\]; expected x_train"):
    data_lib.from_file(path)


def _write_csv(path, header, rows):
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)


def test_csv_vectors_labels_and_bad_columns(tmp_path):
  path = str(tmp_path / "table.csv")
  _write_csv(path, ["a", "b", "label"], [[0.5, 2, 1], [1.5, -3, 0], [2.5, 4, 1]])
  source = data_lib.from_file(path, label_column="label")
  np.testing.assert_array_equal(source.train[0], [[0.5, 2], [1.5, -3], [2.5, 4]])
  np.testing.assert_array_equal(source.train[1], [1, 0, 1])
  assert source.kind == "vectors" and source.train[0].dtype == np.float32
  _write_csv(path, ["a", "city"], [[1, "Oslo"]])
  with pytest.raises(DataError, match=r"table.csv: column 'city' is not numeric \(row 2: 'Oslo'\)"):
    data_lib.from_file(path)
  _write_csv(path, ["a", "b"], [[1, 2], [3, "nan"]])
  with pytest.raises(DataError, match=r"table.csv: column 'b', row 3: 'nan' .*NaN or infinite"):
    data_lib.from_file(path)


@pytest.mark.parametrize("cell", ["1e38", "-1e39", "inf"])
def test_csv_values_float32_cannot_train_on_name_the_column_and_row(tmp_path, cell):
  """F20: 1e38 is a finite float32, but --standardize and the likelihoods square it (a NaN run)."""
  path = str(tmp_path / "table.csv")
  _write_csv(path, ["a", "b", "c"], [[1, 2, 3], [4, 5, 6], [7, cell, 9]])
  with pytest.raises(DataError, match=rf"^--dataset=.*table.csv: column 'b', row 4: '{cell}' "
                     r"\(1 such values\) is (beyond \+-1e\+15|NaN or infinite)"):
    data_lib.from_file(path)
  _write_csv(path, ["a", "b"], [[1, 2], [3, 1e14]])  # large, but trains in float32
  assert data_lib.from_file(path).train[0][1, 1] == np.float32(1e14)
  with pytest.raises(DataError, match=r"x_train: feature 1 of example 0 is 1e\+38 .*rescale"):
    data_lib.from_arrays(np.array([[0.0, 1e38], [1.0, 2.0]]))


def test_a_csv_label_column_named_twice_is_refused(tmp_path):
  """F20: a duplicated header name made --label_column take the first of them, silently."""
  path = str(tmp_path / "table.csv")
  _write_csv(path, ["label", "a", "label"], [[1, 0.5, 0], [0, 1.5, 1]])
  with pytest.raises(DataError, match=r"table.csv: --label_column=label names 2 columns "
                     r"\(columns 1, 3 of the header\)"):
    data_lib.from_file(path, label_column="label")
  _write_csv(path, ["a", "a", "label"], [[1, 0.5, 0], [0, 1.5, 1]])  # features may share names
  assert data_lib.from_file(path, label_column="label").train[0].shape == (2, 2)


def _png_header_only(path, width, height):
  """A PNG that declares width x height 8-bit gray pixels (Pillow checks the size on open)."""
  import struct, zlib  # pylint: disable=import-outside-toplevel,multiple-imports
  def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
  with open(path, "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0,
                                                              0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


def test_sixteen_bit_pngs_keep_their_high_byte(tmp_path):
  """F14: convert("L") saturated 16-bit gray (every nonzero pixel became 255)."""
  values = np.array([[0, 255, 256, 1000], [32768, 40000, 65280, 65535]], np.uint16)
  Image.fromarray(values).save(tmp_path / "deep.png")
  with Image.open(tmp_path / "deep.png") as img:
    assert img.mode == "I;16" and np.array_equal(np.asarray(img), values)  # a real 16-bit PNG
  x = data_lib.from_directory(str(tmp_path)).train[0]
  np.testing.assert_array_equal(x[0, ..., 0], [[0, 0, 1, 3], [128, 156, 255, 255]])
  Image.fromarray(np.zeros((2, 4, 3), np.uint8)).save(tmp_path / "rgb.png")  # read as RGB
  x = data_lib.from_directory(str(tmp_path)).train[0]
  deep = x[np.argmax(x.reshape(2, -1).max(1))]
  np.testing.assert_array_equal(deep[..., 1], [[0, 0, 1, 3], [128, 156, 255, 255]])


def test_an_image_too_large_to_decode_is_one_line(tmp_path):
  """F15: a 20000x20000 PNG raised PIL's DecompressionBombError."""
  Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "small.png")
  _png_header_only(tmp_path / "huge.png", 20000, 20000)
  with pytest.raises(DataError, match=r"huge.png is too large to decode .*shrink it first"):
    data_lib.from_directory(str(tmp_path))


def test_a_damaged_npz_is_one_line(tmp_path):
  """F16: a garbage .npz raised zipfile.BadZipFile (an empty one EOFError)."""
  path = tmp_path / "arrays.npz"
  np.savez(path, x_train=np.arange(64 * 20, dtype=np.uint8).reshape(20, 8, 8))
  whole = path.read_bytes()
  for damaged, message in [(whole[:len(whole) // 2], "is not an .npz file"),
                           (b"PK\x03\x04" + bytes(range(256)), "is not an .npz file"),
                           (b"", "is not an .npz file"),
                           (whole[:200] + bytes(100) + whole[300:], "could not be read "
                            r"\(BadZipFile: Bad CRC-32")]:
    path.write_bytes(damaged)
    with pytest.raises(DataError, match=rf"^--dataset=.*arrays.npz {message}"):
      data_lib.from_file(str(path))


def test_images_beside_class_folders_are_read_unlabeled(tmp_path):
  """F17: an image beside class subfolders was dropped silently (300 of 301 read)."""
  images, labels = _digits()
  _write_png_folder(tmp_path, (images[:30] * 15).astype(np.uint8), labels[:30] % 3)
  Image.fromarray(np.full((8, 8), 7, np.uint8)).save(tmp_path / "loose.png")
  source = data_lib.from_directory(str(tmp_path))
  x, y = source.train
  assert len(x) == 31 and source.class_names == ("class_0", "class_1", "class_2")
  assert (y == -1).sum() == 1 and (x[y == -1] == 7).all()
  assert np.bincount(y[y >= 0]).tolist() == np.bincount(labels[:30] % 3).tolist()
  os.makedirs(tmp_path / "train")
  os.rename(tmp_path / "class_0", tmp_path / "train" / "class_0")
  with pytest.raises(DataError, match=r"1 image files lie beside train/ and belong to no split "
                     r"\(first: .*loose.png\)"):
    data_lib.from_directory(str(tmp_path))


def test_float_images_in_the_unit_range_are_stored_as_pixels():
  # Before: every float image was refused, with advice (np.round(x * 255)) that spoils 0..255
  # floats.
  images, labels = _digits()
  source = data_lib.from_arrays(images / 16.0, labels)  # float64 [N, 8, 8] in [0, 1]
  x, _ = source.train
  assert x.dtype == np.uint8 and x.shape == (len(images), 8, 8, 1) and source.max_value == 255
  np.testing.assert_array_equal(x[..., 0], np.round(images / 16.0 * 255))
  exact = data_lib.from_arrays((images / 16.0).astype(np.float32), labels, max_value=16)
  np.testing.assert_array_equal(exact.train[0][..., 0], images)  # 16 levels: exactly the digits
  rgb = np.random.default_rng(0).random((5, 4, 4, 3)).astype(np.float32)
  np.testing.assert_array_equal(data_lib.from_arrays(rgb).train[0], np.round(rgb * 255))
  uint8 = (images * 15).astype(np.uint8)  # uint8 / 255 round-trips exactly
  np.testing.assert_array_equal(data_lib.from_arrays(uint8 / 255.0).train[0][..., 0], uint8)


@pytest.mark.parametrize("values,message", [
    (lambda x: x.astype(np.float32), r"x_train: float pixels range from 0 to 16, outside "
     r"\[0, 1\]\. .*x\.astype\(np\.uint8\)"),
    (lambda x: x / 16.0 - 0.5, r"x_train: float pixels range from -0.5 to 0.5, outside \[0, 1\]"),
    (lambda x: np.where(x > 8, np.nan, x / 16.0), r"x_train: \d+ of its \d+ values are NaN or "
     "infinite"),
])
def test_float_images_outside_the_unit_range_name_the_range_found(values, message):
  images, labels = _digits()
  with pytest.raises(DataError, match=message) as refused:
    data_lib.from_arrays(values(images), labels)
  assert "np.round(x * 255)" not in str(refused.value)
  with pytest.raises(DataError, match=message.replace("x_train", "x_test")):
    data_lib.from_arrays(images, labels, x_test=values(images), max_value=16)


def test_vector_likelihoods_check_their_features():
  x = np.array([[0, 1, 2], [1, 0, 3], [0, 0, 1], [1, 1, 0], [0, 1, 5]] * 4, np.float32)
  source = data_lib.from_arrays(x)
  base = dict(dataset="x", binarization="none", validation_fraction=0.25, test_fraction=0.2)
  with pytest.raises(DataError, match=r"bernoulli needs every feature 0 or 1; feature 2"):
    data_lib.build(source, config_lib.Config(**base, likelihood="bernoulli"))
  data_lib.build(source, config_lib.Config(**base, likelihood="poisson"))
  with pytest.raises(DataError, match="non-negative integer"):
    data_lib.build(data_lib.from_arrays(x - 0.5), config_lib.Config(**base, likelihood="poisson"))
  with pytest.raises(DataError, match="--binarization=dynamic applies to pixels"):
    data_lib.build(source, config_lib.Config(dataset="x", likelihood="poisson",
                                             binarization="dynamic"))
  data = data_lib.build(source, config_lib.Config(**base, likelihood="normal", standardize=True))
  np.testing.assert_allclose(data.train.images.mean(0), 0, atol=1e-6)
  np.testing.assert_allclose(data.train.images.std(0), 1, atol=1e-5)


@pytest.mark.slow
def test_a_resume_and_evaluate_on_changed_data_are_refused(tmp_path):
  images, labels = _digits()
  path = str(tmp_path / "digits.npz")
  np.savez(path, x_train=(images * 15).astype(np.uint8), y_train=labels)
  workdir = str(tmp_path / "run")
  args = (f"--dataset={path}", f"--workdir={workdir}", "--train_steps=20", "--latent_dim=2",
          "--hidden_sizes=16", "--eval_importance_samples=0", "--steps_per_loop=10")
  run_module("tfvae.train", *args)
  saved = saved_config(workdir)
  assert saved["dataset"] == path and saved["data_fingerprint"].startswith("train 1797x8x8x1 uint8")
  run_module("tfvae.evaluate", f"--workdir={workdir}", "--num_importance_samples=5")
  changed = (images * 15).astype(np.uint8)
  changed[0] = 255 - changed[0]
  np.savez(path, x_train=changed, y_train=labels)
  proc = run_module("tfvae.train", *args[:2], "--train_steps=40", *args[3:], check=False)
  assert proc.returncode == 2
  assert "the data differ from those the run in the workdir was trained on" in proc.stderr
  proc = run_module("tfvae.evaluate", f"--workdir={workdir}", check=False)
  assert proc.returncode == 2 and "the data differ from those the run was trained on" in (
      proc.stderr.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_python_api_trains_loads_and_evaluates_arrays(tmp_path):
  """fit on numpy arrays -> load -> per-example elbo equals what evaluate reports."""
  images, labels = _digits()
  data = tfvae.data.from_arrays(images, labels, max_value=16)
  workdir = str(tmp_path / "api")
  trained = tfvae.fit(tfvae.Config(latent_dim=4, hidden_sizes=(32,), train_steps=60,
                                   steps_per_loop=20, eval_importance_samples=0), workdir,
                      data=data)
  results = trained.results  # what fit returned before issue 34 (step 2)
  assert results["step"] == 60 and results["test"]["checkpoint_step"] == trained.step
  with open(os.path.join(workdir, "eval.json")) as f:
    merged = json.load(f)
  assert merged[merged["final"]["test"]]["elbo"] == pytest.approx(results["test"]["elbo"])
  model = tfvae.load(workdir)
  assert model.step == 60 and model.config.data.dataset == data_lib.IN_MEMORY
  assert trained.config == model.config and trained.workdir == workdir
  test = model.data(data).test
  # fit's model is the one load rebuilds: the same weights, the same answers.
  np.testing.assert_array_equal(trained.elbo(test.images), model.elbo(test.images))
  x = test.images / 16.0
  elbo = model.elbo(test.images)  # integer pixels are scaled by the run's max value
  np.testing.assert_allclose(elbo, model.elbo(x.astype(np.float32)), rtol=1e-6)
  metrics = model.evaluate(data, num_importance_samples=50)
  assert metrics["elbo"] == pytest.approx(float(np.mean(elbo)), abs=1e-3)
  bound = model.iwae_bound(test.images[:20], num_importance_samples=50)
  assert bound.shape == (20,) and np.mean(bound) >= np.mean(elbo[:20]) - 0.05
  assert model.encode(test.images[:3]).mean().shape == (3, 4)
  assert model.sample(5, seed=1)["mean"].shape == (5, 8, 8, 1)
  with open(os.path.join(workdir, "eval.json")) as f:
    assert json.load(f)["test_K50"]["elbo"] == pytest.approx(metrics["elbo"])
  with pytest.raises(DataError, match="in-memory arrays"):
    model.evaluate()
  proc = run_module("tfvae.evaluate", f"--workdir={workdir}", check=False)
  assert proc.returncode == 2 and "tfvae.load(workdir).evaluate(data)" in proc.stderr


@pytest.mark.slow
def test_standardized_vectors_round_trip_through_the_export(tmp_path):
  """A tabular run with --standardize: the SavedModel, loaded in a fresh process, takes raw
  features and returns the reconstructions the Python API gives."""
  from sklearn import datasets  # pylint: disable=import-outside-toplevel
  table = datasets.load_wine()
  path = str(tmp_path / "wine.csv")
  _write_csv(path, [*table.feature_names, "cultivar"],
             [[*row, k] for row, k in zip(table.data, table.target)])
  workdir = str(tmp_path / "wine")
  run_module("tfvae.train", f"--dataset={path}", "--label_column=cultivar", "--binarization=none",
             "--likelihood=normal", "--standardize", f"--workdir={workdir}", "--train_steps=40",
             "--batch_size=32", "--latent_dim=3", "--steps_per_loop=20")
  model = tfvae.load(workdir)
  x = table.data[:5].astype(np.float32)
  ours = model.reconstruct(x)
  script = ("import sys, numpy as np, tensorflow as tf\n"
            f"m = tf.saved_model.load({os.path.join(workdir, 'export')!r})\n"
            f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
            "np.save(sys.argv[1], m.signatures['reconstruct'](x=tf.constant(x))"
            "['reconstruction'].numpy())\n")
  np.save(tmp_path / "x.npy", x)
  import subprocess, sys  # pylint: disable=import-outside-toplevel,multiple-imports
  subprocess.run([sys.executable, "-c", script, str(tmp_path / "r.npy")], check=True,
                 capture_output=True)
  np.testing.assert_allclose(np.load(tmp_path / "r.npy"), ours, rtol=1e-4, atol=1e-3)
  assert abs(ours - x).mean() < abs(x.mean(0) - x).mean() * 2  # raw units, near the data
  assert len(saved_config(workdir)["feature_mean"]) == 13
  # Vectors get the latent figures and the curves, no pictures of x.
  proc = run_module("tfvae.visualize", f"--workdir={workdir}", "--num_examples=100")
  assert sorted(os.listdir(os.path.join(workdir, "figures"))) == [
      "curves.png", "histograms.png", "latent_pca.png"]
  assert "pictures of images" in proc.stderr


@pytest.mark.slow
def test_a_search_runs_on_a_csv_table(tmp_path):
  """tfvae.tune on --dataset=PATH: every trial reads the table and records it."""
  from sklearn import datasets  # pylint: disable=import-outside-toplevel
  table = datasets.load_breast_cancer()
  path = str(tmp_path / "cancer.csv")
  _write_csv(path, [*table.feature_names, "target"],
             [[*row, k] for row, k in zip(table.data, table.target)])
  workdir = str(tmp_path / "tune")
  run_module("tfvae.tune", f"--dataset={path}", "--label_column=target", "--binarization=none",
             "--likelihood=normal", "--standardize", "--train_steps=20", "--batch_size=64",
             "--max_trials=2", "--latent_dims=2,4", "--hidden_sizes=16", "--steps_per_loop=10",
             f"--workdir={workdir}")
  with open(os.path.join(workdir, "trials.csv")) as f:
    trials = list(csv.DictReader(f))
  assert len(trials) == 2 and all(t["status"] == "COMPLETED" for t in trials)
  for t in trials:
    saved = saved_config(os.path.join(workdir, t["trial"]))
    assert saved["dataset"] == path and saved["image_shape"] == [30]


@pytest.mark.parametrize("dataset, is_path", [
    ("digits", False), ("fashion_mnist", False), ("cifar10/3.0.2", False),  # TFDS name/version
    ("/data/x", True), ("./images", True), ("~/images", True), ("table.csv", True),
    ("arrays.npz", True)])
def test_a_path_is_told_from_a_dataset_name(dataset, is_path):
  assert data_lib.files.is_path(dataset) is is_path


# Issue 33 item 1: a run trained from Python records how its data were read.

def _mixed_size_folder(root):
  """Digits as PNGs of two sizes (8x8 and 10x10): read only with image_size."""
  images, labels = _digits()
  images = (images[:200] * 15).astype(np.uint8)
  _write_png_folder(root, images[:100], labels[:100])
  for i, (image, label) in enumerate(zip(images[100:], labels[100:200])):
    Image.fromarray(np.pad(image, 1)).save(os.path.join(root, f"class_{label}", f"big{i}.png"))
  return str(root)


def _as_trained(config, source, workdir):
  """What tfvae.fit records in workdir/config.json for `source`, without training."""
  from tfvae.training import workdir_setup  # pylint: disable=import-outside-toplevel
  config = workdir_setup.with_source(config, source)
  config = workdir_setup.resolve(config, data_lib.load(config, source))
  config_io.save(config, workdir)
  return config_io.load(workdir)


def test_the_reader_options_of_a_source_are_recorded_and_read_again(tmp_path):
  folder = _mixed_size_folder(tmp_path / "png")
  source = data_lib.from_directory(folder, image_size=(8, 8))
  assert source.reader_options == {"image_size": (8, 8)}
  saved = _as_trained(config_lib.Config(), source, str(tmp_path / "run"))
  assert saved.data.dataset == folder and saved.data.image_size == (8, 8)
  assert data_lib.load(saved).fingerprint == saved.data.data_fingerprint  # what evaluate reads
  with open(tmp_path / "table.csv", "w") as f:
    f.write("a,b,target\n" + "".join(f"{i},{i % 3 * 0.5},{i % 2}\n" for i in range(40)))
  source = data_lib.from_file(str(tmp_path / "table.csv"), label_column="target")
  assert source.reader_options == {"max_value": 0, "label_column": "target",
                                   "condition_columns": ""}
  saved = _as_trained(config_lib.Config(binarization="none", likelihood="normal"), source,
                      str(tmp_path / "table"))
  assert saved.data.label_column == "target" and saved.data.image_shape == (2,)
  assert data_lib.load(saved).fingerprint == saved.data.data_fingerprint
  images, labels = _digits()
  np.savez(tmp_path / "d.npz", x_train=images.astype(np.int64), y_train=labels)
  source = data_lib.from_file(str(tmp_path / "d.npz"), max_value=16)
  saved = _as_trained(config_lib.Config(), source, str(tmp_path / "npz"))
  assert saved.data.max_value == 16 and saved.data.pixel_levels == 17
  assert data_lib.load(saved).max_value == 16


def _run_of(source, **options):
  """The resolved config of a run trained on `source` read with `options`, by hand."""
  return config_lib.Config(dataset=source.origin, **options, data_fingerprint=source.fingerprint(),
                           pixel_levels=source.max_value + 1,
                           image_shape=source.train[0].shape[1:])


def test_data_read_with_other_options_say_what_differs(tmp_path):
  folder = _mixed_size_folder(tmp_path / "png")
  saved = _run_of(data_lib.from_directory(folder, image_size=(8, 8)), image_size=(8, 8))
  with pytest.raises(DataError, match=r"read with --image_size=10,10, the run's with "
                     r"--image_size=8,8; train is 200x10x10x1 uint8 now, 200x8x8x1 uint8"):
    data_lib.load(saved, data_lib.from_directory(folder, image_size=(10, 10)))
  images, labels = _digits()
  np.savez(tmp_path / "d.npz", x_train=images, y_train=labels)  # uint8 0..16
  saved = _run_of(data_lib.from_file(str(tmp_path / "d.npz"), max_value=16), max_value=16)
  with pytest.raises(DataError, match=r"read with --max_value=0, the run's with --max_value=16; "
                     r"its pixels mean 0..255, the run's 0..16"):  # same fingerprint
    data_lib.load(saved, data_lib.from_file(str(tmp_path / "d.npz")))


def test_a_run_whose_config_json_predates_the_reader_options_still_resumes(tmp_path):
  folder = _mixed_size_folder(tmp_path / "png")
  new = _run_of(data_lib.from_directory(folder, image_size=(8, 8)), image_size=(8, 8))
  old = new.replace(**{"image_size": ()})  # before item 1
  config_io.check_resumable(old, new)  # same data: resumes, and config.json gains the option
  other = new.replace(**{"image_size": (10, 10),
                                       "data_fingerprint": "train 200x10x10x1 uint8 abc"})
  with pytest.raises(config_lib.ConfigError, match=r"trained on \(--image_size=\(10, 10\) now, "
                     r"\(8, 8\) in the workdir; now: train 200x10x10x1"):
    config_io.check_resumable(new, other)


@pytest.mark.slow
def test_runs_trained_from_python_reopen_in_a_fresh_process(tmp_path):
  """The new user's path: from_directory(image_size=...) and from_file(label_column=...) fitted
  from Python, then evaluate / visualize / load in fresh processes; arrays get their figures."""
  folder = _mixed_size_folder(tmp_path / "png")
  table = datasets_table(tmp_path)
  short = dict(train_steps=20, steps_per_loop=10, hidden_sizes=(16,), latent_dim=2, batch_size=32,
               eval_importance_samples=0, strategy="one_device")
  for name, source, extra in (
      ("png", data_lib.from_directory(folder, image_size=(8, 8)), {}),
      ("csv", data_lib.from_file(table, label_column="target"),
       dict(likelihood="normal", standardize=True, binarization="none"))):
    workdir = str(tmp_path / f"run_{name}")
    tfvae.fit(tfvae.Config(**short, **extra), workdir, data=source)
    run_module("tfvae.evaluate", f"--workdir={workdir}", "--num_importance_samples=5")
    run_module("tfvae.visualize", f"--workdir={workdir}", "--what=latent_pca,curves")
    assert tfvae.load(workdir).evaluate(num_importance_samples=5, write=False)["num_examples"]
  images, labels = _digits()
  workdir = str(tmp_path / "arrays")
  arrays = data_lib.from_arrays(images, labels, max_value=16)
  tfvae.fit(tfvae.Config(**short), workdir, data=arrays)
  paths = tfvae.draw(workdir, ("reconstructions", "latent_pca"), data=arrays)
  assert sorted(paths) == ["latent_pca", "reconstructions"]
  assert all(os.path.getsize(p) > 1000 for p in paths.values())
  proc = run_module("tfvae.visualize", f"--workdir={workdir}", check=False)
  assert proc.returncode == 2 and "tfvae.draw(workdir, data=data)" in proc.stderr


def datasets_table(tmp_path):
  """scikit-learn's wine table as a CSV with a label column (178x13)."""
  from sklearn import datasets  # pylint: disable=import-outside-toplevel
  wine = datasets.load_wine()
  path = str(tmp_path / "wine.csv")
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow([*wine.feature_names, "target"])
    writer.writerows([*x, y] for x, y in zip(wine.data, wine.target))
  return path


# Issue 33 item 2: --binarization=auto (the default).

def _photo_patches():
  from sklearn import datasets  # pylint: disable=import-outside-toplevel
  image = datasets.load_sample_images().images[0][:128, :128]  # a photograph, uint8 RGB
  return image.reshape(8, 16, 8, 16, 3).swapaxes(1, 2).reshape(64, 16, 16, 3)


def test_auto_binarizes_only_binary_like_gray_images_and_says_so(caplog):
  import logging  # pylint: disable=import-outside-toplevel
  from tfvae.training import workdir_setup  # pylint: disable=import-outside-toplevel
  caplog.set_level(logging.INFO, logger="absl")
  assert config_lib.Config().data.binarization == "auto"
  images, labels = _digits()
  digits = data_lib.from_arrays(images, labels, max_value=16)
  photos = _photo_patches()
  gray = np.round(photos @ [0.299, 0.587, 0.114]).astype(np.uint8)
  table = data_lib.from_arrays(np.random.default_rng(0).normal(size=(40, 3)))
  cases = [(digits, "bernoulli", "dynamic", "65% of pixels near black or white"),
           (digits, "normal", "none", "is a density"),
           (data_lib.from_arrays(photos), "bernoulli", "none", "colour images 16x16x3"),
           (data_lib.from_arrays(gray), "bernoulli", "none", "not more than 50%"),
           (table, "normal", "none", "vectors [N, 3]")]
  for source, likelihood, picked, why in cases:
    caplog.clear()
    config = config_lib.Config(likelihood=likelihood, validation_fraction=0.25)
    data = data_lib.build(source, config)
    assert data.binarization == picked, why
    lines = [r.getMessage() for r in caplog.records if "--binarization=auto" in r.getMessage()]
    assert len(lines) == 1 and f"--binarization=auto: {picked} (" in lines[0] and why in lines[0]
    assert ("--binarization=none" if picked == "dynamic" else "--likelihood") in lines[0]
    if picked == "none" and likelihood == "bernoulli":
      assert "continuous pixels use --likelihood=continuous_bernoulli" in lines[0]
    assert workdir_setup.resolve(config, data).data.binarization == picked  # recorded in config.json
  binarized = data_lib.build(digits, config_lib.Config())
  assert set(np.unique(binarized.test.images)) == {0, 16}  # binarized once, as dynamic did
  assert set(np.unique(data_lib.build(data_lib.from_arrays(photos),
                                      config_lib.Config()).test.images)) != {0, 255}


def test_an_auto_run_resumes_a_run_that_recorded_dynamic(tmp_path):
  from tfvae.training import workdir_setup  # pylint: disable=import-outside-toplevel
  path = str(tmp_path / "photos.npy")
  np.save(path, _photo_patches())
  workdir = str(tmp_path / "run")
  today = config_lib.Config(dataset=path, binarization="dynamic")  # main's default, resolved
  data = data_lib.load(today)
  config_io.save(workdir_setup.resolve(today, data), workdir)
  auto_as_in_workdir = workdir_setup.auto_as_in_workdir
  again = auto_as_in_workdir(config_lib.Config(dataset=path), workdir)
  assert again.data.binarization == "dynamic"
  config_io.check_resumable(config_io.load(workdir),
                            workdir_setup.resolve(again, data_lib.load(again)))
  fresh = auto_as_in_workdir(config_lib.Config(dataset=path), str(tmp_path / "new"))
  assert workdir_setup.resolve(fresh, data_lib.load(fresh)).data.binarization == "none"
  digits = config_lib.Config(binarization="dynamic")
  saved = workdir_setup.resolve(digits, data_lib.load(digits))
  auto = config_lib.Config()
  config_io.check_resumable(saved, workdir_setup.resolve(auto, data_lib.load(auto)))


def test_a_table_needs_no_binarization_flag_and_warnings_advise_the_right_fix():
  x = np.random.default_rng(0).poisson(3, size=(40, 5)).astype(np.float32)
  data = data_lib.build(data_lib.from_arrays(x), config_lib.Config(likelihood="poisson"))
  assert data.binarization == "none"
  density = config_lib.likelihood_mismatch(config_lib.Config(
      likelihood="normal", binarization="dynamic", image_shape=(16, 16, 3)))
  assert "--binarization=none" in density and "use bernoulli" not in density
  cross = config_lib.likelihood_mismatch(config_lib.Config(binarization="none",
                                                           image_shape=(16, 16, 3)))
  assert "--likelihood=continuous_bernoulli" in cross


def test_features_constant_in_train_but_not_held_out_are_named_in_one_warning(caplog):
  """Digits as a table: pixels 0, 32 and 39 are 0 in every train row but not in every test row;
  a normal likelihood's per-feature scale would collapse on them (docs/data.md)."""
  import logging  # pylint: disable=import-outside-toplevel
  from sklearn import datasets  # pylint: disable=import-outside-toplevel
  caplog.set_level(logging.WARNING, logger="absl")
  x = datasets.load_digits().data.astype(np.float32)
  x_train, x_test = x[:1000], x[1000:].copy()
  x_train[:, [0, 32, 39]] = 0.0
  x_test[:5, 0] = 3.0
  x_test[7, 39] = 1.0

  def warnings(likelihood, test):
    caplog.clear()
    config = config_lib.Config(likelihood=likelihood, binarization="none", standardize=False)
    data_lib.build(data_lib.from_arrays(x_train, x_test=test), config)
    return [r.getMessage() for r in caplog.records if "constant over the" in r.getMessage()]

  (line,) = warnings("normal", x_test)
  assert "features 0, 32, 39 (0-based, 3 in all) are constant over the 833 train rows" in line
  assert "differ in 6 test rows" in line and "\n" not in line
  assert warnings("poisson", x_test) == []  # no scale to collapse
  same = x_test.copy()
  same[:, [0, 32, 39]] = 0.0
  assert warnings("normal", same) == []  # held-out rows agree with train there


def test_a_reader_option_the_python_source_was_not_read_with_is_reset_with_a_warning(caplog):
  """tfvae.fit(config, data=from_arrays(...)) with --condition_columns (or --max_value): the
  flag cannot act on arrays (conditions come as from_arrays(conditions=)); it is said and not
  recorded in config.json, where it would claim how the data were read."""
  import logging  # pylint: disable=import-outside-toplevel
  from tfvae.training import workdir_setup  # pylint: disable=import-outside-toplevel
  caplog.set_level(logging.WARNING, logger="absl")
  images, labels = _digits()
  source = data_lib.from_arrays(images, labels, max_value=16)
  config = config_lib.Config(condition_columns="a,b", max_value=16, model="cvae")
  recorded = workdir_setup.with_source(config, source)
  assert (recorded.data.condition_columns, recorded.data.max_value) == ("", 0)
  lines = [r.getMessage() for r in caplog.records if "has no effect on" in r.getMessage()]
  assert len(lines) == 2 and any("--condition_columns=a,b has no effect on" in l for l in lines)
  caplog.clear()
  assert workdir_setup.with_source(config_lib.Config(), source).data.max_value == 0
  assert not [r for r in caplog.records if "has no effect on" in r.getMessage()]
