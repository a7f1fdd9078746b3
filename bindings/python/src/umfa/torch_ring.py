"""Context parallelism for ``umfa.torch``: exact attention over a sequence sharded across the
ranks of a ``torch.distributed`` process group, by ring exchange of key/value blocks.

Every rank holds a shard of q, k and v along the sequence. In W steps each rank computes the
attention of its queries against the key/value block it holds (umfa's forward, with the LSE),
merges the result into a running float32 output (:func:`umfa.attention_merge`) and passes the
block to the next rank, the transfer of the next block running while it computes. The backward
runs the same ring: umfa's backward over each block, given the *merged* output and LSE, gives
that block's exact share of the gradients; dq stays on its rank, and dk/dv accumulate in float32
buffers that travel around the ring with their block and end at its owner.

Causal attention uses load-balanced sharding: the sequence is cut into 2W chunks and rank r
holds chunks r and 2W-1-r, so every rank has the same amount of causal work. Within a step a
(query chunk, key chunk) pair is fully visible (key chunk earlier), causal on the diagonal (the
same chunk) or skipped (key chunk later). :func:`shard_sequence` and :func:`unshard_sequence`
cut and reassemble a full sequence in that layout (or contiguously, ``load_balanced=False``).

Communication is ``torch.distributed`` point-to-point (``batch_isend_irecv``): NCCL for CUDA
tensors, gloo for CPU tensors. Tested on the CPU with gloo (2, 3 and 4 processes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from torch import Tensor

from ._merge import attention_merge
from ._native import Status, UmfaError
from .torch import _context_for, _stream_for

__all__ = ["ring_attention", "RingAttention", "shard_sequence", "unshard_sequence"]

_MASK_NONE, _MASK_CAUSAL = 0, 1  # UMFA_MASK_NONE, UMFA_MASK_CAUSAL_TOP_LEFT

# ----------------------------------------------------------------------------------------------
# Sharding layout
# ----------------------------------------------------------------------------------------------


def _chunk_sizes(n: int, parts: int) -> List[int]:
    """Sizes of ``parts`` consecutive chunks of ``n`` elements: the first n % parts chunks hold
    one element more (numpy.array_split's convention)."""
    base, extra = divmod(n, parts)
    return [base + (i < extra) for i in range(parts)]


def _chunks_of(rank: int, world: int, load_balanced: bool) -> List[int]:
    """Indices of the chunks rank ``rank`` holds, in its local order."""
    return [rank, 2 * world - 1 - rank] if load_balanced else [rank]


def shard_sequence(x: Tensor, world_size: int, rank: int, dim: int = -2,
                   load_balanced: bool = True) -> Tensor:
    """This rank's shard of a full sequence ``x`` (sequence along ``dim``: -2 for BHSD
    ``[batch, heads, seq, head_dim]``, 1 for BSHD).

    ``load_balanced=True`` (required for causal :func:`ring_attention`): ``x`` is cut into
    ``2 * world_size`` chunks and the rank gets chunks ``rank`` and ``2 * world_size - 1 -
    rank``, concatenated. ``False``: ``world_size`` contiguous chunks, one per rank. Chunk sizes
    differ by at most one (the first ones are longer); a sequence shorter than the number of
    chunks leaves some chunks empty.
    """
    parts = 2 * world_size if load_balanced else world_size
    pieces = torch.split(x, _chunk_sizes(x.shape[dim], parts), dim=dim)
    return torch.cat([pieces[i] for i in _chunks_of(rank, world_size, load_balanced)], dim=dim)


def unshard_sequence(shards: Sequence[Tensor], dim: int = -2,
                     load_balanced: bool = True) -> Tensor:
    """The full sequence from every rank's shard (``shards[r]`` is rank r's, e.g. from
    ``torch.distributed.all_gather``); the inverse of :func:`shard_sequence`."""
    world = len(shards)
    n = sum(s.shape[dim] for s in shards)
    parts = 2 * world if load_balanced else world
    sizes = _chunk_sizes(n, parts)
    pieces: List[Optional[Tensor]] = [None] * parts
    for r, shard in enumerate(shards):
        chunks = _chunks_of(r, world, load_balanced)
        for i, piece in zip(chunks, torch.split(shard, [sizes[i] for i in chunks], dim=dim)):
            pieces[i] = piece
    return torch.cat(pieces, dim=dim)  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Chunk:
    index: int   # position in the global order of chunks
    start: int   # first row within its rank's shard
    length: int


@dataclass(frozen=True)
class _Tile:
    """Local query rows [q0, q1) against rows [k0, k1) of the key/value block held."""
    q0: int
    q1: int
    k0: int
    k1: int
    causal: bool  # the diagonal chunk: causal (top-left) within the tile


class _Plan:
    """Who sends to whom, every rank's chunks, and the tiles of each ring step."""

    def __init__(self, world: int, rank: int, group: Any, seq_len: Optional[int],
                 local_len: int, causal: bool, load_balanced: bool,
                 scale: Optional[float]) -> None:
        self.world, self.rank = world, rank
        self.group, self.causal, self.scale = group, causal, scale
        self.next_peer = self._global((self.rank + 1) % self.world)
        self.prev_peer = self._global((self.rank - 1) % self.world)
        parts = 2 * self.world if load_balanced else self.world
        if seq_len is None:
            seq_len = local_len * self.world  # every rank holds the same number of rows
        sizes = _chunk_sizes(seq_len, parts)
        self.chunks: List[List[_Chunk]] = []
        for r in range(self.world):
            start, mine = 0, []
            for i in _chunks_of(r, self.world, load_balanced):
                mine.append(_Chunk(i, start, sizes[i]))
                start += sizes[i]
            self.chunks.append(mine)
        self.rows = [sum(c.length for c in chunks) for chunks in self.chunks]
        if self.rows[self.rank] != local_len:
            raise UmfaError(Status.SHAPE_MISMATCH, None,
                            f"ring_attention: this rank holds {local_len} rows of the sequence, "
                            f"but a sequence of {seq_len} rows sharded over {self.world} ranks "
                            f"({'load-balanced' if load_balanced else 'contiguous'}) gives it "
                            f"{self.rows[self.rank]}; shard with umfa.torch.shard_sequence and "
                            "pass seq_len= when the shards differ in length")
        self.sources = [(self.rank - s) % self.world for s in range(self.world)]
        self.tiles = [self._tiles(src) for src in self.sources]

    @classmethod
    def for_group(cls, group: Any, **kw: Any) -> "_Plan":
        """The plan of this process in ``group`` (one process without a process group)."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_world_size(group), dist.get_rank(group), group, **kw)
        if group is not None:
            raise UmfaError(Status.INVALID_ARGUMENT, None,
                            "ring_attention: a group was given but torch.distributed is not "
                            "initialized")
        return cls(1, 0, None, **kw)

    def _global(self, group_rank: int) -> int:
        if self.world == 1 or self.group is None or self.group is dist.group.WORLD:
            return group_rank
        return dist.get_global_rank(self.group, group_rank)

    def _tiles(self, src: int) -> List[_Tile]:
        """The tiles of this rank's queries against the block of rank ``src``, with fully
        visible neighbours coalesced (fewer, larger calls)."""
        tiles = []
        for qc in self.chunks[self.rank]:
            for kc in self.chunks[src]:
                if qc.length == 0 or kc.length == 0:
                    continue
                if self.causal and kc.index > qc.index:
                    continue  # every key after every query
                tiles.append(_Tile(qc.start, qc.start + qc.length, kc.start,
                                   kc.start + kc.length, self.causal and kc.index == qc.index))
        return _coalesce(tiles)


def _coalesce(tiles: List[_Tile]) -> List[_Tile]:
    """Joins fully visible tiles that are adjacent along the keys (same queries) or along the
    queries (same keys), until none can be joined."""
    tiles = list(tiles)
    joined = True
    while joined:
        joined = False
        for i, a in enumerate(tiles):
            for j, b in enumerate(tiles):
                if i == j or a.causal or b.causal:
                    continue
                if (a.q0, a.q1) == (b.q0, b.q1) and a.k1 == b.k0:
                    tiles[i] = _Tile(a.q0, a.q1, a.k0, b.k1, False)
                elif (a.k0, a.k1) == (b.k0, b.k1) and a.q1 == b.q0:
                    tiles[i] = _Tile(a.q0, b.q1, a.k0, a.k1, False)
                else:
                    continue
                del tiles[j]
                joined = True
                break
            if joined:
                break
    return tiles


# ----------------------------------------------------------------------------------------------
# The ring
# ----------------------------------------------------------------------------------------------


class _Exchange:
    """One ring transfer in flight: ``send`` to the next rank, a new buffer from the previous."""

    def __init__(self, plan: _Plan, send: Tensor, recv_shape: Sequence[int]) -> None:
        self.send = send  # kept alive until the transfer completes
        self.recv = torch.empty(recv_shape, dtype=send.dtype, device=send.device)
        ops = [dist.P2POp(dist.isend, send, plan.next_peer, plan.group),
               dist.P2POp(dist.irecv, self.recv, plan.prev_peer, plan.group)]
        self.works = dist.batch_isend_irecv(ops)

    def wait(self) -> Tensor:
        for w in self.works:
            w.wait()
        return self.recv


def _block_shape(plan: _Plan, src: int, like: Tensor) -> List[int]:
    """Shape of the stacked block of rank ``src`` ([n, B, rows of src, ...])."""
    shape = list(like.shape)
    shape[2] = plan.rows[src]
    return shape


def _attention_options(plan: _Plan, tile: _Tile, q: Tensor) -> dict:
    opts = {"mask_mode": _MASK_CAUSAL if tile.causal else _MASK_NONE, "stream": _stream_for(q)}
    if plan.scale is not None:
        opts["softmax_scale"] = plan.scale
    return opts


def _ring_forward(plan: _Plan, q: Tensor, k: Tensor, v: Tensor) -> Tuple[Tensor, Tensor]:
    """Forward over the ring (BSHD views); returns the merged out (float32) and LSE."""
    ctx = _context_for(q)
    b, n, h, d = q.shape
    out = torch.zeros((b, n, h, v.shape[3]), dtype=torch.float32, device=q.device)
    lse = torch.full((b, h, n), -math.inf, dtype=torch.float32, device=q.device)
    kv = torch.stack([k, v])  # one contiguous block to pass around
    for step, src in enumerate(plan.sources):
        nxt = None
        if step + 1 < plan.world:
            nxt = _Exchange(plan, kv, _block_shape(plan, plan.sources[step + 1], kv))
        for t in plan.tiles[step]:
            part_out = torch.empty((b, t.q1 - t.q0, h, v.shape[3]), dtype=torch.float32,
                                   device=q.device)
            part_lse = torch.empty((b, h, t.q1 - t.q0), dtype=torch.float32, device=q.device)
            ctx.forward(q[:, t.q0:t.q1], kv[0][:, t.k0:t.k1], kv[1][:, t.k0:t.k1], part_out,
                        part_lse, **_attention_options(plan, t, q))
            attention_merge(out[:, t.q0:t.q1], lse[:, :, t.q0:t.q1], part_out, part_lse,
                            context=ctx)
        if nxt is not None:
            kv = nxt.wait()
    return out, lse


def _ring_backward(plan: _Plan, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor,
                   dout: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Backward over the ring (BSHD views); returns dq, dk, dv in float32."""
    ctx = _context_for(q)
    f32 = dict(dtype=torch.float32, device=q.device)
    dq = torch.zeros(q.shape, **f32)
    kv = torch.stack([k, v])
    acc_in: Optional[_Exchange] = None  # the running dk/dv of the block held next
    for step, src in enumerate(plan.sources):
        nxt = None
        if step + 1 < plan.world:
            nxt = _Exchange(plan, kv, _block_shape(plan, plan.sources[step + 1], kv))
        # This rank's share of the gradients of the block it holds.
        dkv = torch.zeros(kv.shape, **f32)
        for t in plan.tiles[step]:
            rows_q, rows_k = t.q1 - t.q0, t.k1 - t.k0
            dq_t = torch.empty((q.shape[0], rows_q) + tuple(q.shape[2:]), **f32)
            dk_t = torch.empty((k.shape[0], rows_k) + tuple(k.shape[2:]), **f32)
            dv_t = torch.empty((v.shape[0], rows_k) + tuple(v.shape[2:]), **f32)
            ctx.backward(q[:, t.q0:t.q1], kv[0][:, t.k0:t.k1], kv[1][:, t.k0:t.k1],
                         out[:, t.q0:t.q1], dout[:, t.q0:t.q1], lse[:, :, t.q0:t.q1], dq_t, dk_t,
                         dv_t, **_attention_options(plan, t, q))
            dq[:, t.q0:t.q1] += dq_t
            dkv[0][:, t.k0:t.k1] += dk_t
            dkv[1][:, t.k0:t.k1] += dv_t
        # Add what the ranks before have accumulated for this block, and pass it on: after the
        # last step the next rank is the block's owner.
        if acc_in is not None:
            dkv += acc_in.wait()
        if plan.world > 1:
            acc_in = _Exchange(plan, dkv, _block_shape(plan, plan.sources[(step + 1) % plan.world],
                                                       dkv))
        if nxt is not None:
            kv = nxt.wait()
    dkv = acc_in.wait() if acc_in is not None else dkv
    return dq, dkv[0], dkv[1]


class _RingFunction(torch.autograd.Function):
    """Autograd over the ring, on BSHD views."""

    @staticmethod
    def forward(ctx: Any, q: Tensor, k: Tensor, v: Tensor, plan: _Plan) -> Tensor:
        out, lse = _ring_forward(plan, q, k, v)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.plan = plan
        return out.to(q.dtype)

    @staticmethod
    def backward(ctx: Any, dout: Tensor):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = _ring_backward(ctx.plan, q, k, v, out, lse, dout)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None


_LAYOUTS = ("bhsd", "bshd")


def ring_attention(query: Tensor, key: Tensor, value: Tensor, *, group: Any = None,
                   is_causal: bool = False, scale: Optional[float] = None,
                   layout: str = "bhsd", seq_len: Optional[int] = None,
                   load_balanced: bool = True) -> Tensor:
    """Exact attention over a sequence sharded across the ranks of ``group`` (ring attention).

    Args:
        query, key, value: this rank's shard of the sequence, in ``layout``: ``"bhsd"``
            (``[batch, heads, seq, head_dim]``, like ``F.scaled_dot_product_attention``) or
            ``"bshd"`` (FlashAttention's). key/value may have fewer heads than query (GQA/MQA;
            the query head count must be a multiple). float32, float16 or bfloat16, CPU or
            CUDA; every rank passes the same batch, heads and head_dim.
        group: the ``torch.distributed`` process group (default: the world). Without an
            initialized process group and ``group=None``, one process: plain attention.
        is_causal: causal attention over the global positions (a query sees the keys at or
            before its own position). Requires the shards to come from
            :func:`shard_sequence` (``load_balanced=True`` spreads the causal work evenly).
        scale: softmax scale; default ``1/sqrt(head_dim)``.
        seq_len: the global sequence length; needed when the shards differ in length (a
            length that does not split evenly), else taken as ``world * local length``.
        load_balanced: the sharding :func:`shard_sequence` used (``True``: chunks r and
            2W-1-r; ``False``: contiguous chunks).

    Returns this rank's shard of the output, in the layout and dtype of ``query``;
    differentiable with respect to query, key and value (dk/dv return to their owner).
    Every rank of the group must call it with the same arguments (collective).

    Raises:
        UmfaError: for a layout, sharding or shape that does not fit, or the core's errors.
    """
    if layout not in _LAYOUTS:
        raise UmfaError(Status.INVALID_ARGUMENT, None,
                        f"ring_attention: layout must be one of {_LAYOUTS}, not {layout!r}")
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor) or t.dim() != 4:
            raise UmfaError(Status.INVALID_RANK, None,
                            f"ring_attention: {name} must be a 4-D tensor ({layout})")
    if key.shape != value.shape:
        raise UmfaError(Status.SHAPE_MISMATCH, None,
                        f"ring_attention: key {tuple(key.shape)} and value "
                        f"{tuple(value.shape)} must have one shape")
    # The core reads BSHD views: BHSD tensors pass permuted, never copied.
    to_bshd = (lambda t: t.transpose(1, 2)) if layout == "bhsd" else (lambda t: t)
    q, k, v = to_bshd(query), to_bshd(key), to_bshd(value)
    if k.shape[1] != q.shape[1]:
        raise UmfaError(Status.SHAPE_MISMATCH, None,
                        f"ring_attention: the key shard has {k.shape[1]} rows and the query "
                        f"shard {q.shape[1]}; a rank holds the same positions of both")
    plan = _Plan.for_group(group, seq_len=seq_len, local_len=q.shape[1], causal=is_causal,
                           load_balanced=load_balanced, scale=scale)
    return to_bshd(_RingFunction.apply(q, k, v, plan))


class RingAttention(torch.nn.Module):
    """:func:`ring_attention` as a module: the process group and options are fixed at
    construction, ``forward(query, key, value, seq_len=None)`` takes the shards."""

    def __init__(self, group: Any = None, *, is_causal: bool = False,
                 scale: Optional[float] = None, layout: str = "bhsd",
                 load_balanced: bool = True) -> None:
        super().__init__()
        self.group = group
        self.is_causal = is_causal
        self.scale = scale
        self.layout = layout
        self.load_balanced = load_balanced

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                seq_len: Optional[int] = None) -> Tensor:
        """This rank's shard of the attention output (see :func:`ring_attention`)."""
        return ring_attention(query, key, value, group=self.group, is_causal=self.is_causal,
                              scale=self.scale, layout=self.layout, seq_len=seq_len,
                              load_balanced=self.load_balanced)

    def extra_repr(self) -> str:
        """The options, for ``repr(module)``."""
        return (f"is_causal={self.is_causal}, scale={self.scale}, layout={self.layout!r}, "
                f"load_balanced={self.load_balanced}")
