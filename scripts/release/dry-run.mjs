#!/usr/bin/env node
// `pnpm release:dry`: shows what a release would publish, without publishing or writing
// anything into the repository.
//   - every public npm package: packed by `pnpm pack` into a temporary directory (which turns
//     `workspace:` ranges into versions), its file list, then `npm publish --dry-run` of that
//     tarball; npm's "auto-corrected" warnings (a mistake in package.json) fail it;
//   - every Rust crate under bindings/rust: `cargo package --list --offline`, then
//     `cargo publish --dry-run --offline` (a crate whose dependency is an unpublished sibling
//     cannot be verified offline: reported as skipped, with the reason);
//   - the Python package: a wheel built into a temporary directory, its file list, and
//     `twine check` of it when twine is installed (skipped with the reason otherwise);
//   - the publish metadata of all of them: scripts/release/check-metadata.mjs.
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
  const packDir = mkdtempSync(join(tmpdir(), "umfa-npm-"));
  const r = run("pnpm", ["pack", "--json", "--pack-destination", packDir], { cwd: dir });
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
  console.log(`${part}@${pkg.version} -> ${info?.filename ? relative(packDir, info.filename) : "?"} (${files.length} files)`);
  for (const f of files) console.log(`    ${f}`);
  const tarball = info?.filename && existsSync(info.filename) ? info.filename : readdirSync(packDir).map((f) => join(packDir, f)).find((f) => f.endsWith(".tgz"));
  if (!tarball) {
    results.push({ part, status: "failed", detail: "pnpm pack wrote no tarball" });
    continue;
  }
  // npm publish --dry-run of the tarball pnpm made: what npm would upload, and npm's own checks.
  const p = run("npm", ["publish", "--dry-run", tarball], { cwd: packDir });
  rmSync(packDir, { recursive: true, force: true });
  const said = `${p.stdout ?? ""}${p.stderr ?? ""}`;
  if (p.missing) results.push({ part, status: "skipped", detail: "npm not found" });
  else if (p.status !== 0 || /auto-corrected|npm error/i.test(said)) {
    results.push({ part, status: "failed", detail: tail(said) });
    console.log(`FAIL ${part}: npm publish --dry-run\n${tail(said, 12)}`);
  } else {
    console.log(`    npm publish --dry-run: ${said.match(/^\+ .*$/m)?.[0] ?? "ok"}`);
    results.push({ part, status: "ok", detail: `${files.length} files` });
  }
}

console.log("\n== Rust crates");
const rustDir = join(root, "bindings", "rust");
const crates = existsSync(rustDir)
  ? readdirSync(rustDir).filter((d) => existsSync(join(rustDir, d, "Cargo.toml")))
  : [];
if (!crates.length) results.push({ part: "cargo", status: "skipped", detail: "no crates under bindings/rust yet" });
// umfa-sys ships the core's sources (its bundled build): vendor.sh copies them into the crate,
// as before a real publish; the copy is removed afterwards so no stale one stays behind.
const vendorScript = join(rustDir, "umfa-sys", "vendor.sh");
const vendored = existsSync(vendorScript) && run("bash", [vendorScript]).status === 0;
if (existsSync(vendorScript) && !vendored) results.push({ part: "cargo umfa-sys", status: "failed", detail: "vendor.sh failed" });
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
  // Packages and builds the crate as crates.io would receive it, without uploading.
  // `cargo publish --dry-run` reads the crates.io index even with --offline; without network
  // (CI here) it stops at "config.json not found in registry", and `cargo package` (which also
  // builds the packaged crate in isolation) is the check that can run.
  const env = { ...process.env, CARGO_TARGET_DIR: join(root, "target", "release-dry") };
  let what = "cargo publish --dry-run";
  let p = run("cargo", ["publish", "--dry-run", "--offline", "--allow-dirty"], { cwd: join(rustDir, crate), env });
  if (p.status !== 0 && /config\.json not found in registry/.test(p.stderr)) {
    what = "cargo package (cargo publish --dry-run needs the crates.io index, unreachable offline)";
    p = run("cargo", ["package", "--offline", "--allow-dirty"], { cwd: join(rustDir, crate), env });
  }
  const why = tail(p.stderr, 4);
  if (p.status === 0) {
    console.log(`    ${what}: ok`);
    results.push({ part, status: "ok", detail: `${files.length} files` });
  } else if (/no matching package named|failed to select a version|location searched: crates\.io index/i.test(why)) {
    console.log(`    ${what}: skipped: a dependency is not on crates.io yet (publish the crates in order: umfa-sys first)`);
    results.push({ part, status: "skipped", detail: `${what}: a dependency is not on crates.io yet` });
  } else {
    console.log(`FAIL ${part}: cargo publish --dry-run\n${why}`);
    results.push({ part, status: "failed", detail: why });
  }
}

if (vendored) rmSync(join(rustDir, "umfa-sys", "vendor"), { recursive: true, force: true });

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
      // twine check: the metadata and the README render as PyPI would.
      const twine = run(py, ["-m", "twine", "--version"]).status === 0 ? [py, "-m", "twine"] : run("twine", ["--version"]).status === 0 ? ["twine"] : null;
      if (!twine) {
        console.log("skip twine check: twine is not installed");
        results.push({ part: "twine check", status: "skipped", detail: "twine is not installed" });
      } else if (wheels.length) {
        const t = run(twine[0], [...twine.slice(1), "check", "--strict", ...wheels.map((w) => join(out, w))]);
        const said = `${t.stdout}${t.stderr}`;
        if (t.status !== 0 && /supported Metadata-Version/.test(said)) {
          // An older twine (Debian 12 has 4.0.2) cannot read Metadata-Version 2.4+ (PEP 639
          // License-Expression), which current build backends write and PyPI accepts.
          console.log(`skip twine check: this twine cannot read the wheel's metadata version (${run(twine[0], [...twine.slice(1), "--version"]).stdout.trim().split("\n")[0]})`);
          results.push({ part: "twine check", status: "skipped", detail: "twine too old for the wheel's Metadata-Version" });
        } else {
          console.log(`twine check --strict: ${tail(said, 4)}`);
          results.push({ part: "twine check", status: t.status === 0 ? "ok" : "failed", detail: tail(said) });
        }
      }
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

console.log("\n== publish metadata");
const meta = run(process.execPath, [join(root, "scripts", "release", "check-metadata.mjs")]);
console.log(`${meta.stdout ?? ""}${meta.stderr ?? ""}`.trim());
results.push({ part: "publish metadata", status: meta.status === 0 ? "ok" : "failed", detail: tail(meta.stderr || meta.stdout) });

console.log("\n== summary (nothing was published)");
for (const r of results) console.log(`${r.status.padEnd(7)} ${r.part}${r.status === "ok" ? "" : `: ${r.detail.split("\n").at(-1)}`}`);
const failed = results.filter((r) => r.status === "failed").length;
process.exit(failed ? 1 : 0);
