"""Parameter learners (core.nets.learners) and the ParaFormer losses (Li & Lu 2023, eq. 13-14):
shapes, per-site independence, which inputs each learner reads, gradients reaching every
weight, the range-boundary loss and the masked RMSE against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from core.nets.learners import LEARNERS, LearnerOutput, make_learner, sinusoidal_encoding
from core.losses import masked_rmse, range_boundary_loss

N_DYN, N_STATIC, N_OUT = 9, 6, 5  # forcing + SMAP + mask; soil/vegetation statics; VIC θ


def inputs(n_site=4, nt=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(nt, n_site, N_DYN, generator=g), torch.randn(n_site, N_STATIC, generator=g)


def small(name):
    hyper = {"FFN_A": dict(hidden=32), "LSTM_Z": dict(hidden=32),
             "ParaFormer_A": dict(d_model=32, heads=4, ff=64),
             "ParaFormer_Z": dict(d_model=32, heads=4, ff=64)}[name]
    torch.manual_seed(0)
    return make_learner(name, N_DYN, N_STATIC, N_OUT, **hyper)


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_learner_shapes_and_gradients_reach_every_weight(name):
    net = small(name)
    x_dyn, x_static = inputs()
    out = net(x_dyn, x_static)
    assert isinstance(out, LearnerOutput)
    assert out.static.shape == (4, N_OUT) and out.dynamic is None
    out.static.pow(2).sum().backward()
    dead = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
            or p.grad.abs().sum() == 0]
    assert not dead, f"no gradient reaches {dead}"


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_each_site_is_learned_from_its_own_inputs_only(name):
    net = small(name).eval()
    x_dyn, x_static = inputs(n_site=5)
    full = net(x_dyn, x_static).static
    perm = torch.tensor([3, 0, 4, 1, 2])
    shuffled = net(x_dyn[:, perm], x_static[perm]).static
    torch.testing.assert_close(shuffled, full[perm], rtol=1e-5, atol=1e-5)
    alone = net(x_dyn[:, 2:3], x_static[2:3]).static
    torch.testing.assert_close(alone[0], full[2], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_a_learners_read_attributes_only_and_z_learners_the_series_too(name):
    net = small(name).eval()
    x_dyn, x_static = inputs()
    base = net(x_dyn, x_static).static
    other_series = net(x_dyn + 1.0, x_static).static
    other_attrs = net(x_dyn, x_static + 1.0).static
    assert not torch.allclose(base, other_attrs)
    if name.endswith("_A"):
        torch.testing.assert_close(base, other_series)
        torch.testing.assert_close(base, net(None, x_static).static)
    else:
        assert not torch.allclose(base, other_series)


def test_z_learners_take_windows_of_any_length():
    for name in ("LSTM_Z", "ParaFormer_Z"):
        net = small(name).eval()
        for nt in (30, 240):
            x_dyn, x_static = inputs(nt=nt)
            assert net(x_dyn, x_static).static.shape == (4, N_OUT)


def test_bad_inputs_and_names_are_reported():
    net = small("ParaFormer_Z")
    x_dyn, x_static = inputs()
    with pytest.raises(ValueError, match=r"x_dyn must be \[time, 4, 9\]"):
        net(x_dyn[..., :3], x_static)
    with pytest.raises(ValueError, match=r"x_static must be \[site, 6\]"):
        net(x_dyn, x_static[:, :2])
    nan = x_dyn.clone()
    nan[7, 2, 4] = float("nan")  # an unfilled missing SMAP day
    with pytest.raises(ValueError, match="x_dyn is not finite \\(day 7 of the window, site index 2\\)"):
        net(nan, x_static)
    with pytest.raises(ValueError, match="unknown learner 'ParaFormer'; known: FFN_A"):
        make_learner("ParaFormer", 1, 1, 1)
    with pytest.raises(ValueError, match="learner FFN_A: .*heads"):
        make_learner("FFN_A", 1, 1, 1, heads=3)


def test_learners_fit_a_simple_attribute_mapping():
    """θ* = sigmoid(linear(attributes)): a few hundred Adam steps cut the error by 5x."""
    g = torch.Generator().manual_seed(1)
    x_static = torch.randn(64, N_STATIC, generator=g)
    target = torch.sigmoid(x_static @ torch.randn(N_STATIC, N_OUT, generator=g))
    for name in ("FFN_A", "ParaFormer_A"):
        net = small(name)
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        first = None
        for _ in range(300):
            loss = (net(None, x_static).static - target).pow(2).mean()
            first = first if first is not None else loss.item()
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        final = (net(None, x_static).static - target).pow(2).mean().item()
        assert final < first / 5, (name, first, final)


def test_range_boundary_loss_matches_eq_13_14_by_hand():
    theta = torch.tensor([[1.2, 0.5, -0.1], [0.5, 0.5, 0.5], [1.5, 1.1, 0.0]])
    p, eps = 3, 0.01
    site1 = p * 0.2 / (eps + 1) + p * 0.1 / (eps + 1)
    site3 = p * (0.5 + 0.1) / (eps + 2)
    expected = (site1 + 0.0 + site3) / 3
    assert range_boundary_loss(theta).item() == pytest.approx(expected, rel=1e-6)
    assert range_boundary_loss(torch.rand(50, 5)).item() == 0.0  # inside the range: no penalty
    t = theta.clone().requires_grad_(True)
    range_boundary_loss(t).backward()
    assert t.grad[0, 0] > 0 and t.grad[0, 2] < 0 and t.grad[1].abs().sum() == 0  # pushes back in


def test_masked_rmse_skips_missing_observations():
    sim = torch.tensor([[0.2, 0.3], [0.25, 0.1]])
    obs = torch.tensor([[0.1, float("nan")], [0.25, 0.4]])
    expected = math.sqrt((0.1**2 + 0.0 + 0.3**2) / 3)
    assert masked_rmse(sim, obs).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="differ in shape"):
        masked_rmse(sim, obs[:1])


def test_sinusoidal_position_encoding_values():
    pe = sinusoidal_encoding(5, 8)
    assert pe.shape == (5, 8)
    torch.testing.assert_close(pe[0], torch.tensor([0.0, 1.0] * 4))
    assert pe[1, 0].item() == pytest.approx(math.sin(1.0), rel=1e-6)
    assert pe[3, 3].item() == pytest.approx(math.cos(3.0 / 10000 ** (2 / 8)), rel=1e-6)


def test_cpu_dropout_drops_p_scales_the_rest_and_is_identity_in_eval():
    from core.nets.dropout import Dropout
    torch.manual_seed(0)
    d = Dropout(0.1).train()
    y = d(torch.ones(200_000))
    dropped = float((y == 0).float().mean())
    assert abs(dropped - 0.1) < 0.005                       # 7 sd: the fraction's sd at n = 2e5 is 0.0007
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 65536 / (65536 - 6554)))
    assert abs(float(y.mean()) - 1.0) < 0.01                # inverted dropout keeps the mean
    d.eval()
    x = torch.randn(50)
    assert torch.equal(d(x), x)


def test_attention_matches_pytorch_multihead_attention_and_keeps_its_state_dict():
    from core.nets.learners import Attention
    torch.manual_seed(0)
    ref = torch.nn.MultiheadAttention(32, 4, batch_first=True)
    ours = Attention(32, 4, batch_first=True)
    ours.load_state_dict(ref.state_dict())                 # same keys and shapes
    q, kv = torch.randn(3, 5, 32), torch.randn(3, 11, 32)
    for a, b in ((q, q), (q, kv)):                           # self- and cross-attention
        want, _ = ref(a, b, b, need_weights=False)
        got, _ = ours(a, b, b, need_weights=False)
        assert torch.allclose(got, want, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):      # bf16 projections, fp32 attention
        got, _ = ours(q, kv, kv, need_weights=False)
    want, _ = ref(q, kv, kv, need_weights=False)
    assert torch.allclose(got.float(), want, atol=0.05)
