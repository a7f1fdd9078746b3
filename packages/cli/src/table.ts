import { visibleLength } from './term.js';

export type Align = 'left' | 'right';

/** Renders rows as an aligned text table with a header and a rule under it. */
export function renderTable(header: readonly string[], rows: readonly (readonly string[])[], align?: readonly Align[]): string {
  const widths = header.map((h, i) => Math.max(visibleLength(h), ...rows.map((r) => visibleLength(r[i] ?? ''))));
  const cell = (s: string, i: number) => {
    const pad = ' '.repeat(Math.max(0, (widths[i] ?? 0) - visibleLength(s)));
    return (align?.[i] ?? 'left') === 'right' ? pad + s : s + pad;
  };
  const line = (r: readonly string[]) => r.map((s, i) => cell(s, i)).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** Bytes as a short human string (KiB, MiB, GiB). */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[u]}`;
}

/** A FLOP rate in the unit that suits it (GFLOP/s below 1 TFLOP/s). */
export function formatRate(flopsPerSecond: number): string {
  if (!Number.isFinite(flopsPerSecond)) return '-';
  if (flopsPerSecond >= 1e12) return `${(flopsPerSecond / 1e12).toFixed(2)} TFLOP/s`;
  if (flopsPerSecond >= 1e10) return `${(flopsPerSecond / 1e9).toFixed(1)} GFLOP/s`;
  return `${(flopsPerSecond / 1e9).toPrecision(3)} GFLOP/s`;
}

/** Milliseconds with three significant digits (at least 3 decimals below 1 ms). */
export function formatMs(ms: number): string {
  if (ms >= 100) return ms.toFixed(1);
  if (ms >= 10) return ms.toFixed(2);
  return ms.toFixed(3);
}
