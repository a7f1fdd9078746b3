// The site checker must fail pages that are blank or unstyled, and broken links.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const checker = join(dirname(fileURLToPath(import.meta.url)), "..", "check-site.mjs");
const hasChromium = ["chromium", "chromium-browser", "google-chrome", process.env.CHROMIUM].some((c) => c && spawnSync("sh", ["-c", `command -v ${c}`]).status === 0);

function fixture(files) {
  const dir = mkdtempSync(join(tmpdir(), "umfa-site-test-"));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}
const run = (dir, flag) => spawnSync(process.execPath, [checker, "--site", dir, flag], { encoding: "utf8" });

test("a broken link, a missing fragment and a link out of the site fail", () => {
  const dir = fixture({
    "index.html": '<a href="a.html#there">ok</a> <a href="missing.html">x</a> <a href="a.html#nowhere">y</a> <a href="../../etc/passwd">z</a> <code><a href="ignored.html"></a></code>',
    "a.html": '<h1 id="there">A</h1><a href="index.html">back</a> <a href="https://example.org/">out</a>',
  });
  try {
    const r = run(dir, "--links");
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /missing\.html does not exist/);
    assert.match(r.stderr, /no id "nowhere"/);
    assert.match(r.stderr, /leaves the site/);
    assert.match(r.stdout, /5 internal links, 3 broken/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("blank and unstyled pages fail the screenshot check", { skip: !hasChromium && "no Chromium", timeout: 300_000 }, () => {
  const text = "<p>" + "umfa flash attention documentation text. ".repeat(200) + "</p>";
  const dir = fixture({
    "index.html": `<!doctype html><link rel="stylesheet" href="style.css"><h1>Unstyled</h1>${text}`,
    "blank.html": '<!doctype html><link rel="stylesheet" href="style.css"><body></body>',
    "style.css": "body { }",
    "api/index.html": `<!doctype html><h1>API</h1>${text}`,
  });
  try {
    const r = run(dir, "--screenshots");
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /FAIL blank\.html: .*blank/);
    assert.match(r.stdout, /FAIL index\.html: .*unstyled: top bar/);
    assert.match(r.stdout, /FAIL api\/index\.html: .*not the TypeDoc theme/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
