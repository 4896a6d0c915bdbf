"""bert4keras for Keras 3: BERT-family models with a short, hackable API."""

__version__ = "1.0.0.dev0"
