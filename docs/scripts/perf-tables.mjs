#!/usr/bin/env node
// Fills the tables of docs/performance.md from committed benchmark results.
//
//   node docs/scripts/perf-tables.mjs          rewrite the tables between the markers
//   node docs/scripts/perf-tables.mjs --check  exit 1 when the page differs from the results
//
// A table slot in the page is
//   <!-- perf-table: bench/results/NAME.json [columns=a,b,c] -->
//   ...generated...
//   <!-- /perf-table -->
// The results file must say where its numbers come from: `meta.date`, `meta.machine` and
// `meta.command` (the command that reproduces it). Rows are `results` (the `umfa bench --json`
// schema, see docs/cli.md) or `rows` (any flat objects). A slot whose file does not exist yet
// says so, with the command that will produce it; no figure is ever typed into the page by hand.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// --root DIR: work on another checkout (tests); default: this repository.
const rootArg = process.argv.indexOf("--root");
const repo = rootArg > 0 ? process.argv[rootArg + 1] : join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const page = join(repo, "docs", "performance.md");

const fmt = (v) => {
  if (typeof v === "number") {
    if (!Number.isFinite(v)) return String(v);
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    return a >= 100 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toPrecision(3);
  }
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (v === null || v === undefined) return "";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v).replace(/\|/g, "\\|");
};

function machineText(m) {
  if (!m) return "unknown machine";
  if (typeof m === "string") return m;
  return [m.cpu, m.gpu, m.cores && `${m.cores} cores`, m.platform && `${m.platform}-${m.arch}`].filter(Boolean).join(", ");
}

/** Flattens one `umfa bench --json` result into table cells. */
function benchRow(r) {
  const shape = `${r.batch}×${r.seqlenQ}${r.seqlenK !== r.seqlenQ ? `/${r.seqlenK}` : ""}×${r.heads}${r.kvHeads !== r.heads ? `/${r.kvHeads}` : ""}×${r.headDim}`;
  return {
    direction: r.direction,
    backend: r.backend,
    dtype: r.dtype,
    "B×N×H×D": shape,
    causal: r.causal,
    "median ms": r.ms?.median,
    "TFLOP/s": r.tflops,
  };
}

function table(rel, columns) {
  const file = join(repo, rel);
  if (!existsSync(file)) {
    return `_Slot: no results yet. This table is generated from \`${rel}\` once a benchmark run commits it._`;
  }
  const data = JSON.parse(readFileSync(file, "utf8"));
  const meta = data.meta ?? {};
  for (const k of ["date", "machine", "command"]) {
    if (!meta[k]) throw new Error(`${rel}: meta.${k} is missing; results must say when, where and how they were measured`);
  }
  let rows = data.results ? data.results.map(benchRow) : data.rows;
  if (!Array.isArray(rows) || !rows.length) throw new Error(`${rel}: no rows`);
  const cols = columns ?? Object.keys(rows[0]);
  const out = [];
  out.push(`Measured ${String(meta.date).slice(0, 10)} on ${machineText(meta.machine)}${meta.umfa?.version ? `, umfa ${meta.umfa.version}` : ""}. Reproduce: \`${meta.command}\` (results: [\`${rel}\`](../${rel})).`, "");
  out.push(`| ${cols.join(" | ")} |`, `| ${cols.map(() => "---").join(" | ")} |`);
  for (const r of rows) out.push(`| ${cols.map((c) => fmt(r[c])).join(" | ")} |`);
  return out.join("\n");
}

const SLOT = /(<!-- perf-table: (\S+)(?: columns=(\S+))? -->\n)([\s\S]*?)(<!-- \/perf-table -->)/g;
const text = readFileSync(page, "utf8");
const next = text.replace(SLOT, (all, open, rel, cols, body, close) => `${open}${table(rel, cols?.split(","))}\n${close}`);
if (process.argv.includes("--check")) {
  // A table that shows figures must match its committed results exactly. A slot still empty
  // while its results file exists only warns (whoever commits results regenerates the page).
  const errors = [];
  const warnings = [];
  const want = new Map([...next.matchAll(SLOT)].map((m) => [m[2], m[4]]));
  for (const m of text.matchAll(SLOT)) {
    const [rel, body] = [m[2], m[4]];
    if (body === want.get(rel)) continue;
    if (body.trim() === "" || body.startsWith("_Slot:")) warnings.push(`${rel} exists but its slot is empty`);
    else errors.push(`the table from ${rel} differs from the committed results`);
  }
  for (const w of warnings) console.warn(`warning: docs/performance.md: ${w}; run \`node docs/scripts/perf-tables.mjs\``);
  if (errors.length) {
    for (const e of errors) console.error(`docs/performance.md: ${e}`);
    console.error("run `node docs/scripts/perf-tables.mjs` and commit docs/performance.md");
    process.exit(1);
  }
  console.log("docs/performance.md: every table matches the committed results");
} else {
  writeFileSync(page, next);
  console.log("wrote docs/performance.md");
}
