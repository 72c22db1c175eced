"""Your own data, shown on real data that works offline: every command on a PNG folder, an .npz
and tabular .csv files, printed as a markdown table (docs/data.md quotes it).

  python tools/own_data_demo.py --workdir=/tmp/tfvae/own_data [--fashion_epochs=5]

Writes, from data on this machine:
  fashion_png/{train,test}/<class>/*.png  Fashion-MNIST (Debian's dataset-fashion-mnist IDX files)
  digits.npz                              scikit-learn's 8x8 digits (x_train, y_train; 0..16)
  breast_cancer.csv, wine.csv, diabetes.csv  scikit-learn's bundled tables (header row)
then runs `python -m tfvae.train`, `evaluate`, `visualize` and `export` on each, resumes the PNG
run for one more epoch, and tunes on the breast cancer table. Each command is an ordinary
subprocess, as a user would type it (the commands are printed).
"""

import csv
import gzip
import json
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION = "/usr/share/datasets/fashion-mnist"
CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
           "ankle_boot")


def _idx(name, offset):
  with gzip.open(os.path.join(FASHION, name)) as f:
    return np.frombuffer(f.read(), np.uint8, offset=offset)


def write_fashion_png(root):
  """Fashion-MNIST as PNG files, one folder per class, train/ and test/ (70000 files)."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  if os.path.isdir(os.path.join(root, "test")):
    return root
  for split, prefix in (("train", "train"), ("test", "t10k")):
    images = _idx(f"{prefix}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    labels = _idx(f"{prefix}-labels-idx1-ubyte.gz", 8)
    for name in CLASSES:
      os.makedirs(os.path.join(root, split + ".tmp", name), exist_ok=True)
    for i, (image, label) in enumerate(zip(images, labels)):
      Image.fromarray(image).save(os.path.join(root, split + ".tmp", CLASSES[label],
                                               f"{i:05d}.png"))
    os.replace(os.path.join(root, split + ".tmp"), os.path.join(root, split))
  return root


def write_tables(root):
  from sklearn import datasets  # pylint: disable=import-outside-toplevel
  digits = datasets.load_digits()
  np.savez(os.path.join(root, "digits.npz"), x_train=digits.images.astype(np.int64),
           y_train=digits.target)
  for name, loader, label in (("breast_cancer", datasets.load_breast_cancer, "target"),
                              ("wine", datasets.load_wine, "target"),
                              ("diabetes", datasets.load_diabetes, None)):
    table = loader()
    header = [str(n).replace(" ", "_") for n in table.feature_names] + ["target"]
    with open(os.path.join(root, f"{name}.csv"), "w", newline="") as f:
      writer = csv.writer(f)
      writer.writerow(header)
      writer.writerows([*row, t] for row, t in zip(table.data, table.target))


def command(*args):
  print("$ python -m " + " ".join(args), flush=True)
  began = time.perf_counter()
  proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)
  if proc.returncode:
    raise SystemExit(f"failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
  return proc, time.perf_counter() - began


def main(argv):
  workdir = next((a.split("=", 1)[1] for a in argv if a.startswith("--workdir=")),
                 "/tmp/tfvae/own_data")
  fashion_epochs = int(next((a.split("=", 1)[1] for a in argv
                             if a.startswith("--fashion_epochs=")), 5))
  os.makedirs(workdir, exist_ok=True)
  began = time.perf_counter()
  write_fashion_png(os.path.join(workdir, "fashion_png"))
  write_tables(workdir)
  print(f"wrote the data in {time.perf_counter() - began:.0f} s", flush=True)
  runs = [
      ("Fashion-MNIST PNG folder", ["--dataset=" + os.path.join(workdir, "fashion_png"),
                                    "--hidden_sizes=300,300", "--latent_dim=40",
                                    f"--epochs={fashion_epochs}"]),
      ("digits .npz (0..16)", ["--dataset=" + os.path.join(workdir, "digits.npz"),
                               "--max_value=16", "--latent_dim=8", "--epochs=50"]),
      ("breast cancer .csv (569x30)", ["--dataset=" + os.path.join(workdir, "breast_cancer.csv"),
                                       "--label_column=target", "--binarization=none",
                                       "--likelihood=normal", "--standardize",
                                       "--latent_dim=4", "--batch_size=64", "--epochs=200"]),
      ("wine .csv (178x13)", ["--dataset=" + os.path.join(workdir, "wine.csv"),
                              "--label_column=target", "--binarization=none",
                              "--likelihood=normal", "--standardize", "--latent_dim=2",
                              "--batch_size=32", "--epochs=300"]),
      ("diabetes .csv (442x11)", ["--dataset=" + os.path.join(workdir, "diabetes.csv"),
                                  "--binarization=none", "--likelihood=normal", "--standardize",
                                  "--latent_dim=2", "--batch_size=64", "--epochs=300"]),
  ]
  rows = []
  for title, flags in runs:
    run = os.path.join(workdir, title.split()[0].lower().replace("-", "_"))
    _, train_s = command("tfvae.train", *flags, f"--workdir={run}")
    command("tfvae.evaluate", f"--workdir={run}", "--num_importance_samples=1000")
    command("tfvae.visualize", f"--workdir={run}")
    command("tfvae.export", f"--workdir={run}")
    with open(os.path.join(run, "eval.json")) as f:
      test = json.load(f)["test_K1000"]
    with open(os.path.join(run, "config.json")) as f:
      config = json.load(f)["data"]
    figures = sorted(os.listdir(os.path.join(run, "figures")))
    rows.append((title, config["image_shape"], test["num_examples"], test["elbo"],
                 test["iwae_bound"], test["active_units"], round(train_s), figures))
  png_run = os.path.join(workdir, "fashion_mnist")
  proc, _ = command("tfvae.train", *runs[0][1][:-1], f"--epochs={fashion_epochs + 1}",
                    f"--workdir={png_run}")
  resumed = [line for line in proc.stderr.splitlines() if "Resuming from" in line]
  command("tfvae.tune", "--dataset=" + os.path.join(workdir, "breast_cancer.csv"),
          "--label_column=target", "--binarization=none", "--likelihood=normal",
          "--standardize", "--batch_size=64", "--epochs=50", "--max_trials=4",
          "--latent_dims=2,4,8", f"--workdir={os.path.join(workdir, 'tune_cancer')}")
  with open(os.path.join(workdir, "tune_cancer", "trials.csv")) as f:
    trials = list(csv.DictReader(f))
  print("\n| data | example shape | test examples | test ELBO | IWAE bound (K=1000) | active "
        "units | train s | figures |\n|---|---|---|---|---|---|---|---|")
  for title, shape, n, elbo, bound, active, seconds, figures in rows:
    print(f"| {title} | {shape} | {n} | {elbo:.2f} | {bound:.2f} | {active} | {seconds} | "
          f"{', '.join(f[:-4] for f in figures)} |")
  print("\nresume:", resumed[0].split("] ", 1)[-1] if resumed else "(no resume line)")
  print("tune (breast cancer):", [(t["trial"], t["latent_dim"], round(float(t["beta"]), 2),
                                   t["objective"]) for t in trials])


if __name__ == "__main__":
  main(sys.argv[1:])
