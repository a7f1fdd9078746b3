#!/usr/bin/env node
// Builds the documentation site into one folder (default: site/ at the repository root).
//
//   node docs/scripts/site.mjs [--out DIR] [--no-api]
//
// Every Markdown page under docs/ (except examples/, scripts/, site/) becomes DIR/<page>.html;
// docs/home.md becomes DIR/index.html. The order of the sidebar is docs/site/nav.json; a page
// that nav.json does not list still gets built and appears under "More guides", so a new guide
// needs no change here. The TypeScript API reference is TypeDoc's output, built into DIR/api.
// Links between pages are rewritten from .md to .html; a link to a repository file outside
// docs/ becomes a link to the repository (scripts/release/metadata.json names it), and must exist.
// The performance plots are drawn from the committed results in bench/results by the CLI's own
// SVG renderer (`<!-- perf-plot: NAME -->` markers in the page, PLOTS below).
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, posix, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const docs = join(dirname(fileURLToPath(import.meta.url)), "..");
const repo = join(docs, "..");
const { values: args } = parseArgs({ options: { out: { type: "string", default: join(repo, "site") }, "no-api": { type: "boolean", default: false } } });
const out = resolve(args.out);

// markdown-it is the renderer TypeDoc itself uses (a dependency of the pinned typedoc), so the
// guides and the API reference are rendered by the same Markdown engine and the site needs no
// package beyond the ones the repository already has.
const requireFromTypedoc = createRequire(createRequire(join(repo, "package.json")).resolve("typedoc/package.json"));
const MarkdownIt = requireFromTypedoc("markdown-it");

const nav = JSON.parse(readFileSync(join(docs, "site", "nav.json"), "utf8"));
const site = JSON.parse(readFileSync(join(repo, "scripts", "release", "metadata.json"), "utf8"));

/** docs-relative POSIX paths of every page. */
function pages() {
  const found = [];
  const skip = new Set(["examples", "scripts", "site", "api", "node_modules"]);
  const walk = (dir) => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) {
        if (!(dir === docs && skip.has(name))) walk(p);
      } else if (name.endsWith(".md")) {
        const rel = relative(docs, p).split("\\").join("/");
        if (!nav.exclude.includes(rel)) found.push(rel);
      }
    }
  };
  walk(docs);
  return found;
}

const htmlPath = (md) => (md === nav.home ? "index.html" : md.replace(/\.md$/, ".html"));

/** GitHub's heading anchors: lower case, punctuation dropped, each space a hyphen; repeats get -1, -2. */
function slugger() {
  const seen = new Map();
  return (text) => {
    const base = text.toLowerCase().trim().replace(/[^\p{L}\p{N}\s_-]/gu, "").replace(/\s/g, "-");
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    return n ? `${base}-${n}` : base;
  };
}

const esc = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

// ---- plots ---------------------------------------------------------------------------------------

const PLOTS = {
  "sdpa-cuda-fwd": {
    results: "bench/results/sdpa-cuda.json",
    title: "CUDA forward, bf16, D = 128, not causal (H100)",
    xLabel: "sequence length N",
    yLabel: "TFLOP/s",
    filter: (r) => r.dtype === "bfloat16" && r.D === 128 && !r.causal,
    x: (r) => r.N,
    series: { umfa: "umfa fwd TFLOP/s", "PyTorch SDPA, flash": "flash fwd TFLOP/s", "PyTorch SDPA, cuDNN": "cudnn fwd TFLOP/s" },
  },
  "sdpa-cuda-bwd": {
    results: "bench/results/sdpa-cuda.json",
    title: "CUDA backward, bf16, D = 128, not causal (H100)",
    xLabel: "sequence length N",
    yLabel: "TFLOP/s",
    filter: (r) => r.dtype === "bfloat16" && r.D === 128 && !r.causal,
    x: (r) => r.N,
    series: { umfa: "umfa bwd TFLOP/s", "PyTorch SDPA, flash": "flash bwd TFLOP/s", "PyTorch SDPA, cuDNN": "cudnn bwd TFLOP/s" },
  },
  "cpu-f32-fwd": {
    results: "bench/results/cpu_vs_torch.json",
    title: "CPU forward, f32, not causal",
    xLabel: "sequence length N",
    yLabel: "GFLOP/s",
    filter: (r) => r.dtype === "f32" && r.direction === "fwd" && !r.causal,
    x: (r) => Number(String(r["B×H×N×D"]).split("×")[2]),
    series: { umfa: "umfa GFLOP/s", "PyTorch SDPA": "PyTorch GFLOP/s" },
  },
};

async function drawPlots() {
  const svgModule = join(repo, "packages", "cli", "dist", "svg.js");
  if (!existsSync(svgModule)) throw new Error("packages/cli is not built (dist/svg.js): run pnpm nx run @umfa/cli:build");
  const { renderPlot } = await import(pathToFileURL(svgModule).href);
  mkdirSync(join(out, "plots"), { recursive: true });
  for (const [name, p] of Object.entries(PLOTS)) {
    const rows = JSON.parse(readFileSync(join(repo, p.results), "utf8")).rows.filter(p.filter);
    if (rows.length < 2) throw new Error(`plot ${name}: fewer than two rows of ${p.results} match`);
    const series = Object.entries(p.series).map(([label, key]) => ({ label, points: rows.map((r) => ({ x: p.x(r), y: Number(r[key]) })) }));
    writeFileSync(join(out, "plots", `${name}.svg`), renderPlot(series, { title: p.title, xLabel: p.xLabel, yLabel: p.yLabel }));
  }
}

// ---- pages ---------------------------------------------------------------------------------------

const problems = [];

function render(page, all) {
  const src = readFileSync(join(docs, page), "utf8");
  const pageHtml = htmlPath(page);
  const pageDir = posix.dirname(page);
  const toRoot = posix.relative(posix.dirname(pageHtml), ".") || ".";
  const md = new MarkdownIt({ html: true, linkify: false, typographer: false });
  const slug = slugger();
  md.core.ruler.push("anchors", (state) => {
    const t = state.tokens;
    for (let i = 0; i < t.length; i++) {
      if (t[i].type === "heading_open") {
        const text = t[i + 1].children.filter((c) => c.type === "text" || c.type === "code_inline").map((c) => c.content).join("");
        t[i].attrSet("id", slug(text));
      }
    }
  });
  const rewrite = (href) => {
    if (/^[a-z][a-z0-9+.-]*:/i.test(href) || href.startsWith("#")) return href;
    const [path, hash] = href.split("#", 2);
    const frag = hash === undefined ? "" : `#${hash}`;
    const target = posix.normalize(posix.join(pageDir, decodeURI(path)));
    if (target.startsWith("api/")) return href; // TypeDoc's pages, checked by the link checker
    if (all.includes(target)) return posix.relative(posix.dirname(pageHtml), htmlPath(target)) + frag;
    if (target.startsWith("plots/")) return href;
    // Anything else is a file of the repository: link to it there (it must exist).
    const inRepo = posix.normalize(posix.join("docs", target));
    if (inRepo.startsWith("..") || !existsSync(join(repo, inRepo))) {
      problems.push(`${page}: link to ${href}: ${inRepo} does not exist`);
      return href;
    }
    const kind = statSync(join(repo, inRepo)).isDirectory() ? "tree" : "blob";
    return `${site.repository}/${kind}/${site.branch}/${inRepo.replace(/\/$/, "")}${frag}`;
  };
  const linkOpen = md.renderer.rules.link_open ?? ((tokens, idx, options, env, self) => self.renderToken(tokens, idx, options));
  md.renderer.rules.link_open = (tokens, idx, options, env, self) => {
    const a = tokens[idx];
    a.attrSet("href", rewrite(a.attrGet("href")));
    return linkOpen(tokens, idx, options, env, self);
  };
  const text = src.replace(/^<!--\s*perf-plot:\s*(\S+)\s*-->$/gm, (all, name) => {
    if (!PLOTS[name]) {
      problems.push(`${page}: unknown plot ${name}`);
      return all;
    }
    return `<figure class="plot"><img src="${toRoot}/plots/${name}.svg" alt="${esc(PLOTS[name].title)}"><figcaption>${esc(PLOTS[name].title)}, from <code>${PLOTS[name].results}</code></figcaption></figure>`;
  });
  const body = md.render(text);
  const title = /^#\s+(.+)$/m.exec(src)?.[1].replace(/`/g, "") ?? page;
  return { title, body, pageHtml, toRoot };
}

function navHtml(all, current, toRoot, titles) {
  const listed = new Set(nav.sections.flatMap((s) => s.pages));
  const sections = [...nav.sections, { title: "More guides", pages: all.filter((p) => !listed.has(p)) }].filter((s) => s.pages.length);
  const items = (s) =>
    s.pages
      .map((p) => {
        if (p === "api/index.html") return `<li><a href="${toRoot}/api/index.html">TypeScript API</a></li>`;
        if (!all.includes(p)) {
          problems.push(`docs/site/nav.json lists ${p}, which is not a page`);
          return "";
        }
        const cls = p === current ? ' class="current"' : "";
        return `<li><a${cls} href="${toRoot}/${htmlPath(p)}">${esc(titles.get(p))}</a></li>`;
      })
      .join("");
  return sections.map((s) => `<h2>${esc(s.title)}</h2><ul>${items(s)}</ul>`).join("\n");
}

function layout({ title, body, toRoot }, navigation) {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} — ${esc(nav.title)}</title>
<link rel="stylesheet" href="${toRoot}/style.css">
</head>
<body>
<header class="topbar"><a class="brand" href="${toRoot}/index.html">${esc(nav.title)}</a><span class="tagline">${esc(site.tagline)}</span></header>
<div class="frame">
<nav class="sidebar">
${navigation}
</nav>
<main class="content">
${body}
</main>
</div>
</body>
</html>
`;
}

function typedoc() {
  const tsc = join(dirname(createRequire(join(repo, "package.json")).resolve("typedoc/package.json")), "bin", "typedoc");
  const r = spawnSync(process.execPath, [tsc, "--out", join(out, "api")], { cwd: repo, stdio: "inherit" });
  if (r.status !== 0) throw new Error("TypeDoc failed");
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
if (!args["no-api"]) typedoc();
await drawPlots();
copyFileSync(join(docs, "site", "style.css"), join(out, "style.css"));
const all = pages();
if (!all.includes(nav.home)) problems.push(`the home page ${nav.home} is missing`);
const rendered = new Map(all.map((p) => [p, render(p, all)]));
const titles = new Map([...rendered].map(([p, r]) => [p, r.title]));
for (const [page, r] of rendered) {
  const file = join(out, r.pageHtml);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, layout(r, navHtml(all, page, r.toRoot, titles)));
}
for (const p of problems) console.error(p);
console.log(`site: ${rendered.size} pages, ${Object.keys(PLOTS).length} plots${args["no-api"] ? "" : ", TypeScript API"} in ${relative(process.cwd(), out) || "."}; ${problems.length} problem(s)`);
process.exit(problems.length ? 1 : 0);
