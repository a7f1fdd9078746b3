// The fuzz target: decodes an input into a short program against one binding and runs it,
// checking after every operation that
//   (b) each call succeeds or throws UmfaError / MFAError / the caller's own error (anything else,
//       a synchronous throw from an async function, or success after a getter threw, is a finding);
//   (c) no byte of caller memory changed outside the elements of the outputs of successful calls
//       (guard regions, inputs, views of failed calls; see memory.mjs), and an async call whose
//       output was detached or shrunk while it ran rejected instead of writing;
//   (d) small successful calls without hostile actions match a float64 reference (reference.mjs),
//       downloads return what was uploaded, and other clean calls give finite results.
// Crashes and hangs, oracle (a), are caught by the parent process (fuzz.mjs).
import { ByteReader, Rng } from './bytes.mjs';
import {
  DTYPE_SIZE,
  Memory,
  denseStrides,
  elementOffsets,
  isPlainLayout,
  numel,
  readElement,
  spanBytes,
  writeElement,
} from './memory.mjs';
import * as reference from './reference.mjs';
import {
  ACTIONS,
  BACKING_KINDS,
  DTYPES,
  HOLDERS,
  LENGTH_MODES,
  LIES,
  NATURAL_HOLDER,
  OBJECT_MODES,
  OTHER_HOLDERS,
  PLACEMENTS,
  PRECISIONS,
  RAW_HOLDERS,
  SANE,
  SANE_CONTEXT,
  SHAPE_CHANGES,
  SHAPE_MODES,
  SPECIAL_VALUES,
  STRIDE_MODES,
  VALUE_MODES,
  WILD,
  WILD_CONTEXT,
  WILD_DTYPES,
  WILD_EXTENTS,
  WILD_PRECISIONS,
  holderSize,
} from './tables.mjs';

/** What a hostile getter throws: the caller's own error, which a call may pass on. */
export class HostileError extends Error {
  constructor(message) {
    super(message);
    this.name = 'HostileError';
  }
}

const MAX_OPS = 8;
/** Options presentations whose fields reach the call ('null' means no options at all; a number or a string is refused). */
const OPTIONS_PASSED = new Set(['plain', 'getters', 'proxy', 'inherited', 'function', 'frozen', 'none']);
const defaultSpec = () => ({ maskMode: 0, scale: 0, softcap: 0, window: null, hasWindow: false, alibi: undefined, mask: undefined });
/** Multiply-adds above which a call is checked for finiteness instead of against the reference. */
const REFERENCE_BUDGET = 1 << 21;
const OPS = ['forward', 'forwardAsync', 'backward', 'backwardAsync', 'classic', 'newContext', 'upload', 'zeros', 'download', 'deviceUpload', 'dispose', 'await', 'between', 'burst', 'gc', 'query'];

// The engine's own view properties: the harness reads views that a hostile action made lie
// about themselves (own `buffer`, `byteOffset`, `byteLength` properties).
const typedArrayGetter = (key) => Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype), key).get;
const dataViewGetter = (key) => Object.getOwnPropertyDescriptor(DataView.prototype, key).get;
const realGetters = {
  typed: { buffer: typedArrayGetter('buffer'), byteOffset: typedArrayGetter('byteOffset'), byteLength: typedArrayGetter('byteLength') },
  dataView: { buffer: dataViewGetter('buffer'), byteOffset: dataViewGetter('byteOffset'), byteLength: dataViewGetter('byteLength') },
};
/** `{ buffer, byteOffset, byteLength }` of a view as the engine knows them (0 bytes once out of bounds). */
function realView(view) {
  const g = view instanceof DataView ? realGetters.dataView : realGetters.typed;
  const buffer = g.buffer.call(view);
  try {
    return { buffer, byteOffset: g.byteOffset.call(view), byteLength: g.byteLength.call(view) };
  } catch {
    return { buffer, byteOffset: 0, byteLength: 0 }; // a DataView over detached or shrunk memory
  }
}
const realByteLength = (view) => realView(view).byteLength;

/** Relative tolerances against the float64 reference, by input dtype and by output dtype. */
const TOLERANCE = { f32: 2e-3, f16: 6e-3, bf16: 3e-2 };
const OUTPUT_ROUNDING = { f32: 0, f16: 2e-3, bf16: 1.6e-2 };
const GRADIENT_TOLERANCE = { f32: 6e-3, f16: 3e-2, bf16: 1.2e-1 };

const alignUp = (x, a) => Math.ceil(x / a) * a;
/** A record whose object was passed as a tensor (not left out as null). */
const isGiven = (rec) => rec !== undefined && rec.object !== null && rec.object !== undefined;
const describe = (x) =>
  typeof x === 'bigint' ? `${x}n` : typeof x === 'string' ? JSON.stringify(x) : Array.isArray(x) ? `[${x.map(describe).join(',')}]` : x !== null && typeof x === 'object' ? `{${Object.entries(x).map(([k, v]) => `${k}:${describe(v)}`).join(',')}}` : String(x);

/** One API call being decoded and run. */
class Call {
  /**
   * @param {Program} program
   * @param {string} kind - what the call is (one of a fixed set: it names decoder features)
   * @param {string} [detail] - appended to its label in traces
   */
  constructor(program, kind, detail = '') {
    this.program = program;
    this.kind = kind;
    this.label = `#${program.callCount++} ${kind}${detail}`;
    /** Host and device tensor arguments, in decode order. */
    this.records = [];
    /** The records this call may write. */
    this.writes = [];
    /** Hostile actions scheduled at the k-th read of this call's values. */
    this.actions = [];
    /** Actions that fired. */
    this.fired = 0;
    /** The HostileError a getter threw, if one did. */
    this.thrown = undefined;
    /** Every decision is one the reference models (no wild values, special inputs, reused memory). */
    this.sane = true;
    /** An output overlaps another tensor of the call (results unspecified). */
    this.overlap = false;
    this.arenaKind = 'ab';
    /** Versions of the memory the call uses, taken when it started (async calls). */
    this.versions = undefined;
    /** Runs the same call again with plain options (for nested-call actions). */
    this.again = undefined;
    /** The call has an asynchronous variant. */
    this.hasAsync = true;
    /** Checks a successful result: returns a finding message or undefined. */
    this.verify = undefined;
  }

  host() {
    return this.records.filter((r) => r.kind === 'host' && r.view !== undefined);
  }

  outputs() {
    return this.writes;
  }
}

/**
 * @typedef {object} RunResult
 * @property {Set<string>} features - what the decoder exercised (ops, layouts, hostile actions, outcomes)
 * @property {{ kind: string, message: string }[]} findings
 * @property {string[]} trace - the program, one line per step (when asked for)
 */

/**
 * Decodes `bytes` into a program and runs it against binding `u`.
 *
 * @param {any} u - the binding module (`@umfa/koffi` or `@umfa/napi`)
 * @param {Uint8Array} bytes
 * @param {{ trace?: boolean }} [options]
 * @returns {Promise<RunResult>}
 */
export async function runProgram(u, bytes, options = {}) {
  const program = new Program(u, new ByteReader(bytes), options.trace === true);
  try {
    await program.run();
  } catch (e) {
    program.finding('harness', `the harness failed: ${e?.stack ?? e}`);
  }
  return { features: program.features, findings: program.findings, trace: program.trace };
}

class Program {
  constructor(u, reader, trace) {
    this.u = u;
    this.r = reader;
    this.mem = new Memory();
    this.trace = [];
    this.tracing = trace;
    this.features = new Set();
    this.findings = [];
    this.callCount = 0;
    /** @type {{ ctx: any, id: number }[]} */
    this.contexts = [];
    /** @type {{ mfa: any, id: number }[]} */
    this.mfas = [];
    /** Device tensors: { dt, id, ctx, version, expected (bytes it must hold, when known) }. */
    this.devices = [];
    /** Host tensor records of earlier calls (for placements that reuse memory). */
    this.pool = [];
    /** Async calls in flight: promises that settle (never reject) once checked. */
    this.pending = [];
    /** Host outputs of the async calls in flight (what a caller might detach meanwhile). */
    this.inflight = new Set();
    /** The call whose values are being read, and how many reads it has had. */
    this.hook = undefined;
  }

  log(line) {
    if (this.tracing) this.trace.push(line);
  }

  feature(name) {
    this.features.add(name);
  }

  finding(kind, message) {
    this.findings.push({ kind, message });
    this.log(`!! ${kind}: ${message}`);
  }

  async run() {
    let ops = 0;
    do {
      const op = this.r.pick(OPS);
      this.feature(`op:${op}`);
      await this[`op_${op}`]();
      if (this.pending.length === 0) this.checkMemory(op);
    } while (++ops < MAX_OPS && this.r.remaining > 0 && this.findings.length === 0);
    await this.awaitAll();
    this.disposeAll();
    this.checkMemory('end');
  }

  // ---- contexts and state ----

  newContextEntry(options) {
    const ctx = new this.u.Context(options);
    const entry = { ctx, id: this.contexts.length };
    this.contexts.push(entry);
    return entry;
  }

  /** A context of the program (disposed ones included), a new one on first use. */
  pickContext() {
    if (this.contexts.length === 0 || this.r.rarely(24)) {
      const entry = this.newContextEntry({ numThreads: this.r.pick([1, 2]) });
      this.log(`ctx${entry.id} = new Context({ numThreads: ${entry.ctx.numThreads} })`);
      return entry;
    }
    return this.r.pick(this.contexts);
  }

  pickMfa() {
    if (this.mfas.length === 0 || this.r.rarely(24)) {
      const entry = { mfa: new this.u.MFAContext(), id: this.mfas.length };
      this.mfas.push(entry);
      this.log(`mfa${entry.id} = new MFAContext()`);
      return entry;
    }
    return this.r.pick(this.mfas);
  }

  addDevice(dt, ctxEntry, expected) {
    const entry = { dt, id: this.devices.length, ctx: ctxEntry, version: 0, expected };
    this.devices.push(entry);
    return entry;
  }

  // ---- decoding tensors ----

  /** Problem sizes of an attention call; `varlen` packs sequences as THD with cu_seqlens. */
  decodeDims() {
    const r = this.r;
    const varlen = r.rarely(40);
    let b = r.pick([1, 2, 1, 3, 0]);
    let sq = r.pick([4, 1, 7, 16, 0, 3, 33, 5]);
    let sk = r.pick([5, 4, 1, 16, 0, 9, 3, 40]);
    let hkv = r.pick([1, 2, 1, 3]);
    let hq = hkv * r.pick([2, 1, 1, 3]) + (r.rarely(8) ? 1 : 0);
    let d = r.pick([8, 4, 16, 1, 32, 64, 3, 128, 256, 0, 257, 2]);
    let dv = r.rarely(24) ? r.pick([4, 16, 8, 0, 257]) : d;
    if (r.rarely(8)) {
      // Big enough that an async call is still running when the next operation starts.
      [b, sq, sk, hkv, hq, d, dv] = [1, 128, 128, 2, 2, 64, 64];
    }
    const dims = { varlen, b, sq, sk, hq, hkv, d, dv, cuQ: undefined, cuK: undefined, tq: b * sq, tk: b * sk };
    if (varlen) {
      const cuQ = [0];
      const cuK = [0];
      for (let i = 0; i < b; i++) {
        cuQ.push(cuQ[i] + r.below(sq + 1));
        cuK.push(cuK[i] + r.below(sk + 1));
      }
      dims.cuQ = cuQ;
      dims.cuK = cuK;
      dims.tq = cuQ[b] + r.pick([0, 1, 2]);
      dims.tk = cuK[b] + r.pick([0, 2, 1]);
    }
    return dims;
  }

  shapes(dims) {
    const { b, sq, sk, hq, hkv, d, dv, tq, tk } = dims;
    if (dims.varlen) {
      return { q: [tq, hq, d], k: [tk, hkv, d], v: [tk, hkv, dv], out: [tq, hq, dv], lse: [hq, tq] };
    }
    return { q: [b, sq, hq, d], k: [b, sk, hkv, d], v: [b, sk, hkv, dv], out: [b, sq, hq, dv], lse: [b, hq, sq] };
  }

  /**
   * Decodes a host tensor argument: its layout, where its memory sits, which view holds it and
   * how it is presented to the call. Its memory is made by {@link Program.materialize}.
   */
  hostRecord(call, role, dtype, shape, { output = false, vector = null, values = undefined, dense = false } = {}) {
    const r = this.r;
    const rec = {
      kind: 'host',
      role,
      dtype,
      dtypeValue: dtype,
      shape: [...shape],
      strides: undefined,
      stridesValue: undefined,
      sizingShape: [...shape],
      sizingStrides: undefined,
      output,
      vector,
      values,
      holder: NATURAL_HOLDER[dtype] ?? 'Uint8Array',
      stridesMode: 'dense',
      placement: 'arena',
      backingKind: undefined,
      gap: 16,
      shift: 0,
      misalign: false,
      lengthMode: 'exact',
      objectMode: vector !== null && r.rarely(64) ? 'bare' : 'plain',
      shapeMode: 'array',
      valueMode: 'uniform',
      lie: undefined,
      seed: r.byte() * 2654435761 + call.records.length,
      backing: undefined,
      byteOffset: 0,
      viewBytes: 0,
      view: undefined,
      object: undefined,
      plain: true,
    };
    call.records.push(rec);
    if (output) call.writes.push(rec);
    rec.plain = isPlainLayout(rec.shape, undefined);
    if (!r.rarely(64)) return rec;
    // The unusual ones.
    rec.placement = r.pick(PLACEMENTS);
    rec.holder = r.rarely(96) ? r.pick(OTHER_HOLDERS) : rec.holder;
    rec.stridesMode = dense ? r.pick(['dense', 'explicit', 'dense', 'padded', 'broadcast']) : r.pick(STRIDE_MODES);
    rec.lengthMode = r.pick(LENGTH_MODES);
    rec.objectMode = r.pick(vector !== null ? ['bare', ...OBJECT_MODES] : OBJECT_MODES);
    rec.shapeMode = r.pick(SHAPE_MODES);
    rec.valueMode = r.pick(VALUE_MODES);
    rec.gap = r.pick([16, 0, 64, 3, 1]);
    rec.shift = r.pick([1, 2, 3, 7, 16]);
    rec.misalign = r.rarely(32);
    rec.backingKind = r.pick(BACKING_KINDS);
    if (r.rarely(32)) rec.lie = r.pick(LIES);
    if (r.rarely(48)) {
      rec.dtypeValue = r.pick(WILD_DTYPES);
      call.sane = false;
    }
    const change = r.pick(SHAPE_CHANGES);
    if (change !== 'same' && shape.length > 0) {
      const i = r.below(shape.length);
      call.sane = false;
      if (change === 'off-by-one') rec.shape[i] = rec.shape[i] > 0 && r.below(2) ? rec.shape[i] - 1 : rec.shape[i] + 1;
      else if (change === 'zero') rec.shape[i] = 0;
      else if (change === 'rank-down') rec.shape = rec.shape.slice(1);
      else if (change === 'rank-up') rec.shape = [1, ...rec.shape];
      else {
        rec.shape[i] = r.pick(WILD_EXTENTS);
        rec.wildDim = i;
      }
      if (change !== 'wild') rec.sizingShape = [...rec.shape];
    }
    if (rec.valueMode === 'special') call.sane = false;
    if (rec.placement === 'pooled') call.sane = false;
    for (const key of ['placement', 'holder', 'stridesMode', 'lengthMode', 'objectMode', 'shapeMode', 'valueMode', 'backingKind']) {
      this.feature(`${key}:${rec[key]}`);
    }
    this.decodeStrides(rec);
    return rec;
  }

  /** Strides of the record's mode, and the layout its memory is sized for. */
  decodeStrides(rec) {
    const shape = rec.shape;
    const numeric = shape.every((x) => typeof x === 'number' && Number.isFinite(x));
    if (!numeric) {
      rec.plain = false;
      return;
    }
    const rank = shape.length;
    const dense = denseStrides(shape);
    let strides;
    switch (rec.stridesMode) {
      case 'explicit':
        strides = dense;
        break;
      case 'permuted':
        // BHSD memory of a BSHD view (rank 4), HTD of THD (rank 3), column-major below.
        if (rank === 4) strides = [shape[2] * shape[1] * shape[3], shape[3], shape[1] * shape[3], 1];
        else if (rank === 3) strides = [shape[2], shape[0] * shape[2], 1];
        else strides = denseStrides([...shape].reverse()).reverse();
        break;
      case 'padded': {
        strides = new Array(rank);
        let s = 1;
        for (let i = rank - 1; i >= 0; i--) {
          strides[i] = s;
          s *= shape[i] + 1;
        }
        break;
      }
      case 'broadcast':
        strides = [...dense];
        if (rank > 0) strides[(rec.seed >>> 3) % rank] = 0;
        break;
      case 'negative':
        strides = [...dense];
        if (rank > 0) strides[(rec.seed >>> 3) % rank] = -1;
        break;
      case 'overlapping':
        strides = dense.map(() => 1);
        break;
      case 'huge':
        strides = [...dense];
        if (rank > 0) strides[0] = 2 ** 40;
        break;
      case 'wrong-rank':
        strides = dense.slice(1);
        break;
      case 'fractional':
        strides = dense.map((s, i) => (i === 0 ? s + 0.5 : s));
        break;
      case 'null':
        rec.stridesValue = null;
        break;
      case 'not-array':
        rec.stridesValue = dense.join(',');
        rec.plain = false;
        break;
    }
    // A wild extent keeps a nonzero stride, so no buffer can back it and the call is refused
    // before any work. The exception: a broadcast q of 2^40 rows or more, whose output no typed
    // array can hold (the allocation is refused at once).
    if (strides !== undefined && rec.wildDim !== undefined && strides[rec.wildDim] === 0 && !(rec.role === 'q' && shape[rec.wildDim] >= 2 ** 40)) {
      strides[rec.wildDim] = 1;
    }
    if (strides !== undefined) rec.stridesValue = strides;
    rec.strides = strides;
    rec.plain = isPlainLayout(shape, strides);
    // Memory is sized for the layout when the core could accept it, else for the dense shape.
    const sizing = isPlainLayout(rec.sizingShape, strides) && rec.wildDim === undefined && rec.stridesMode !== 'huge';
    rec.sizingStrides = sizing ? strides : undefined;
  }

  /** A tensor argument: host memory, or (on a context) a device tensor. */
  tensorArg(call, role, dtype, shape, { ctxEntry, device = false, output = false } = {}) {
    if (device && ctxEntry !== undefined) {
      const r = this.r;
      const reuse = r.rarely(48) && this.devices.length > 0 ? r.pick(this.devices) : undefined;
      const rec = { kind: 'device', role, dtype, shape: [...shape], output, ctx: ctxEntry, entry: reuse, object: undefined, plain: true };
      if (reuse !== undefined) call.sane = false;
      call.records.push(rec);
      if (output) call.writes.push(rec);
      return rec;
    }
    return this.hostRecord(call, role, dtype, shape, { output });
  }

  /** Decodes up to two hostile actions, each at the k-th read of the call's values. */
  decodeActions(call) {
    const r = this.r;
    if (!r.rarely(72)) return;
    const n = 1 + r.below(2);
    for (let i = 0; i < n; i++) {
      call.actions.push({ at: 1 + r.below(16), kind: r.pick(ACTIONS), target: r.byte(), done: false });
    }
  }

  // ---- making memory and objects ----

  /**
   * Allocates the memory of the call's host records (one arena per call plus fresh buffers and
   * reused ones), fills the inputs, uploads device inputs, then builds each argument object.
   */
  materialize(call) {
    const mem = this.mem;
    const hostRecs = call.records.filter((x) => x.kind === 'host');
    for (const rec of hostRecs) this.sizeView(rec);
    // Reused memory: the view of an earlier record, whatever it holds now.
    for (const rec of hostRecs) {
      if (rec.placement !== 'pooled') continue;
      const earlier = this.pool.length > 0 ? this.pool[rec.seed % this.pool.length] : undefined;
      if (earlier === undefined) {
        rec.placement = 'arena';
        continue;
      }
      Object.assign(rec, { backing: earlier.backing, byteOffset: earlier.byteOffset, viewBytes: earlier.viewBytes, view: earlier.view, holder: earlier.holder });
    }
    // One arena for the call: records one after another with guard gaps, or on top of the previous.
    const inArena = hostRecs.filter((x) => ['arena', 'alias', 'overlap', 'adjacent'].includes(x.placement));
    let cursor = 32;
    let previous;
    for (const rec of inArena) {
      const hsize = holderSize(rec.holder);
      const align = Math.max(hsize, DTYPE_SIZE[rec.dtype] ?? 1);
      let at;
      if (rec.placement === 'alias' && previous !== undefined) at = previous.byteOffset;
      else if (rec.placement === 'overlap' && previous !== undefined) at = previous.byteOffset + rec.shift * align;
      else at = cursor + (rec.placement === 'adjacent' ? 0 : rec.gap);
      at = alignUp(at, align);
      if (rec.misalign && RAW_HOLDERS.has(rec.holder)) at += 1;
      rec.byteOffset = at;
      cursor = Math.max(cursor, at + rec.viewBytes);
      previous = rec;
    }
    if (inArena.length > 0) {
      const arena = mem.allocate(call.arenaKind, alignUp(cursor + 32, 8));
      for (const rec of inArena) rec.backing = arena;
    }
    for (const rec of hostRecs) {
      if (rec.placement !== 'fresh') continue;
      const align = Math.max(holderSize(rec.holder), DTYPE_SIZE[rec.dtype] ?? 1);
      const lead = alignUp(16 + rec.gap, align) + (rec.misalign && RAW_HOLDERS.has(rec.holder) ? 1 : 0);
      rec.backing = mem.allocate(rec.backingKind ?? 'ab', alignUp(lead + rec.viewBytes + 32, 8));
      rec.byteOffset = lead;
    }
    for (const rec of hostRecs) {
      if (rec.view === undefined) this.makeView(rec);
      rec.backing.records ??= [];
      rec.backing.records.push(`${call.label} ${rec.role} @${rec.byteOffset}+${rec.viewBytes}`);
    }
    for (const rec of hostRecs) if (!rec.output && rec.placement !== 'pooled') this.fillInput(rec);
    // An output overlapping another tensor of the call has unspecified contents.
    for (const o of hostRecs.filter((x) => x.output)) {
      for (const x of hostRecs) {
        if (x === o || x.backing !== o.backing) continue;
        if (x.byteOffset < o.byteOffset + o.viewBytes && o.byteOffset < x.byteOffset + x.viewBytes) call.overlap = true;
      }
    }
    for (const rec of call.records) if (rec.kind === 'device') this.makeDeviceArg(call, rec);
    for (const rec of hostRecs) {
      if (rec.lie !== undefined) this.lie(rec.view, rec.lie);
      rec.object = this.tensorObject(rec);
      this.pool.push(rec);
    }
    // An output option given as null is no output: the call allocates its own.
    call.writes = call.writes.filter((rec) => rec.object !== null && rec.object !== undefined);
  }

  /** Bytes the record's view spans (its layout's span, changed by its length mode). */
  sizeView(rec) {
    const size = DTYPE_SIZE[rec.dtype] ?? 1;
    let span = 0;
    if (isPlainLayout(rec.sizingShape, rec.sizingStrides)) span = spanBytes(rec.sizingShape, rec.sizingStrides, size);
    if (rec.values !== undefined) span = Math.max(span, rec.values.length * size);
    const hsize = holderSize(rec.holder);
    let bytes = span;
    if (rec.lengthMode === 'longer') bytes = span + hsize * (1 + (rec.seed % 64));
    else if (rec.lengthMode === 'shorter') bytes = Math.max(0, span - hsize * (1 + (rec.seed % 3)));
    else if (rec.lengthMode === 'empty') bytes = 0;
    rec.viewBytes = rec.lengthMode === 'shorter' ? Math.floor(bytes / hsize) * hsize : alignUp(bytes, hsize);
  }

  makeView(rec) {
    const Ctor = HOLDERS[rec.holder];
    const buffer = rec.backing.buffer;
    const hsize = holderSize(rec.holder);
    // A view without a length runs to the end of its buffer (and tracks a resizable one).
    if (rec.lengthMode === 'tracking' && (buffer.byteLength - rec.byteOffset) % hsize === 0) {
      rec.view = new Ctor(buffer, rec.byteOffset);
      rec.viewBytes = buffer.byteLength - rec.byteOffset;
    } else {
      rec.view = new Ctor(buffer, rec.byteOffset, rec.viewBytes / hsize);
    }
  }

  /** Writes the input's element values (from its seed) into its memory, and into the shadow. */
  fillInput(rec) {
    if (!rec.plain || !(rec.dtype in DTYPE_SIZE)) return;
    const size = DTYPE_SIZE[rec.dtype];
    const view = this.mem.view(rec.backing);
    const end = rec.byteOffset + rec.viewBytes;
    const rng = new Rng(rec.seed);
    if (rec.values !== undefined) {
      for (let i = 0; i < rec.values.length; i++) {
        const pos = rec.byteOffset + i * size;
        if (pos + size <= end) writeElement(view, pos, rec.dtype, rec.values[i]);
      }
    } else if (rec.strides === undefined && rec.dtype === 'f32' && rec.byteOffset % 4 === 0) {
      // The common case, written directly.
      const values = new Float32Array(rec.backing.buffer, rec.byteOffset, Math.min(numel(rec.shape), Math.floor(rec.viewBytes / 4)));
      for (let e = 0; e < values.length; e++) values[e] = this.elementValue(rec, rng);
    } else {
      const offsets = elementOffsets(rec.shape, rec.strides, 1 << 20);
      if (offsets === undefined) return;
      for (let e = 0; e < offsets.length; e++) {
        const pos = rec.byteOffset + offsets[e] * size;
        if (pos + size > end) continue;
        writeElement(view, pos, rec.dtype, this.elementValue(rec, rng));
      }
    }
    this.mem.wrote(rec.backing, rec.byteOffset, end);
  }

  elementValue(rec, rng) {
    if (rec.dtype === 'bool') return rng.next() < 0.85 ? 1 : 0;
    switch (rec.valueMode) {
      case 'ints':
        return rng.below(5) - 2;
      case 'zeros':
        return 0;
      case 'special':
        if (rng.below(8) === 0) return rng.pick(SPECIAL_VALUES);
        break;
      case 'mask':
        return rng.below(6) === 0 ? -Infinity : rng.next() * 4 - 2;
    }
    return rng.next() * 2 - 1;
  }

  /** A device tensor argument: uploaded from fresh values now, or one made earlier. */
  makeDeviceArg(call, rec) {
    if (rec.entry !== undefined) {
      rec.object = rec.entry.dt;
      return;
    }
    const size = DTYPE_SIZE[rec.dtype] ?? 4;
    const n = numel(rec.shape);
    const host = this.mem.allocate('ab', alignUp(n * size + 64, 8));
    const view = this.mem.view(host);
    const rng = new Rng(call.records.length * 977 + n);
    for (let i = 0; i < n; i++) writeElement(view, 32 + i * size, rec.dtype, rec.output ? 0 : rng.next() * 2 - 1);
    this.mem.wrote(host, 0, host.byteLength);
    const data = new (HOLDERS[NATURAL_HOLDER[rec.dtype]] ?? Uint8Array)(host.buffer, 32, (n * size) / (holderSize(NATURAL_HOLDER[rec.dtype]) || 1));
    try {
      const dt = rec.output ? rec.ctx.ctx.zeros(rec.dtype, rec.shape) : rec.ctx.ctx.upload({ data, dtype: rec.dtype, shape: rec.shape });
      rec.entry = this.addDevice(dt, rec.ctx, rec.output ? new Uint8Array(n * size) : new Uint8Array(host.buffer, 32, n * size).slice());
      rec.object = dt;
    } catch (e) {
      this.expectTypedError(e, `${call.label}: making device ${rec.role}`);
      // The context is gone: pass the host tensor instead (an argument like any host one).
      Object.assign(rec, { kind: 'host', backing: host, byteOffset: 32, viewBytes: n * size, view: data, holder: NATURAL_HOLDER[rec.dtype], strides: undefined });
      Object.assign(rec, { stridesMode: 'dense', placement: 'fresh', lengthMode: 'exact', objectMode: 'plain', shapeMode: 'array', valueMode: 'uniform', dtypeValue: rec.dtype });
      rec.object = { data, dtype: rec.dtype, shape: rec.shape };
      rec.entry = undefined;
      host.records = [`${call.label} ${rec.role} @32+${n * size}`];
    }
  }

  /** Makes the view lie about itself through own properties (the bindings must not read them). */
  lie(view, what) {
    const value = what === 'buffer' ? new ArrayBuffer(1 << 16) : what === 'byteOffset' ? 0 : 1 << 30;
    try {
      Object.defineProperty(view, what, { value, configurable: true });
    } catch {
      // A property the engine does not let a caller redefine: nothing to lie with.
    }
  }

  /** Counts one read of a hooked value and runs the actions scheduled for it. */
  tick() {
    const h = this.hook;
    if (h === undefined) return;
    h.count++;
    for (const a of h.call.actions) {
      if (!a.done && a.at === h.count) {
        a.done = true;
        this.fire(h.call, a);
      }
    }
  }

  /** The array presented as a tensor's shape. */
  shapeValue(rec) {
    const shape = rec.shape;
    const self = this;
    switch (rec.shapeMode) {
      case 'proxy':
        return new Proxy([...shape], {
          get(t, p, recv) {
            self.tick();
            return Reflect.get(t, p, recv);
          },
        });
      case 'changing': {
        // Each index reads its real extent the first time, and a much larger one afterwards: a
        // binding that read a shape twice would size one thing and pass another.
        const seen = new Set();
        return new Proxy([...shape], {
          get(t, p, recv) {
            if (typeof p === 'string' && /^\d+$/.test(p) && self.hook !== undefined) {
              if (seen.has(p)) return typeof t[p] === 'number' ? t[p] * 1024 + 1024 : t[p];
              seen.add(p);
            }
            return Reflect.get(t, p, recv);
          },
        });
      }
      case 'frozen':
        return Object.freeze([...shape]);
      case 'typed':
        return shape.every((x) => typeof x === 'number') ? Float64Array.from(shape) : [...shape];
      case 'array-like':
        return Object.assign({ length: shape.length }, shape);
      case 'holey': {
        const a = [...shape];
        if (a.length > 0) delete a[a.length - 1];
        return a;
      }
      case 'string':
        return shape.join(',');
      default:
        return [...shape];
    }
  }

  /** The object passed to the call for a host record. */
  tensorObject(rec) {
    const u = this.u;
    const self = this;
    const fields = { data: rec.view, dtype: rec.dtypeValue, shape: this.shapeValue(rec) };
    if (rec.stridesValue !== undefined) fields.strides = rec.stridesValue;
    switch (rec.objectMode) {
      case 'helper':
        if (Array.isArray(fields.shape) && (fields.strides === undefined || Array.isArray(fields.strides)) && typeof rec.dtypeValue === 'string') {
          try {
            return u.tensor(rec.view, fields.shape, fields.strides === undefined ? { dtype: rec.dtypeValue } : { dtype: rec.dtypeValue, strides: fields.strides });
          } catch (e) {
            this.expectTypedError(e, `tensor() helper for ${rec.role}`);
          }
        }
        return fields;
      case 'getters': {
        const o = {};
        for (const [key, value] of Object.entries(fields)) {
          Object.defineProperty(o, key, {
            get() {
              self.tick();
              return value;
            },
            enumerable: true,
          });
        }
        return o;
      }
      case 'proxy':
        return new Proxy(fields, {
          get(t, p, recv) {
            self.tick();
            return Reflect.get(t, p, recv);
          },
        });
      case 'class': {
        class HostTensor {
          #fields;
          constructor(f) {
            this.#fields = f;
          }
          get data() {
            self.tick();
            return this.#fields.data;
          }
          get dtype() {
            self.tick();
            return this.#fields.dtype;
          }
          get shape() {
            self.tick();
            return this.#fields.shape;
          }
          get strides() {
            self.tick();
            return this.#fields.strides;
          }
        }
        return new HostTensor(fields);
      }
      case 'frozen':
        return Object.freeze(fields);
      case 'bare':
        return rec.view;
      case 'null':
        return null;
      case 'number':
        return 42;
      default:
        return fields;
    }
  }

  /** The options object of a call from its entries, presented in the decoded way. */
  optionsObject(entries, mode) {
    const self = this;
    const fields = Object.fromEntries(entries);
    switch (mode) {
      case 'getters': {
        const o = {};
        for (const [key, value] of entries) {
          Object.defineProperty(o, key, {
            get() {
              self.tick();
              return value;
            },
            enumerable: true,
          });
        }
        return o;
      }
      case 'proxy':
        return new Proxy(fields, {
          get(t, p, recv) {
            self.tick();
            return Reflect.get(t, p, recv);
          },
        });
      case 'inherited':
        return Object.create(fields);
      case 'function':
        return Object.assign(function options() {}, fields);
      case 'frozen':
        return Object.freeze(fields);
      case 'none':
        return entries.length === 0 ? undefined : fields;
      case 'null':
        return null;
      case 'number':
        return 7;
      case 'string':
        return 'causal';
      default:
        return fields;
    }
  }

  decodeOptionsMode() {
    return this.r.rarely(64) ? this.r.pick(['getters', 'proxy', 'inherited', 'function', 'frozen', 'none', 'null', 'number', 'string']) : 'plain';
  }

  /** A value from the sane table, or (rarely) the wild one, which makes the call unmodelled. */
  optionValue(call, name) {
    const r = this.r;
    if (WILD[name] !== undefined && r.rarely(24)) {
      call.sane = false;
      return r.pick(WILD[name]);
    }
    return r.pick(SANE[name]);
  }

  /**
   * Decodes the options every attention call shares (scale, masks, window, softcap, ALiBi,
   * varlen, ...) into `entries`; records the values the reference needs in `spec`.
   */
  decodeAttentionOptions(call, dims, dtype, ctxEntry) {
    const r = this.r;
    const present = r.byte() | (r.byte() << 8);
    const has = (bit) => (present & (1 << bit)) !== 0;
    const entries = [];
    const spec = { maskMode: 0, scale: 0, softcap: 0, window: null, alibi: undefined, mask: undefined, cuQ: undefined, cuK: undefined };
    if (has(0)) {
      const scale = this.optionValue(call, 'scale');
      entries.push(['scale', scale]);
      spec.scale = scale;
    }
    let fromCausal;
    if (has(1)) {
      const causal = this.optionValue(call, 'causal');
      entries.push(['causal', causal]);
      fromCausal = causal === true || causal === 'bottom-right' ? 2 : causal === 'top-left' ? 1 : 0;
      spec.maskMode = fromCausal;
    }
    if (has(2)) {
      let mode = this.optionValue(call, 'maskMode');
      // Both given must agree; a disagreeing pair is a wild choice.
      if (fromCausal !== undefined && !r.rarely(16)) mode = ['none', 'causal-top-left', 'causal-bottom-right'][fromCausal];
      else if (fromCausal !== undefined) call.sane = false;
      entries.push(['maskMode', mode]);
      const code = { none: 0, 'causal-top-left': 1, 'causal-bottom-right': 2 }[mode] ?? mode;
      spec.maskMode = code;
    }
    if (has(3)) {
      const w = this.optionValue(call, 'window');
      entries.push(['window', w]);
      if (call.sane) spec.window = Array.isArray(w) ? [w[0], w[1]] : [w.left ?? -1, w.right ?? -1];
    }
    if (has(4)) {
      const softcap = this.optionValue(call, 'softcap');
      entries.push(['softcap', softcap]);
      spec.softcap = softcap;
    }
    if (has(5)) {
      const perBatch = r.below(2) === 1;
      // [heads_q] or [batch, heads_q] (batch = the number of sequences when packed).
      let shape = perBatch ? [dims.b, dims.hq] : [dims.hq];
      if (r.rarely(16)) {
        shape = r.pick([[dims.hq + 1], [dims.hq, 1, 1], [dims.b + 1, dims.hq]]);
        call.sane = false;
      }
      spec.alibi = this.hostRecord(call, 'alibi_slopes', r.rarely(16) ? 'f16' : 'f32', shape, { vector: 'f32' });
      if (spec.alibi.dtype !== 'f32') call.sane = false;
      entries.push(['alibiSlopes', spec.alibi]);
    }
    if (has(6)) {
      spec.mask = this.decodeMask(call, dims);
      entries.push(['attnMask', spec.mask]);
      if (dims.varlen) call.sane = false;
    }
    if (dims.varlen ? !r.rarely(8) : r.rarely(8)) {
      // cu_seqlens: the packed layout's sequence starts (also offered to dense calls, which refuse them).
      const cuQ = dims.cuQ ?? [0, dims.sq];
      const cuK = dims.cuK ?? [0, dims.sk];
      spec.cuQ = this.decodeCuSeqlens(call, 'cu_seqlens_q', cuQ);
      spec.cuK = this.decodeCuSeqlens(call, 'cu_seqlens_k', cuK);
      if (!dims.varlen) call.sane = false;
      entries.push(['cuSeqlensQ', spec.cuQ], ['cuSeqlensK', spec.cuK]);
    }
    if (has(7)) entries.push(['deterministic', this.optionValue(call, 'deterministic')]);
    if (has(8)) entries.push(['stream', this.optionValue(call, 'stream')]);
    if (has(9)) {
      const maxQ = dims.cuQ === undefined ? dims.sq : Math.max(0, ...dims.cuQ.slice(1).map((x, i) => x - dims.cuQ[i]));
      const maxK = dims.cuK === undefined ? dims.sk : Math.max(0, ...dims.cuK.slice(1).map((x, i) => x - dims.cuK[i]));
      const pickMax = (m) => {
        if (r.rarely(32)) {
          call.sane = false;
          return r.pick(WILD.maxSeqlen);
        }
        return r.pick([0, m, m + 5]);
      };
      entries.push(['maxSeqlenQ', pickMax(maxQ)], ['maxSeqlenK', pickMax(maxK)]);
    }
    if (has(10) && ctxEntry !== undefined) {
      const wrong = r.rarely(32) ? r.pick([{ disposed: false }, 5, 'ctx', this.mfas[0]?.mfa]) : undefined;
      entries.push(['context', wrong ?? ctxEntry.ctx]);
    }
    if (has(11)) entries.push([r.pick(['casual', 'dropout', 'scale_', '__proto__x']), true]);
    spec.hasWindow = has(3);
    return { entries, spec, present };
  }

  /** attn_mask: boolean or additive, broadcastable to [batch, heads_q, seqlen_q, seqlen_k]. */
  decodeMask(call, dims) {
    const r = this.r;
    const dtype = r.pick(['bool', 'f32', 'f16', 'bf16', 'bool']);
    const full = [dims.b, dims.hq, dims.sq, dims.sk];
    const rank = 4 - r.below(4);
    const which = r.byte();
    // Each kept dimension is either full or 1 (broadcast); leading ones may be left out.
    const shape = full.slice(4 - rank).map((n, i) => ((which >> i) & 1 ? 1 : n));
    if (r.rarely(16)) {
      shape[shape.length - 1] += 1;
      call.sane = false;
    }
    const rec = this.hostRecord(call, 'attn_mask', dtype, shape);
    if (dtype !== 'bool' && rec.valueMode === 'uniform') rec.valueMode = 'mask';
    return rec;
  }

  decodeCuSeqlens(call, role, values) {
    const r = this.r;
    let v = [...values];
    let shape = [v.length];
    let strides;
    if (r.rarely(32)) {
      call.sane = false;
      switch (r.below(5)) {
        case 0:
          v = v.map((x, i) => (i === 1 ? x + 1 : x)).reverse();
          break;
        case 1:
          v[0] = 1;
          break;
        case 2:
          v[v.length - 1] += 1000;
          break;
        case 3:
          // One element broadcast over a long list (the workspace accounting case).
          v = [0];
          shape = [4097];
          strides = [0];
          break;
        default:
          shape = [v.length + 1];
          v.push(v[v.length - 1]);
      }
    }
    const rec = this.hostRecord(call, role, r.rarely(16) ? 'f32' : 'i32', shape, { vector: 'i32', values: v });
    if (strides !== undefined) {
      rec.strides = strides;
      rec.stridesValue = strides;
      rec.sizingStrides = strides;
    }
    return rec;
  }

  /** Entries with records replaced by their objects (after {@link Program.materialize}). */
  resolve(entries) {
    return entries.map(([k, v]) => [k, v !== null && typeof v === 'object' && (v.kind === 'host' || v.kind === 'device') ? v.object : v]);
  }

  // ---- running calls ----

  arm(call) {
    this.hook = { call, count: 0 };
  }

  disarm() {
    this.hook = undefined;
  }

  /** Runs a hostile action from inside one of the call's getters. */
  fire(call, a) {
    call.fired++;
    this.feature(`fired:${a.kind}`);
    this.log(`   ~ at read ${a.at}: ${a.kind}`);
    const host = call.host();
    const pickHost = () => (host.length > 0 ? host[a.target % host.length] : undefined);
    switch (a.kind) {
      case 'detach': {
        const rec = pickHost();
        if (rec !== undefined) this.mem.detach(rec.backing);
        return;
      }
      case 'shrink': {
        const rec = pickHost();
        if (rec !== undefined) this.mem.resize(rec.backing, [0, 4, rec.byteOffset + 1, rec.byteOffset + Math.floor(rec.viewBytes / 2)][a.target % 4]);
        return;
      }
      case 'grow': {
        const rec = pickHost();
        if (rec !== undefined && this.mem.maxByteLength(rec.backing) > 0) this.mem.resize(rec.backing, this.mem.maxByteLength(rec.backing));
        return;
      }
      case 'dispose-context': {
        const entry = call.ctxEntry ?? this.contexts[a.target % Math.max(1, this.contexts.length)];
        entry?.ctx.dispose();
        return;
      }
      case 'dispose-device': {
        const own = call.records.filter((x) => x.kind === 'device' && x.entry !== undefined).map((x) => x.entry);
        const list = own.length > 0 ? own : this.devices;
        if (list.length > 0) list[a.target % list.length].dt.dispose();
        return;
      }
      case 'dispose-mfa':
        (call.mfaEntry ?? this.mfas[0])?.mfa.dispose();
        return;
      case 'nested-sync':
      case 'nested-async':
        if (call.again !== undefined) this.nested(call, a.kind === 'nested-async' && call.hasAsync);
        return;
      case 'throw':
        call.thrown = new HostileError(`thrown by a getter of ${call.label}`);
        throw call.thrown;
      case 'lie': {
        const rec = pickHost();
        if (rec !== undefined) this.lie(rec.view, LIES[a.target % LIES.length]);
        return;
      }
      case 'gc':
        globalThis.gc?.({ type: a.target % 4 === 0 ? 'major' : 'minor' });
        return;
      case 'scribble': {
        // The caller writes into an input while the call reads its arguments (allowed: its memory).
        const rec = host.filter((x) => !x.output)[a.target % Math.max(1, host.length)];
        if (rec === undefined || rec.backing.buffer.byteLength < rec.byteOffset + rec.viewBytes) return;
        new Uint8Array(rec.backing.buffer, rec.byteOffset, rec.viewBytes).fill(a.target);
        this.mem.wrote(rec.backing, rec.byteOffset, rec.byteOffset + rec.viewBytes);
      }
    }
  }

  /** The call made again from inside its own encoding, with the same arguments and plain options. */
  nested(outer, isAsync) {
    const call = new Call(this, isAsync ? 'nestedAsync' : 'nested', ` in ${outer.label}`);
    call.records = outer.outputs();
    call.writes = outer.outputs();
    call.sane = false;
    // A getter that throws while the nested call reads it throws into the nested call, not the outer one.
    const thrown = outer.thrown;
    if (isAsync) this.startAsync(call, () => outer.again(true));
    else this.runSync(call, () => outer.again(false));
    outer.thrown = thrown;
  }

  /** Runs a synchronous call with its hook armed, then checks how it ended. */
  runSync(call, fn) {
    const outer = this.hook;
    if (outer === undefined) this.arm(call);
    let outcome;
    try {
      outcome = { ok: true, value: fn() };
    } catch (e) {
      outcome = { ok: false, error: e };
    } finally {
      if (outer === undefined) this.disarm();
    }
    this.bumpOutputs(call);
    this.settle(call, outcome);
    return outcome;
  }

  /** Starts an asynchronous call (its hook armed for the synchronous part) and queues its check. */
  startAsync(call, fn) {
    const outer = this.hook;
    if (outer === undefined) this.arm(call);
    let promise;
    try {
      promise = fn();
    } catch (e) {
      this.finding('contract', `${call.label} threw synchronously instead of rejecting: ${e?.name}: ${e?.message}`);
      return;
    } finally {
      if (outer === undefined) this.disarm();
    }
    if (!(promise instanceof Promise)) {
      this.finding('contract', `${call.label} returned ${typeof promise}, not a Promise`);
      return;
    }
    this.bumpOutputs(call);
    call.versions = this.versionsOf(call);
    const outputs = call.outputs().filter((rec) => rec.kind === 'host');
    for (const rec of outputs) this.inflight.add(rec);
    const settled = promise
      .finally(() => {
        for (const rec of outputs) this.inflight.delete(rec);
      })
      .then(
        (value) => this.settle(call, { ok: true, value }),
        (error) => this.settle(call, { ok: false, error }),
      )
      .catch((e) => this.finding('harness', `checking ${call.label} failed: ${e?.stack ?? e}`));
    this.pending.push(settled);
  }

  /** A call may write its outputs from now on: later checks of other calls must not rely on them. */
  bumpOutputs(call) {
    for (const rec of call.outputs()) {
      if (rec.kind === 'host' && rec.backing !== undefined) rec.backing.version++;
      if (rec.kind === 'device' && rec.entry !== undefined) {
        rec.entry.version++;
        rec.entry.expected = undefined;
      }
    }
  }

  versionsOf(call) {
    return call.records.map((rec) => (rec.kind === 'host' ? rec.backing?.version : rec.entry?.version));
  }

  expectTypedError(e, where) {
    const u = this.u;
    if (e instanceof u.UmfaError || e instanceof u.MFAError || e instanceof HostileError) return true;
    this.finding('unexpected-error', `${where}: threw ${e?.name ?? typeof e} (not UmfaError): ${e?.message}\n${e?.stack ?? ''}`);
    return false;
  }

  /** Checks how a call ended (oracles b, c and d). */
  settle(call, outcome) {
    const u = this.u;
    if (!outcome.ok) {
      const e = outcome.error;
      if (!this.expectTypedError(e, call.label)) return;
      const name = e instanceof u.UmfaError ? e.statusName : e instanceof u.MFAError ? e.code : 'HostileError';
      if (e instanceof u.UmfaError && (e.status === u.Status.OK || e.status === u.Status.INTERNAL)) {
        this.finding('status', `${call.label}: UmfaError with status ${e.statusName}: ${e.message}`);
      }
      this.feature(`${call.kind}:${name}`);
      this.log(`   -> ${call.label}: ${name}: ${e.message.split('\n')[0]}`);
      return;
    }
    this.feature(`${call.kind}:ok`);
    this.log(`   -> ${call.label}: ok`);
    if (call.thrown !== undefined) {
      this.finding('contract', `${call.label} succeeded although one of its getters threw`);
      return;
    }
    for (const rec of call.outputs()) {
      if (rec.kind !== 'host' || rec.view === undefined) continue;
      const needed = rec.plain ? spanBytes(rec.shape, rec.strides, DTYPE_SIZE[rec.dtype] ?? 1) : 0;
      if (realByteLength(rec.view) < needed) {
        this.finding('memory', `${call.label} succeeded although its ${rec.role} was detached or shrunk below the ${needed} bytes it spans`);
        return;
      }
      if (rec.plain && rec.dtype in DTYPE_SIZE) {
        const offsets = elementOffsets(rec.shape, rec.strides);
        if (offsets === undefined) this.mem.allowRange(rec.backing, rec.byteOffset, rec.byteOffset + rec.viewBytes);
        else this.mem.allow(rec.backing, rec.byteOffset, DTYPE_SIZE[rec.dtype], offsets);
      }
    }
    if (call.verify === undefined) return;
    const unchanged = call.versions === undefined || this.versionsOf(call).every((v, i) => v === call.versions[i]);
    const clean = call.sane && !call.overlap && call.fired === 0 && unchanged;
    const problem = call.verify(outcome.value, clean);
    if (problem !== undefined) this.finding('mismatch', `${call.label}: ${problem}`);
  }

  async awaitAll() {
    while (this.pending.length > 0) {
      const pending = this.pending;
      this.pending = [];
      await Promise.all(pending);
    }
  }

  checkMemory(where) {
    for (const v of this.mem.checkpoint()) {
      const views = v.backing.records?.join('; ') ?? '';
      this.finding('memory', `after ${where}: ${v.message} (views: ${views})`);
    }
  }

  // ---- reading results ----

  /**
   * Input values of a call for the reference: undefined when one cannot be read, or is not a
   * modest finite number (garbage read as another dtype, say: the reference does not model it).
   */
  readInput(rec) {
    const values = this.readRecord(rec);
    if (values === undefined) return undefined;
    for (const x of values) if (!(Math.abs(x) <= 1e4)) return undefined;
    return values;
  }

  /** Element values of an argument in logical order, or undefined when they cannot be read. */
  readRecord(rec) {
    if (rec.kind === 'device') {
      if (rec.object === undefined || rec.entry === undefined || rec.object.disposed) return undefined;
      return this.readTensor(rec.object.download());
    }
    if (!rec.plain || !(rec.dtype in DTYPE_SIZE)) return undefined;
    if (rec.objectMode === 'bare') return this.readTensor({ data: rec.view, dtype: rec.dtype, shape: [rec.viewBytes / DTYPE_SIZE[rec.dtype]] });
    return this.readTensor({ data: rec.view, dtype: rec.dtype, shape: rec.shape, strides: rec.strides });
  }

  /** Element values of a host tensor `{ data, dtype, shape, strides? }` or a device tensor. */
  readTensor(t) {
    if (t instanceof this.u.DeviceTensor) {
      if (t.disposed) return undefined;
      t = t.download();
    }
    const size = DTYPE_SIZE[t.dtype];
    const offsets = elementOffsets(t.shape, t.strides);
    if (offsets === undefined) return undefined;
    const real = realView(t.data);
    const length = real.byteLength;
    const view = new DataView(real.buffer, real.byteOffset, length);
    const out = new Float64Array(offsets.length);
    for (let e = 0; e < offsets.length; e++) {
      const pos = offsets[e] * size;
      if (pos + size > length) return undefined;
      out[e] = readElement(view, pos, t.dtype);
    }
    return out;
  }

  /** The values of what a call returned for a role: the caller's own tensor, or one it allocated. */
  resultValues(rec, returned) {
    if (returned === undefined || returned === null) return undefined;
    if (rec !== undefined && rec.kind === 'host' && returned === rec.object) return this.readRecord(rec);
    return this.readTensor(returned);
  }

  /** The float64 problem of an attention call, read from the memory as it is now. */
  problemOf(dims, spec, q, k, v) {
    const qv = this.readInput(q);
    const kv = this.readInput(k);
    const vv = this.readInput(v);
    if (qv === undefined || kv === undefined || vv === undefined) return undefined;
    const { b, sq, sk, hq, hkv, d, dv } = dims;
    const segments = [];
    if (dims.varlen) {
      // The lists as the call read them (a neighbouring input may have overwritten them).
      for (const [rec, want] of [[spec.cuQ, dims.cuQ], [spec.cuK, dims.cuK]]) {
        const got = isGiven(rec) ? this.readRecord(rec) : undefined;
        if (got === undefined || got.length !== want.length || got.some((x, i) => x !== want[i])) return undefined;
      }
      for (let i = 0; i < b; i++) {
        segments.push({ batch: i, q0: dims.cuQ[i], qLen: dims.cuQ[i + 1] - dims.cuQ[i], k0: dims.cuK[i], kLen: dims.cuK[i + 1] - dims.cuK[i] });
      }
    } else {
      for (let i = 0; i < b; i++) segments.push({ batch: i, q0: i * sq, qLen: sq, k0: i * sk, kLen: sk });
    }
    let slope = null;
    if (isGiven(spec.alibi)) {
      const s = this.readInput(spec.alibi);
      if (s === undefined) return undefined;
      const perBatch = spec.alibi.objectMode !== 'bare' && spec.alibi.shape.length === 2;
      slope = (batch, h) => s[perBatch ? batch * hq + h : h];
    }
    let mask = null;
    if (isGiven(spec.mask)) {
      const m = this.readRecord(spec.mask);
      if (m === undefined || m.some((x) => Number.isNaN(x) || x === Infinity)) return undefined;
      const shape = spec.mask.shape;
      const dense = denseStrides(shape);
      // Broadcast like NumPy: the mask's dimensions align at the right; extents of 1 repeat.
      mask = (batch, h, i, j) => {
        const idx = [batch, h, i, j].slice(4 - shape.length);
        let at = 0;
        for (let x = 0; x < shape.length; x++) if (shape[x] !== 1) at += idx[x] * dense[x];
        return m[at];
      };
    }
    const scale = Math.fround(spec.scale) === 0 ? 1 / Math.sqrt(d) : Math.fround(spec.scale);
    return {
      segments,
      rowsQ: dims.tq,
      rowsK: dims.tk,
      hq,
      hkv,
      d,
      dv,
      q: qv,
      k: kv,
      v: vv,
      maskMode: spec.maskMode,
      scale,
      softcap: Math.fround(spec.softcap),
      window: spec.hasWindow ? spec.window : null,
      slope,
      mask,
      maskIsBool: isGiven(spec.mask) && spec.mask.dtype === 'bool',
    };
  }

  /** Multiply-adds of an attention call (for the reference's budget). */
  work(dims) {
    return dims.b * dims.hq * Math.max(dims.sq, dims.tq) * Math.max(dims.sk, dims.tk) * (dims.d + dims.dv);
  }

  /** Compares values with a reference; returns a description of the worst element, or undefined. */
  compare(what, got, ref, tol, scaleFloor = 1) {
    if (got === undefined) return undefined;
    if (got.length !== ref.length) return `${what}: ${got.length} elements, the reference has ${ref.length}`;
    let magnitude = scaleFloor;
    for (const x of ref) if (Number.isFinite(x)) magnitude = Math.max(magnitude, Math.abs(x));
    for (let i = 0; i < ref.length; i++) {
      const a = got[i];
      const e = ref[i];
      if (e === -Infinity || a === -Infinity) {
        if (a !== e) return `${what}[${i}] = ${a}, reference ${e}`;
        continue;
      }
      if (!(Math.abs(a - e) <= tol * magnitude)) return `${what}[${i}] = ${a}, reference ${e} (tolerance ${(tol * magnitude).toExponential(2)})`;
    }
    return undefined;
  }

  finite(what, values) {
    if (values === undefined) return undefined;
    for (let i = 0; i < values.length; i++) {
      if (Number.isNaN(values[i]) || values[i] === Infinity) return `${what}[${i}] = ${values[i]} from finite inputs`;
    }
    return undefined;
  }

  /** LSE in the reference's [rows, heads] order from the binding's layout. */
  lseRows(dims, lse) {
    if (lse === undefined) return undefined;
    const out = new Float64Array(dims.tq * dims.hq);
    for (let row = 0; row < dims.tq; row++) {
      for (let h = 0; h < dims.hq; h++) {
        const at = dims.varlen ? h * dims.tq + row : (Math.floor(row / dims.sq) * dims.hq + h) * dims.sq + (row % dims.sq);
        out[row * dims.hq + h] = lse[at];
      }
    }
    return out;
  }

  // ---- operations ----

  async op_forward(isAsync = false) {
    const r = this.r;
    const u = this.u;
    const call = new Call(this, isAsync ? 'forwardAsync' : 'forward');
    const optionsMode = this.decodeOptionsMode();
    const via = r.pick(['ctx', 'fn', 'fn-context']);
    const ctxEntry = via === 'fn' ? undefined : this.pickContext();
    call.ctxEntry = ctxEntry;
    call.arenaKind = r.rarely(64) ? r.pick(BACKING_KINDS) : 'ab';
    const dims = this.decodeDims();
    const dtype = r.pick(DTYPES);
    const kvDtype = r.rarely(16) ? r.pick(DTYPES) : dtype;
    if (kvDtype !== dtype) call.sane = false;
    const shapes = this.shapes(dims);
    const device = ctxEntry !== undefined && r.rarely(40);
    const q = this.tensorArg(call, 'q', dtype, shapes.q, { ctxEntry, device });
    const k = this.tensorArg(call, 'k', kvDtype, shapes.k, { ctxEntry, device });
    const v = this.tensorArg(call, 'v', kvDtype, shapes.v, { ctxEntry, device });
    const decoded = this.decodeAttentionOptions(call, dims, dtype, ctxEntry);
    const { entries, present } = decoded;
    let spec = decoded.spec;
    if (via === 'fn-context' && !entries.some(([key]) => key === 'context')) entries.push(['context', ctxEntry.ctx]);
    let out;
    let lse;
    let outDtype = dtype;
    if (present & (1 << 12)) {
      outDtype = r.rarely(48) ? r.pick(DTYPES) : dtype;
      out = this.tensorArg(call, 'out', outDtype, shapes.out, { ctxEntry, device: device && !r.rarely(32), output: true });
      entries.push(['out', out]);
    }
    if (present & (1 << 13)) {
      lse = this.tensorArg(call, 'lse', 'f32', shapes.lse, { ctxEntry, device: device && !r.rarely(32), output: true });
      entries.push(['lse', lse]);
    }
    let returnLse = (present & (1 << 14)) !== 0 ? this.optionValue(call, 'returnLse') : undefined;
    if (returnLse !== undefined) entries.push(['returnLse', returnLse]);
    if (out === undefined && present & (1 << 15)) {
      outDtype = this.optionValue(call, 'outDtype');
      entries.push(['outDtype', outDtype]);
    }
    if (!OPTIONS_PASSED.has(optionsMode)) {
      // The options never reach the call: it runs with the defaults and allocates its outputs.
      [spec, out, lse, outDtype, returnLse] = [defaultSpec(), undefined, undefined, dtype, undefined];
      call.writes = [];
    }
    this.decodeActions(call);
    this.materialize(call);
    const options = this.optionsObject(this.resolve(entries), optionsMode);
    const [qo, ko, vo] = [q.object, k.object, v.object];
    this.log(`${call.label} via ${via}${ctxEntry ? ` ctx${ctxEntry.id}` : ''}: ${this.describeCall(call, entries, optionsMode)}`);
    const plain = Object.fromEntries(this.resolve(entries));
    call.again = (async) => (async ? u.attentionAsync : u.attention)(qo, ko, vo, plain);
    const wantsLse = isGiven(lse) || returnLse === true;
    call.verify = (value, clean) => {
      if (value === null || typeof value !== 'object' || value.out === undefined) return `returned ${describe(value)}, not { out }`;
      if (isGiven(out) && value.out !== out.object) return 'out is not the tensor passed as options.out';
      if (wantsLse && value.lse === undefined) return 'no lse although one was asked for';
      if (!clean) return undefined;
      const problem = this.problemOf(dims, spec, q, k, v);
      if (problem === undefined) return undefined;
      const gotOut = this.resultValues(out, value.out);
      const gotLse = wantsLse ? this.lseRows(dims, this.resultValues(lse, value.lse)) : undefined;
      if (this.work(dims) > REFERENCE_BUDGET) return this.finite('out', gotOut) ?? this.finite('lse', gotLse);
      const want = reference.forward(problem);
      const tol = (TOLERANCE[dtype] ?? 0.05) + (OUTPUT_ROUNDING[typeof outDtype === 'string' ? outDtype : dtype] ?? 0);
      return this.compare('out', gotOut, want.out, tol) ?? this.compare('lse', gotLse, want.lse, 1e-3, 1);
    };
    const ctx = ctxEntry?.ctx;
    const f = via === 'ctx' ? (isAsync ? ctx.attentionAsync : ctx.attention).bind(ctx) : isAsync ? u.attentionAsync : u.attention;
    if (isAsync) this.startAsync(call, () => f(qo, ko, vo, options));
    else this.runSync(call, () => f(qo, ko, vo, options));
  }

  async op_forwardAsync() {
    await this.op_forward(true);
  }

  async op_backward(isAsync = false) {
    const r = this.r;
    const u = this.u;
    const call = new Call(this, isAsync ? 'backwardAsync' : 'backward');
    const optionsMode = this.decodeOptionsMode();
    const passed = OPTIONS_PASSED.has(optionsMode);
    const via = r.pick(['ctx', 'fn', 'fn-context']);
    const ctxEntry = this.pickContext();
    call.ctxEntry = ctxEntry;
    call.arenaKind = r.rarely(64) ? r.pick(BACKING_KINDS) : 'ab';
    const dims = this.decodeDims();
    const dtype = r.pick(DTYPES);
    const shapes = this.shapes(dims);
    const device = r.rarely(40);
    const q = this.tensorArg(call, 'q', dtype, shapes.q, { ctxEntry, device });
    const k = this.tensorArg(call, 'k', dtype, shapes.k, { ctxEntry, device });
    const v = this.tensorArg(call, 'v', dtype, shapes.v, { ctxEntry, device });
    const dout = this.tensorArg(call, 'dout', dtype, shapes.out, { ctxEntry, device });
    // Usually out and lse come from a forward call on the same arguments, as backward expects.
    const consistent = !r.rarely(64);
    const out = this.tensorArg(call, 'out', consistent ? dtype : r.pick(DTYPES), shapes.out, { ctxEntry, device, output: consistent });
    const lse = r.rarely(16) ? undefined : this.tensorArg(call, 'lse', 'f32', shapes.lse, { ctxEntry, device, output: consistent });
    if (!consistent || lse === undefined) call.sane = false;
    // out and lse are inputs of the backward call; only the forward call below writes them.
    call.writes = [];
    const decoded = this.decodeAttentionOptions(call, dims, dtype, ctxEntry);
    const { entries, present } = decoded;
    const spec = passed ? decoded.spec : defaultSpec();
    if (via === 'fn-context' && !entries.some(([key]) => key === 'context')) entries.push(['context', ctxEntry.ctx]);
    const grads = {};
    let gradDtype = dtype;
    for (const [i, role, like] of [[12, 'dq', 'q'], [13, 'dk', 'k'], [14, 'dv', 'v']]) {
      if (present & (1 << i)) {
        grads[role] = this.tensorArg(call, role, r.rarely(48) ? r.pick(DTYPES) : dtype, shapes[like], { ctxEntry, device: device && !r.rarely(32), output: true });
        entries.push([role, grads[role]]);
      }
    }
    if (present & (1 << 15)) {
      gradDtype = this.optionValue(call, 'outDtype');
      entries.push(['gradDtype', gradDtype]);
    }
    if (!passed) {
      for (const role of ['dq', 'dk', 'dv']) delete grads[role];
      gradDtype = dtype;
      call.writes = [];
    }
    this.decodeActions(call);
    this.materialize(call);
    const ctx = ctxEntry.ctx;
    // The forward call that makes out and lse: plain objects, outside the hook.
    if (consistent && lse !== undefined) {
      const setup = new Call(this, 'setupForward');
      setup.records = [out, lse];
      setup.writes = [out, lse];
      // The same attention options as the backward call (none when its options do not reach it).
      const attention = passed ? Object.fromEntries(this.resolve(entries.filter(([key]) => !['dq', 'dk', 'dv', 'gradDtype'].includes(key)))) : {};
      const plainOf = (rec) => (rec.kind === 'host' ? { data: rec.view, dtype: rec.dtype, shape: rec.shape, ...(rec.strides ? { strides: rec.strides } : {}) } : rec.object);
      const { ok } = this.runSync(setup, () => ctx.attention(plainOf(q), plainOf(k), plainOf(v), { ...attention, out: plainOf(out), lse: plainOf(lse) }));
      if (!ok) call.sane = false;
    }
    const options = this.optionsObject(this.resolve(entries), optionsMode);
    const args = [q.object, k.object, v.object, out.object, dout.object, lse?.object];
    this.log(`${call.label} via ${via} ctx${ctxEntry.id}${consistent ? '' : ' (out, lse not from forward)'}: ${this.describeCall(call, entries, optionsMode)}`);
    const plain = Object.fromEntries(this.resolve(entries));
    call.again = (async) => (async ? u.attentionBackwardAsync : u.attentionBackward)(...args, plain);
    call.verify = (value, clean) => {
      if (value === null || typeof value !== 'object' || value.dq === undefined || value.dk === undefined || value.dv === undefined) return `returned ${describe(value)}, not { dq, dk, dv }`;
      for (const role of ['dq', 'dk', 'dv']) if (isGiven(grads[role]) && value[role] !== grads[role].object) return `${role} is not the tensor passed in the options`;
      if (!clean) return undefined;
      const problem = this.problemOf(dims, spec, q, k, v);
      const dO = this.readInput(dout);
      if (problem === undefined || dO === undefined) return undefined;
      const got = {};
      for (const role of ['dq', 'dk', 'dv']) got[role] = this.resultValues(grads[role], value[role]);
      if (this.work(dims) > REFERENCE_BUDGET) return this.finite('dq', got.dq) ?? this.finite('dk', got.dk) ?? this.finite('dv', got.dv);
      const want = reference.backward(problem, dO);
      const tol = (GRADIENT_TOLERANCE[dtype] ?? 0.2) + 2 * (OUTPUT_ROUNDING[typeof gradDtype === 'string' ? gradDtype : dtype] ?? 0);
      return this.compare('dq', got.dq, want.dq, tol, 0.05) ?? this.compare('dk', got.dk, want.dk, tol, 0.05) ?? this.compare('dv', got.dv, want.dv, tol, 0.05);
    };
    const f = via === 'ctx' ? (isAsync ? ctx.attentionBackwardAsync : ctx.attentionBackward).bind(ctx) : isAsync ? u.attentionBackwardAsync : u.attentionBackward;
    if (isAsync) this.startAsync(call, () => f(...args, options));
    else this.runSync(call, () => f(...args, options));
  }

  async op_backwardAsync() {
    await this.op_backward(true);
  }

  /** The classic API: dense [batch, seq, heads, head_dim] tensors, one precision. */
  async op_classic() {
    const r = this.r;
    const u = this.u;
    const call = new Call(this, 'classic');
    const optionsMode = this.decodeOptionsMode();
    const mfaEntry = this.pickMfa();
    call.mfaEntry = mfaEntry;
    const viaFunction = r.below(2) === 1;
    const b = r.pick([1, 2, 0]);
    const sq = r.pick([4, 1, 9, 0]);
    const skv = r.pick([5, 4, 1, 17]);
    const h = r.pick([2, 1, 3]);
    const d = r.pick([8, 16, 4, 64, 0, 300]);
    const dtype = r.pick(['f32', 'f16', 'bf16']);
    const q = this.hostRecord(call, 'q', dtype, [b, sq, h, d], { dense: true });
    const k = this.hostRecord(call, 'k', dtype, [b, skv, h, d], { dense: true });
    const v = this.hostRecord(call, 'v', dtype, [b, skv, h, d], { dense: true });
    const entries = [];
    const present = r.byte();
    const precisionOf = { f32: 'fp32', f16: 'fp16', bf16: 'bf16' };
    const dtypeOf = { fp32: 'f32', fp16: 'f16', bf16: 'bf16' };
    const precision = (name) => {
      if (r.rarely(24)) {
        call.sane = false;
        return r.pick(WILD_PRECISIONS);
      }
      return r.pick(PRECISIONS);
    };
    let causal = (present & 1) !== 0 && r.below(2) === 1;
    if (present & 1) entries.push(['causal', causal]);
    let input = precisionOf[dtype];
    if (present & 2) {
      input = r.rarely(48) ? precision('input') : input;
      entries.push(['inputPrecision', input]);
    }
    let output = input;
    if (present & 4) {
      output = precision('output');
      entries.push(['outputPrecision', output]);
    }
    if (present & 8) entries.push(['intermediatePrecision', precision('intermediate')]);
    let scale = 0;
    if (present & 16) {
      scale = this.optionValue(call, 'scale');
      entries.push(['softmaxScale', scale]);
    }
    const transpose = [false, false, false, false];
    if (present & 32) {
      const bits = r.byte();
      ['transposeQ', 'transposeK', 'transposeV', 'transposeO'].forEach((name, i) => {
        transpose[i] = ((bits >> i) & 1) === 1;
        entries.push([name, transpose[i]]);
      });
    }
    let out;
    if (present & 64) {
      out = this.hostRecord(call, 'out', dtypeOf[output] ?? 'f32', [b, sq, h, d], { output: true, dense: true });
      // The classic out is a bare typed array (or, as decoded, something else).
      if (out.objectMode === 'plain') out.objectMode = 'bare';
      entries.push(['out', out]);
    }
    if (!OPTIONS_PASSED.has(optionsMode)) {
      [out, input, output, scale, causal] = [undefined, precisionOf[dtype], precisionOf[dtype], 0, false];
      transpose.fill(false);
      call.writes = [];
    }
    this.decodeActions(call);
    this.materialize(call);
    const options = this.optionsObject(this.resolve(entries), optionsMode);
    this.log(`${call.label} mfa${mfaEntry.id}${viaFunction ? ' via flashAttentionForward' : ''}: ${this.describeCall(call, entries, optionsMode)}`);
    const [qo, ko, vo] = [q.object, k.object, v.object];
    const plain = Object.fromEntries(this.resolve(entries));
    call.again = () => mfaEntry.mfa.forward(qo, ko, vo, plain);
    call.hasAsync = false;
    call.verify = (value, clean) => {
      if (value === null || typeof value !== 'object' || value.data === undefined) return `returned ${describe(value)}, not a tensor`;
      if (isGiven(out) && value.data !== out.view) return 'out is not the array passed as options.out';
      if (out !== undefined && out.objectMode !== 'bare') return undefined;
      const inDtype = dtypeOf[input];
      const outDtype = dtypeOf[output];
      if (!clean || inDtype === undefined || outDtype === undefined || !q.plain || !k.plain || !v.plain) return undefined;
      // Classic memory is dense per operand: [b, s, h, d], or [b, h, d, s] when transposed.
      const read = (view, s, transposed, dt) => {
        const shape = transposed ? [b, h, d, s] : [b, s, h, d];
        const values = this.readTensor({ data: view, dtype: dt, shape });
        if (values === undefined || (view !== value.data && values.some((x) => !(Math.abs(x) <= 1e4)))) return undefined;
        if (!transposed) return values;
        const bshd = new Float64Array(values.length);
        for (let bi = 0; bi < b; bi++) for (let hi = 0; hi < h; hi++) for (let di = 0; di < d; di++) for (let si = 0; si < s; si++) {
          bshd[((bi * s + si) * h + hi) * d + di] = values[((bi * h + hi) * d + di) * s + si];
        }
        return bshd;
      };
      const qv = read(q.view, sq, transpose[0], inDtype);
      const kv = read(k.view, skv, transpose[1], inDtype);
      const vv = read(v.view, skv, transpose[2], inDtype);
      const got = read(value.data, sq, transpose[3], outDtype);
      if (qv === undefined || kv === undefined || vv === undefined || got === undefined) return undefined;
      const segments = [];
      for (let i = 0; i < b; i++) segments.push({ batch: i, q0: i * sq, qLen: sq, k0: i * skv, kLen: skv });
      const fscale = Math.fround(scale);
      const want = reference.forward({
        segments, rowsQ: b * sq, rowsK: b * skv, hq: h, hkv: h, d, dv: d, q: qv, k: kv, v: vv,
        maskMode: causal ? 1 : 0, scale: fscale === 0 ? 1 / Math.sqrt(d) : fscale, softcap: 0, window: null, slope: null, mask: null, maskIsBool: false,
      });
      return this.compare('out', got, want.out, (TOLERANCE[inDtype] ?? 0.05) + (OUTPUT_ROUNDING[outDtype] ?? 0));
    };
    // The classic out is a bare view: the call writes its first b·sq·h·d elements.
    if (out !== undefined) {
      out.shape = [Math.min(Math.floor(out.viewBytes / (DTYPE_SIZE[out.dtype] ?? 1)), b * sq * h * d)];
      out.strides = undefined;
      out.plain = true;
    }
    const f = viaFunction ? () => u.flashAttentionForward(mfaEntry.mfa, qo, ko, vo, options) : () => mfaEntry.mfa.forward(qo, ko, vo, options);
    this.runSync(call, f);
  }

  async op_newContext() {
    const r = this.r;
    const call = new Call(this, 'newContext');
    const entries = [];
    const present = r.byte();
    for (const [bit, name] of [[1, 'backend'], [2, 'numThreads'], [4, 'deviceIndex'], [8, 'workspaceLimitBytes']]) {
      if ((present & bit) === 0) continue;
      entries.push([name, r.rarely(24) ? r.pick(WILD_CONTEXT[name]) : r.pick(SANE_CONTEXT[name])]);
    }
    const mode = this.decodeOptionsMode();
    this.decodeActions(call);
    const options = this.optionsObject(entries, mode);
    this.log(`${call.label}: new Context(${mode} ${describe(Object.fromEntries(entries))})`);
    const { ok, value } = this.runSync(call, () => new this.u.Context(options));
    if (ok) {
      this.contexts.push({ ctx: value, id: this.contexts.length });
      this.log(`   = ctx${this.contexts.length - 1}`);
    }
  }

  async op_upload() {
    const r = this.r;
    const call = new Call(this, 'upload');
    const ctxEntry = this.pickContext();
    call.ctxEntry = ctxEntry;
    const dims = this.decodeDims();
    const dtype = r.rarely(32) ? r.pick(['bool', 'i32']) : r.pick(DTYPES);
    const rec = this.hostRecord(call, 'tensor', dtype, this.shapes(dims).q);
    const again = this.devices.length > 0 && r.rarely(16) ? r.pick(this.devices) : undefined;
    this.decodeActions(call);
    this.materialize(call);
    if (again !== undefined) rec.object = again.dt;
    this.log(`${call.label} ctx${ctxEntry.id}: upload ${again ? `dev${again.id}` : this.describeRecord(rec)}`);
    // What the device tensor must hold: the bytes its view spans, as they are before the call.
    const expected = rec.plain && rec.dtype in DTYPE_SIZE && rec.view !== undefined ? new Uint8Array(rec.backing.buffer, rec.byteOffset, Math.min(rec.viewBytes, spanBytes(rec.shape, rec.strides, DTYPE_SIZE[rec.dtype]))).slice() : undefined;
    const { ok, value } = this.runSync(call, () => ctxEntry.ctx.upload(rec.object));
    if (ok) {
      const entry = this.addDevice(value, ctxEntry, call.fired === 0 && call.sane ? expected : undefined);
      this.log(`   = dev${entry.id}`);
      if (!(value instanceof this.u.DeviceTensor)) this.finding('contract', `${call.label} returned ${describe(value)}, not a DeviceTensor`);
    }
  }

  async op_zeros() {
    const r = this.r;
    const call = new Call(this, 'zeros');
    const ctxEntry = this.pickContext();
    call.ctxEntry = ctxEntry;
    const dims = this.decodeDims();
    const dtype = r.rarely(32) ? r.pick(WILD_DTYPES) : r.pick(['f32', 'f16', 'bf16', 'bool', 'i32']);
    const rec = { kind: 'shape', shape: this.shapes(dims).out, shapeMode: r.rarely(48) ? r.pick(SHAPE_MODES) : 'array' };
    if (r.rarely(16)) rec.shape = r.pick([[...rec.shape, 2], rec.shape.slice(1), [], [rec.shape[0], -rec.shape[1] - 1]]);
    if (r.rarely(32) && rec.shape.length > 0) {
      const i = r.below(rec.shape.length);
      rec.shape[i] = r.pick(WILD_EXTENTS);
      // A size the machine might actually allocate (and zero) is a load test, not a safety one:
      // make it one no machine can.
      const bytes = isPlainLayout(rec.shape, undefined) ? numel(rec.shape) * (DTYPE_SIZE[dtype] ?? 1) : 0;
      if (bytes > 2 ** 26 && bytes < 2 ** 46) rec.shape[i] = 2 ** 53;
    }
    this.decodeActions(call);
    const shape = this.shapeValue(rec);
    this.log(`${call.label} ctx${ctxEntry.id}: zeros(${describe(dtype)}, ${rec.shapeMode} ${describe(rec.shape)})`);
    const { ok, value } = this.runSync(call, () => ctxEntry.ctx.zeros(dtype, shape));
    if (ok) {
      const first = ['changing', 'proxy', 'array', 'frozen'].includes(rec.shapeMode) ? rec.shape : undefined;
      if (first !== undefined && describe([...value.shape]) !== describe(first)) {
        this.finding('contract', `${call.label}: the device tensor has shape ${describe([...value.shape])}, the caller's shape read ${describe(first)}`);
      }
      const bytes = value.byteLength;
      const entry = this.addDevice(value, ctxEntry, call.fired === 0 ? new Uint8Array(bytes) : undefined);
      this.log(`   = dev${entry.id}`);
    }
  }

  async op_download() {
    const r = this.r;
    const call = new Call(this, 'download');
    if (this.devices.length === 0) return;
    const entry = r.pick(this.devices);
    let into;
    if (r.below(2) === 1) {
      const bytes = entry.dt.byteLength;
      into = this.hostRecord(call, 'into', 'bool', [bytes + r.pick([0, 0, 8, -1, -bytes])], { output: true });
      // It writes the tensor's bytes at the start of `into`, not the whole view (allowed below).
      call.writes = [];
      this.decodeActions(call);
      this.materialize(call);
    }
    this.log(`${call.label}: dev${entry.id}.download(${into ? this.describeRecord(into) : ''})`);
    // A view, or (as decoded) something that is not one.
    const target = into === undefined ? undefined : ['null', 'number', 'getters', 'proxy'].includes(into.objectMode) ? into.object : into.view;
    const { ok, value } = this.runSync(call, () => (into ? entry.dt.download(target) : entry.dt.download()));
    if (!ok) return;
    const length = entry.dt.byteLength;
    if (into !== undefined) this.mem.allowRange(into.backing, into.byteOffset, into.byteOffset + length);
    const data = value?.data;
    if (!ArrayBuffer.isView(data)) {
      this.finding('contract', `${call.label} returned ${describe(value)}`);
      return;
    }
    if (entry.expected !== undefined && call.fired === 0) {
      const real = realView(data);
      const got = new Uint8Array(real.buffer, real.byteOffset, Math.min(real.byteLength, length));
      const want = entry.expected;
      for (let i = 0; i < Math.min(want.length, got.length); i++) {
        if (got[i] !== want[i]) {
          this.finding('mismatch', `${call.label}: byte ${i} of dev${entry.id} is ${got[i]}, it was given ${want[i]}`);
          return;
        }
      }
    }
  }

  async op_deviceUpload() {
    const r = this.r;
    if (this.devices.length === 0) return;
    const call = new Call(this, 'deviceUpload');
    const entry = r.pick(this.devices);
    const bytes = entry.dt.byteLength;
    const rec = this.hostRecord(call, 'source', 'bool', [bytes + r.pick([0, 0, 8, -1, -bytes])]);
    const asTensor = r.below(2) === 1;
    this.decodeActions(call);
    this.materialize(call);
    this.log(`${call.label}: dev${entry.id}.upload(${this.describeRecord(rec)})`);
    entry.version++;
    const source = rec.view === undefined ? undefined : new Uint8Array(rec.backing.buffer, rec.byteOffset, Math.min(bytes, rec.viewBytes)).slice();
    const { ok } = this.runSync(call, () => entry.dt.upload(asTensor ? rec.object : rec.view));
    entry.expected = ok && call.fired === 0 && source?.length === bytes ? source : undefined;
  }

  async op_dispose() {
    const r = this.r;
    const what = r.pick(['device', 'context', 'mfa', 'symbol']);
    if (what === 'device' && this.devices.length > 0) {
      const e = r.pick(this.devices);
      this.log(`dev${e.id}.dispose()`);
      e.dt.dispose();
    } else if (what === 'context' && this.contexts.length > 0) {
      const e = r.pick(this.contexts);
      this.log(`ctx${e.id}.dispose()`);
      e.ctx.dispose();
    } else if (what === 'mfa' && this.mfas.length > 0) {
      const e = r.pick(this.mfas);
      this.log(`mfa${e.id}.dispose()`);
      e.mfa.dispose();
    } else if (what === 'symbol') {
      // `using` disposal, on whichever handle.
      const handles = [...this.contexts.map((e) => [`ctx${e.id}`, e.ctx]), ...this.devices.map((e) => [`dev${e.id}`, e.dt]), ...this.mfas.map((e) => [`mfa${e.id}`, e.mfa])];
      if (handles.length === 0) return;
      const [name, handle] = r.pick(handles);
      this.log(`${name}[Symbol.dispose]()`);
      handle[Symbol.dispose]();
    }
  }

  async op_await() {
    this.log(`await ${this.pending.length} pending`);
    await this.awaitAll();
  }

  /** What a caller may do between calls while async calls run: detach, resize, dispose, drop. */
  async op_between() {
    const r = this.r;
    const kind = r.pick(['detach', 'shrink', 'grow', 'lie', 'dispose-context', 'dispose-device', 'drop', 'scribble']);
    const target = r.byte();
    // Mostly the output of a call still running, else any memory a call was given.
    const running = [...this.inflight];
    const rec = running.length > 0 && target < 192 ? running[target % running.length] : this.pool.length > 0 ? this.pool[target % this.pool.length] : undefined;
    this.feature(`between:${kind}`);
    this.log(`between calls: ${kind}${rec ? ` (${rec.role} of buffer #${rec.backing.id})` : ''}`);
    switch (kind) {
      case 'detach':
        if (rec) this.mem.detach(rec.backing);
        return;
      case 'shrink':
        if (rec) this.mem.resize(rec.backing, [0, 8, rec.byteOffset + 4][target % 3]);
        return;
      case 'grow':
        if (rec && this.mem.maxByteLength(rec.backing) > 0) this.mem.resize(rec.backing, this.mem.maxByteLength(rec.backing));
        return;
      case 'lie':
        if (rec) this.lie(rec.view, LIES[target % LIES.length]);
        return;
      case 'dispose-context':
        if (this.contexts.length > 0) this.contexts[target % this.contexts.length].ctx.dispose();
        return;
      case 'dispose-device':
        if (this.devices.length > 0) this.devices[target % this.devices.length].dt.dispose();
        return;
      case 'drop':
        // Forget device tensors and contexts without disposing them: their finalizers free them,
        // possibly while an async call still uses them.
        this.devices = this.devices.filter((_, i) => i % 2 === target % 2);
        this.contexts = this.contexts.filter((_, i) => i % 2 === target % 2);
        this.mfas = this.mfas.filter((_, i) => i % 2 === target % 2);
        globalThis.gc?.({ type: 'minor' });
        await new Promise((resolve) => setImmediate(resolve));
        return;
      case 'scribble':
        if (rec && !rec.output && rec.backing.buffer.byteLength >= rec.byteOffset + rec.viewBytes) {
          new Uint8Array(rec.backing.buffer, rec.byteOffset, rec.viewBytes).fill(target);
          this.mem.wrote(rec.backing, rec.byteOffset, rec.byteOffset + rec.viewBytes);
        }
    }
  }

  /** Many small async calls at once (koffi queues those past its in-flight limit). */
  async op_burst() {
    const r = this.r;
    const u = this.u;
    // More than 64 at once fills koffi's in-flight limit (the rest wait in the driver's queue).
    const n = r.pick([2, 8, 3, 4, 2, 70, 5, 3]);
    const ctxEntry = r.below(2) === 1 ? this.pickContext() : undefined;
    const givenOut = r.below(2) === 1;
    this.log(`burst of ${n} attentionAsync${ctxEntry ? ` on ctx${ctxEntry.id}` : ''}${givenOut ? ' with out' : ''}`);
    const dims = { varlen: false, b: 1, sq: 4, sk: 5, hq: 2, hkv: 1, d: 8, dv: 8, tq: 4, tk: 5 };
    const shapes = this.shapes(dims);
    for (let i = 0; i < n; i++) {
      const call = new Call(this, 'burst');
      const q = this.hostRecord(call, 'q', 'f32', shapes.q);
      const k = this.hostRecord(call, 'k', 'f32', shapes.k);
      const v = this.hostRecord(call, 'v', 'f32', shapes.v);
      const out = givenOut ? this.hostRecord(call, 'out', 'f32', shapes.out, { output: true }) : undefined;
      this.materialize(call);
      const spec = { maskMode: 0, scale: 0, softcap: 0, window: null, hasWindow: false };
      call.verify = (value, clean) => {
        if (!clean) return undefined;
        const problem = this.problemOf(dims, spec, q, k, v);
        if (problem === undefined) return undefined;
        return this.compare('out', this.resultValues(out, value?.out), reference.forward(problem).out, TOLERANCE.f32);
      };
      const options = { ...(out ? { out: out.object } : {}), ...(ctxEntry ? { context: ctxEntry.ctx } : {}) };
      this.log(`${call.label}: ${this.describeCall(call, Object.entries(options), 'plain')}`);
      this.startAsync(call, () => u.attentionAsync(q.object, k.object, v.object, options));
    }
  }

  /** The getters and queries around calls, on live and disposed handles alike. */
  async op_query() {
    const r = this.r;
    const u = this.u;
    const what = r.pick(['ctx.backend', 'ctx.numThreads', 'ctx.nativeHandle', 'ctx.synchronize', 'dt.pointer', 'dt.byteLength', 'dt.disposed', 'backends', 'buildInfo', 'version', 'abiVersion', 'libraryPath', 'mfa.disposed']);
    const call = new Call(this, 'query');
    const ctx = this.contexts.length > 0 ? r.pick(this.contexts) : undefined;
    const dev = this.devices.length > 0 ? r.pick(this.devices) : undefined;
    const mfa = this.mfas.length > 0 ? r.pick(this.mfas) : undefined;
    const queries = {
      'ctx.backend': ctx && (() => ctx.ctx.backend),
      'ctx.numThreads': ctx && (() => ctx.ctx.numThreads),
      'ctx.nativeHandle': ctx && (() => ctx.ctx.nativeHandle),
      'ctx.synchronize': ctx && (() => ctx.ctx.synchronize()),
      'dt.pointer': dev && (() => dev.dt.pointer),
      'dt.byteLength': dev && (() => dev.dt.byteLength),
      'dt.disposed': dev && (() => dev.dt.disposed),
      backends: () => u.backends(),
      buildInfo: () => u.buildInfo(),
      version: () => u.version(),
      abiVersion: () => u.abiVersion(),
      libraryPath: () => u.libraryPath(),
      'mfa.disposed': mfa && (() => mfa.mfa.disposed),
    };
    const query = queries[what];
    if (query === undefined) return;
    this.log(`${call.label}: ${what}`);
    this.runSync(call, query);
  }

  async op_gc() {
    // Mostly a scavenge (cheap, and it collects the short-lived tensors of a program).
    const type = this.r.rarely(64) ? 'major' : 'minor';
    this.log(`gc (${type})`);
    globalThis.gc?.({ type });
    await new Promise((resolve) => setImmediate(resolve));
  }

  disposeAll() {
    const order = this.r.below(2);
    const devices = () => this.devices.forEach((e) => e.dt.dispose());
    const contexts = () => this.contexts.forEach((e) => e.ctx.dispose());
    if (order === 0) {
      devices();
      contexts();
    } else {
      contexts();
      devices();
    }
    this.mfas.forEach((e) => e.mfa.dispose());
  }

  // ---- trace ----

  describeRecord(rec) {
    if (rec.kind === 'device') return `${rec.role}: device ${rec.entry ? `dev${rec.entry.id}` : '(not made)'} ${rec.dtype} ${describe(rec.shape)}`;
    const parts = [`${rec.role}: ${describe(rec.dtypeValue)} ${rec.shapeMode !== 'array' ? `${rec.shapeMode} ` : ''}${describe(rec.shape)}`];
    if (rec.stridesMode !== 'dense') parts.push(`strides ${rec.stridesMode} ${describe(rec.stridesValue)}`);
    parts.push(`${rec.holder} of buffer #${rec.backing?.id} (${rec.backing?.kind}) @${rec.byteOffset}+${rec.viewBytes}`);
    if (rec.placement !== 'arena') parts.push(rec.placement);
    if (rec.lengthMode !== 'exact') parts.push(`length ${rec.lengthMode}`);
    if (rec.objectMode !== 'plain') parts.push(`as ${rec.objectMode}`);
    if (rec.valueMode !== 'uniform') parts.push(`values ${rec.valueMode}`);
    if (rec.lie !== undefined) parts.push(`lying ${rec.lie}`);
    return parts.join(', ');
  }

  describeValue(v) {
    if (v !== null && typeof v === 'object' && (v.kind === 'host' || v.kind === 'device')) return v.role;
    const ctx = this.contexts.find((e) => e.ctx === v);
    if (ctx !== undefined) return `ctx${ctx.id}`;
    const mfa = this.mfas.find((e) => e.mfa === v);
    return mfa !== undefined ? `mfa${mfa.id}` : describe(v);
  }

  describeCall(call, entries, optionsMode) {
    const lines = call.records.map((rec) => `\n     ${this.describeRecord(rec)}`);
    const opts = entries.map(([k, v]) => `${k}: ${this.describeValue(v)}`);
    const actions = call.actions.map((a) => `${a.kind}@${a.at}`);
    return `${lines.join('')}\n     options (${optionsMode}): { ${opts.join(', ')} }${actions.length ? `\n     hostile: ${actions.join(', ')}` : ''}`;
  }
}
