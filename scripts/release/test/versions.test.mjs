// Tests for the release scripts on a throw-away copy of the repository's version sites.
// Run: node --test scripts/release/test/
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { compareVersions } from "../versions.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..", "..");
const sync = join(here, "..", "sync-versions.mjs");
const check = join(here, "..", "check-versions.mjs");

function write(root, file, text) {
  mkdirSync(dirname(join(root, file)), { recursive: true });
  writeFileSync(join(root, file), text);
}

/** A miniature monorepo with every kind of version site, all at 0.1.0. */
function makeFixture() {
  const root = mkdtempSync(join(tmpdir(), "umfa-versions-"));
  write(root, "package.json", JSON.stringify({ name: "fixture-root", private: true, version: "0.1.0" }, null, 2) + "\n");
  write(root, "pnpm-workspace.yaml", 'packages:\n  - "core"\n  - "packages/*"\n  - "bindings/*"\n');
  write(root, "core/package.json", JSON.stringify({ name: "@umfa/core", private: true, version: "0.1.0" }, null, 2) + "\n");
  for (const name of ["api", "koffi", "cli"]) {
    write(root, `packages/${name}/package.json`, JSON.stringify({ name: `@umfa/${name}`, version: "0.1.0", dependencies: name === "cli" ? { "@umfa/koffi": "workspace:*" } : {} }, null, 2) + "\n");
  }
  write(root, "core/CMakeLists.txt", "cmake_minimum_required(VERSION 3.20)\nproject(umfa VERSION 0.1.0 LANGUAGES C CXX)\n");
  write(root, "include/umfa.h",
    '#define UMFA_VERSION_MAJOR 0\n#define UMFA_VERSION_MINOR 1\n#define UMFA_VERSION_PATCH 0\n/** x */\n#define UMFA_VERSION_STRING "0.1.0"\n#define UMFA_ABI_VERSION 1\n');
  write(root, "bindings/rust/Cargo.toml", '[workspace]\nmembers = ["umfa-sys", "umfa"]\n\n[workspace.package]\nversion = "0.1.0"\nedition = "2021"\n');
  write(root, "bindings/rust/umfa-sys/Cargo.toml", '[package]\nname = "umfa-sys"\nversion = "0.1.0"\nlinks = "umfa"\n\n[dependencies]\n');
  write(root, "bindings/rust/umfa/Cargo.toml",
    '[package]\nname = "umfa"\nversion.workspace = true\n\n[dependencies]\numfa-sys = { path = "../umfa-sys", version = "=0.1.0" }\n');
  write(root, "bindings/rust/Cargo.lock",
    'version = 4\n\n[[package]]\nname = "libc"\nversion = "0.1.0"\nsource = "registry+https://example.invalid"\n\n[[package]]\nname = "umfa"\nversion = "0.1.0"\ndependencies = [\n "umfa-sys",\n]\n\n[[package]]\nname = "umfa-sys"\nversion = "0.1.0"\n');
  write(root, "bindings/python/pyproject.toml", '[build-system]\nrequires = ["setuptools"]\n\n[project]\nname = "umfa"\nversion = "0.1.0"\n\n[tool.x]\nversion = "9.9.9"\n');
  write(root, "bindings/python/umfa/__init__.py", '"""umfa."""\n__version__ = "0.1.0"\n');
  return root;
}

const node = (script, args, cwd) => spawnSync(process.execPath, [script, ...args], { encoding: "utf8", cwd });

describe("version sites", () => {
  let root;
  before(() => {
    root = makeFixture();
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  test("check passes when every site agrees", () => {
    const r = node(check, ["--root", root, "--json"]);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.expected, "0.1.0");
    // 5 package.json + workspace.package + umfa-sys + dependency + 2 lock + pyproject + __version__ + cmake + header
    assert.equal(out.sites.length, 14, JSON.stringify(out.sites, null, 1));
  });

  test("sync writes the npm packages' version everywhere", () => {
    // What `changeset version` leaves behind: the npm packages bumped, nothing else.
    for (const name of ["api", "koffi", "cli"]) {
      const f = join(root, `packages/${name}/package.json`);
      writeFileSync(f, readFileSync(f, "utf8").replace('"version": "0.1.0"', '"version": "0.2.0"'));
    }
    assert.equal(node(check, ["--root", root]).status, 1);
    const r = node(sync, ["--root", root]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(node(check, ["--root", root]).status, 0);
    const h = readFileSync(join(root, "include/umfa.h"), "utf8");
    assert.match(h, /UMFA_VERSION_MINOR 2\n/);
    assert.match(h, /UMFA_VERSION_STRING "0\.2\.0"/);
    assert.match(h, /UMFA_ABI_VERSION 1/);
    assert.match(readFileSync(join(root, "core/CMakeLists.txt"), "utf8"), /project\(umfa VERSION 0\.2\.0 LANGUAGES/);
    assert.match(readFileSync(join(root, "bindings/rust/umfa/Cargo.toml"), "utf8"), /version = "=0\.2\.0"/);
    const lock = readFileSync(join(root, "bindings/rust/Cargo.lock"), "utf8");
    assert.match(lock, /name = "libc"\nversion = "0\.1\.0"/, "registry crates keep their versions");
    assert.match(lock, /name = "umfa-sys"\nversion = "0\.2\.0"/);
    const py = readFileSync(join(root, "bindings/python/pyproject.toml"), "utf8");
    assert.match(py, /\[project\]\nname = "umfa"\nversion = "0\.2\.0"/);
    assert.match(py, /\[tool\.x\]\nversion = "9\.9\.9"/, "other tables untouched");
    assert.match(readFileSync(join(root, "bindings/python/umfa/__init__.py"), "utf8"), /__version__ = "0\.2\.0"/);
    assert.match(readFileSync(join(root, "package.json"), "utf8"), /"version": "0\.2\.0"/);
    assert.match(readFileSync(join(root, "CHANGELOG.md"), "utf8"), /^## 0\.2\.0$/m);
  });

  test("check names the site that drifted", () => {
    const f = join(root, "core/CMakeLists.txt");
    writeFileSync(f, readFileSync(f, "utf8").replace("0.2.0", "0.2.1"));
    const r = node(check, ["--root", root]);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /DIFF core\/CMakeLists\.txt \(CMake project VERSION\)\s+0\.2\.1/);
    assert.equal(node(sync, ["--root", root, "--version", "0.2.0"]).status, 0);
    assert.equal(node(check, ["--root", root]).status, 0);
  });

  test("header macros that disagree with the string are reported", () => {
    const f = join(root, "include/umfa.h");
    writeFileSync(f, readFileSync(f, "utf8").replace("UMFA_VERSION_PATCH 0", "UMFA_VERSION_PATCH 7"));
    const r = node(check, ["--root", root]);
    assert.equal(r.status, 1);
    assert.match(r.stdout, /0\.2\.7 \(macros\) \/ 0\.2\.0 \(UMFA_VERSION_STRING\)/);
    node(sync, ["--root", root, "--version", "0.2.0"]);
  });

  test("a prerelease version syncs (macros get its numeric core)", () => {
    assert.equal(node(sync, ["--root", root, "--version", "1.0.0-rc.1"]).status, 0);
    assert.equal(node(check, ["--root", root]).status, 0);
    const h = readFileSync(join(root, "include/umfa.h"), "utf8");
    assert.match(h, /UMFA_VERSION_MAJOR 1\n#define UMFA_VERSION_MINOR 0\n#define UMFA_VERSION_PATCH 0/);
    assert.match(h, /"1\.0\.0-rc\.1"/);
    assert.match(readFileSync(join(root, "core/CMakeLists.txt"), "utf8"), /VERSION 1\.0\.0 LANGUAGES/, "CMake holds the numeric core");
  });

  test("a bad version is a usage error", () => {
    assert.equal(node(sync, ["--root", root, "--version", "one"]).status, 2);
  });
});

test("compareVersions orders releases and prereleases", () => {
  assert.ok(compareVersions("0.10.0", "0.9.9") > 0);
  assert.ok(compareVersions("1.0.0-rc.1", "1.0.0") < 0);
  assert.equal(compareVersions("1.2.3", "1.2.3"), 0);
});

describe("changeset version + sync, end to end", () => {
  const bin = join(repo, "node_modules", "@changesets", "cli", "bin.js");
  test("a minor changeset moves every site and the root changelog", { skip: !existsSync(bin) && "@changesets/cli not installed" }, () => {
    const root = makeFixture();
    try {
      cpSync(join(repo, ".changeset", "config.json"), join(root, ".changeset", "config.json"));
      write(root, ".changeset/brave-cats-sing.md", '---\n"@umfa/koffi": minor\n---\n\nAdd sliding-window attention.\n');
      spawnSync("git", ["init", "-q"], { cwd: root });
      const cv = spawnSync(process.execPath, [bin, "version"], { cwd: root, encoding: "utf8" });
      assert.equal(cv.status, 0, cv.stdout + cv.stderr);
      // fixed group: every @umfa package moved, including the ones without a changeset
      for (const name of ["api", "koffi", "cli"]) {
        assert.equal(JSON.parse(readFileSync(join(root, `packages/${name}/package.json`), "utf8")).version, "0.2.0");
      }
      assert.equal(node(check, ["--root", root]).status, 1, "Rust/Python/CMake/header lag until synced");
      assert.equal(node(sync, ["--root", root]).status, 0);
      const c = node(check, ["--root", root]);
      assert.equal(c.status, 0, c.stdout);
      const log = readFileSync(join(root, "CHANGELOG.md"), "utf8");
      assert.match(log, /## 0\.2\.0\n\n### Minor Changes\n\n- [0-9a-f]*:? ?Add sliding-window attention\.\n/);
      assert.doesNotMatch(log, /@umfa\/\w+@0\.2\.0|Updated dependencies|Patch Changes/, "lockstep dependency bumps are not news");
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
