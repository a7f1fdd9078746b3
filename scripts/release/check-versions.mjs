#!/usr/bin/env node
// Fails (exit 1) when the version sites of the repository disagree: every package.json, the Rust
// crates (and their path-dependency requirements and Cargo.lock), the Python package, the core's
// CMake project VERSION and include/umfa.h's UMFA_VERSION_* macros. CI runs it.
//
//   node scripts/release/check-versions.mjs [--root DIR] [--json]
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { collectSites, expectedFor, releaseVersion } from "./versions.mjs";

const { values } = parseArgs({
  options: {
    root: { type: "string" },
    json: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log("usage: check-versions.mjs [--root DIR] [--json]");
  process.exit(0);
}
const root = resolve(values.root ?? join(dirname(fileURLToPath(import.meta.url)), "..", ".."));
const expected = releaseVersion(root);
const rows = collectSites(root).map((s) => ({ file: s.file, kind: s.kind, version: s.get(), expected: expectedFor(s, expected) }));
const bad = rows.filter((r) => r.version !== r.expected);

if (values.json) {
  console.log(JSON.stringify({ expected, ok: bad.length === 0, sites: rows }, null, 2));
} else {
  const w = Math.max(...rows.map((r) => `${r.file} (${r.kind})`.length));
  for (const r of rows) {
    const mark = r.version === r.expected ? "ok  " : "DIFF";
    console.log(`${mark} ${`${r.file} (${r.kind})`.padEnd(w)}  ${r.version}`);
  }
  console.log(
    bad.length === 0
      ? `versions agree: ${expected} in ${rows.length} place(s)`
      : `versions disagree: expected ${expected} (the npm packages), ${bad.length} place(s) differ; run \`pnpm version:sync\``,
  );
}
process.exit(bad.length === 0 ? 0 : 1);
