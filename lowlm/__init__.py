"""lowlm: small, fast NLP models. Plain Python + PyTorch; the pipeline lives in tasks/ and flows/."""

__version__ = "0.1.0"
