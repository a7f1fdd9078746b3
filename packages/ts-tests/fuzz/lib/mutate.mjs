// Byte-level mutations of corpus entries (libFuzzer's and AFL's usual set): bit flips, byte and
// word overwrites with boundary values, inserts, erases, in-place copies and splices of two
// entries, stacked a few at a time.

const INTERESTING_BYTES = [0, 1, 2, 0x7f, 0x80, 0xff, 0xfe, 0x10, 0x40, 0xc0, 0xbf];

/** Little-endian encodings of boundary values: integers of every width, and float64 specials. */
const INTERESTING_WORDS = (() => {
  const words = [];
  const u32 = (x) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, x >>> 0, true);
    return b;
  };
  const f64 = (x) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, x, true);
    return b;
  };
  for (const x of [0, 1, 0xffffffff, 0x7fffffff, 0x80000000, 0xffff, 0x8000, 0x10000]) words.push(u32(x));
  for (const x of [0, -1, -0, 2 ** 31, 2 ** 32, 2 ** 53, -(2 ** 53), NaN, Infinity, -Infinity, 1e-50, 1e40, 0.5]) words.push(f64(x));
  words.push(Uint8Array.of(0xff, 0xff), Uint8Array.of(0, 0x80), Uint8Array.of(0xff, 0x7f));
  return words;
})();

export class Mutator {
  /**
   * @param {import('./bytes.mjs').Rng} rng
   * @param {number} maxLength - longest input made
   */
  constructor(rng, maxLength) {
    this.rng = rng;
    this.maxLength = maxLength;
  }

  /**
   * A mutant of `base`: one to eight stacked mutations, some of which take bytes from `other`
   * (another corpus entry) when given.
   *
   * @param {Uint8Array} base
   * @param {Uint8Array | undefined} other
   */
  mutate(base, other) {
    let data = Array.from(base);
    const rounds = 1 << this.rng.below(4);
    for (let i = 0; i < rounds; i++) data = this.#once(data, other);
    if (data.length > this.maxLength) data.length = this.maxLength;
    return Uint8Array.from(data);
  }

  #once(data, other) {
    const rng = this.rng;
    const at = (extra = 0) => rng.below(data.length + extra);
    switch (rng.below(other && other.length > 0 ? 12 : 10)) {
      case 0: // flip one bit
        if (data.length === 0) return [rng.below(256)];
        data[at()] ^= 1 << rng.below(8);
        return data;
      case 1: // a random byte
        if (data.length === 0) return [rng.below(256)];
        data[at()] = rng.below(256);
        return data;
      case 2: // a boundary byte
        if (data.length === 0) return [rng.pick(INTERESTING_BYTES)];
        data[at()] = rng.pick(INTERESTING_BYTES);
        return data;
      case 3: { // a boundary word, overwriting (or appending past the end)
        const w = rng.pick(INTERESTING_WORDS);
        const p = at(1);
        for (let j = 0; j < w.length; j++) data[p + j] = w[j];
        return data;
      }
      case 4: // nudge a byte
        if (data.length === 0) return [1];
        {
          const p = at();
          data[p] = (data[p] + (rng.below(2) ? 1 : 255) * (1 + rng.below(4))) & 0xff;
        }
        return data;
      case 5: { // insert random bytes
        const n = 1 + rng.below(8);
        const bytes = Array.from({ length: n }, () => rng.below(256));
        data.splice(at(1), 0, ...bytes);
        return data;
      }
      case 6: { // insert a run of one byte
        const n = 1 + rng.below(16);
        data.splice(at(1), 0, ...new Array(n).fill(rng.pick(INTERESTING_BYTES)));
        return data;
      }
      case 7: // erase a range
        if (data.length <= 1) return data;
        data.splice(at(), 1 + rng.below(Math.min(16, data.length - 1)));
        return data;
      case 8: { // copy a chunk elsewhere in the same input
        if (data.length < 2) return data;
        const from = at();
        const n = 1 + rng.below(Math.min(32, data.length - from));
        const chunk = data.slice(from, from + n);
        if (rng.below(2)) data.splice(at(1), 0, ...chunk);
        else {
          const to = at();
          for (let j = 0; j < chunk.length && to + j < data.length; j++) data[to + j] = chunk[j];
        }
        return data;
      }
      case 9: // truncate
        if (data.length <= 1) return data;
        data.length = 1 + at();
        return data;
      case 10: { // splice: a prefix of this entry, a suffix of the other
        const cutA = at(1);
        const cutB = rng.below(other.length + 1);
        return data.slice(0, cutA).concat(Array.from(other.subarray(cutB)));
      }
      default: { // insert a chunk of the other entry
        const from = rng.below(other.length);
        const n = 1 + rng.below(Math.min(64, other.length - from));
        data.splice(at(1), 0, ...other.subarray(from, from + n));
        return data;
      }
    }
  }
}
