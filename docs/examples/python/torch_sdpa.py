"""PyTorch: umfa.torch.scaled_dot_product_attention has F.scaled_dot_product_attention's contract."""
import torch
import torch.nn.functional as F

import umfa.torch

torch.manual_seed(0)
q, k, v = (torch.randn(2, 4, 64, 32, requires_grad=True) for _ in range(3))  # BHSD

out = umfa.torch.scaled_dot_product_attention(q, k, v, is_causal=True)
out.sum().backward()  # autograd through umfa's backward kernel

expected = F.scaled_dot_product_attention(q.detach(), k.detach(), v.detach(), is_causal=True)
print("max |umfa - torch| =", (out.detach() - expected).abs().max().item())
assert torch.allclose(out.detach(), expected, atol=1e-5)
assert q.grad is not None and q.grad.shape == q.shape

# Route every F.scaled_dot_product_attention call of a model through umfa for a block of code:
with umfa.torch.patched():
    y = F.scaled_dot_product_attention(q, k, v)
print("patched call:", tuple(y.shape), "fallbacks:", dict(umfa.torch.stats.fallbacks))
