"""Backbones for ID classification on log-mel spectrograms, with a timm-like API.

Every model maps (B, in_chans, n_mels, T) to logits (B, num_classes), for any n_mels and
T, and offers ``forward_features``, ``forward_head(f, pre_logits=True)`` (the embedding),
``num_features``, ``num_classes``, ``get_classifier`` and ``reset_classifier``.
"""
from .factory import available_models, create_model
from .heads import CosineHead, EmbeddingClassifier, InputNorm, LinearHead, create_head
from .iresnet import IResNet, iresnet50
from .mobilenetv2 import MobileNetV2, mobilenetv2
from .resnet import ResNet, resnet50

__all__ = [
    "available_models",
    "create_model",
    "create_head",
    "CosineHead",
    "LinearHead",
    "InputNorm",
    "EmbeddingClassifier",
    "ResNet",
    "resnet50",
    "IResNet",
    "iresnet50",
    "MobileNetV2",
    "mobilenetv2",
]
