// Every field of the C ABI's option structs is reachable from TypeScript under a camelCase name:
// the fields are read from include/umfa.h itself, so a field added to the header without a
// TypeScript option (or an explicit note that the binding fills it) fails here. For each
// option, encoding it must change exactly the bytes of its field(s) in the struct.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  encodeContextOptions,
  encodeOptions,
  Frame,
  Layout,
  tensor,
  type AttentionOptions,
  type ContextOptions,
} from '../src/internal.js';

const header = readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'include', 'umfa.h'), 'utf8');

/** Field names and C types of `typedef struct NAME { ... } NAME;` in the header, in order. */
function structFields(name: string): { field: string; type: string }[] {
  const m = new RegExp(`typedef struct ${name} \\{([\\s\\S]*?)\\} ${name};`).exec(header);
  if (!m) throw new Error(`struct ${name} not found in include/umfa.h`);
  const body = (m[1] as string).replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  const fields: { field: string; type: string }[] = [];
  for (const decl of body.split(';')) {
    const d = decl.trim().replace(/\s+/g, ' ');
    if (!d) continue;
    const f = /^(.*?)[\s*]+(\w+)$/.exec(d);
    if (!f) throw new Error(`cannot parse field "${d}" of ${name}`);
    fields.push({ type: (f[1] as string).trim() + (d.includes('*') ? '*' : ''), field: f[2] as string });
  }
  return fields;
}

const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
const sizeOf = (type: string) => (type.endsWith('*') || /64/.test(type) ? 8 : 4);

/**
 * How each field of umfa_attention_options is set from TypeScript: an option value that sets it,
 * or `null` for the fields a binding fills itself (the struct size, the per-call message buffer).
 */
const attentionFields: Record<string, Partial<AttentionOptions> | null> = {
  struct_size: null,
  mask_mode: { maskMode: 'causal-top-left' },
  softmax_scale: { scale: 0.25 },
  softcap: { softcap: 30 },
  has_window: { window: [3, 0] },
  flags: { deterministic: true },
  window_left: { window: [3, -1] },
  window_right: { window: [-1, 5] },
  attn_mask: { attnMask: tensor(new Uint8Array(4), [2, 2], { dtype: 'bool' }) },
  alibi_slopes: { alibiSlopes: Float32Array.from([0.5, 0.25]) },
  cu_seqlens_q: { cuSeqlensQ: Int32Array.from([0, 2]) },
  cu_seqlens_k: { cuSeqlensK: Int32Array.from([0, 2]) },
  max_seqlen_q: { maxSeqlenQ: 7 },
  max_seqlen_k: { maxSeqlenK: 9 },
  stream: { stream: 0x1234n },
  // The per-call error message: the binding passes its own buffer.
  error_message: null,
  error_message_capacity: null,
};

const contextFields: Record<string, Partial<ContextOptions> | null> = {
  struct_size: null,
  backend: { backend: 'cuda' },
  device_index: { deviceIndex: 1 },
  num_threads: { numThreads: 3 },
  workspace_limit_bytes: { workspaceLimitBytes: 1n << 40n },
};

function changedBytes(a: Uint8Array, b: Uint8Array, end: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < end; i++) if (a[i] !== b[i]) out.push(i);
  return out;
}

describe('every ABI option has a camelCase TypeScript option', () => {
  it('umfa_attention_options', () => {
    const fields = structFields('umfa_attention_options');
    expect(fields.length).toBeGreaterThan(10);
    const unmapped = fields.map((f) => f.field).filter((f) => !(f in attentionFields));
    expect(unmapped, 'header fields without a TypeScript option').toEqual([]);
    const offsets = Layout.options as Record<string, number>;
    const encode = (o: AttentionOptions) => {
      const f = new Frame();
      encodeOptions(f, o);
      return new Uint8Array(f.buffer);
    };
    const base = encode({});
    for (const { field, type } of fields) {
      const option = attentionFields[field];
      if (option === null || option === undefined) continue;
      const key = Object.keys(option)[0] as string;
      expect(key, `${field} is spelled in camelCase`).toMatch(/^[a-z][a-zA-Z]*$/);
      const offset = offsets[camel(field)];
      expect(offset, `Layout.options.${camel(field)}`).toBeTypeOf('number');
      const changed = changedBytes(base, encode(option), Layout.OPTIONS_SIZE);
      const inField = changed.filter((i) => i >= (offset as number) && i < (offset as number) + sizeOf(type));
      expect(inField.length, `${key} sets ${field}`).toBeGreaterThan(0);
    }
  });

  it('umfa_context_options', () => {
    const fields = structFields('umfa_context_options');
    const unmapped = fields.map((f) => f.field).filter((f) => !(f in contextFields));
    expect(unmapped, 'header fields without a TypeScript option').toEqual([]);
    const base = encodeContextOptions({});
    let offset = 0;
    for (const { field, type } of fields) {
      const size = sizeOf(type);
      offset = Math.ceil(offset / size) * size;
      const option = contextFields[field];
      if (option) {
        const changed = changedBytes(base, encodeContextOptions(option), Layout.CONTEXT_OPTIONS_SIZE);
        expect(changed.some((i) => i >= offset && i < offset + size), `${Object.keys(option)[0]} sets ${field}`).toBe(true);
      }
      offset += size;
    }
    expect(offset).toBe(Layout.CONTEXT_OPTIONS_SIZE);
  });
});
