// A small reader for NumPy .npy files (format 1.0/2.0, little-endian, C order).
import { readFileSync } from 'node:fs';

export interface Npy {
  descr: string;
  shape: number[];
  /** The payload as its own ArrayBuffer (aligned for any element type). */
  bytes: ArrayBuffer;
}

export function readNpy(path: string): Npy {
  const buf = readFileSync(path);
  if (buf.readUInt32BE(0) !== 0x934e554d || buf.toString('latin1', 4, 6) !== 'PY') {
    throw new Error(`${path}: not a .npy file`);
  }
  const major = buf[6] as number;
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new Error(`${path}: unreadable header ${header}`);
  }
  if (fortran !== 'False') throw new Error(`${path}: Fortran order is not supported`);
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(Number);
  const payload = buf.subarray(start + headerLen);
  const bytes = new ArrayBuffer(payload.length);
  new Uint8Array(bytes).set(payload);
  return { descr, shape, bytes };
}

/** The payload as the typed array its descr implies. */
export function npyData(n: Npy): ArrayBufferView {
  switch (n.descr) {
    case '<f4':
      return new Float32Array(n.bytes);
    case '<f2':
    case '<u2':
      return new Uint16Array(n.bytes);
    case '|u1':
    case '|b1':
      return new Uint8Array(n.bytes);
    case '<i4':
      return new Int32Array(n.bytes);
    default:
      throw new Error(`unsupported .npy descr ${n.descr}`);
  }
}
