// Reading fuzz input bytes as decisions (in the manner of libFuzzer's FuzzedDataProvider), and
// the small deterministic PRNG the mutator and the value generator use.

/**
 * Hands out the bytes of one input as decisions. Once the bytes run out every read returns 0, so
 * every decision table lists its most ordinary choice first: a short input decodes to a short,
 * valid program, and a mutation changes one decision without shifting the meaning of the rest
 * more than it must.
 */
export class ByteReader {
  /** @param {Uint8Array} bytes */
  constructor(bytes) {
    this.bytes = bytes;
    this.pos = 0;
  }

  get remaining() {
    return this.bytes.length - this.pos;
  }

  byte() {
    return this.pos < this.bytes.length ? this.bytes[this.pos++] : 0;
  }

  /** An integer in [0, n), n <= 65536. */
  below(n) {
    if (n <= 1) return 0;
    if (n <= 256) return this.byte() % n;
    return (this.byte() | (this.byte() << 8)) % n;
  }

  /** One of `choices` (the first when the input has run out). */
  pick(choices) {
    return choices[this.below(choices.length)];
  }

  /** True for about `odds` out of 256 byte values; false once the input has run out. */
  rarely(odds) {
    return this.byte() >= 256 - odds;
  }
}

/** mulberry32: small, fast, and good enough to drive mutations and fill tensors. */
export class Rng {
  constructor(seed) {
    this.state = seed >>> 0 || 0x9e3779b9;
  }

  next() {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  below(n) {
    return Math.floor(this.next() * n);
  }

  pick(choices) {
    return choices[this.below(choices.length)];
  }
}
