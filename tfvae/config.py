"""The run configuration: one frozen dataclass, its absl flags and its JSON form.

Library code only ever sees the dataclass; `tfvae.config_flags` turns its fields into absl flags
and back. A run writes its resolved Config to WORKDIR/config.json; `load(workdir)` rebuilds it there.

Each Config field has a role (ROLES). What may change where follows from the roles alone:
resuming a run may change SCHEDULE, SAFEGUARD, NUMERICS and EXECUTION fields
(`RESUMABLE_ROLES`); continuing a search may change EXECUTION fields only
(`CONTINUABLE_ROLES`); the fields that define a run's numbers are those of `RESULT_ROLES`.
"""

import dataclasses
import json
import os

from tfvae import atomic
from tfvae import config_checks
from tfvae import options
from tfvae.errors import ConfigError  # pylint: disable=unused-import  (re-exported)

CONFIG_FILENAME = "config.json"

# Roles of the Config fields.
DATA = "data"
MODEL = "model"
OPTIMIZATION = "optimization"
SCHEDULE = "schedule"
SAFEGUARD = "safeguard"
NUMERICS = "numerics"
EXECUTION = "execution"
RESOLVED = "resolved"
ROLES = (DATA, MODEL, OPTIMIZATION, SCHEDULE, SAFEGUARD, NUMERICS, EXECUTION, RESOLVED)
RESUMABLE_ROLES = frozenset({SCHEDULE, SAFEGUARD, NUMERICS, EXECUTION})
CONTINUABLE_ROLES = frozenset({EXECUTION})
RESULT_ROLES = frozenset({DATA, MODEL, OPTIMIZATION, SCHEDULE})

# Semi-supervised models: trained on labeled + unlabeled batches (see data.TrainBatches).
SEMI_SUPERVISED = ("m2", "pc_vae")

# Flags whose value is one of a fixed set. absl rejects anything else with a message naming the flag.
CHOICES = {
    "binarization": ("auto", "none", "static", "dynamic", "dequantize"),
    "architecture": ("mlp", "gated_mlp", "conv"),
    "posterior_scale": ("softplus", "clamped_log_variance"),
    "prior": ("standard_normal", "vampprior", "mixture"),
    "posterior": ("diagonal", "iaf"),
    "training_objective": ("elbo", "iwae", "iwae_dreg"),
    "gradient_normalization": ("none", "per_parameter"),
    "likelihood": ("bernoulli", "normal", "normal_per_pixel", "laplace", "continuous_bernoulli",
                   "poisson", "negative_binomial"),
    "model": ("vae", "ae", "sparse_ae", "denoising_ae", "contractive_ae", "m2", "pc_vae",
              "hvae"),
    "beta_schedule": ("constant", "linear", "cyclical"),
    "corruption": ("masking", "gaussian"),
    "strategy": ("mirrored", "one_device", "multi_worker"),
    "dtype_policy": ("float32", "mixed_bfloat16"),
}


def field(default, role, help_text):
  """A field of a flag dataclass (Config, TuneSettings): its default, role and help text
  (the choices of Config's enum flags are in CHOICES)."""
  return dataclasses.field(default=default, metadata={"role": role, "help": help_text})


@dataclasses.dataclass(frozen=True)
class Config:
  """Everything that defines a run. Field names are the flag names; each field's metadata holds
  its help text and its role (ROLES), from which follows what may change on resume.

  Raises:
    ConfigError: naming the flag, for a value that cannot run.
  """
  # DATA: what the data are, and how they are split and binarized.
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
      " seed.")
  validation_fraction: float = field(
      1 / 6, DATA,
      "Fraction of the train split held out (its last examples) for validation.")

  # MODEL: what the model is and what it optimizes.
  architecture: str = field(
      "mlp", MODEL,
      "Encoder/decoder networks: mlp (Dense + ReLU), gated_mlp (GatedDense layers h = "
      "Linear(x) * sigmoid(Linear(x)), Dauphin et al. 2017, as in the VampPrior code of "
      "Tomczak & Welling 2018) or conv.")
  hidden_sizes: tuple[int, ...] = field(
      (256, 128), MODEL,
      "Comma-separated hidden layer widths of the MLP (decoder mirrors encoder).")
  conv_filters: tuple[int, ...] = field(
      (32, 64), MODEL,
      "Comma-separated filters of the stride-2 conv layers (decoder mirrors encoder).")
  latent_dim: int = field(
      16, MODEL,
      "Dimension D of the latent code z.")
  posterior_scale: str = field(
      "softplus", MODEL,
      "How the encoder outputs the posterior's scale: softplus (scale = softplus(.) + 1e-4) "
      "or clamped_log_variance (log sigma^2 clipped to [-6, 2], the VampPrior code's hardtanh)."
      )
  posterior: str = field(
      "diagonal", MODEL,
      "q(z|x): diagonal (MultivariateNormalDiag) or iaf (that Gaussian pushed through "
      "--num_flows inverse autoregressive flows conditioned on the encoder's features, Kingma "
      "et al. 2016; log q(z|x) exact by the change of variables). vae and hvae (top layer).")
  num_flows: int = field(
      2, MODEL,
      "--posterior=iaf: number of autoregressive flow steps (MADE networks with the MLP's "
      "--hidden_sizes, the order reversed between steps).")
  prior: str = field(
      "standard_normal", MODEL,
      "p(z): standard_normal (N(0, I); the rate is the analytic KL), vampprior (the mixture of "
      "the posteriors of --num_pseudo_inputs learned pseudo-inputs, Tomczak & Welling 2018) or"
      " mixture (a learned mixture of --num_mixture_components diagonal Gaussians). With a "
      "mixture prior or an iaf posterior the rate is a Monte Carlo estimate (no closed form)."
      " vae and hvae (top layer).")
  num_pseudo_inputs: int = field(
      500, MODEL,
      "--prior=vampprior: K, the number of learned pseudo-inputs.")
  num_mixture_components: int = field(
      10, MODEL,
      "--prior=mixture: number of Gaussian components.")
  training_objective: str = field(
      "elbo", MODEL,
      "What a vae/hvae maximizes: elbo (the beta-weighted ELBO), iwae (the importance-weighted "
      "bound with --num_samples samples, Burda et al. 2016; beta weights log p(z) - log q(z|x)"
      " inside each weight) or iwae_dreg (the same bound with the doubly reparameterized "
      "encoder gradient of Tucker et al. 2019; diagonal posterior, prior not vampprior).")
  likelihood: str = field(
      "bernoulli", MODEL,
      "Decoder distribution p(x|z): bernoulli (binary pixels); normal with one shared scale, "
      "calibrated (the sigma-VAE of Rybkin et al. 2021: the batch's RMSE in training; in "
      "evaluation and the export the RMSE on the validation split, refit at every "
      "validation; docs/data.md); normal_per_pixel (loc and scale per pixel); laplace with "
      "one learned scale (the L1 loss); continuous_bernoulli (a density on [0,1], "
      "Loaiza-Ganem & Cunningham 2019); for vectors also poisson and "
      "negative_binomial (counts; a learned dispersion per feature); normal and laplace then "
      "have one scale per feature. Deterministic AEs use it as their reconstruction loss.")
  model: str = field(
      "vae", MODEL,
      "Model family: vae (beta > 1: beta-VAE); hvae (two latent layers z2 -> z1 -> x, "
      "q(z1|x, z2) q(z2|x), Tomczak & Welling 2018; --latent_dim each); ae, sparse_ae, "
      "denoising_ae, contractive_ae (deterministic autoencoders); m2 (Kingma et al. 2014) and pc_vae (Hope et al. 2020), "
      "semi-supervised with --num_labels.")
  beta: float = field(
      1.0, MODEL,
      "Weight of the rate (KL) term in the loss; beta=1 is the ELBO. With a schedule, the "
      "value reached at the end of the warm-up.")
  beta_schedule: str = field(
      "constant", MODEL,
      "constant: beta throughout; linear: 0 -> beta over --warmup_steps, then beta (KL "
      "annealing, Bowman et al. 2016); cyclical: --num_cycles cycles of 2*warmup_steps steps,"
      " each ramping 0 -> beta over its first half and holding beta over its second (Fu et "
      "al. 2019, R = 0.5), then beta.")
  warmup_steps: int = field(
      0, MODEL,
      "Steps of the beta ramp (linear and cyclical schedules).")
  num_cycles: int = field(
      4, MODEL,
      "Number of cycles of the cyclical beta schedule.")
  free_bits: float = field(
      0.0, MODEL,
      "Free bits (Kingma et al. 2016), nats per latent dimension: each dimension's KL term in"
      " the loss is max(free_bits, KL_d), per example. 0: off. The reported rate and elbo are"
      " never clamped.")
  sparsity_weight: float = field(
      0.01, MODEL,
      "sparse_ae: weight lambda of the L1 penalty lambda*||h||_1 on the code.")
  corruption: str = field(
      "masking", MODEL,
      "denoising_ae: masking (each input pixel set to 0 with probability --corruption_level) "
      "or gaussian (add N(0, corruption_level^2) noise).")
  corruption_level: float = field(
      0.25, MODEL,
      "denoising_ae: masking probability nu in [0, 1), or noise std sigma.")
  contraction_weight: float = field(
      0.1, MODEL,
      "contractive_ae: weight lambda of lambda*||dh/dx||_F^2, the squared Frobenius norm of "
      "the encoder's Jacobian (Rifai et al. 2011).")
  num_samples: int = field(
      1, MODEL,
      "Monte Carlo samples L of z per example: of the distortion term "
      "(--training_objective=elbo), or the K of the bound (--training_objective=iwae, "
      "iwae_dreg).")
  num_labels: str = field(
      "all", MODEL,
      "Semi-supervised: 'all' (every train label is known) or N, the number of labeled train "
      "examples, N/num_classes per class, chosen by --label_seed; the rest of the train split"
      " is unlabeled. m2 and pc_vae train on it; M1 (tfvae.evaluate --m1_labels) chooses its "
      "subset the same way.")
  label_seed: int = field(
      0, MODEL,
      "Seed of the balanced labeled subset (independent of --seed).")
  labeled_batch_size: int = field(
      32, MODEL,
      "m2/pc_vae with --num_labels=N: rows of each global batch of --batch_size drawn from "
      "the N labeled examples (repeated); the other rows are unlabeled train images.")
  classifier_weight: float = field(
      0.0, MODEL,
      "m2: alpha, the weight of -log q(y|x) per labeled example; 0 means the paper's alpha = "
      "0.1 * N (N labeled train examples).")
  prediction_weight: float = field(
      10.0, MODEL,
      "pc_vae: lambda, the weight of the classifier's cross-entropy per labeled example (Hope"
      " et al. 2020).")

  # OPTIMIZATION: how it is optimized.
  batch_size: int = field(
      128, OPTIMIZATION,
      "Global batch size (split across replicas).")
  learning_rate: float = field(
      1e-3, OPTIMIZATION,
      "Adam learning rate.")
  gradient_normalization: str = field(
      "none", OPTIMIZATION,
      "none, or per_parameter: each variable's (all-reduced) gradient divided by its L2 norm "
      "before the Adam update (the VampPrior code's AdamNormGrad).")
  seed: int = field(
      0, OPTIMIZATION,
      "The one seed: weights, data order, binarization and sampling noise.")

  # SCHEDULE: how long it trains and how often it is evaluated (may grow on resume).
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

  # SAFEGUARD: interventions on a run that goes wrong (may change on resume).
  clip_grad_norm: float = field(
      0.0, SAFEGUARD,
      "Clip the global norm of the (all-reduced) gradient to this; 0: no clipping.")
  inject_nan_at_steps: tuple[int, ...] = field(
      (), SAFEGUARD,
      "Fault injection for tests: make the train batches of these steps NaN.")

  # NUMERICS: the same computation, other rounding or noise order (may change on resume).
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
      "CPUs).")

  # EXECUTION: where and how it runs; never changes a result.
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
      "on a shared filesystem). tools/launch_local_workers.py runs workers on this machine.")
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
    # Types first (numpy numbers and lists converted), then values (tfvae/config_checks.py).
    for name, value in config_checks.typed(self).items():
      object.__setattr__(self, name, value)  # frozen: set once, before anyone sees it
    config_checks.check(self, CHOICES)

  @property
  def labels_known(self):
    """The number of labeled train examples (int), or None for --num_labels=all."""
    return None if self.num_labels == "all" else int(self.num_labels)

  def to_dict(self):
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, values):
    """Builds a Config from a dict such as `to_dict()` gives; lists become tuples.

    Raises:
      ValueError: on an unknown key or an invalid value.
    """
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
      raise ConfigError(f"Unknown config keys: {', '.join(unknown)}.")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


DISCRETE_LIKELIHOODS = ("bernoulli",)


def likelihood_mismatch(config):
  """A one-line warning when the likelihood does not match the pixels, else None.

  Bernoulli is a distribution over {0, 1}: on gray levels (--binarization=none/dequantize) its
  log_prob is a cross-entropy, not a log-likelihood. A density (normal, laplace, ...) on binary
  pixels can grow without bound, so the number is not a log-likelihood either.
  """
  if len(config.image_shape) == 1 or config.binarization == "auto":
    return None  # vectors: build() checks the features; auto: not resolved against data yet
  binary = config.binarization in ("static", "dynamic")
  if config.likelihood in DISCRETE_LIKELIHOODS and not binary:
    return (f"--likelihood={config.likelihood} on gray-level pixels (--binarization="
            f"{config.binarization}): its log_prob is a cross-entropy, not a log-likelihood, so "
            "elbo/nll are not bounds on log p(x); for continuous pixels use "
            "--likelihood=continuous_bernoulli (or normal), for binary-like ones "
            "--binarization=dynamic (docs/data.md).")
  if config.likelihood not in DISCRETE_LIKELIHOODS and binary:
    return (f"--likelihood={config.likelihood} is a density but the pixels are binary "
            f"(--binarization={config.binarization}): the density of {{0, 1}} values can grow "
            "without bound, so elbo/nll are not log-likelihoods: set --binarization=none (or "
            "auto) to model the gray levels with this density, or --likelihood=bernoulli for "
            "binary pixels.")
  return None


def save(config, workdir):
  """Writes `config` to WORKDIR/config.json (atomically: write to a temp name, then rename)."""
  os.makedirs(workdir, exist_ok=True)
  atomic.write_json(os.path.join(workdir, CONFIG_FILENAME), config.to_dict(), indent=2,
                    sort_keys=True, allow_nan=False)  # (a Config's floats are finite)


def load(workdir):
  """Reads WORKDIR/config.json.

  Raises:
    FileNotFoundError: if the workdir holds no config.json (no run was started there).
    ConfigError: if config.json does not parse or does not hold a valid Config.
  """
  path = os.path.join(workdir, CONFIG_FILENAME)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} does not exist: is --workdir={workdir} a tfvae run?")
  try:
    with open(path) as f:
      values = json.load(f)
    if not isinstance(values, dict):
      raise ValueError(f"a JSON {type(values).__name__}, not an object")
    return Config.from_dict(values)
  except (ValueError, TypeError, UnicodeDecodeError) as e:
    why = (str(e).splitlines() or [""])[0][:200].rstrip(".")
    raise ConfigError(
        f"{path} is not a tfvae config ({type(e).__name__}: {why}): restore it from a copy, or "
        "start the run over with --overwrite (which deletes it).") from None


def role(name):
  """The role (ROLES) of Config field `name`."""
  return Config.__dataclass_fields__[name].metadata["role"]


def names_with_roles(roles):
  """The Config field names whose role is in `roles`, in declaration order."""
  return tuple(f.name for f in dataclasses.fields(Config) if f.metadata["role"] in roles)


def differences(saved, new, may_change, ignore=()):
  """[(name, saved value, new value)] of the fields of two flag dataclasses (Config,
  TuneSettings) that differ and may not: those whose role is not in `may_change` (resolved
  fields are never compared), except the names in `ignore`."""
  return [(f.name, getattr(saved, f.name), getattr(new, f.name))
          for f in dataclasses.fields(saved)
          if f.metadata["role"] not in may_change | {RESOLVED} and f.name not in ignore
          and getattr(saved, f.name) != getattr(new, f.name)]


# The options of the readers of --dataset (tfvae.data.from_directory, from_file), recorded with
# the dataset so that later commands read it alike (the reader_options field of
# tfvae.data.arrays.Source).
READER_OPTIONS = ("image_size", "max_value", "label_column")


def check_resumable(saved, new):
  """Raises ConfigError naming the fields where `new` would not continue the run `saved`:
  fields outside RESUMABLE_ROLES that differ, or other data (their fingerprints differ).
  Options the run ignores are not compared (options.without_ignored), nor READER_OPTIONS when
  both read the same data (same fingerprint and pixel levels: a run whose config.json predates
  their recording resumes)."""
  saved, new = options.without_ignored(saved)[0], options.without_ignored(new)[0]
  readers = [f"--{n}={getattr(new, n)!r} now, {getattr(saved, n)!r} in the workdir"
             for n in READER_OPTIONS if getattr(new, n) != getattr(saved, n)]
  if saved.data_fingerprint and new.data_fingerprint and (
      saved.data_fingerprint != new.data_fingerprint) and saved.dataset == new.dataset:
    raise ConfigError(f"--dataset={new.dataset}: the data differ from those the run in the "
                      f"workdir was trained on ({'; '.join(readers + [''])}now: "
                      f"{new.data_fingerprint}; the run's: {saved.data_fingerprint}). Use a new "
                      "--workdir, or --overwrite to delete that run and start over.")
  same_data = (saved.data_fingerprint and saved.data_fingerprint == new.data_fingerprint
               and saved.pixel_levels == new.pixel_levels)
  changed = differences(saved, new, RESUMABLE_ROLES, ignore=READER_OPTIONS if same_data else ())
  if saved.image_shape and new.image_shape and saved.image_shape != new.image_shape:
    changed.append(("image_shape", saved.image_shape, new.image_shape))
  if changed:
    diffs = "; ".join(f"--{n}: {old!r} in the workdir, {value!r} now" for n, old, value in changed)
    raise ConfigError(f"The workdir holds a run with a different config ({diffs}). "
                      "Use a new --workdir, the same flags to resume, or --overwrite to delete "
                      "that run and start over.")
