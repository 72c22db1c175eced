"""The MLP VAE as a Keras 3 user trains it, `model.fit` with a custom `train_step`, for
tools/peer_benchmark.py.

  python tools/peers/keras_fit_vae.py --epochs=4 [--batch_size=128]

The model is tools/keras_reference_vae.py (the Keras example's VAE with tfvae's architecture and
objective, dynamic binarization inside train_step, `compile()` defaults); the data, the epoch
(the first 50000 train images, 390 steps of 128) and the output are those of
tools/peers/jax_vae.py. Runs in tfvae's environment (it needs only TensorFlow and Keras).
"""

import time

_T0 = time.perf_counter()

import json  # pylint: disable=g-import-not-at-top,wrong-import-position
import os  # pylint: disable=g-import-not-at-top,wrong-import-position
import sys  # pylint: disable=g-import-not-at-top,wrong-import-position

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # pylint: disable=g-import-not-at-top,wrong-import-position

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_HERE, os.path.dirname(_HERE)]
import idx  # pylint: disable=g-import-not-at-top,wrong-import-position
import keras_reference_vae  # pylint: disable=g-import-not-at-top,wrong-import-position


def phase(name):
  print(f"PHASE {name} {time.perf_counter() - _T0:.3f}", flush=True)


class _EpochStamps(keras.callbacks.Callback):

  def on_epoch_end(self, epoch, logs=None):
    phase(f"epoch{epoch + 1}")


def main():
  parser = idx.arguments()
  args = parser.parse_args()
  phase("imports")
  train_u8, test = idx.load(args.data_dir)
  batch = args.batch_size
  train = train_u8[:len(train_u8) // batch * batch].reshape(-1, 28, 28, 1).astype("float32") / 255
  phase("data")
  keras.utils.set_random_seed(0)
  vae = keras_reference_vae.build((28, 28, 1))
  phase("build")
  history = vae.fit(train, batch_size=batch, epochs=args.epochs, shuffle=True, verbose=0,
                    callbacks=[_EpochStamps()])
  metrics = vae.evaluate(test.reshape(-1, 28, 28, 1), batch_size=1000, verbose=0,
                         return_dict=True)
  phase("evaluate")
  print("RESULT " + json.dumps({"implementation": "keras_fit", "epochs": args.epochs,
                                "train_loss": float(history.history["loss"][-1]),
                                "test_elbo": -float(metrics["loss"]),
                                "keras": keras.__version__}), flush=True)


if __name__ == "__main__":
  main()
