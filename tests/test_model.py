"""LGNMNet: shapes, MagFace loss behaviour, eval determinism (real torch model on CPU)."""

from __future__ import annotations

import torch

from engines.lgnmnet import EMBEDDING_DIM, LGNMNet, MagFaceConfig, MagFaceHead
from engines.mobilenetv2 import mobilenet_v2_features


def test_backbone_maps_112_to_1280x4x4() -> None:
    out = mobilenet_v2_features().eval()(torch.zeros(1, 3, 112, 112))
    assert out.shape == (1, 1280, 4, 4)


def test_shapes_and_probability_range() -> None:
    torch.manual_seed(0)
    net = LGNMNet().eval()
    x = torch.randn(3, 3, 112, 112)
    with torch.no_grad():
        assert net(x).shape == (3, EMBEDDING_DIM)
        assert net.logits(x).shape == (3, 2)
        p = net.predict_proba(x)
    assert p.shape == (3,)
    assert bool(((p >= 0) & (p <= 1)).all())


def test_margin_is_linear_in_magnitude_and_regulariser_matches_formula() -> None:
    cfg = MagFaceConfig()
    head = MagFaceHead(cfg=cfg)
    a = torch.tensor([cfg.l_a, 60.0, cfg.u_a])
    assert torch.allclose(head.margin(a), torch.tensor([0.45, 0.625, 0.8]))
    assert torch.allclose(head.regulariser(a), a / cfg.u_a**2 + 1 / a)
    # magnitudes outside [l_a, u_a] are clamped
    emb = torch.zeros(2, EMBEDDING_DIM)
    emb[0, 0], emb[1, 0] = 1.0, 500.0
    assert torch.allclose(head.magnitude(emb).squeeze(1), torch.tensor([cfg.l_a, cfg.u_a]))


def test_margin_logit_is_below_plain_logit_for_target_class() -> None:
    head = MagFaceHead()
    emb = torch.randn(4, EMBEDDING_DIM) * 5
    labels = torch.tensor([0, 1, 0, 1])
    ml, _ = head.margin_logits(emb, labels)
    plain = head.logits(emb)
    idx = torch.arange(4)
    assert bool((ml[idx, labels] < plain[idx, labels]).all())
    other = 1 - labels
    assert torch.allclose(ml[idx, other], plain[idx, other])


def test_loss_finite_and_falls_on_separable_batch() -> None:
    torch.manual_seed(0)
    net = LGNMNet().train()
    # Separable synthetic inputs: class 1 has a bright bottom half (the "mouth" area).
    x = torch.randn(4, 3, 112, 112) * 0.1
    labels = torch.tensor([0, 1] * 2)
    x[labels == 1, :, 56:, :] += 1.0
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(4):
        loss, logits = net.magface_loss(net(x), labels)
        assert torch.isfinite(loss) and logits.shape == (4, 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # starts near scale x margin (64 x 0.45 ~ 29); must at least halve in 4 steps
    assert losses[-1] < 0.5 * losses[0]


def test_eval_mode_is_deterministic() -> None:
    torch.manual_seed(1)
    net = LGNMNet().eval()
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(net.predict_proba(x), net.predict_proba(x))
