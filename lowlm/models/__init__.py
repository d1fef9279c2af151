"""Model architectures. Each model is plain PyTorch with ``config`` (a JSON-able dict) to rebuild it."""

from lowlm.models.classifier import BagOfNgrams, RNNAttentionClassifier, build_classifier, classifier_from_config

__all__ = ["BagOfNgrams", "RNNAttentionClassifier", "build_classifier", "classifier_from_config"]
