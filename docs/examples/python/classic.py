"""The classic (Universal Metal Flash Attention) Python API."""
import numpy as np

import umfa

print("version", umfa.get_version(), "backends", umfa.backends())
q = np.random.default_rng(1).standard_normal((1, 32, 2, 64)).astype(np.float32)  # [B, S, H, D]
with umfa.MFAContext() as ctx:
    out = umfa.flash_attention_forward(
        ctx, q, q, q, causal=True, input_precision="fp32", output_precision="fp32"
    )
print("out", out.shape, out.dtype)
assert np.allclose(out[0, 0], q[0, 0], atol=1e-6)  # causal row 0 sees only key 0
