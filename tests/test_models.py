"""Backbones: shapes, gradients, any input size, embeddings, classifier reset (timm-like, tiny)."""
from __future__ import annotations

import pytest
import torch

from asdlib.classify.losses import LOSS_KINDS, LossConfig, build_loss, needs_cosine_head
from asdlib.core.errors import ConfigError
from asdlib.models import available_models, create_model

MODELS = ["resnet50", "iresnet50", "mobilenetv2"]
NUM_CLASSES = 5
EMB = 16


def tiny(name: str, head: str = "linear", **kw) -> torch.nn.Module:
    depths = (1,) * 7 if name == "mobilenetv2" else (1, 1, 1, 1)
    return create_model(name, NUM_CLASSES, width=0.125, depths=depths, embedding_dim=EMB, head=head, **kw)


def test_available_models():
    assert available_models() == sorted(MODELS)
    with pytest.raises(ConfigError):
        create_model("resnet101", 3)
    with pytest.raises(ConfigError):
        create_model("resnet50", 3, head="arc")


@pytest.mark.parametrize("kind", LOSS_KINDS)
@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_every_loss(name: str, kind: str):
    torch.manual_seed(0)
    model = tiny(name, head="cosine" if needs_cosine_head(kind) else "linear")
    model.train()
    x = torch.randn(2, 1, 32, 20) * 20 - 40  # (B, 1, M, T), dB-like values
    logits = model(x)
    assert logits.shape == (2, NUM_CLASSES)
    assert torch.isfinite(logits).all()
    loss = build_loss(LossConfig(kind=kind))(logits, torch.tensor([0, 3]))
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"no gradient in {missing}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", MODELS)
def test_any_input_size_and_embedding(name: str):
    model = tiny(name, head="cosine").eval()
    with torch.no_grad():
        for m, t in [(32, 20), (24, 37), (40, 9)]:
            x = torch.randn(2, 1, m, t)
            f = model.forward_features(x)
            assert f.dim() == 4 and f.shape[0] == 2
            emb = model.forward_head(f, pre_logits=True)
            assert emb.shape == (2, EMB) == (2, model.num_features)
            logits = model.forward_head(f)
            assert logits.shape == (2, NUM_CLASSES)
            torch.testing.assert_close(logits, model(x))


@pytest.mark.parametrize("name", MODELS)
def test_cosine_head_contract(name: str):
    model = tiny(name, head="cosine", scale=7.0).eval()
    assert model.scale == 7.0 and model.get_classifier().scale == 7.0
    with torch.no_grad():
        logits = model(torch.randn(3, 1, 32, 20))
    assert logits.abs().max() <= 7.0 + 1e-5
    # logits / scale are the cosines between the embedding and the class weights
    with torch.no_grad():
        emb = model.forward_head(model.forward_features(torch.randn(3, 1, 32, 20)), pre_logits=True)
        w = model.get_classifier().weight
        expected = 7.0 * torch.nn.functional.cosine_similarity(emb[:, None], w[None], dim=2)
        torch.testing.assert_close(model.get_classifier()(emb), expected, atol=1e-5, rtol=1e-5)
    assert tiny(name, head="linear").scale is None


@pytest.mark.parametrize("head", ["linear", "cosine"])
@pytest.mark.parametrize("name", MODELS)
def test_reset_classifier(name: str, head: str):
    model = tiny(name, head=head).eval()
    trunk_before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("classifier.")}
    model.reset_classifier(3)
    assert model.num_classes == 3
    assert model.head_kind == head
    with torch.no_grad():
        assert model(torch.randn(2, 1, 32, 20)).shape == (2, 3)
    for k, v in model.state_dict().items():
        if not k.startswith("classifier."):
            torch.testing.assert_close(v, trunk_before[k])


def test_input_normalisation_handles_db_offsets():
    # The stem's BatchNorm standardises dB values, so a constant offset (another gain)
    # leaves training-mode outputs unchanged.
    model = tiny("resnet50").train()
    x = torch.randn(4, 1, 32, 20)
    torch.testing.assert_close(model(x - 80.0), model(x), atol=1e-4, rtol=1e-4)


def test_zero_init_residual():
    model = tiny("resnet50", zero_init_residual=True)
    assert all((b.bn3.weight == 0).all() for layer in [model.layer1, model.layer4] for b in layer)


@pytest.mark.parametrize(
    "name, lo, hi",
    [("resnet50", 23.4e6, 23.8e6), ("iresnet50", 33e6, 37e6)],  # measured: 23.59 M, 35.03 M at 41 IDs
)
def test_full_size_embedding_and_params(name: str, lo: float, hi: float):
    model = create_model(name, 41, head="cosine" if name == "iresnet50" else "linear")
    assert model.num_features == 2048
    assert model.num_classes == 41
    n = sum(p.numel() for p in model.parameters())
    assert lo < n < hi, n


def test_ir_unit_layout_and_feature_strides():
    from asdlib.models.iresnet import IRBlock

    model = tiny("iresnet50")
    unit = model.layer2[0]
    assert isinstance(unit, IRBlock)
    kinds = [type(m).__name__ for m in unit.children()][:6]
    assert kinds == ["BatchNorm2d", "Conv2d", "BatchNorm2d", "PReLU", "Conv2d", "BatchNorm2d"]
    assert unit.conv1.stride == (1, 1) and unit.conv2.stride == (2, 2)  # stride in the second conv
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        assert model.eval().forward_features(x).shape[-2:] == (2, 2)  # stride 32 by default
        paper = tiny("iresnet50", stem_stride=1).eval()
        assert paper.forward_features(x).shape[-2:] == (4, 4)  # the paper's stride-1 stem
        assert tiny("resnet50").eval().forward_features(x).shape[-2:] == (2, 2)


def test_cosine_head_float32_under_autocast():
    from asdlib.models import CosineHead

    head = CosineHead(16, 4, scale=30.0)
    x = torch.randn(3, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = head(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, head(x))
