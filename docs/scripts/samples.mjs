#!/usr/bin/env node
// Keeps the code samples of the docs honest.
//
//   node docs/scripts/samples.mjs check        every code block in docs/**/*.md and packages/*/README.md is a sample
//                                              included from docs/examples (and identical to it)
//                                              or a `decl` block found verbatim in include/umfa.h
//   node docs/scripts/samples.mjs sync         rewrites included blocks from their files
//   node docs/scripts/samples.mjs run [--strict] [--only LANG]
//                                              compiles and runs every sample; a sample whose
//                                              binding or toolchain is missing is skipped with
//                                              the reason (an error with --strict)
//   node docs/scripts/samples.mjs list         samples and the pages that include them
//
// SAMPLES_NODE=/path/to/node runs the JavaScript and (compiled) TypeScript samples with that Node
// instead of the one running this script (CI runs them on Node 20 and on Node 22).
//
// Including a sample: put `<!-- sample: examples/c/forward.c -->` on the line before a fenced
// block; `sync` fills the block. Blocks in shell/text/json/toml/console are instructions or
// output, not samples, and are not checked.
import { spawnSync } from "node:child_process";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, extname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const docs = join(dirname(fileURLToPath(import.meta.url)), "..");
const repo = join(docs, "..");
const CODE_LANGS = new Set(["c", "cpp", "c++", "js", "mjs", "javascript", "ts", "typescript", "rust", "rs", "python", "py", "objc", "objective-c", "swift"]);
const FENCE_LANG = { ".c": "c", ".m": "objc", ".mts": "ts", ".ts": "ts", ".mjs": "js", ".cjs": "js", ".js": "js", ".ts": "ts", ".rs": "rust", ".py": "python", ".sh": "sh" };

/** The pages whose code blocks are checked: docs/**\/*.md and the packages' READMEs (npm shows those). */
function markdownFiles(dir = docs) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (["api", "node_modules", "examples"].includes(name) && dir === docs) continue;
    if (statSync(p).isDirectory()) out.push(...markdownFiles(p));
    else if (name.endsWith(".md")) out.push(p);
  }
  if (dir === docs) {
    const packages = join(repo, "packages");
    for (const name of existsSync(packages) ? readdirSync(packages) : []) {
      const readme = join(packages, name, "README.md");
      if (existsSync(readme)) out.push(readme);
    }
  }
  return out.sort();
}

/** Fenced blocks of a Markdown file: { start, end (line of closing fence), info, body, sample }. */
function blocks(text) {
  const lines = text.split("\n");
  const found = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(`{3,})(.*)$/.exec(lines[i]);
    if (!open) continue;
    let j = i + 1;
    while (j < lines.length && lines[j] !== open[1]) j++;
    let k = i - 1;
    while (k >= 0 && !lines[k].trim()) k--;
    const marker = k >= 0 ? /^<!--\s*sample:\s*(\S+)\s*-->$/.exec(lines[k].trim()) : null;
    found.push({ start: i, end: j, fence: open[1], info: open[2].trim(), body: lines.slice(i + 1, j).join("\n"), sample: marker?.[1] ?? null });
    i = j;
  }
  return found;
}

const normalizeC = (s) =>
  s
    .replace(/\/\*[\s\S]*?\*\//g, " ")
    .replace(/\/\/.*$/gm, " ")
    .replace(/\s+/g, " ")
    .replace(/\s*([(){},;*=\[\]])\s*/g, "$1")
    .trim();

function check({ fix }) {
  const header = normalizeC(readFileSync(join(repo, "include", "umfa.h"), "utf8"));
  const problems = [];
  let samples = 0;
  let decls = 0;
  for (const file of markdownFiles()) {
    const rel = relative(repo, file);
    let text = readFileSync(file, "utf8");
    // Markers without a block right after them: create the block on sync.
    if (fix) {
      text = text.replace(/^(<!--\s*sample:\s*(\S+)\s*-->)\n(?!\n*`{3})/gm, (all, marker, path) => {
        return `${marker}\n\`\`\`${FENCE_LANG[extname(path)] ?? ""}\n\`\`\`\n`;
      });
    }
    const lines = text.split("\n");
    let changed = false;
    for (const b of blocks(text).reverse()) {
      const lang = b.info.split(/\s+/)[0].toLowerCase();
      if (b.sample) {
        const path = join(dirname(file), b.sample);
        if (!existsSync(path)) {
          problems.push(`${rel}:${b.start + 1}: sample ${b.sample} does not exist`);
          continue;
        }
        samples++;
        const want = readFileSync(path, "utf8").replace(/\n+$/, "");
        if (b.body !== want) {
          if (fix) {
            lines.splice(b.start + 1, b.end - b.start - 1, ...want.split("\n"));
            changed = true;
          } else {
            problems.push(`${rel}:${b.start + 1}: block differs from ${b.sample} (run: node docs/scripts/samples.mjs sync)`);
          }
        }
      } else if (/\bdecl\b/.test(b.info)) {
        decls++;
        if (!header.includes(normalizeC(b.body))) problems.push(`${rel}:${b.start + 1}: declaration not found in include/umfa.h:\n${b.body}`);
      } else if (CODE_LANGS.has(lang)) {
        problems.push(`${rel}:${b.start + 1}: \`${lang}\` block is neither an included sample nor a declaration`);
      }
    }
    if (changed) {
      writeFileSync(file, lines.join("\n"));
      console.log(`synced ${rel}`);
    }
  }
  // Every sample file is shown on some page (a file no page includes is dead documentation).
  const included = new Set();
  for (const file of markdownFiles()) {
    for (const b of blocks(readFileSync(file, "utf8"))) if (b.sample) included.add(join(dirname(file), b.sample));
  }
  const walk = (d) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (name === "node_modules" || name === "target") continue;
      if (statSync(p).isDirectory()) walk(p);
      else if (!included.has(p)) problems.push(`${relative(repo, p)}: no page includes this sample`);
    }
  };
  walk(join(docs, "examples"));
  for (const p of problems) console.error(p);
  console.log(`${samples} included sample block(s), ${decls} declaration block(s), ${problems.length} problem(s)`);
  return problems.length === 0;
}

// ---- running samples --------------------------------------------------------------------------

function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 600_000, maxBuffer: 32 << 20, ...opts });
  return { ok: r.status === 0, status: r.status, out: `${r.stdout ?? ""}${r.stderr ?? ""}`, missing: r.error?.code === "ENOENT" };
}
const which = (tool) => sh("sh", ["-c", `command -v ${tool}`]).ok;

function nativeLibDir() {
  const candidates = [process.env.UMFA_LIB_DIR, join(repo, "dist", "native", `${process.platform}-${process.arch}`, "lib")];
  return candidates.find((d) => d && existsSync(join(d, process.platform === "darwin" ? "libumfa.dylib" : "libumfa.so")));
}

/** Creates docs/examples/node_modules/@umfa/<pkg> links to the workspace packages that exist. */
function linkWorkspacePackages() {
  const nm = join(docs, "examples", "node_modules", "@umfa");
  mkdirSync(nm, { recursive: true });
  const linked = [];
  for (const dir of readdirSync(join(repo, "packages"))) {
    const pj = join(repo, "packages", dir, "package.json");
    if (!existsSync(pj)) continue;
    const name = JSON.parse(readFileSync(pj, "utf8")).name;
    if (!name?.startsWith("@umfa/")) continue;
    const link = join(nm, name.slice("@umfa/".length));
    rmSync(link, { force: true, recursive: true });
    symlinkSync(join(repo, "packages", dir), link, "dir");
    linked.push(name);
  }
  return linked;
}

function npmPackageReady(name) {
  const dir = join(docs, "examples", "node_modules", ...name.split("/"));
  if (!existsSync(join(dir, "package.json"))) return `${name} is not in the workspace yet`;
  const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const main = pkg.exports?.["."]?.default ?? pkg.exports?.["."]?.import ?? pkg.main;
  if (main && !existsSync(join(dir, main))) return `${name} is not built (${main} missing; run pnpm nx run-many -t build)`;
  return null;
}

let tsBuild;
/**
 * Compiles every .mts sample once with the repository's TypeScript and the packages' strict
 * tsconfig, into docs/examples/node_modules/.samples-build (so the output resolves @umfa/* from
 * docs/examples/node_modules).
 */
function compileTypeScriptSamples() {
  if (tsBuild) return tsBuild;
  const examples = join(docs, "examples");
  const outDir = join(examples, "node_modules", ".samples-build");
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const config = join(outDir, "tsconfig.json");
  writeFileSync(
    config,
    JSON.stringify({
      extends: join(repo, "packages", "tsconfig.base.json"),
      compilerOptions: { rootDir: examples, outDir, declaration: false, declarationMap: false, sourceMap: false, typeRoots: [join(repo, "packages", "cli", "node_modules", "@types")] },
      include: [join(examples, "**", "*.mts")],
      exclude: [join(examples, "node_modules")],
    }),
  );
  const tsc = join(repo, "node_modules", "typescript", "bin", "tsc");
  const r = sh(process.execPath, [tsc, "-p", config]);
  tsBuild = { ok: r.ok, out: r.out, outDir };
  return tsBuild;
}

const RUNNERS = {
  c: {
    match: (f) => f.endsWith(".c"),
    run(file, lib) {
      if (!lib) return { skip: "libumfa is not built (dist/native or UMFA_LIB_DIR)" };
      const cc = process.env.CC ?? "cc";
      if (!which(cc)) return { skip: `${cc} not found` };
      const exe = join(mkdtempSync(join(tmpdir(), "umfa-sample-")), basename(file, ".c"));
      const inc = join(lib, "..", "include");
      const build = sh(cc, ["-std=c99", "-Wall", "-Wextra", "-Werror", file, "-I", existsSync(join(inc, "umfa.h")) ? inc : join(repo, "include"), "-L", lib, "-lumfa", "-lm", `-Wl,-rpath,${lib}`, "-o", exe]);
      if (!build.ok) return { fail: build.out };
      return sh(exe, [], { env: { ...process.env, UMFA_NUM_THREADS: "2" } });
    },
  },
  ts: {
    // TypeScript samples are type-checked together (strict, the packages' tsconfig) and then run.
    match: (f) => f.endsWith(".mts"),
    run(file, lib) {
      const imports = [...readFileSync(file, "utf8").matchAll(/from\s+["'](@umfa\/[^"'/]+)/g)].map((m) => m[1]);
      for (const name of new Set(imports)) {
        const why = npmPackageReady(name);
        if (why) return { skip: why };
      }
      if (!lib) return { skip: "libumfa is not built (dist/native or UMFA_LIB_DIR)" };
      const first = tsBuild === undefined;
      const built = compileTypeScriptSamples();
      if (!built.ok) return { fail: first ? built.out : "the TypeScript samples do not type-check (see the first failure)" };
      const js = join(built.outDir, relative(join(docs, "examples"), file)).replace(/\.mts$/, ".mjs");
      return sh(process.env.SAMPLES_NODE ?? process.execPath, [js], { cwd: dirname(file), env: { ...process.env, UMFA_LIB_DIR: lib, UMFA_NUM_THREADS: "2" } });
    },
  },
  node: {
    match: (f) => /\.(mjs|cjs|js)$/.test(f),
    run(file, lib) {
      const imports = [...readFileSync(file, "utf8").matchAll(/(?:from\s+|import\()["'](@umfa\/[^"'/]+)/g)].map((m) => m[1]);
      for (const name of new Set(imports)) {
        const why = npmPackageReady(name);
        if (why) return { skip: why };
      }
      if (!lib) return { skip: "libumfa is not built (dist/native or UMFA_LIB_DIR)" };
      return sh(process.env.SAMPLES_NODE ?? process.execPath, [file], { cwd: dirname(file), env: { ...process.env, UMFA_LIB_DIR: lib, UMFA_NUM_THREADS: "2" } });
    },
  },
  python: {
    match: (f) => f.endsWith(".py"),
    run(file, lib) {
      const py = process.env.PYTHON ?? "python3";
      const base = join(repo, "bindings", "python");
      const src = [join(base, "src"), base].find((d) => existsSync(join(d, "umfa", "__init__.py")));
      if (!src) return { skip: "the Python binding (bindings/python/umfa) is not there yet" };
      if (!lib) return { skip: "libumfa is not built (dist/native or UMFA_LIB_DIR)" };
      const src0 = readFileSync(file, "utf8");
      if (/^\s*import torch|^\s*from torch|umfa\.torch/m.test(src0) && !sh(py, ["-c", "import torch"]).ok) return { skip: "torch is not installed" };
      if (/umfa\.torch/.test(src0) && !existsSync(join(src, "umfa", "torch.py")) && !existsSync(join(src, "umfa", "torch"))) return { skip: "umfa.torch is not there yet" };
      return sh(py, [file], { env: { ...process.env, PYTHONPATH: src, UMFA_LIB_DIR: lib, UMFA_NUM_THREADS: "2" } });
    },
  },
  rust: {
    match: (f) => f.endsWith(".rs"),
    run(file, lib) {
      const crate = join(repo, "bindings", "rust", "umfa");
      if (!existsSync(join(crate, "Cargo.toml"))) return { skip: "the Rust crate (bindings/rust/umfa) is not there yet" };
      if (!lib) return { skip: "libumfa is not built (dist/native or UMFA_LIB_DIR)" };
      if (!which("cargo")) return { skip: "cargo not found" };
      // A throw-away crate depending on the binding by path; the sample is its main.rs.
      const dir = mkdtempSync(join(tmpdir(), "umfa-rust-sample-"));
      mkdirSync(join(dir, "src"));
      writeFileSync(join(dir, "Cargo.toml"), `[package]\nname = "umfa-doc-sample"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n\n[dependencies]\numfa = { path = ${JSON.stringify(crate)} }\n\n[workspace]\n`);
      cpSync(file, join(dir, "src", "main.rs"));
      const target = join(repo, "target", "doc-samples");
      return sh("cargo", ["run", "--quiet", "--offline"], { cwd: dir, env: { ...process.env, CARGO_TARGET_DIR: target, UMFA_LIB_DIR: lib, LD_LIBRARY_PATH: lib, UMFA_NUM_THREADS: "2" } });
    },
  },
  objc: {
    match: (f) => f.endsWith(".m"),
    run(file, lib) {
      const base = join(repo, "bindings", "objc");
      const headerDir = [join(base, "include"), join(base, "src"), base].find((d) => existsSync(join(d, "UMFA.h")) || existsSync(join(d, "UMFAContext.h")));
      if (!headerDir) return { skip: "the Objective-C binding (bindings/objc) is not there yet" };
      if (!lib) return { skip: "libumfa is not built (dist/native or UMFA_LIB_DIR)" };
      if (!which("gnustep-config")) return { skip: "GNUstep (gnustep-config) not found" };
      // The wrapper is compiled with the sample (it is two files: a header and one .m).
      const srcDir = join(base, "src");
      const sources = existsSync(srcDir) ? readdirSync(srcDir).filter((f) => f.endsWith(".m")).map((f) => join(srcDir, f)) : [];
      const flags = sh("gnustep-config", ["--objc-flags"]).out.trim().split(/\s+/);
      const libs = sh("gnustep-config", ["--base-libs"]).out.trim().split(/\s+/);
      const exe = join(mkdtempSync(join(tmpdir(), "umfa-objc-sample-")), "sample");
      const build = sh("gcc", [...flags, file, ...sources, "-I", headerDir, "-I", join(repo, "include"), "-L", lib, "-lumfa", `-Wl,-rpath,${lib}`, ...libs, "-o", exe]);
      if (!build.ok) return { fail: build.out };
      return sh(exe, []);
    },
  },
};

function runAll({ strict, only }) {
  const lib = nativeLibDir();
  linkWorkspacePackages();
  const files = [];
  const walk = (d) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (name === "node_modules" || name === "target") continue;
      if (statSync(p).isDirectory()) walk(p);
      else files.push(p);
    }
  };
  walk(join(docs, "examples"));
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  for (const file of files) {
    const entry = Object.entries(RUNNERS).find(([, r]) => r.match(file));
    if (!entry || (only && entry[0] !== only)) continue;
    const rel = relative(docs, file);
    const t0 = Date.now();
    const r = entry[1].run(file, lib);
    const ms = Date.now() - t0;
    if (r.skip) {
      skipped++;
      console.log(`skip ${rel}: ${r.skip}`);
    } else if (r.fail || !r.ok) {
      failed++;
      console.log(`FAIL ${rel}\n${(r.fail ?? r.out).trim().replace(/^/gm, "    ")}`);
    } else {
      passed++;
      console.log(`ok   ${rel} (${ms} ms)${process.env.SAMPLES_VERBOSE ? `\n${r.out.trim().replace(/^/gm, "    ")}` : ""}`);
    }
  }
  console.log(`samples: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  return failed === 0 && (!strict || skipped === 0);
}

function list() {
  const used = new Map();
  for (const file of markdownFiles()) {
    for (const b of blocks(readFileSync(file, "utf8"))) {
      if (!b.sample) continue;
      const p = relative(docs, join(dirname(file), b.sample));
      used.set(p, [...(used.get(p) ?? []), relative(docs, file)]);
    }
  }
  for (const [p, pages] of [...used].sort()) console.log(`${p}  <-  ${pages.join(", ")}`);
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { strict: { type: "boolean", default: false }, only: { type: "string" } },
});
const cmd = positionals[0] ?? "check";
let ok = true;
if (cmd === "check") ok = check({ fix: false });
else if (cmd === "sync") ok = check({ fix: true });
else if (cmd === "run") ok = runAll(values);
else if (cmd === "list") list();
else {
  console.error(`unknown command ${cmd}; use check, sync, run or list`);
  process.exit(2);
}
process.exit(ok ? 0 : 1);
