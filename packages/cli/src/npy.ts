/**
 * A reader for NumPy's .npy format (versions 1–3), enough for the conformance vectors: little
 * endian f4/f2/u2/u1/i4/f8 (and `|b1`), C order, any shape including empty ones.
 */
import { readFileSync } from 'node:fs';

export interface NpyArray {
  /** NumPy's dtype string, e.g. `<f4`. */
  descr: string;
  shape: number[];
  /** The elements as a typed array of the matching kind (f2 and u2 as Uint16Array bits). */
  data: Float32Array | Float64Array | Uint16Array | Uint8Array | Int32Array;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

export class NpyError extends Error {}

export function parseNpy(bytes: Uint8Array, name = 'array'): NpyArray {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) throw new NpyError(`${name}: not a .npy file`);
  const major = bytes[6] as number;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let start: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    headerLen = view.getUint32(8, true);
    start = 12;
  } else {
    throw new NpyError(`${name}: unsupported .npy version ${major}`);
  }
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw new NpyError(`${name}: malformed header ${JSON.stringify(header)}`);
  if (fortran === 'True') throw new NpyError(`${name}: Fortran order is not supported`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => Number(s));
  if (shape.some((n) => !Number.isInteger(n) || n < 0)) throw new NpyError(`${name}: bad shape (${shapeText})`);
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = start + headerLen;
  const kinds: Record<string, [number, (buf: ArrayBuffer) => NpyArray['data']]> = {
    '<f4': [4, (b) => new Float32Array(b)],
    '<f8': [8, (b) => new Float64Array(b)],
    '<f2': [2, (b) => new Uint16Array(b)],
    '<u2': [2, (b) => new Uint16Array(b)],
    '|u1': [1, (b) => new Uint8Array(b)],
    '|b1': [1, (b) => new Uint8Array(b)],
    '<i4': [4, (b) => new Int32Array(b)],
  };
  const kind = kinds[descr];
  if (!kind) throw new NpyError(`${name}: unsupported dtype ${descr}`);
  const byteLength = count * kind[0];
  if (bytes.length - offset < byteLength) {
    throw new NpyError(`${name}: truncated: ${bytes.length - offset} data bytes, shape (${shape.join(', ')}) needs ${byteLength}`);
  }
  // Copy into a fresh, aligned buffer (the file's data offset need not be aligned).
  const buf = new ArrayBuffer(byteLength);
  new Uint8Array(buf).set(bytes.subarray(offset, offset + byteLength));
  return { descr, shape, data: kind[1](buf) };
}

export function readNpy(path: string): NpyArray {
  return parseNpy(readFileSync(path), path);
}
