#!/usr/bin/env node
// Writes one version into every version site of the repository (see versions.mjs), then adds
// that release's section to the root CHANGELOG.md from the package changelogs changesets wrote.
//
//   node scripts/release/sync-versions.mjs                 # version of the npm packages
//   node scripts/release/sync-versions.mjs --version 0.2.0 # an explicit version
//   options: --root DIR (default: the repository), --dry-run (print, write nothing)
//
// Run after `changeset version` (the `pnpm release:version` script does both).
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { SEMVER, collectSites, expectedFor, packageJsonFiles, releaseVersion } from "./versions.mjs";

const { values } = parseArgs({
  options: {
    version: { type: "string" },
    root: { type: "string" },
    "dry-run": { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log("usage: sync-versions.mjs [--version X.Y.Z] [--root DIR] [--dry-run]");
  process.exit(0);
}
const root = resolve(values.root ?? join(dirname(fileURLToPath(import.meta.url)), "..", ".."));
const version = values.version ?? releaseVersion(root);
if (!SEMVER.test(version ?? "")) {
  console.error(`sync-versions: "${version}" is not a semantic version`);
  process.exit(2);
}

let changed = 0;
for (const site of collectSites(root)) {
  const before = site.get();
  if (before === expectedFor(site, version)) continue;
  if (!values["dry-run"]) site.set(version);
  changed++;
  console.log(`${site.file} (${site.kind}): ${before} -> ${expectedFor(site, version)}`);
}
if (!values["dry-run"]) {
  updateRootChangelog(root, version);
  // The generated ABI reference quotes the header's version macros: regenerate it.
  const gen = join(root, "docs", "scripts", "abi-reference.mjs");
  if (changed && existsSync(gen)) {
    const r = spawnSync(process.execPath, [gen, "--root", root], { encoding: "utf8" });
    if (r.status !== 0) {
      console.error(`sync-versions: regenerating the ABI reference failed:\n${r.stderr}`);
      process.exit(1);
    }
  }
}
console.log(`sync-versions: ${changed} site(s) ${values["dry-run"] ? "would change" : "changed"}; version ${version}`);

/** Adds `## version` to CHANGELOG.md, merging the packages' sections for that version. */
function updateRootChangelog(root, version) {
  const file = join(root, "CHANGELOG.md");
  const header = "# Changelog\n\nAll umfa packages (npm, Rust crates, Python package, C library) share one version.\n";
  const text = existsSync(file) ? readFileSync(file, "utf8") : header;
  if (new RegExp(`^## ${version.replace(/\./g, "\\.")}\\s*$`, "m").test(text)) return;

  const groups = new Map(); // "### Minor Changes" -> Set of bullet blocks
  for (const pkgFile of packageJsonFiles(root)) {
    const log = join(dirname(pkgFile), "CHANGELOG.md");
    if (log === file || !existsSync(log)) continue;
    const section = extractSection(readFileSync(log, "utf8"), version);
    if (!section) continue;
    let heading = "### Changes";
    for (const block of section.split(/\n(?=### |- )/)) {
      const h = /^### .*/.exec(block);
      if (h) {
        heading = h[0].trim();
        continue;
      }
      const bullet = block.trimEnd();
      // Dependency bumps inside the fixed group ("Updated dependencies", "- @umfa/api@0.2.0") say
      // nothing in a lockstep release.
      if (!bullet.startsWith("- ") || /^- Updated dependencies/.test(bullet) || /^- (@[\w.-]+\/)?[\w.-]+@\d\S*$/.test(bullet)) continue;
      if (!groups.has(heading)) groups.set(heading, new Set());
      groups.get(heading).add(bullet);
    }
  }
  let body = `## ${version}\n\n`;
  if (groups.size === 0) body += "- Version bump only (all packages move in lockstep).\n";
  for (const [heading, bullets] of groups) body += `${heading}\n\n${[...bullets].join("\n")}\n\n`;
  const at = text.search(/^## /m);
  const next = at < 0 ? `${text.trimEnd()}\n\n${body.trimEnd()}\n` : `${text.slice(0, at)}${body.trimEnd()}\n\n${text.slice(at)}`;
  writeFileSync(file, next);
}

function extractSection(text, version) {
  const lines = text.split("\n");
  const start = lines.findIndex((l) => l.trim() === `## ${version}`);
  if (start < 0) return null;
  let end = lines.findIndex((l, i) => i > start && /^## /.test(l));
  if (end < 0) end = lines.length;
  return lines.slice(start + 1, end).join("\n").trim();
}
