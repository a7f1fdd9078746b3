"""Errors raise umfa.UmfaError with the status and the library's message."""
import numpy as np

import umfa

q = np.zeros((1, 4, 1, 8), np.float32)
k = np.zeros((1, 4, 1, 4), np.float32)  # head_dim 4 != 8
try:
    umfa.flash_attn_func(q, k, k)
except umfa.UmfaError as e:
    print(e.name, "-", e.message)
    assert e.status == umfa.Status.SHAPE_MISMATCH
else:
    raise SystemExit("expected an error")
