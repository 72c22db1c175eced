"""Samplers of codes for a trained model's decoder: where `TrainedModel.sample` draws z from.

  standard   the model's prior p(z) (models with one, interface.LatentVariableModel): the
             default, what tfvae always did (base.Standard).
  gmm        a Gaussian mixture fitted to the codes E[q(z|x)] of the train split (Ghosh et al.
             2020, ex-post density estimation; gmm.py).
  two_stage  a second VAE trained on those codes (Dai & Wipf 2019; two_stage.py).

Fitted by `TrainedModel.fit_sampler(kind, ...)` or `python -m tfvae.fit_sampler`, for every
model with q(z|x): vae, hvae (its top layer z2), pc_vae and the deterministic autoencoders (ae,
sparse_ae, denoising_ae, contractive_ae), which have no prior and sample only through a fitted
sampler. Not m2: its codes depend on the class (q(z|x, y)).

Stored with the run in WORKDIR/sampler/: sampler.json (the record: kind, options, the step and
the fingerprint of the weights whose codes it was fitted to (`fingerprint`: a SHA-256 of the
encoder's weights), what the fit measured), written last, after gmm.npz or the second run's
folder two_stage/ (which is trained in two_stage.partial and renamed into place once done, so a
failed fit leaves the previous sampler). `tfvae.load` picks it up when its step and fingerprint
are the loaded weights' (otherwise it warns in one line and samples from the prior: a sampler of
another run copied in, or of a run trained again to the same step, is stale); then
`TrainedModel.sample`, `tfvae.draw` (the samples figure), `TrainedModel.export` and training's
own export (the SavedModel's `sample` signature) use it.
"""

import dataclasses
import hashlib
import json
import os
import re
import shutil
import tempfile
from typing import Any, Optional

from absl import logging
import numpy as np

from tfvae import atomic
from tfvae.errors import ConfigError
from tfvae.models import interface
from tfvae.samplers.base import Sampler, Standard  # noqa: F401 (public names)
from tfvae.samplers.gmm import FILENAME as GMM_FILE, GMM, GMMOptions
from tfvae.samplers.two_stage import DIRNAME as TWO_STAGE_DIR, TwoStage, TwoStageOptions

DIRNAME = "sampler"  # WORKDIR/sampler
INFO_FILENAME = "sampler.json"
KINDS = ("standard", "gmm", "two_stage")
OPTIONS: dict[str, Any] = {"standard": None, "gmm": GMMOptions, "two_stage": TwoStageOptions}
_PARTIAL = TWO_STAGE_DIR + ".partial"
FINGERPRINT_KEY = "encoder_sha256"  # sampler.json: the fingerprint of the weights fitted to


def fingerprint(model: Any) -> str:
  """The SHA-256 (hex) of `model.encoder`'s weights (each variable's dtype, shape and bytes,
  in order): what the codes E[q(z|x)] a sampler is fitted to are computed from. Weights
  restored from the same checkpoint give the same fingerprint in every process; a run trained
  again (to the same step or not) or another run gives another."""
  digest = hashlib.sha256()
  for variable in model.encoder.variables:
    value = np.ascontiguousarray(np.asarray(variable.numpy()))
    digest.update(f"{value.dtype.str}{value.shape};".encode())
    digest.update(value.tobytes())
  return digest.hexdigest()


def option_names(kind: str) -> tuple[str, ...]:
  """The options `fit_sampler` takes for `kind` (its flag names); () for standard."""
  cls = OPTIONS.get(kind)
  return tuple(f.name for f in dataclasses.fields(cls)) if cls else ()


def options(kind: str, **given: Any) -> Any:
  """The checked options of `kind` (GMMOptions, TwoStageOptions; None for standard).

  Raises:
    ConfigError: naming the flag: an unknown kind (--sampler), an option `kind` does not take,
      a value that cannot run.
  """
  if kind not in KINDS:
    raise ConfigError(f"--sampler={kind!r} is not one of {', '.join(KINDS)}.")
  names = option_names(kind)
  unknown = sorted(set(given) - set(names) - ({"seed"} if kind == "standard" else set()))
  if unknown:
    raise ConfigError(f"--{unknown[0]} is not an option of --sampler={kind} (its options: "
                      f"{', '.join(names) or 'none'}).")
  return OPTIONS[kind](**given) if OPTIONS[kind] else None


def check_model(model: Any, family: str, kind: str) -> None:
  """Raises ConfigError (one line) if `kind` cannot be fitted for `model` (family `family`):
  any kind for a label-conditional model (m2) or a conditional one (cvae, on classes or
  conditions), standard for one without a prior."""
  if isinstance(model, interface.Conditional) and not isinstance(model,
                                                                   interface.LabelConditional):
    raise ConfigError(f"--model={family}: its codes depend on the condition (q(z|x, c)), so no "
                      "sampler is fitted to them; sample given one with sample(num, "
                      "condition=c).")
  if isinstance(model, interface.LabelConditional):
    raise ConfigError(f"--model={family}: its codes depend on the class (q(z|x, y)), so no "
                      "sampler is fitted to them; sample a class with sample(num, label=y).")
  if kind == "standard" and not isinstance(model, interface.LatentVariableModel):
    raise ConfigError(f"--sampler=standard: --model={family} has no prior p(z); fit gmm or "
                      "two_stage to its codes.")


def choose(fitted: Sampler, name: Optional[str]) -> Sampler:
  """The sampler `TrainedModel.sample(sampler=name)` uses: `fitted` for None, the prior for
  "standard", else `fitted` if it is of that kind.

  Raises:
    ConfigError (a ValueError): an unknown name, or a kind that is not the one fitted.
  """
  if name is None:
    return fitted
  if name not in KINDS:
    raise ConfigError(f"sampler={name!r}: expected None (the fitted one) or one of "
                     f"{', '.join(map(repr, KINDS))}.")
  if name == "standard":
    return Standard()
  if fitted.kind != name:
    raise ConfigError(f"sampler={name!r}: this model has no fitted {name} sampler (its sampler: "
                     f"{fitted.kind}); fit one with fit_sampler({name!r}) or python -m "
                     "tfvae.fit_sampler.")
  return fitted


def codes(model: Any, data: Any, config: Any) -> dict[str, np.ndarray]:
  """{split: float64 [N, latent_dim]}: the posterior means E[q(z|x)] of each split's examples,
  as evaluation sees them (fixed binarization: tfvae.data.fixed_train, eval_dataset)."""
  from tfvae import data as data_lib  # pylint: disable=import-outside-toplevel
  from tfvae.evaluation import ssl  # pylint: disable=import-outside-toplevel
  fixed = data_lib.fixed_train(data, config)
  return {split: ssl.embed(model, ssl.split_arrays(fixed, split)[0]) if len(getattr(data, split))
          else np.zeros([0, model.config.model.latent_dim]) for split in
          ("train", "validation", "test")}


def _remove(path: str) -> None:
  """Removes a file, a link (as a link) or a folder of tfvae's own."""
  if os.path.islink(path) or os.path.isfile(path):
    os.remove(path)
  elif os.path.isdir(path):
    shutil.rmtree(path)


def fit(model: Any, config: Any, data: Any, step: int, workdir: Optional[str], kind: str,
        chosen: Any) -> Sampler:
  """Fits `kind` with the options `chosen` (`options`) to the codes of `model` on `data` and,
  with a workdir, stores it in WORKDIR/sampler (replacing the one stored); "standard" removes
  the stored sampler. Call it holding the workdir's lock, after `check_model`.

  Returns:
    The Sampler.
  """
  folder = os.path.join(workdir, DIRNAME) if workdir else None
  if kind == "standard":
    if folder and os.path.isdir(folder):  # the record first: a half-removed sampler is unused
      _remove(os.path.join(folder, INFO_FILENAME))
      _remove(folder)
    return Standard()
  found = codes(model, data, config)
  if folder:
    os.makedirs(folder, exist_ok=True)
  info = {"kind": kind, "step": int(step), FINGERPRINT_KEY: fingerprint(model),
          "family": config.family,
          "latent_dim": int(config.model.latent_dim),
          "options": {k: list(v) if isinstance(v, tuple) else v
                      for k, v in dataclasses.asdict(chosen).items()},
          "num_codes": {split: len(x) for split, x in found.items()}}
  if kind == "gmm":
    sampler: Sampler = GMM.fit(found, chosen, info)
  else:
    scratch = None if folder else tempfile.mkdtemp(prefix="tfvae-sampler-")
    staging = os.path.join(folder or scratch, _PARTIAL)
    _remove(staging)
    os.makedirs(staging)
    try:
      sampler = TwoStage.fit(found, chosen, info, staging)
    finally:
      if scratch:  # the model is in memory; its run folder goes
        shutil.rmtree(scratch, ignore_errors=True)
  if folder:
    _store(folder, sampler)
  return sampler


def _store(folder: str, sampler: Sampler) -> None:
  """Replaces the sampler stored in `folder` by `sampler`: the record is removed first and
  written last, after the sampler's files."""
  record = os.path.join(folder, INFO_FILENAME)
  _remove(record)
  leftover = re.compile(rf"^({re.escape(INFO_FILENAME)}|{re.escape(GMM_FILE)})"
                        rf"{atomic.TEMPORARY_SUFFIX}$")
  for entry in os.listdir(folder):
    if entry in (GMM_FILE, TWO_STAGE_DIR) or leftover.match(entry):
      _remove(os.path.join(folder, entry))
  if isinstance(sampler, GMM):
    sampler.save(folder)
  else:
    os.replace(os.path.join(folder, _PARTIAL), os.path.join(folder, TWO_STAGE_DIR))
  atomic.write_json(record, sampler.info, indent=2)


def load(workdir: str, step: int, model: Any) -> Sampler:
  """The sampler stored in WORKDIR/sampler for `model`, whose weights are those of `step`; the
  prior (Standard) when there is none, or (with a one-line warning saying why and to run
  `python -m tfvae.fit_sampler` again) when it is stale: fitted to another step's weights, or
  to other weights of this step (its recorded `fingerprint` is not `model`'s: a sampler of
  another run copied in, a run trained again, a record without one), or cannot be read."""
  folder = os.path.join(workdir, DIRNAME)
  record = os.path.join(folder, INFO_FILENAME)
  if not os.path.exists(record):
    return Standard()
  refit = f"fit it again: python -m tfvae.fit_sampler --workdir={workdir}"
  try:
    with open(record, encoding="utf-8") as f:
      info = json.load(f)
    stale: Optional[str] = None
    if info["step"] != step:
      stale = f"the step-{info['step']} weights; these are step {step}"
    elif FINGERPRINT_KEY not in info:
      stale = (f"weights it records no fingerprint of ({FINGERPRINT_KEY}; fitted by an older "
               "tfvae)")
    elif info[FINGERPRINT_KEY] != (found := fingerprint(model)):
      stale = (f"other step-{step} weights than these ({FINGERPRINT_KEY} "
               f"{str(info[FINGERPRINT_KEY])[:12]}..., these {found[:12]}...: another run's "
               "sampler, or the run was trained again)")
    if stale:
      logging.warning("Stale sampler: %s was fitted to the codes of %s: it is not used, "
                      "sampling from the prior (%s).", record, stale, refit)
      return Standard()
    return {"gmm": GMM, "two_stage": TwoStage}[info["kind"]].load(folder, info)
  except (OSError, ValueError, KeyError, TypeError) as e:
    logging.warning("%s cannot be read (%s: %s): sampling from the prior; %s.", record,
                    type(e).__name__, (str(e).splitlines() or [""])[0][:200], refit)
    return Standard()
