#!/usr/bin/env node
// Checks that every published artifact carries publish-ready metadata, the way
// check-versions.mjs checks versions. The expected values come from one file,
// scripts/release/metadata.json (repository, homepage, bugs, licence); what platforms a package
// may claim comes from the backend/platform matrix, docs/site/matrix.json.
//
//   node scripts/release/check-metadata.mjs [--root DIR]
//
// npm packages (every non-private package of the workspace):
//   description, license = metadata.license, repository {type git, url = the repository,
//   directory = the package's folder}, homepage, bugs.url, keywords, publishConfig.access public
//   (scoped packages are private by default on first publish), a LICENSE file equal to the
//   repository's; `os`/`cpu` only on platform packages (native-*), and there they name exactly
//   the platform of the package's name, which the matrix must mark "yes", "emulated" (built in CI,
//   tested under emulation) or "written" (built on a machine CI does not have: macOS).
// Rust crates (bindings/rust/*): description, license, repository, homepage (directly or from
//   the workspace), keywords (at most 5, as crates.io allows), categories, a LICENSE file that
//   `include` ships, and a README without relative links (crates.io cannot resolve them).
// The Python project (bindings/python/pyproject.toml): license, license-files with the LICENSE
//   present, [project.urls] with Homepage, Repository and Issues, keywords, and operating-system
//   classifiers only for systems where the matrix's Python row says "yes".
// Exit code 1 with one line per problem.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { packageJsonFiles } from "./versions.mjs";

const rootArg = process.argv.indexOf("--root");
const root = rootArg > 0 ? process.argv[rootArg + 1] : join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const meta = JSON.parse(readFileSync(join(root, "scripts", "release", "metadata.json"), "utf8"));
const matrix = JSON.parse(readFileSync(join(root, "docs", "site", "matrix.json"), "utf8"));
const license = readFileSync(join(root, "LICENSE"), "utf8");
const problems = [];
const bad = (where, what) => problems.push(`${where}: ${what}`);
let checked = 0;

const sameLicense = (dir, where) => {
  const p = join(dir, "LICENSE");
  if (!existsSync(p)) bad(where, "no LICENSE file");
  else if (readFileSync(p, "utf8") !== license) bad(where, "LICENSE differs from the repository's LICENSE");
};
const platformsWith = (rowPrefix, states = ["yes"]) => {
  const row = matrix.rows.find((r) => r.what.startsWith(rowPrefix));
  return row ? Object.entries(row.cells).filter(([, v]) => states.includes(v)).map(([k]) => k) : [];
};

// ---- npm -----------------------------------------------------------------------------------------
const NODE_PLATFORM = /^native-(linux|darwin|win32)-(x64|arm64)(?:-(gnu|musl|msvc))?$/;
for (const file of packageJsonFiles(root).slice(1)) {
  const pkg = JSON.parse(readFileSync(file, "utf8"));
  if (pkg.private) continue;
  checked++;
  const dir = dirname(file);
  const rel = relative(root, dir).split("\\").join("/");
  const where = `${rel}/package.json (${pkg.name})`;
  if (!pkg.description) bad(where, "no description");
  if (pkg.license !== meta.license) bad(where, `license is ${JSON.stringify(pkg.license)}, not ${meta.license}`);
  const repo = pkg.repository ?? {};
  if (repo.type !== "git" || repo.url !== `git+${meta.repository}.git`) bad(where, `repository must be { "type": "git", "url": "git+${meta.repository}.git" }`);
  if (repo.directory !== rel) bad(where, `repository.directory must be "${rel}"`);
  if (!pkg.homepage?.startsWith(meta.repository)) bad(where, `homepage must be a page of ${meta.repository}`);
  if (pkg.bugs?.url !== meta.bugs) bad(where, `bugs.url must be ${meta.bugs}`);
  if (!Array.isArray(pkg.keywords) || pkg.keywords.length === 0) bad(where, "no keywords");
  if (pkg.name?.startsWith("@") && pkg.publishConfig?.access !== "public") bad(where, 'a scoped package needs "publishConfig": { "access": "public" }');
  sameLicense(dir, where);
  const m = NODE_PLATFORM.exec(rel.split("/").pop());
  if (m) {
    const [, os, cpu, libc] = m;
    if (JSON.stringify(pkg.os) !== JSON.stringify([os])) bad(where, `os must be ["${os}"]`);
    if (JSON.stringify(pkg.cpu) !== JSON.stringify([cpu])) bad(where, `cpu must be ["${cpu}"]`);
    if (os === "linux" && libc && JSON.stringify(pkg.libc) !== JSON.stringify([libc === "gnu" ? "glibc" : libc])) bad(where, `libc must be ["${libc === "gnu" ? "glibc" : libc}"]`);
    // A platform package exists for platforms built and tested in CI ("yes") and for those whose
    // build is written for a machine CI does not have ("written": macOS, built on a Mac).
    if (!platformsWith("CPU backend", ["yes", "emulated", "written"]).includes(`${os}-${cpu}`)) bad(where, `the platform matrix (docs/site/matrix.json) does not mark the CPU backend "yes", "emulated" or "written" on ${os}-${cpu}`);
  } else if (pkg.os || pkg.cpu || pkg.libc) bad(where, "os/cpu/libc restrict a package that is not a platform package");
}

// ---- Rust ----------------------------------------------------------------------------------------
/** The keys of one [section] of a TOML file (strings, arrays of strings, `x.workspace = true`). */
function tomlSection(text, name) {
  const out = {};
  const start = text.search(new RegExp(`^\\[${name.replace(/\./g, "\\.")}\\]\\s*$`, "m"));
  if (start < 0) return null;
  const body = text.slice(start).split("\n").slice(1);
  for (let i = 0; i < body.length; i++) {
    const line = body[i];
    if (/^\[/.test(line)) break;
    let m = /^([\w-]+)\.workspace\s*=\s*true/.exec(line);
    if (m) {
      out[m[1]] = { workspace: true };
      continue;
    }
    m = /^([\w-]+)\s*=\s*(.*)$/.exec(line);
    if (!m) continue;
    let value = m[2].trim();
    if (value.startsWith("[") && !value.includes("]")) {
      while (i + 1 < body.length && !value.includes("]")) value += body[++i].trim();
    }
    if (value.startsWith('"')) out[m[1]] = JSON.parse(value.replace(/\s+#.*$/, ""));
    else if (value.startsWith("[")) out[m[1]] = [...value.matchAll(/"([^"]*)"/g)].map((x) => x[1]);
    else out[m[1]] = value;
  }
  return out;
}

const rustDir = join(root, "bindings", "rust");
const wsToml = existsSync(join(rustDir, "Cargo.toml")) ? readFileSync(join(rustDir, "Cargo.toml"), "utf8") : "";
const ws = tomlSection(wsToml, "workspace.package") ?? {};
for (const crate of existsSync(rustDir) ? readdirSync(rustDir).filter((d) => existsSync(join(rustDir, d, "Cargo.toml"))) : []) {
  checked++;
  const dir = join(rustDir, crate);
  const where = `bindings/rust/${crate}/Cargo.toml`;
  const pkg = tomlSection(readFileSync(join(dir, "Cargo.toml"), "utf8"), "package") ?? {};
  const field = (k) => (pkg[k]?.workspace ? ws[k] : pkg[k]);
  if (!field("description")) bad(where, "no description");
  if (field("license") !== meta.license) bad(where, `license must be ${meta.license}`);
  if (field("repository") !== meta.repository) bad(where, `repository must be ${meta.repository}`);
  if (!field("homepage")?.startsWith(meta.repository)) bad(where, `homepage must be a page of ${meta.repository}`);
  const keywords = field("keywords") ?? [];
  if (!keywords.length || keywords.length > 5) bad(where, `keywords: 1 to 5 (crates.io), found ${keywords.length}`);
  if (!(field("categories") ?? []).length) bad(where, "no categories");
  sameLicense(dir, where);
  if (Array.isArray(pkg.include) && !pkg.include.includes("LICENSE")) bad(where, "include does not ship LICENSE");
  const readme = join(dir, field("readme") ?? "README.md");
  if (!existsSync(readme)) bad(where, "no README");
  else {
    for (const m of readFileSync(readme, "utf8").matchAll(/\]\(([^)\s]+)\)/g)) {
      if (!/^(https?:|mailto:|#)/.test(m[1])) bad(`bindings/rust/${crate}/${relative(dir, readme)}`, `relative link ${m[1]} breaks on crates.io`);
    }
  }
}

// ---- Python --------------------------------------------------------------------------------------
const pyproject = join(root, "bindings", "python", "pyproject.toml");
if (existsSync(pyproject)) {
  checked++;
  const where = "bindings/python/pyproject.toml";
  const text = readFileSync(pyproject, "utf8");
  const project = tomlSection(text, "project") ?? {};
  const urls = tomlSection(text, "project.urls") ?? {};
  if (project.license !== meta.license) bad(where, `license must be "${meta.license}"`);
  if (!(project["license-files"] ?? []).includes("LICENSE")) bad(where, 'license-files must list "LICENSE"');
  sameLicense(dirname(pyproject), where);
  for (const k of ["Homepage", "Repository", "Issues"]) if (!urls[k]?.startsWith(meta.repository)) bad(where, `[project.urls] ${k} must be a page of ${meta.repository}`);
  if (!(project.keywords ?? []).length) bad(where, "no keywords");
  const wheelPlatforms = platformsWith("Python");
  const OS = { "Operating System :: POSIX :: Linux": "linux", "Operating System :: MacOS": "darwin", "Operating System :: Microsoft :: Windows": "win32" };
  for (const c of project.classifiers ?? []) {
    if (!c.startsWith("Operating System ::")) continue;
    const os = OS[c];
    if (!os) bad(where, `classifier "${c}": not a system umfa builds for`);
    else if (!wheelPlatforms.some((p) => p.startsWith(`${os}-`))) bad(where, `classifier "${c}": the platform matrix has no ${os} platform marked "yes" for Python`);
  }
}

for (const p of problems) console.error(p);
console.log(`metadata: ${checked} packages, crates and projects checked, ${problems.length} problem(s)`);
process.exit(problems.length ? 1 : 0);
