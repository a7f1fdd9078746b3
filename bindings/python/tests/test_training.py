"""A short training run of a tiny transformer block with umfa.torch patched in gives PyTorch's
loss curve. Both runs start from the same weights and data; float32 throughout, so the curves
differ only by float32 rounding in attention (amplified a little by Adam over the steps)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import umfa.torch as ut  # noqa: E402


class Block(nn.Module):
    def __init__(self, vocab: int = 64, dim: int = 64, heads: int = 4, kv_heads: int = 2):
        super().__init__()
        self.heads, self.kv_heads, self.hd = heads, kv_heads, dim // heads
        self.emb = nn.Embedding(vocab, dim)
        self.ln1 = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * kv_heads * self.hd)
        self.o = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.head = nn.Linear(dim, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        B, T = idx.shape
        x = self.emb(idx)
        h = self.ln1(x)
        q = self.q(h).view(B, T, self.heads, self.hd).transpose(1, 2)  # BHSD views of BSHD
        k, v = self.kv(h).view(B, T, 2, self.kv_heads, self.hd).unbind(2)
        k, v = k.transpose(1, 2), v.transpose(1, 2)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        x = x + self.o(a.transpose(1, 2).reshape(B, T, -1))
        x = x + self.mlp(self.ln2(x))
        return self.head(x)


def _train(steps: int = 8):
    torch.manual_seed(0)
    model = Block()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    data = torch.randint(0, 64, (8, 33), generator=g)
    losses = []
    for _ in range(steps):
        logits = model(data[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, 64), data[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_training_loss_curve_matches_pytorch():
    ref = _train()
    ut.stats.reset()
    with ut.patched() as st:
        got = _train()
    assert st.umfa_calls == 8 and st.total_fallbacks == 0
    assert ref[-1] < ref[0] - 0.1  # it does learn
    for step, (a, b) in enumerate(zip(got, ref)):
        assert abs(a - b) <= 1e-4 * abs(b) + 1e-5, f"step {step}: umfa {a} vs torch {b}"
