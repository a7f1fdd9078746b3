/**
 * A small, dependency-free SVG line chart: throughput against sequence length, one line per
 * series, a log₂ x axis when the sequence lengths span more than a factor of 4.
 */
export interface Series {
  label: string;
  points: { x: number; y: number }[];
}

export interface PlotOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const num = (v: number) => (Math.round(v * 100) / 100).toString();

/** "Nice" tick values covering [0, max]. */
function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 2.5, 5, 10].find((m) => m * mag >= raw) ?? 10) * mag;
  const ticks: number[] = [];
  for (let t = 0; t <= max + step * 0.999; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

/**
 * An axis label: integers in full ("1024", "32768"; a power of two is never rounded), round
 * thousands from 10000 up as "10k", "250k", other values to four significant digits.
 */
export const tickLabel = (t: number): string => {
  if (Number.isInteger(t)) return Math.abs(t) >= 10000 && t % 1000 === 0 ? `${t / 1000}k` : String(t);
  return String(Number(t.toPrecision(4)));
};

export function renderPlot(series: readonly Series[], opts: PlotOptions): string {
  const width = opts.width ?? 720;
  const height = opts.height ?? 440;
  const legendWidth = 210;
  const m = { left: 64, right: legendWidth + 16, top: 40, bottom: 52 };
  const pw = width - m.left - m.right;
  const ph = height - m.top - m.bottom;
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p.x)))].sort((a, b) => a - b);
  const ys = series.flatMap((s) => s.points.map((p) => p.y)).filter((y) => Number.isFinite(y));
  const xMin = xs[0] ?? 1;
  const xMax = xs.at(-1) ?? 1;
  const logX = xMin > 0 && xMax / xMin > 4;
  const yTicks = niceTicks(Math.max(...ys, 0) * 1.05);
  const yMax = yTicks.at(-1) ?? 1;
  const fx = (x: number) => {
    if (xMax === xMin) return m.left + pw / 2;
    const t = logX ? (Math.log2(x) - Math.log2(xMin)) / (Math.log2(xMax) - Math.log2(xMin)) : (x - xMin) / (xMax - xMin);
    return m.left + t * pw;
  };
  const fy = (y: number) => m.top + ph - (y / yMax) * ph;

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(`<text x="${m.left}" y="${m.top - 16}" font-size="15" font-weight="600">${esc(opts.title)}</text>`);
  // grid and y ticks
  for (const t of yTicks) {
    const y = num(fy(t));
    out.push(`<line x1="${m.left}" y1="${y}" x2="${m.left + pw}" y2="${y}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${m.left - 8}" y="${y}" text-anchor="end" dominant-baseline="middle" fill="#444">${tickLabel(t)}</text>`);
  }
  for (const x of xs) {
    const px = num(fx(x));
    out.push(`<line x1="${px}" y1="${m.top + ph}" x2="${px}" y2="${m.top + ph + 5}" stroke="#444"/>`);
    out.push(`<text x="${px}" y="${m.top + ph + 18}" text-anchor="middle" fill="#444">${tickLabel(x)}</text>`);
  }
  out.push(`<line x1="${m.left}" y1="${m.top + ph}" x2="${m.left + pw}" y2="${m.top + ph}" stroke="#444"/>`);
  out.push(`<line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${m.top + ph}" stroke="#444"/>`);
  out.push(`<text x="${m.left + pw / 2}" y="${height - 12}" text-anchor="middle">${esc(opts.xLabel)}${logX ? ' (log scale)' : ''}</text>`);
  out.push(`<text transform="translate(16 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(opts.yLabel)}</text>`);
  // series
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length] as string;
    const pts = s.points.filter((p) => Number.isFinite(p.y)).sort((a, b) => a.x - b.x);
    if (pts.length > 1) {
      out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map((p) => `${num(fx(p.x))},${num(fy(p.y))}`).join(' ')}"/>`);
    }
    for (const p of pts) out.push(`<circle cx="${num(fx(p.x))}" cy="${num(fy(p.y))}" r="3" fill="${color}"><title>${esc(s.label)}: ${tickLabel(p.x)} → ${p.y.toPrecision(4)}</title></circle>`);
    const ly = m.top + 8 + i * 18;
    const lx = m.left + pw + 20;
    out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 18}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    out.push(`<text x="${lx + 24}" y="${ly}" dominant-baseline="middle">${esc(s.label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
