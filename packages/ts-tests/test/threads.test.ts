// Both TypeScript bindings in one process, their asynchronous calls in flight together:
// @umfa/koffi (koffi's .async on libuv's thread pool) and @umfa/napi (N-API async workers) call
// the same libumfa at the same time, on one shared context per binding and on a context per
// call. Every result must equal, bit for bit, the synchronous result of the same call; the
// calls must overlap in time; errors from both bindings interleaved with successes must keep
// their own messages. Run by scripts/stress.sh (vitest.reliability.config.ts).
import { describe, expect, it } from 'vitest';
import * as koffi from '@umfa/koffi';
import * as napi from '@umfa/napi';

type Tensor = koffi.Tensor;

function rand(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
}

interface Problem {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  dout: Tensor;
  opts: koffi.AttentionOptions;
}

const problems: Problem[] = [
  [1, 64, 96, 4, 2, 32, { causal: 'bottom-right' as const }],
  [2, 40, 40, 2, 2, 64, { window: [8, 0] as const, softcap: 5 }],
  [1, 130, 70, 2, 1, 16, { causal: 'top-left' as const, scale: 0.2 }],
  [2, 33, 17, 3, 3, 48, {}],
].map(([b, sq, sk, hq, hkv, d, opts], i) => {
  const [B, SQ, SK, HQ, HKV, D] = [b, sq, sk, hq, hkv, d] as number[];
  return {
    q: koffi.bshd(rand(B! * SQ! * HQ! * D!, 10 + i), [B!, SQ!, HQ!, D!]),
    k: koffi.bshd(rand(B! * SK! * HKV! * D!, 20 + i), [B!, SK!, HKV!, D!]),
    v: koffi.bshd(rand(B! * SK! * HKV! * D!, 30 + i), [B!, SK!, HKV!, D!]),
    dout: koffi.bshd(rand(B! * SQ! * HQ! * D!, 40 + i), [B!, SQ!, HQ!, D!]),
    opts: { ...(opts as koffi.AttentionOptions), deterministic: true },
  };
});

const bytes = (t: Tensor | undefined): Buffer => Buffer.from((t as Tensor).data.buffer, (t as Tensor).data.byteOffset, (t as Tensor).data.byteLength);

describe('koffi and napi async calls in flight together', () => {
  it('match the synchronous results bit for bit, overlapping in time', async () => {
    const kctx = new koffi.Context({ backend: 'cpu', numThreads: 2 });
    const nctx = new napi.Context({ backend: 'cpu', numThreads: 2 });
    // Expected: synchronous calls, one at a time (same worker count as the async contexts).
    const want = problems.map((p) => {
      const f = kctx.attention(p.q, p.k, p.v, { ...p.opts, returnLse: true });
      const g = kctx.attentionBackward(p.q, p.k, p.v, f.out, p.dout, f.lse as Tensor, p.opts);
      return { out: bytes(f.out), lse: bytes(f.lse), dq: bytes(g.dq), dk: bytes(g.dk), dv: bytes(g.dv) };
    });
    const spans: { binding: string; start: number; end: number }[] = [];
    let calls = 0;
    const mismatches: string[] = [];
    const one = async (binding: 'koffi' | 'napi', i: number, own: boolean): Promise<void> => {
      const u = binding === 'koffi' ? koffi : napi;
      const shared = binding === 'koffi' ? kctx : nctx;
      const ctx = own ? new u.Context({ backend: 'cpu', numThreads: 2 }) : shared;
      const k = i % problems.length;
      const p = problems[k] as Problem;
      const start = performance.now();
      const f = await ctx.attentionAsync(p.q, p.k, p.v, { ...p.opts, returnLse: true });
      const g = await ctx.attentionBackwardAsync(p.q, p.k, p.v, f.out, p.dout, f.lse as Tensor, p.opts);
      spans.push({ binding, start, end: performance.now() });
      calls += 2;
      const w = want[k] as (typeof want)[number];
      for (const [name, got, exp] of [
        ['out', bytes(f.out), w.out],
        ['lse', bytes(f.lse), w.lse],
        ['dq', bytes(g.dq), w.dq],
        ['dk', bytes(g.dk), w.dk],
        ['dv', bytes(g.dv), w.dv],
      ] as const) {
        if (Buffer.compare(got, exp) !== 0) mismatches.push(`${binding} call ${i} ${name}`);
      }
      if (own) ctx.dispose();
    };
    const rounds = 200;
    const jobs: Promise<void>[] = [];
    for (let i = 0; i < rounds; i++) {
      jobs.push(one('koffi', i, i % 4 === 3));
      jobs.push(one('napi', i, i % 4 === 1));
    }
    await Promise.all(jobs);
    kctx.dispose();
    nctx.dispose();
    // Some koffi call and some napi call were running at the same time.
    const k = spans.filter((s) => s.binding === 'koffi');
    const n = spans.filter((s) => s.binding === 'napi');
    const overlapping = k.filter((a) => n.some((b) => a.start < b.end && b.start < a.end)).length;
    console.log(`koffi + napi async: ${calls} calls (${rounds * 2} forward+backward pairs), ${mismatches.length} mismatches, ${overlapping} koffi pairs overlapped a napi pair`);
    expect(mismatches).toEqual([]);
    expect(calls).toBe(rounds * 4);
    expect(overlapping).toBeGreaterThan(0);
  });

  it('keep each rejected call its own status and message while others succeed', async () => {
    const p = problems[0] as Problem;
    const bad = koffi.bshd(rand(4, 1), [1, 1, 1, 4]);
    const jobs: Promise<string>[] = [];
    for (let i = 0; i < 100; i++) {
      const u = i % 2 ? koffi : napi;
      if (i % 3 === 0) {
        jobs.push(u.attentionAsync(p.q, bad, p.v).then(() => 'no error', (e: InstanceType<typeof koffi.UmfaError>) => `${e.statusName}: ${e.message}`));
      } else if (i % 3 === 1) {
        jobs.push(u.attentionAsync(p.q, p.k, p.v, { softcap: -1 }).then(() => 'no error', (e: InstanceType<typeof koffi.UmfaError>) => `${e.statusName}: ${e.message}`));
      } else {
        jobs.push(u.attentionAsync(p.q, p.k, p.v, p.opts).then(() => 'ok', (e: Error) => `unexpected ${e.message}`));
      }
    }
    const results = await Promise.all(jobs);
    results.forEach((r, i) => {
      if (i % 3 === 0) expect(r).toMatch(/^SHAPE_MISMATCH: .*k\.shape/);
      else if (i % 3 === 1) expect(r).toMatch(/^INVALID_ARGUMENT: .*softcap/);
      else expect(r).toBe('ok');
    });
  });
});
