// Every place in the repository that states umfa's version, with a reader and a writer for each.
//
// All umfa packages move in lockstep: the npm packages (versioned by changesets as one fixed
// group), the Rust crates, the Python package, the core's CMake project and the C header's
// UMFA_VERSION_* macros. `sync-versions.mjs` writes one version into every site listed here and
// `check-versions.mjs` fails when any two disagree. Sites whose files do not exist yet (a binding
// not written so far) are skipped; new ones are picked up by the globs below as they land.
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";

export const SEMVER = /^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/;

/** "1.2.3" of "1.2.3-rc.1+build" (what a numeric-only site such as CMake can hold). */
export function numericCore(version) {
  return String(version).split(/[-+]/)[0];
}

/** The value `site` must hold for the release `version`. */
export function expectedFor(site, version) {
  return site.numericOnly ? numericCore(version) : version;
}

/** Compares two semantic versions (prerelease < release); returns <0, 0 or >0. */
export function compareVersions(a, b) {
  const ma = SEMVER.exec(a);
  const mb = SEMVER.exec(b);
  if (!ma || !mb) throw new Error(`not a semantic version: ${!ma ? a : b}`);
  for (let i = 1; i <= 3; i++) {
    const d = Number(ma[i]) - Number(mb[i]);
    if (d !== 0) return d;
  }
  if (ma[4] === mb[4]) return 0;
  if (ma[4] === undefined) return 1;
  if (mb[4] === undefined) return -1;
  return ma[4] < mb[4] ? -1 : 1;
}

function read(file) {
  return readFileSync(file, "utf8");
}

function listDirs(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => !name.startsWith(".") && name !== "node_modules")
    .map((name) => join(dir, name))
    .filter((p) => statSync(p).isDirectory())
    .sort();
}

// ---- package.json ---------------------------------------------------------------------------

function packageJsonSite(root, file) {
  return {
    file: relative(root, file),
    kind: "package.json",
    get() {
      return JSON.parse(read(file)).version ?? null;
    },
    set(version) {
      const text = read(file);
      // Replace the top-level "version" value in place to keep the file's formatting.
      const pkg = JSON.parse(text);
      if (pkg.version === undefined) return false;
      if (pkg.version === version) return false;
      const re = /^(\s*"version"\s*:\s*")([^"]*)(")/m;
      const next = re.test(text)
        ? text.replace(re, `$1${version}$3`)
        : JSON.stringify({ ...pkg, version }, null, 2) + "\n";
      writeFileSync(file, next);
      return true;
    },
  };
}

/** All workspace package.json files: the root and every package of pnpm-workspace.yaml. */
export function packageJsonFiles(root) {
  const files = [join(root, "package.json")];
  const workspace = join(root, "pnpm-workspace.yaml");
  const patterns = existsSync(workspace)
    ? [...read(workspace).matchAll(/^\s*-\s*["']?([^"'\n]+)["']?\s*$/gm)].map((m) => m[1].trim())
    : ["packages/*"];
  for (const pattern of patterns) {
    const dirs = pattern.endsWith("/*") ? listDirs(join(root, pattern.slice(0, -2))) : [join(root, pattern)];
    for (const dir of dirs) {
      const file = join(dir, "package.json");
      if (existsSync(file)) files.push(file);
    }
  }
  return [...new Set(files)];
}

// ---- TOML (Cargo.toml, pyproject.toml, Cargo.lock): line-based, section-aware ---------------

/**
 * Finds `key = "value"` lines inside the given TOML table(s). Returns [{ line, value }], where
 * `line` indexes into text.split("\n"). Handles the plain forms these files use; inline tables
 * are handled by `findInlineDependencyVersions`.
 */
function findTomlKey(text, table, key) {
  const lines = text.split("\n");
  const hits = [];
  let current = "";
  const keyRe = new RegExp(`^\\s*${key.replace(".", "\\.")}\\s*=\\s*"([^"]*)"`);
  lines.forEach((line, i) => {
    const header = /^\s*\[([^\]]+)\]\s*(#.*)?$/.exec(line);
    if (header) {
      current = header[1].trim();
      return;
    }
    if (current === table) {
      const m = keyRe.exec(line);
      if (m) hits.push({ line: i, value: m[1] });
    }
  });
  return hits;
}

function replaceOnLine(text, lineIndex, from, to) {
  const lines = text.split("\n");
  lines[lineIndex] = lines[lineIndex].replace(`"${from}"`, `"${to}"`);
  return lines.join("\n");
}

function tomlKeySite(root, file, table, key, label) {
  return {
    file: relative(root, file),
    kind: label,
    get() {
      const hits = findTomlKey(read(file), table, key);
      return hits.length ? hits[0].value : null;
    },
    set(version) {
      const text = read(file);
      const hits = findTomlKey(text, table, key);
      if (!hits.length || hits[0].value === version) return false;
      writeFileSync(file, replaceOnLine(text, hits[0].line, hits[0].value, version));
      return true;
    },
  };
}

/**
 * Version requirements on sibling crates, e.g. `umfa-sys = { path = "../umfa-sys", version =
 * "=0.1.0" }` (needed by `cargo package`). Only dependencies that also have a `path` are ours.
 * The requirement keeps its operator prefix (`=`, `^`, `~`) and gets the new version.
 */
function cargoPathDependencySites(root, file) {
  const text = read(file);
  const sites = [];
  const lines = text.split("\n");
  const re = /^(\s*)([A-Za-z0-9_-]+)\s*=\s*\{([^}]*)\}/;
  lines.forEach((line, i) => {
    const m = re.exec(line);
    if (!m || !/\bpath\s*=/.test(m[3])) return;
    const v = /\bversion\s*=\s*"([=^~]?)([^"]*)"/.exec(m[3]);
    if (!v) return;
    const name = m[2];
    sites.push({
      file: relative(root, file),
      kind: `Cargo.toml dependency ${name}`,
      get() {
        const l = read(file).split("\n")[i];
        const vv = /\bversion\s*=\s*"[=^~]?([^"]*)"/.exec(l ?? "");
        return vv ? vv[1] : null;
      },
      set(version) {
        const all = read(file).split("\n");
        const before = all[i];
        all[i] = before.replace(/(\bversion\s*=\s*")([=^~]?)([^"]*)(")/, `$1$2${version}$4`);
        if (all[i] === before) return false;
        writeFileSync(file, all.join("\n"));
        return true;
      },
    });
  });
  return sites;
}

/** Local packages in a Cargo.lock (entries without `source`) carry the crate versions too. */
function cargoLockSites(root, file, crateNames) {
  const text = read(file);
  const blocks = text.split(/\n(?=\[\[package\]\])/);
  const sites = [];
  for (const name of crateNames) {
    const block = blocks.find((b) => new RegExp(`^name = "${name}"$`, "m").test(b) && !/^source = /m.test(b));
    if (!block) continue;
    sites.push({
      file: relative(root, file),
      kind: `Cargo.lock package ${name}`,
      get() {
        const b = read(file)
          .split(/\n(?=\[\[package\]\])/)
          .find((x) => new RegExp(`^name = "${name}"$`, "m").test(x) && !/^source = /m.test(x));
        const m = b && /^version = "([^"]*)"$/m.exec(b);
        return m ? m[1] : null;
      },
      set(version) {
        const parts = read(file).split(/\n(?=\[\[package\]\])/);
        let changed = false;
        const next = parts.map((b) => {
          if (!new RegExp(`^name = "${name}"$`, "m").test(b) || /^source = /m.test(b)) return b;
          const r = b.replace(/^version = "([^"]*)"$/m, (all, old) => {
            if (old === version) return all;
            changed = true;
            return `version = "${version}"`;
          });
          return r;
        });
        if (changed) writeFileSync(file, next.join("\n"));
        return changed;
      },
    });
  }
  return sites;
}

function rustSites(root) {
  const base = join(root, "bindings", "rust");
  const sites = [];
  const crateNames = [];
  const workspaceToml = join(base, "Cargo.toml");
  if (existsSync(workspaceToml)) {
    const text = read(workspaceToml);
    if (findTomlKey(text, "workspace.package", "version").length) {
      sites.push(tomlKeySite(root, workspaceToml, "workspace.package", "version", "Cargo workspace.package"));
    }
    if (findTomlKey(text, "package", "version").length) {
      sites.push(tomlKeySite(root, workspaceToml, "package", "version", "Cargo package"));
      const n = findTomlKey(text, "package", "name");
      if (n.length) crateNames.push(n[0].value);
    }
    sites.push(...cargoPathDependencySites(root, workspaceToml));
  }
  for (const dir of listDirs(base)) {
    const file = join(dir, "Cargo.toml");
    if (!existsSync(file)) continue;
    const text = read(file);
    const n = findTomlKey(text, "package", "name");
    if (n.length) crateNames.push(n[0].value);
    // `version.workspace = true` inherits the workspace version: nothing to write here.
    if (findTomlKey(text, "package", "version").length) {
      sites.push(tomlKeySite(root, file, "package", "version", "Cargo package"));
    }
    sites.push(...cargoPathDependencySites(root, file));
  }
  for (const lock of [join(base, "Cargo.lock"), ...listDirs(base).map((d) => join(d, "Cargo.lock"))]) {
    if (existsSync(lock)) sites.push(...cargoLockSites(root, lock, crateNames));
  }
  return sites;
}

function pythonSites(root) {
  const base = join(root, "bindings", "python");
  const sites = [];
  const pyproject = join(base, "pyproject.toml");
  if (existsSync(pyproject) && findTomlKey(read(pyproject), "project", "version").length) {
    sites.push(tomlKeySite(root, pyproject, "project", "version", "pyproject [project]"));
  }
  // A version module (`__version__ = "x.y.z"`), used when the version is dynamic or re-exported.
  const candidates = [];
  for (const dir of [base, join(base, "src"), ...listDirs(base), ...listDirs(join(base, "src"))]) {
    for (const name of ["_version.py", "__init__.py", "version.py"]) {
      const f = join(dir, name);
      if (existsSync(f)) candidates.push(f);
    }
  }
  for (const file of [...new Set(candidates)]) {
    if (/^__version__\s*=\s*["'][^"']*["']/m.test(read(file))) sites.push(regexSite(root, file, /^(__version__\s*=\s*["'])([^"']*)(["'])/m, "python __version__"));
  }
  return sites;
}

/** A site whose version is group 2 of `re` (groups 1 and 3 are kept as they are). */
function regexSite(root, file, re, kind) {
  return {
    file: relative(root, file),
    kind,
    get() {
      const m = re.exec(read(file));
      return m ? m[2] : null;
    },
    set(version) {
      const text = read(file);
      const m = re.exec(text);
      if (!m || m[2] === version) return false;
      writeFileSync(file, text.replace(re, `$1${version}$3`));
      return true;
    },
  };
}

function cmakeSite(root) {
  const file = join(root, "core", "CMakeLists.txt");
  if (!existsSync(file)) return [];
  const re = /(\bproject\s*\(\s*[A-Za-z0-9_]+[^)]*?\bVERSION\s+)(\d+\.\d+\.\d+)(\b)/i;
  if (!re.test(read(file))) return [];
  // CMake versions are numeric only: a prerelease 1.0.0-rc.1 is written as 1.0.0.
  const site = regexSite(root, file, re, "CMake project VERSION");
  return [{ ...site, numericOnly: true, set: (version) => site.set(numericCore(version)) }];
}

/** The four version macros of include/umfa.h, read and written together. */
function headerSite(root) {
  const file = join(root, "include", "umfa.h");
  if (!existsSync(file)) return [];
  const macro = (name) => new RegExp(`^(#define\\s+UMFA_VERSION_${name}\\s+)(\\S+)`, "m");
  return [
    {
      file: relative(root, file),
      kind: "UMFA_VERSION_* macros",
      get() {
        const text = read(file);
        const parts = ["MAJOR", "MINOR", "PATCH"].map((n) => macro(n).exec(text)?.[2]);
        const str = /^#define\s+UMFA_VERSION_STRING\s+"([^"]*)"/m.exec(text)?.[1];
        if (parts.some((p) => p === undefined) || str === undefined) return null;
        const fromParts = parts.join(".");
        // A prerelease suffix only lives in the string; the numbers must match its core.
        const core = str.split(/[-+]/)[0];
        return core === fromParts ? str : `${fromParts} (macros) / ${str} (UMFA_VERSION_STRING)`;
      },
      set(version) {
        const m = SEMVER.exec(version);
        if (!m) throw new Error(`not a semantic version: ${version}`);
        let text = read(file);
        const before = text;
        text = text.replace(macro("MAJOR"), `$1${m[1]}`);
        text = text.replace(macro("MINOR"), `$1${m[2]}`);
        text = text.replace(macro("PATCH"), `$1${m[3]}`);
        text = text.replace(/^(#define\s+UMFA_VERSION_STRING\s+")([^"]*)(")/m, `$1${version}$3`);
        if (text === before) return false;
        writeFileSync(file, text);
        return true;
      },
    },
  ];
}

function objcSites(root) {
  // The Objective-C binding may state its version in a header macro (UMFA_OBJC_VERSION "x.y.z").
  const base = join(root, "bindings", "objc");
  if (!existsSync(base)) return [];
  const sites = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) {
        if (name !== "build" && !name.startsWith(".")) walk(p);
      } else if (/\.(h|m)$/.test(name) && /^#define\s+UMFA_OBJC_VERSION\s+@?"[^"]*"/m.test(read(p))) {
        sites.push(regexSite(root, p, /^(#define\s+UMFA_OBJC_VERSION\s+@?")([^"]*)(")/m, "ObjC UMFA_OBJC_VERSION"));
      }
    }
  };
  walk(base);
  return sites;
}

/** Every version site under `root`, in a stable order. */
export function collectSites(root) {
  return [
    ...packageJsonFiles(root).map((f) => packageJsonSite(root, f)),
    ...rustSites(root),
    ...pythonSites(root),
    ...cmakeSite(root),
    ...headerSite(root),
    ...objcSites(root),
  ];
}

/**
 * The version to sync to: the highest version among the publishable npm packages (those
 * changesets bumps), which after `changeset version` is the new release version.
 */
export function releaseVersion(root) {
  const versions = packageJsonFiles(root)
    .map((f) => JSON.parse(read(f)))
    .filter((p) => p.private !== true && typeof p.version === "string" && p.name)
    .map((p) => p.version);
  if (!versions.length) {
    const rootPkg = JSON.parse(read(join(root, "package.json")));
    return rootPkg.version;
  }
  return versions.sort(compareVersions).at(-1);
}
