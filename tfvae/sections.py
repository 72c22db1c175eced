"""The sections of a run's Config that every model family shares: what the data are
(`DataConfig`, with the facts resolved from them), how training goes (`TrainingConfig`) and where
it runs (`ExecutionConfig`). Each family's own knobs live in its file (tfvae/models/). Pure Python.

Every field is also a flag of the same name (tfvae/config_flags.py) and a key of its section in
config.json; its role (tfvae/config_fields.py) says what may change on resume.
"""

import dataclasses

from tfvae.config_fields import (DATA, EXECUTION, NUMERICS, OPTIMIZATION, RESOLVED, SAFEGUARD,
                                 SCHEDULE, field)
from tfvae import config_fields
from tfvae.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """What the data are, how they are split, labeled and binarized; and (RESOLVED fields) what
  was found in them when the run started.

  Raises:
    ConfigError: naming the flag, for a value that cannot run.
  """
  dataset: str = field(
      "digits", DATA,
      "'digits' (scikit-learn's bundled 8x8 digits, no download), any TFDS image dataset name"
      " (fashion_mnist, mnist, cifar10, ...), or your own data: a folder of images (class "
      "subfolders give labels; optional train/ validation/ test/ subfolders give splits), an "
      ".npz (x_train, y_train, x_test, ...), .npy or .csv file (tfvae/data/files.py).")
  image_size: tuple[int, ...] = field(
      (), DATA,
      "H,W: resize every image of a --dataset folder to this (bilinear); empty: all images "
      "must have one size.")
  max_value: int = field(
      0, DATA,
      "Integer images from an .npz/.npy file: the pixel value that means white (e.g. 16 for "
      "pixels 0..16); 0: 255, for uint8 pixels.")
  label_column: str = field(
      "", DATA,
      "A .csv --dataset: the header of the column of integer labels (empty: none; every "
      "column is a feature).")
  condition_columns: str = field(
      "", DATA,
      "A .csv --dataset: comma-separated headers of the columns holding each row's real "
      "covariates, the condition c [C] of --model=cvae (taken out of the features; empty: "
      "none).")
  test_fraction: float = field(
      0.2, DATA,
      "A dataset without a test split (digits, your own data without test/ or x_test): the "
      "fraction of its examples held out as the test split (a fixed permutation).")
  standardize: bool = field(
      False, DATA,
      "Vectors only: standardize every feature with the train split's mean and standard "
      "deviation (saved in config.json; every later command and the export apply them to raw "
      "features).")
  binarization: str = field(
      "auto", DATA,
      "auto: dynamic for gray images whose pixels are mostly (more than half) within a tenth "
      "of black or white, under --likelihood=bernoulli; none for colour images, other gray "
      "images, density likelihoods and vectors (one log line says which; config.json records "
      "the choice). none: gray levels y/max in [0,1]; static: Bernoulli-sampled once with a fixed seed; "
      "dynamic: resampled every time an example is seen (Burda et al. 2016); dequantize: not "
      "binarized but uniformly dequantized, (y + u)/(max+1), u ~ U[0,1) resampled every time "
      "(Theis et al. 2016), for continuous likelihoods whose bits/dim compare with other "
      "density models. Validation and test are always binarized/dequantized once with a fixed"
      " seed.",
      choices=('auto', 'none', 'static', 'dynamic', 'dequantize'))
  validation_fraction: float = field(
      1 / 6, DATA,
      "Fraction of the train split held out (its last examples) for validation.")
  num_labels: str = field(
      "all", DATA,
      "Semi-supervised: 'all' (every train label is known) or N, the number of labeled train "
      "examples, N/num_classes per class, chosen by --label_seed; the rest of the train split"
      " is unlabeled. m2 and pc_vae train on it; M1 (tfvae.evaluate --m1_labels) chooses its "
      "subset the same way.")
  label_seed: int = field(
      0, DATA,
      "Seed of the balanced labeled subset (independent of --seed).")

  # RESOLVED: set from the data at train time, not flags.
  image_shape: tuple[int, ...] = field(
      (), RESOLVED,
      "[H, W, C] of one image, or [D] of one vector.")
  pixel_levels: int = field(
      256, RESOLVED,
      "Gray levels of the stored pixels (256; 17 for digits), the unit of bits_per_dim.")
  num_classes: int = field(
      0, RESOLVED,
      "K: labels are 0..K-1 (0: no labels).")
  condition_dim: int = field(
      0, RESOLVED,
      "C: the width of each example's real conditions (--condition_columns, or "
      "tfvae.data.from_arrays(conditions=)); 0: none.")
  labeled_examples: int = field(
      0, RESOLVED,
      "Labeled train examples (N of --num_labels, or all labeled ones).")
  data_fingerprint: str = field(
      "", RESOLVED,
      "Shape, dtype and a hash of sampled rows of each split of the data trained on "
      "(tfvae.data.arrays.Source.fingerprint).")
  feature_mean: tuple[float, ...] = field(
      (), RESOLVED,
      "--standardize: the train split's per-feature mean.")
  feature_scale: tuple[float, ...] = field(
      (), RESOLVED,
      "--standardize: the train split's per-feature standard deviation (1 where it is 0).")

  def __post_init__(self):
    config_fields.normalize(self)
    if self.num_labels != "all" and not (self.num_labels.isdigit() and int(self.num_labels) > 0):
      raise ConfigError(f"--num_labels={self.num_labels!r} must be 'all' or a positive integer.")
    config_fields.check_seed(self, "label_seed")
    if not 0 < self.test_fraction < 1:
      raise ConfigError(f"--test_fraction={self.test_fraction} must be in (0, 1).")
    if self.image_size and (len(self.image_size) != 2 or min(self.image_size) < 1):
      raise ConfigError(f"--image_size={','.join(map(str, self.image_size))} must be two "
                        "positive integers H,W.")
    if not 0 <= self.max_value <= 255:
      raise ConfigError(f"--max_value={self.max_value} must be in 1..255 (0: 255).")
    if not 0 < self.validation_fraction < 1:
      raise ConfigError(f"--validation_fraction={self.validation_fraction} must be in (0, 1).")

  @property
  def labels_known(self):
    """The number of labeled train examples (int), or None for --num_labels=all."""
    return None if self.num_labels == "all" else int(self.num_labels)


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
  """How the model is optimized, for how long, how often it is evaluated, what guards the run
  and in which numerics it computes.

  Raises:
    ConfigError: naming the flag, for a value that cannot run.
  """
  batch_size: int = field(
      128, OPTIMIZATION,
      "Global batch size (split across replicas).")
  learning_rate: float = field(
      1e-3, OPTIMIZATION,
      "Adam learning rate.")
  gradient_normalization: str = field(
      "none", OPTIMIZATION,
      "none, or per_parameter: each variable's (all-reduced) gradient divided by its L2 norm "
      "before the Adam update (the VampPrior code's AdamNormGrad).",
      choices=('none', 'per_parameter'))
  seed: int = field(
      0, OPTIMIZATION,
      "The one seed: weights, data order, binarization and sampling noise.")
  epochs: int = field(
      10, SCHEDULE,
      "Training length in epochs over the train split (used when --train_steps=0).")
  train_steps: int = field(
      0, SCHEDULE,
      "Training length in steps; 0 means --epochs.")
  eval_every: int = field(
      0, SCHEDULE,
      "Evaluate on the validation split every this many steps (0: once per epoch, in whole"
      " epochs of at least 100 steps; and always at the last step).")
  eval_importance_samples: int = field(
      10, SCHEDULE,
      "K of the importance-weighted bound (iwae_bound, nll) logged at every evaluation during"
      " training; 0 skips it.")
  early_stopping_patience: int = field(
      0, SCHEDULE,
      "Stop when the validation loss has not improved for this many evaluations (0: never);"
      " evaluations during a beta warm-up (--beta_schedule=linear) are not counted. The best "
      "checkpoint is kept in WORKDIR/ckpt/best either way and used by the final evaluation "
      "and the export.")
  clip_grad_norm: float = field(
      0.0, SAFEGUARD,
      "Clip the global norm of the (all-reduced) gradient to this; 0: no clipping.")
  inject_nan_at_steps: tuple[int, ...] = field(
      (), SAFEGUARD,
      "Fault injection for tests: make the train batches of these steps NaN.")
  jit_compile: bool = field(
      True, NUMERICS,
      "XLA-compile the loss and gradient computation (not the optimizer update). On by "
      "default: faster for the MLP VAE on CPU, but slower for the conv VAE there, so the conv "
      "configs turn it off (README, Speed). Not used on CPU with --dtype_policy="
      "mixed_bfloat16 (XLA's CPU backend computes bfloat16 matmuls in float32). XLA draws the "
      "same-seeded noise in another order than TF does.")
  dtype_policy: str = field(
      "float32", NUMERICS,
      "Keras dtype policy of the networks: float32, or mixed_bfloat16 (bfloat16 compute, "
      "float32 weights and distribution parameters; meant for GPUs/TPUs, and faster on CPUs "
      "with bfloat16 units (measured with AMX and AVX512_BF16: docs/speed.md), slow on other "
      "CPUs).",
      choices=('float32', 'mixed_bfloat16'))

  def __post_init__(self):
    config_fields.normalize(self)
    config_fields.check_seed(self, "seed")
    config_fields.check_at_least(self, 1, "batch_size")
    config_fields.check_at_least(self, 0, "epochs", "train_steps", "eval_every",
                                 "eval_importance_samples", "early_stopping_patience",
                                 "clip_grad_norm")
    if self.epochs == 0 and self.train_steps == 0:
      raise ConfigError("Set --epochs or --train_steps to a positive number.")
    if self.learning_rate <= 0:
      raise ConfigError(f"--learning_rate={self.learning_rate} must be > 0.")


@dataclasses.dataclass(frozen=True)
class ExecutionConfig:
  """Where and how a run executes; never changes a result (may change on resume).

  Raises:
    ConfigError: naming the flag, for a value that cannot run.
  """
  data_dir: str = field(
      "", EXECUTION,
      "TFDS data directory (default: TFDS's own, ~/tensorflow_datasets).")
  eval_batch_size: int = field(
      1000, EXECUTION,
      "Global batch size for evaluation.")
  steps_per_loop: int = field(
      50, EXECUTION,
      "Train steps run inside one tf.function call (fewer host round trips).")
  checkpoint_every: int = field(
      1000, EXECUTION,
      "Write a checkpoint every this many steps (and always at the end).")
  strategy: str = field(
      "mirrored", EXECUTION,
      "mirrored: tf.distribute.MirroredStrategy over all GPUs, else all logical CPUs; "
      "one_device: a single device; multi_worker: tf.distribute.MultiWorkerMirroredStrategy "
      "over the cluster described by the TF_CONFIG environment variable (every worker runs "
      "the same command; each has one replica per GPU, else one CPU replica; --batch_size is "
      "the global batch over all of them; only the chief writes to --workdir, which must be "
      "on a shared filesystem). tools/launch_local_workers.py runs workers on this machine.",
      choices=('mirrored', 'one_device', 'multi_worker'))
  num_cpu_devices: int = field(
      1, EXECUTION,
      "Split the CPU into this many logical devices (replicas for mirrored on a machine "
      "without GPUs).")
  data_on_device: bool = field(
      True, EXECUTION,
      "Keep the uint8 train split on the device (every replica's) and build each batch inside"
      " the compiled train step (shuffle, gather, binarize) instead of a tf.data pipeline on "
      "the host; same batches either way.")
  max_consecutive_skips: int = field(
      100, EXECUTION,
      "Stop with an error after this many updates in a row were skipped for a non-finite loss"
      " or gradient.")

  def __post_init__(self):
    config_fields.normalize(self)
    config_fields.check_at_least(self, 1, "eval_batch_size", "steps_per_loop",
                                 "checkpoint_every", "num_cpu_devices", "max_consecutive_skips")
