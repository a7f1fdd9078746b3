// Coverage feedback from V8's precise block coverage, taken in-process through the inspector
// after every input (taking it resets the counters).
//
// V8 reports, per function, the function's range and the nested ranges of its blocks with their
// execution counts, but it drops a nested range whose count equals its parent's. So a block
// executed exactly as often as its enclosing block does not show up by itself. This module keeps
// every range it has ever seen as a known block, and gives each known block the count of the
// innermost range reported in this run that contains it: that is the block's true count.
import { Session } from 'node:inspector';

/** AFL-style hit-count buckets: 1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+. */
function bucket(count) {
  if (count <= 3) return count - 1;
  if (count < 8) return 3;
  if (count < 16) return 4;
  if (count < 32) return 5;
  if (count < 128) return 6;
  return 7;
}

export class BlockCoverage {
  /** @param {(url: string) => boolean} include - which scripts count */
  constructor(include) {
    this.include = include;
    this.session = new Session();
    /** `url#start:end` → block id. */
    this.ids = new Map();
    /** `url#functionStart` → the known blocks of that function. */
    this.functions = new Map();
    /** Ids of the blocks any input has executed. */
    this.covered = new Set();
    /** `id * 8 + bucket` pairs any input has reached. */
    this.buckets = new Set();
  }

  /** Starts counting; call before the code to measure is loaded. */
  start() {
    this.session.connect();
    this.#post('Profiler.enable');
    this.#post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
    this.#post('Profiler.takePreciseCoverage');
  }

  // Session.post on the main thread answers before it returns.
  #post(method, params) {
    let result;
    let error;
    this.session.post(method, params, (e, r) => {
      error = e;
      result = r;
    });
    if (error) throw error;
    return result;
  }

  /**
   * Takes the counts of the input that just ran.
   *
   * @returns {{ blocks: number[], pairs: number[] }} the blocks and (block, bucket) pairs the
   *   input reached that no committed input did
   */
  take() {
    const { result } = this.#post('Profiler.takePreciseCoverage');
    const blocks = [];
    const pairs = [];
    for (const script of result) {
      if (!this.include(script.url)) continue;
      for (const fn of script.functions) {
        const ranges = fn.ranges;
        if (ranges.length === 0) continue;
        const known = this.#register(script.url, ranges);
        const top = ranges[0];
        if (top.count === 0) continue;
        for (const b of known) {
          let count = top.count;
          let width = top.endOffset - top.startOffset;
          for (const r of ranges) {
            // Ranges come outermost first, so among equal widths the later one is the inner.
            if (r.startOffset <= b.start && b.end <= r.endOffset && r.endOffset - r.startOffset <= width) {
              width = r.endOffset - r.startOffset;
              count = r.count;
            }
          }
          if (count === 0) continue;
          if (!this.covered.has(b.id)) blocks.push(b.id);
          const pair = b.id * 8 + bucket(count);
          if (!this.buckets.has(pair)) pairs.push(pair);
        }
      }
    }
    return { blocks: [...new Set(blocks)], pairs: [...new Set(pairs)] };
  }

  /** Known blocks no input has executed: `{ url, start, end }`, by script and offset. */
  uncovered() {
    const out = [];
    for (const [key, blocks] of this.functions) {
      const url = key.slice(0, key.lastIndexOf('#'));
      for (const b of blocks) if (!this.covered.has(b.id)) out.push({ url, start: b.start, end: b.end });
    }
    return out.sort((a, b) => (a.url === b.url ? a.start - b.start : a.url < b.url ? -1 : 1));
  }

  /** Records what {@link BlockCoverage.take} returned as reached. */
  commit({ blocks, pairs }) {
    for (const id of blocks) this.covered.add(id);
    for (const p of pairs) this.buckets.add(p);
  }

  #register(url, ranges) {
    const key = `${url}#${ranges[0].startOffset}`;
    let known = this.functions.get(key);
    if (known === undefined) {
      known = [];
      this.functions.set(key, known);
    }
    for (const r of ranges) {
      const id = `${url}#${r.startOffset}:${r.endOffset}`;
      if (this.ids.has(id)) continue;
      const b = { start: r.startOffset, end: r.endOffset, id: this.ids.size };
      this.ids.set(id, b.id);
      known.push(b);
    }
    return known;
  }
}
