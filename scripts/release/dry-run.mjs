#!/usr/bin/env node
// `pnpm release:dry`: shows what a release would publish, without publishing or writing
// anything into the repository.
//   - every public npm package: `pnpm pack --dry-run --json` (file list and size);
//   - every Rust crate under bindings/rust: `cargo package --list --offline`;
//   - the Python package: a wheel built into a temporary directory, and its file list.
// Parts that are not there yet, or whose tools are missing, are skipped with the reason.
// Exit code: 0 when every present part could be packed, 1 otherwise.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { checkVersionsAgree } from "./dry-run-lib.mjs";
import { packageJsonFiles } from "./versions.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const results = []; // { part, status: "ok" | "skipped" | "failed", detail }

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 << 20, ...opts });
  if (r.error && r.error.code === "ENOENT") return { missing: true };
  return r;
}
const tail = (s, n = 6) => (s ?? "").trim().split("\n").slice(-n).join("\n");

console.log("== versions");
const v = checkVersionsAgree(root);
console.log(v.ok ? `all version sites agree on ${v.expected}` : `versions disagree (run pnpm version:check): ${v.bad.join(", ")}`);
if (!v.ok) results.push({ part: "versions", status: "failed", detail: "version sites disagree" });

console.log("\n== npm packages");
for (const file of packageJsonFiles(root).slice(1)) {
  const pkg = JSON.parse(readFileSync(file, "utf8"));
  const dir = dirname(file);
  const part = `npm ${pkg.name ?? relative(root, dir)}`;
  if (pkg.private) {
    console.log(`skip ${part}: private (not published)`);
    continue;
  }
  // A per-platform native package packs only with its platform's library (its prepack refuses
  // otherwise); platforms this machine has not built are skipped, not failed.
  const platform = pkg.umfa?.platform;
  if (platform && !existsSync(join(root, "dist", "native", platform))) {
    results.push({ part, status: "skipped", detail: `dist/native/${platform} not built here (bash scripts/build-native.sh ${platform})` });
    console.log(`skip ${part}: dist/native/${platform} not built here`);
    continue;
  }
  const r = run("pnpm", ["pack", "--dry-run", "--json"], { cwd: dir });
  if (r.missing) {
    results.push({ part, status: "skipped", detail: "pnpm not found" });
    continue;
  }
  if (r.status !== 0) {
    results.push({ part, status: "failed", detail: tail(r.stderr || r.stdout) });
    console.log(`FAIL ${part}\n${tail(r.stderr || r.stdout)}`);
    continue;
  }
  let info;
  try {
    info = JSON.parse(r.stdout.slice(r.stdout.indexOf("{")));
  } catch {
    info = null;
  }
  const files = info?.files?.map((f) => f.path) ?? [];
  console.log(`${part}@${pkg.version} -> ${info?.filename ?? "?"} (${files.length} files)`);
  for (const f of files) console.log(`    ${f}`);
  results.push({ part, status: "ok", detail: `${files.length} files` });
}

console.log("\n== Rust crates");
const rustDir = join(root, "bindings", "rust");
const crates = existsSync(rustDir)
  ? readdirSync(rustDir).filter((d) => existsSync(join(rustDir, d, "Cargo.toml")))
  : [];
if (!crates.length) results.push({ part: "cargo", status: "skipped", detail: "no crates under bindings/rust yet" });
for (const crate of crates) {
  const part = `cargo ${crate}`;
  const r = run("cargo", ["package", "--list", "--offline", "--allow-dirty"], { cwd: join(rustDir, crate) });
  if (r.missing) {
    results.push({ part, status: "skipped", detail: "cargo not found" });
    console.log(`skip ${part}: cargo not found`);
    continue;
  }
  if (r.status !== 0) {
    // `cargo package` needs every dependency resolvable offline: a path dependency on an
    // unpublished sibling crate is the usual reason, reported as such.
    const why = tail(r.stderr, 4);
    const unpublished = /no matching package named|failed to select a version|not found in registry|offline/i.test(why);
    results.push({ part, status: unpublished ? "skipped" : "failed", detail: why });
    console.log(`${unpublished ? "skip" : "FAIL"} ${part}: ${why}`);
    continue;
  }
  const files = r.stdout.trim().split("\n").filter(Boolean);
  console.log(`${part} (${files.length} files)`);
  for (const f of files) console.log(`    ${f}`);
  results.push({ part, status: "ok", detail: `${files.length} files` });
}

console.log("\n== Python package");
const pyDir = join(root, "bindings", "python");
const py = process.env.PYTHON ?? "python3";
if (!existsSync(join(pyDir, "pyproject.toml"))) {
  results.push({ part: "python wheel", status: "skipped", detail: "bindings/python/pyproject.toml not there yet" });
  console.log("skip python wheel: bindings/python/pyproject.toml not there yet");
} else {
  const out = mkdtempSync(join(tmpdir(), "umfa-wheel-"));
  try {
    // The build backend installed here is used as is; otherwise pip builds in an isolated
    // environment (fetching the backend named in pyproject.toml).
    const backend = /build-backend\s*=\s*"([\w.]+)"/.exec(readFileSync(join(pyDir, "pyproject.toml"), "utf8"))?.[1]?.split(".")[0];
    const haveBackend = backend !== undefined && run(py, ["-c", `import ${backend}`]).status === 0;
    const r = run(py, ["-m", "pip", "wheel", "--no-deps", ...(haveBackend ? ["--no-build-isolation"] : []), "-w", out, pyDir]);
    if (r.missing) {
      results.push({ part: "python wheel", status: "skipped", detail: `${py} not found` });
    } else if (r.status !== 0) {
      results.push({ part: "python wheel", status: "failed", detail: tail(r.stderr || r.stdout) });
      console.log(`FAIL python wheel\n${tail(r.stderr || r.stdout)}`);
    } else {
      const wheels = readdirSync(out).filter((f) => f.endsWith(".whl"));
      for (const w of wheels) {
        const list = run(py, ["-m", "zipfile", "-l", join(out, w)]);
        console.log(`python ${w}`);
        console.log((list.stdout ?? "").trim().split("\n").map((l) => `    ${l}`).join("\n"));
      }
      results.push({ part: "python wheel", status: wheels.length ? "ok" : "failed", detail: wheels.join(", ") || "no wheel produced" });
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

console.log("\n== summary (nothing was published)");
for (const r of results) console.log(`${r.status.padEnd(7)} ${r.part}${r.status === "ok" ? "" : `: ${r.detail.split("\n").at(-1)}`}`);
const failed = results.filter((r) => r.status === "failed").length;
process.exit(failed ? 1 : 0);
