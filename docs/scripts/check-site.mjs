#!/usr/bin/env node
// Checks the built documentation site (docs/scripts/site.mjs).
//
//   node docs/scripts/check-site.mjs [--site DIR] [--links] [--screenshots] [--keep DIR]
//
// --links        every internal link and image of every page (the TypeDoc pages included)
//                points at a file of the site, and its #fragment at an id or name there.
//                External links (with a scheme) are not fetched. Fragments into TypeDoc's
//                hierarchy page are not checked (it draws those ids in the browser).
// --screenshots  opens the guide pages and two TypeDoc pages in headless Chromium (Debian
//                `chromium`, or $CHROMIUM) at 1280×900 and fails a page that is blank or
//                unstyled. What is measured, from the PNG:
//                  - ink: the fraction of pixels that differ from the page's most common colour;
//                    a blank (or nearly blank) page has almost none. Must be ≥ 4%.
//                  - guide pages: the top bar's colour (#16325c) must cover ≥ 4% of the
//                    screenshot and the sidebar's (#eef2f8) ≥ 8%: both come only from
//                    style.css, so an unstyled page (stylesheet missing or broken) has neither.
//                  - TypeDoc pages: the most common colour must be the theme's background
//                    (#f2f4f8), not the browser's default white of an unstyled page.
//                TypeDoc's pages hide their body until their script has run (or a 500 ms timer
//                fires): Chromium runs with a virtual time budget so timers fire before the shot.
//                With --keep DIR the screenshots are kept there (CI uploads nothing; look at them
//                locally).
// Without flags both checks run.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { inflateSync } from "node:zlib";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const { values: args } = parseArgs({
  options: {
    site: { type: "string", default: join(repo, "site") },
    links: { type: "boolean", default: false },
    screenshots: { type: "boolean", default: false },
    keep: { type: "string" },
  },
});
const site = resolve(args.site);
const doLinks = args.links || !args.screenshots;
const doShots = args.screenshots || !args.links;
if (!existsSync(join(site, "index.html"))) {
  console.error(`${site}/index.html does not exist: build the site first (node docs/scripts/site.mjs)`);
  process.exit(1);
}

function htmlFiles(dir = site) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...htmlFiles(p));
    else if (name.endsWith(".html")) out.push(p);
  }
  return out.sort();
}

// ---- links ---------------------------------------------------------------------------------------

// TypeDoc draws its class hierarchy page in the browser from its own data (the ids do not exist
// in the file), so fragments into it are not checked; the page itself must exist.
const CLIENT_SIDE_ANCHORS = new Set(["api/hierarchy.html"]);
const idCache = new Map();
function idsOf(file) {
  let ids = idCache.get(file);
  if (!ids) {
    ids = new Set();
    for (const m of readFileSync(file, "utf8").matchAll(/\s(?:id|name)="([^"]*)"/g)) ids.add(decodeEntities(m[1]));
    idCache.set(file, ids);
  }
  return ids;
}
const decodeEntities = (s) => s.replace(/&amp;/g, "&").replace(/&quot;/g, '"').replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&#39;/g, "'");

function checkLinks() {
  const problems = [];
  let checked = 0;
  const files = htmlFiles();
  for (const file of files) {
    const html = readFileSync(file, "utf8");
    // Attributes of elements, not text inside <code> or <pre>: strip those first.
    const markup = html.replace(/<pre[\s\S]*?<\/pre>/g, "").replace(/<code[\s\S]*?<\/code>/g, "");
    for (const m of markup.matchAll(/\s(href|src)="([^"]*)"/g)) {
      const raw = decodeEntities(m[2]);
      if (/^[a-z][a-z0-9+.-]*:/i.test(raw) || raw.startsWith("//")) continue; // external
      checked++;
      const [pathPart, frag] = raw.split("#", 2);
      let target = pathPart ? resolve(dirname(file), decodeURI(pathPart.split("?")[0])) : file;
      if (pathPart.endsWith("/") || (existsSync(target) && statSync(target).isDirectory())) target = join(target, "index.html");
      const where = `${relative(site, file)}: ${m[1]}="${raw}"`;
      if (!target.startsWith(site)) problems.push(`${where} leaves the site`);
      else if (!existsSync(target)) problems.push(`${where}: ${relative(site, target)} does not exist`);
      else if (frag && target.endsWith(".html") && !CLIENT_SIDE_ANCHORS.has(relative(site, target)) && !idsOf(target).has(decodeURIComponent(frag))) problems.push(`${where}: no id "${frag}" in ${relative(site, target)}`);
    }
  }
  for (const p of problems) console.error(p);
  console.log(`links: ${files.length} pages, ${checked} internal links, ${problems.length} broken`);
  return problems.length === 0;
}

// ---- screenshots ---------------------------------------------------------------------------------

/** Decodes an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes) to { width, height, rgba }. */
function decodePng(buf) {
  if (buf.readUInt32BE(0) !== 0x89504e47) throw new Error("not a PNG");
  let pos = 8;
  let width = 0;
  let height = 0;
  let colorType = 0;
  const idat = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos);
    const type = buf.toString("latin1", pos + 4, pos + 8);
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (type === "IHDR") {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      colorType = data[9];
      if (data[8] !== 8 || data[12] !== 0 || (colorType !== 2 && colorType !== 6)) throw new Error(`unsupported PNG (depth ${data[8]}, colour type ${colorType}, interlace ${data[12]})`);
    } else if (type === "IDAT") idat.push(data);
    else if (type === "IEND") break;
    pos += 12 + len;
  }
  const bpp = colorType === 6 ? 4 : 3;
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * bpp;
  const px = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const out = px.subarray(y * stride, (y + 1) * stride);
    const prev = y > 0 ? px.subarray((y - 1) * stride, y * stride) : Buffer.alloc(stride);
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? out[i - bpp] : 0;
      const b = prev[i];
      const c = i >= bpp ? prev[i - bpp] : 0;
      let v = line[i];
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      out[i] = v & 0xff;
    }
  }
  const rgba = new Uint32Array(width * height);
  for (let i = 0; i < width * height; i++) rgba[i] = (px[i * bpp] << 16) | (px[i * bpp + 1] << 8) | px[i * bpp + 2];
  return { width, height, rgb: rgba };
}

const hex = (c) => `#${c.toString(16).padStart(6, "0")}`;

function measure(png) {
  const counts = new Map();
  for (const c of png.rgb) counts.set(c, (counts.get(c) ?? 0) + 1);
  const total = png.rgb.length;
  const [bg, bgCount] = [...counts].sort((a, b) => b[1] - a[1])[0];
  const share = (color) => (counts.get(color) ?? 0) / total;
  return { background: hex(bg), ink: 1 - bgCount / total, share, colors: counts.size };
}

function chromium() {
  for (const c of [process.env.CHROMIUM, "chromium", "chromium-browser", "google-chrome"]) {
    if (c && spawnSync("sh", ["-c", `command -v ${c}`]).status === 0) return c;
  }
  return null;
}

function checkScreenshots() {
  const browser = chromium();
  if (!browser) {
    console.error("screenshots: no Chromium found (apt-get install chromium, or set CHROMIUM)");
    return false;
  }
  const dir = args.keep ? resolve(args.keep) : mkdtempSync(join(tmpdir(), "umfa-site-shots-"));
  mkdirSync(dir, { recursive: true });
  const guides = readdirSync(site, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith(".html") && !f.startsWith("api"))
    .sort();
  const api = ["api/index.html", ...["api/modules", "api/classes"].flatMap((d) => (existsSync(join(site, d)) ? readdirSync(join(site, d)).filter((f) => f.endsWith(".html")).slice(0, 1).map((f) => `${d}/${f}`) : []))];
  let failed = 0;
  for (const page of [...guides, ...api]) {
    const png = join(dir, `${page.replace(/[/.]/g, "_")}.png`);
    rmSync(png, { force: true });
    const r = spawnSync(browser, ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1", "--window-size=1280,900", "--virtual-time-budget=10000", `--screenshot=${png}`, pathToFileURL(join(site, page)).href], { encoding: "utf8", timeout: 120_000 });
    if (!existsSync(png)) {
      failed++;
      console.log(`FAIL ${page}: no screenshot (${r.error?.message ?? r.stderr.trim().split("\n").at(-1)})`);
      continue;
    }
    const m = measure(decodePng(readFileSync(png)));
    const why = [];
    if (m.ink < 0.04) why.push(`blank: ${(m.ink * 100).toFixed(1)}% of pixels differ from the background`);
    let detail;
    if (page.startsWith("api/")) {
      if (m.background !== "#f2f4f8") why.push(`unstyled: the background is ${m.background}, not the TypeDoc theme's #f2f4f8`);
      detail = `background ${m.background}`;
    } else {
      const bar = m.share(0x16325c);
      const side = m.share(0xeef2f8);
      if (bar < 0.04) why.push(`unstyled: top bar colour on ${(bar * 100).toFixed(1)}% of pixels`);
      if (side < 0.08) why.push(`unstyled: sidebar colour on ${(side * 100).toFixed(1)}% of pixels`);
      detail = `top bar ${(bar * 100).toFixed(1)}%, sidebar ${(side * 100).toFixed(1)}%`;
    }
    const line = `${page}: ink ${(m.ink * 100).toFixed(1)}%, ${m.colors} colours, ${detail}`;
    if (why.length) {
      failed++;
      console.log(`FAIL ${line}: ${why.join("; ")}`);
    } else console.log(`ok   ${line}`);
  }
  if (!args.keep) rmSync(dir, { recursive: true, force: true });
  console.log(`screenshots: ${guides.length + api.length} pages, ${failed} failed${args.keep ? ` (kept in ${dir})` : ""}`);
  return failed === 0;
}

let ok = true;
if (doLinks) ok = checkLinks() && ok;
if (doShots) ok = checkScreenshots() && ok;
process.exit(ok ? 0 : 1);
