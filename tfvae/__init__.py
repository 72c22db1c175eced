"""tfvae: variational autoencoders with TensorFlow, Keras 3 and TensorFlow Probability."""

__version__ = "0.1.0"
