// Tests of the docs tooling: the performance-table importer and the ABI reference generator.
// Run: node --test docs/scripts/test/
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import assert from "node:assert/strict";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..", "..");
const perf = join(here, "..", "perf-tables.mjs");
const node = (args) => spawnSync(process.execPath, args, { encoding: "utf8" });

function tree(files) {
  const root = mkdtempSync(join(tmpdir(), "umfa-docs-"));
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, f)), { recursive: true });
    writeFileSync(join(root, f), text);
  }
  return root;
}

const benchJson = {
  schema: "umfa-bench/1",
  meta: { date: "2026-01-02T03:04:05.000Z", command: "umfa bench --seqlen 512,1024 --json", machine: { cpu: "Test CPU", cores: 2, platform: "linux", arch: "x64" }, umfa: { version: "0.1.0" } },
  results: [
    { direction: "fwd", backend: "cpu", dtype: "f32", batch: 1, heads: 8, kvHeads: 2, seqlenQ: 512, seqlenK: 512, headDim: 64, causal: true, ms: { median: 1.2345 }, tflops: 0.0543 },
  ],
};

test("a bench --json file becomes a table with date, machine and command", () => {
  const root = tree({
    "docs/performance.md": "# P\n\n<!-- perf-table: bench/results/a.json -->\nstale\n<!-- /perf-table -->\n\n<!-- perf-table: bench/results/missing.json -->\n<!-- /perf-table -->\n",
    "bench/results/a.json": JSON.stringify(benchJson),
  });
  try {
    assert.equal(node([perf, "--root", root, "--check"]).status, 1, "a table that differs from its results fails");
    assert.equal(node([perf, "--root", root]).status, 0);
    const page = readFileSync(join(root, "docs/performance.md"), "utf8");
    assert.match(page, /Measured 2026-01-02 on Test CPU, 2 cores, linux-x64, umfa 0\.1\.0\. Reproduce: `umfa bench --seqlen 512,1024 --json`/);
    assert.match(page, /\| fwd \| cpu \| f32 \| 1×512×8\/2×64 \| yes \| 1\.23 \| 0\.0543 \|/);
    assert.match(page, /_Slot: no results yet\. This table is generated from `bench\/results\/missing\.json`/);
    assert.doesNotMatch(page, /stale/);
    assert.equal(node([perf, "--root", root, "--check"]).status, 0);
    // New results committed without regenerating: an empty slot warns, a filled one fails.
    writeFileSync(join(root, "bench/results/missing.json"), JSON.stringify(benchJson));
    const warn = node([perf, "--root", root, "--check"]);
    assert.equal(warn.status, 0);
    assert.match(warn.stderr, /warning: .*missing\.json exists but its slot is empty/);
    writeFileSync(join(root, "bench/results/a.json"), JSON.stringify({ ...benchJson, results: [{ ...benchJson.results[0], tflops: 9 }] }));
    assert.equal(node([perf, "--root", root, "--check"]).status, 1);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("generic rows with chosen columns; results without provenance are refused", () => {
  const rows = { meta: { date: "2026-02-03", machine: "a box", command: "node bench/x.mjs" }, rows: [{ path: "C", median_us: 0.5, extra: 1 }] };
  const root = tree({
    "docs/performance.md": "<!-- perf-table: bench/results/o.json columns=path,median_us -->\n<!-- /perf-table -->\n",
    "bench/results/o.json": JSON.stringify(rows),
  });
  try {
    assert.equal(node([perf, "--root", root]).status, 0);
    const page = readFileSync(join(root, "docs/performance.md"), "utf8");
    assert.match(page, /\| path \| median_us \|\n\| --- \| --- \|\n\| C \| 0\.500 \|/);
    writeFileSync(join(root, "bench/results/o.json"), JSON.stringify({ meta: { date: "x" }, rows: rows.rows }));
    const r = node([perf, "--root", root]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /meta\.machine is missing/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("the ABI reference lists every function of the header", () => {
  const header = readFileSync(join(repo, "include", "umfa.h"), "utf8");
  const page = readFileSync(join(repo, "docs", "abi-reference.md"), "utf8");
  const functions = [...header.matchAll(/^UMFA_API[^(]*?\b(\w+)\s*\(/gm)].map((m) => m[1]);
  assert.ok(functions.length > 30);
  for (const f of functions) assert.ok(page.includes(`### \`${f}\``), `${f} is documented`);
});
