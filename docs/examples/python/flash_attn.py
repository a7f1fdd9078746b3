"""FlashAttention-style forward on numpy arrays: BSHD layout, GQA, bottom-right causal."""
import numpy as np

import umfa

rng = np.random.default_rng(0)
q = rng.standard_normal((2, 128, 8, 64), dtype=np.float32)  # [batch, seqlen, heads, head_dim]
k = rng.standard_normal((2, 128, 2, 64), dtype=np.float32)  # 2 key/value heads: GQA
v = rng.standard_normal((2, 128, 2, 64), dtype=np.float32)

out, lse = umfa.flash_attn_func(q, k, v, causal=True, return_lse=True)
print("umfa", umfa.__version__, "out", out.shape, out.dtype, "lse", lse.shape)

# Causal: query 0 sees only key 0, so out[:, 0, h] == v[:, 0, h // 4].
assert np.allclose(out[:, 0, :4], v[:, 0, :1], atol=1e-6)

# A sliding window and soft-capping are options of the same call.
local = umfa.flash_attn_func(q, k, v, causal=True, window_size=(32, 0), softcap=30.0)
print("windowed out", local.shape)
