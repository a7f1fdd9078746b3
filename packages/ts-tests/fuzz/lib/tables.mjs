// The decision tables of the program decoder. In each, entry 0 is the ordinary choice (what an
// exhausted input decodes to); SANE_* tables hold values the float64 reference models, WILD_*
// tables boundary and ill-typed values that the bindings must refuse with a typed error.

export const DTYPES = ['f32', 'f32', 'f16', 'bf16', 'f32', 'f16'];
export const WILD_DTYPES = ['bool', 'i32', 'f64', 'float32', 'F16', 7, null, undefined];

/** The typed array that naturally holds each dtype. */
export const NATURAL_HOLDER = { f32: 'Float32Array', f16: 'Uint16Array', bf16: 'Uint16Array', bool: 'Uint8Array', i32: 'Int32Array' };

/** Holders besides the natural one: raw bytes (accepted for any dtype) and wrong element types. */
export const OTHER_HOLDERS = [
  'Uint8Array',
  'DataView',
  'Int8Array',
  'Uint8ClampedArray',
  'Float64Array',
  'Int16Array',
  'Float32Array',
  'Int32Array',
  'Uint32Array',
  'BigInt64Array',
  'Uint16Array',
];

export const HOLDERS = {
  Float32Array,
  Float64Array,
  Uint16Array,
  Int16Array,
  Uint8Array,
  Int8Array,
  Uint8ClampedArray,
  Int32Array,
  Uint32Array,
  BigInt64Array,
  DataView,
};

export const RAW_HOLDERS = new Set(['Uint8Array', 'Int8Array', 'Uint8ClampedArray', 'DataView']);

export function holderSize(holder) {
  return holder === 'DataView' ? 1 : HOLDERS[holder].BYTES_PER_ELEMENT;
}

/** Extents no buffer here can back (the decoder keeps their strides nonzero). */
export const WILD_EXTENTS = [2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 32 + 1, 2 ** 53 - 1, 2 ** 53, -1, -(2 ** 31), 1.5, NaN, Infinity, 2 ** 62, '4', 4n, null, undefined];

export const STRIDE_MODES = ['dense', 'explicit', 'permuted', 'padded', 'broadcast', 'negative', 'overlapping', 'huge', 'wrong-rank', 'fractional', 'null', 'not-array'];
export const PLACEMENTS = ['arena', 'fresh', 'alias', 'overlap', 'adjacent', 'pooled'];
export const BACKING_KINDS = ['ab', 'sab', 'resizable', 'growable'];
export const LENGTH_MODES = ['exact', 'longer', 'shorter', 'empty', 'tracking'];
export const OBJECT_MODES = ['plain', 'helper', 'getters', 'proxy', 'class', 'frozen', 'bare', 'null', 'number'];
export const SHAPE_MODES = ['array', 'proxy', 'changing', 'frozen', 'typed', 'array-like', 'holey', 'string'];
export const VALUE_MODES = ['uniform', 'ints', 'zeros', 'special'];
export const SHAPE_CHANGES = ['same', 'off-by-one', 'wild', 'rank-down', 'rank-up', 'zero'];
export const LIES = ['byteLength', 'length', 'byteOffset', 'buffer'];

export const SANE = {
  scale: [0.125, 0.5, 1, 0.25, -0.5, 2, 0.01, 0],
  causal: [true, false, 'top-left', 'bottom-right'],
  maskMode: ['none', 'causal-top-left', 'causal-bottom-right', 0, 1, 2],
  window: [[2, 0], [-1, -1], [0, 0], { left: 1 }, { right: 3 }, [3, 1], [-5, 2], [1, -1], {}, [0, 4]],
  softcap: [5, 0, 30, 0.5, 1e-3, 2],
  returnLse: [true, false],
  outDtype: ['f32', 'f16', 'bf16'],
  deterministic: [true, false],
  stream: [0n, 0, 1n, 123456789n],
};

export const WILD = {
  scale: [NaN, Infinity, -Infinity, 1e-50, 1e40, 3.4028234663852886e38, -0, 1e30, '0.5', 5n, { valueOf: () => 1 }, null],
  causal: ['sideways', 1, 0, null, 'true'],
  maskMode: [3, -1, 2 ** 32 + 1, 1.5, 'bogus', null, 2 ** 32, NaN],
  window: [[2 ** 53, 0], [NaN, 1], [1.5, 0], 'x', [2 ** 31, -(2 ** 53)], [0], null, [2 ** 63, 0], [-(2 ** 63), 0]],
  softcap: [-1, NaN, Infinity, 1e40, 1e-50, -0],
  returnLse: [1, 'yes', null],
  outDtype: WILD_DTYPES,
  deterministic: [1, 'no', null],
  stream: [-1n, 2n ** 64n, 2n ** 64n - 1n, 'x', 1.5, -1, 2 ** 53],
  maxSeqlen: [1, -1, 2 ** 31, 1.5, 2 ** 53, '3', 2 ** 63],
};

export const SANE_CONTEXT = {
  backend: [undefined, 'cpu', 'auto'],
  numThreads: [1, 2, 0, undefined],
  deviceIndex: [undefined, 0],
  workspaceLimitBytes: [undefined, 0, 1 << 20, 64, 1n << 30n, 1],
};

export const WILD_CONTEXT = {
  backend: ['cuda', 'gpu', 1, null],
  numThreads: [-1, 2 ** 31 - 1, 2 ** 31, 2 ** 32 + 1, 1.5, NaN, '2', 3n],
  deviceIndex: [1, -1, 2 ** 31, 1.5],
  workspaceLimitBytes: [-1, -1n, 2n ** 64n, 2 ** 53, 1.5, 'big'],
};

export const PRECISIONS = ['fp32', 'fp16', 'bf16'];
export const WILD_PRECISIONS = ['fp64', 'f32', 5, null];

/** Hostile actions a getter can take at the k-th read of a call's values. */
export const ACTIONS = [
  'detach',
  'shrink',
  'grow',
  'dispose-context',
  'dispose-device',
  'nested-sync',
  'nested-async',
  'throw',
  'lie',
  'gc',
  'dispose-mfa',
  'scribble',
];

/** Special element values (non-finite, huge, subnormal). */
export const SPECIAL_VALUES = [NaN, Infinity, -Infinity, 65504, 1e30, -0, 1e-40, 3e38, -3e38, 1e-8];
