#!/usr/bin/env node
// Generates docs/abi-reference.md from the comments of include/umfa.h.
//
//   node docs/scripts/abi-reference.mjs           # (re)write docs/abi-reference.md
//   node docs/scripts/abi-reference.mjs --check   # exit 1 when the page is out of date
//
// The header is the documentation: every function, struct, field, enum and macro carries a `/**`
// comment saying what it reads, writes and owns. This script keeps the header's order and
// section banners, prints each declaration (comments stripped) in a ```c decl block and the
// comment as prose under it. Declarations are checked against the header by samples.mjs.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// --root DIR: another checkout (the release scripts use it); default: this repository.
const rootArg = process.argv.indexOf("--root");
const repo = rootArg > 0 ? process.argv[rootArg + 1] : join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const headerPath = join(repo, "include", "umfa.h");
const pagePath = join(repo, "docs", "abi-reference.md");

/** Text of a comment without its delimiters and leading ` * `. */
function commentText(lines) {
  return lines
    .join("\n")
    .replace(/^\s*\/\*\*?/, "")
    .replace(/\*\/\s*$/, "")
    .split("\n")
    .map((l) => l.replace(/^\s*\* ?/, "").replace(/\s+$/, ""))
    .join("\n")
    .trim();
}

/**
 * Comment prose as Markdown. Lines starting with "- " or "N. " (at most two spaces in) are list
 * items and more-indented lines after them continue the item; other indented lines are formulas
 * or layouts and become a text block.
 */
function prose(text) {
  const out = [];
  let code = [];
  let item = null; // indentation of the list item being continued
  const flush = () => {
    if (code.length) {
      const min = Math.min(...code.filter((l) => l.trim()).map((l) => l.match(/^ */)[0].length));
      out.push("```text", ...code.map((l) => l.slice(min)), "```");
      code = [];
    }
  };
  for (const line of text.split("\n")) {
    const indent = line.match(/^ */)[0].length;
    const bullet = /^ {0,2}(- |\d+\. )/.exec(line);
    if (bullet) {
      flush();
      item = indent;
      out.push(line.trimStart());
    } else if (item !== null && line.trim() && indent > item) {
      out[out.length - 1] += ` ${line.trim()}`;
    } else if (line.trim() && indent >= 2) {
      item = null;
      code.push(line);
    } else {
      flush();
      if (!line.trim()) item = null;
      else item = null;
      out.push(line);
    }
  }
  flush();
  return out.join("\n").replace(/\n{3,}/g, "\n\n");
}

const stripComments = (s) => s.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
const anchor = (s) => s.toLowerCase().replace(/[^a-z0-9_ -]/g, "").trim().replace(/\s+/g, "-");

function parse(header) {
  const lines = header.split("\n");
  const sections = [{ title: null, text: "", items: [] }];
  let intro = "";
  let doc = null;
  const cur = () => sections.at(-1);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (/^\/\* =+/.test(line)) {
      const body = [];
      for (i++; i < lines.length && !/\*\/\s*$/.test(lines[i]); i++) body.push(lines[i]);
      const text = body.map((l) => l.replace(/^\s*\* ?/, "")).filter((l) => !/^=+$/.test(l.trim()));
      sections.push({ title: text[0].trim(), text: text.slice(1).join("\n").trim(), items: [] });
      doc = null;
      continue;
    }
    if (i === 0 && /^\/\*/.test(line)) {
      const body = [];
      for (; i < lines.length && !/\*\/\s*$/.test(lines[i]); i++) body.push(lines[i]);
      body.push(lines[i]);
      intro = commentText(body);
      continue;
    }
    if (/^\s*\/\*\*/.test(line)) {
      const body = [line];
      while (!/\*\/\s*$/.test(body.at(-1)) && i + 1 < lines.length) body.push(lines[++i]);
      doc = commentText(body);
      continue;
    }
    if (/^\/\*/.test(line)) {
      // A plain comment: not documentation. Skip it.
      while (!/\*\/\s*$/.test(lines[i]) && i + 1 < lines.length) i++;
      continue;
    }
    let m;
    if ((m = /^#define\s+((?:UMFA|MFA)_[A-Z0-9_]+)\s+(.*)$/.exec(line))) {
      if (m[1] === "UMFA_H" || m[1] === "UMFA_BOOL") { doc = null; continue; }
      cur().items.push({ kind: "macro", name: m[1], decl: `#define ${m[1]} ${m[2].trim()}`, doc });
      doc = null;
      continue;
    }
    if (/^(typedef\s+)?enum\s*\{/.test(line) || /^typedef struct \w+ \{/.test(line)) {
      const body = [line];
      while (!/^\}/.test(lines[i]) && i + 1 < lines.length) body.push(lines[++i]);
      const isEnum = /enum/.test(line);
      const members = [];
      let mdoc = null;
      for (let j = 1; j < body.length - 1; j++) {
        const l = body[j];
        if (/^\s*\/\*\*/.test(l)) {
          const c = [l];
          while (!/\*\/\s*$/.test(c.at(-1))) c.push(body[++j]);
          mdoc = commentText(c);
          continue;
        }
        const code = stripComments(l).trim();
        if (!code) continue;
        const trailing = /\/\*\s*(.*?)\s*\*\/\s*$/.exec(l)?.[1];
        const name = isEnum ? /^(\w+)/.exec(code)[1] : /(\w+)(\[\w+\])?;$/.exec(code)?.[1];
        members.push({ code: code.replace(/,$/, ""), name, doc: [mdoc, trailing].filter(Boolean).join(" ") });
        mdoc = null;
      }
      const decl = isEnum
        ? `enum {\n${members.map((x) => `  ${x.code}`).join(",\n")}\n};`
        : `${body[0]}\n${members.map((x) => `  ${x.code}`).join("\n")}\n${body.at(-1)}`;
      const name = isEnum ? (members[0]?.name.replace(/_[A-Z0-9]+$/, "_*") ?? "enum") : /typedef struct (\w+)/.exec(line)[1];
      cur().items.push({ kind: isEnum ? "enum" : "struct", name, decl, doc, members });
      doc = null;
      continue;
    }
    if (/^typedef\b/.test(line)) {
      const name = /(\w+);\s*$/.exec(line)?.[1] ?? line;
      cur().items.push({ kind: "type", name, decl: line.trim(), doc });
      doc = null;
      continue;
    }
    if (/^UMFA_API\b/.test(line)) {
      const body = [line];
      while (!/;\s*$/.test(body.at(-1)) && i + 1 < lines.length) body.push(lines[++i]);
      // Re-indent continuation lines to a fixed 4 spaces (the header aligns them to parentheses).
      const decl = body.map((l, k) => (k === 0 ? l.trim() : `    ${l.trim()}`)).join("\n");
      const name = /(\w+)\s*\(/.exec(decl)[1];
      cur().items.push({ kind: "function", name, decl, doc });
      doc = null;
      continue;
    }
    if (line.trim() && !/^#/.test(line) && !/^\}/.test(line) && !/^extern/.test(line)) doc = null;
  }
  return { intro, sections: sections.filter((s) => s.title || s.items.length) };
}

function render({ intro, sections }) {
  const out = [];
  out.push("<!-- Generated from include/umfa.h by docs/scripts/abi-reference.mjs; do not edit by hand. -->");
  out.push("", "# C ABI reference", "");
  out.push(
    "This page is generated from the comments of [`include/umfa.h`](../include/umfa.h), the only",
    "public header of libumfa, by `node docs/scripts/abi-reference.mjs`. CI fails when it is out of",
    "date (`--check`), and every declaration below is checked against the header.",
    "",
  );
  // The header's own "Contents" paragraph is replaced by the linked one below.
  const firstPara = intro
    .split("\n\n")
    .slice(1)
    .filter((p) => !p.startsWith("Contents"))
    .join("\n\n");
  out.push(prose(firstPara), "");
  out.push("## Contents", "");
  for (const s of sections) out.push(`- [${s.title}](#${anchor(s.title)})`);
  for (const s of sections) {
    out.push("", `## ${s.title}`, "");
    if (s.text) out.push(prose(s.text), "");
    for (const item of s.items) {
      out.push(`### \`${item.name}\``, "");
      out.push("```c decl", item.decl, "```", "");
      if (item.doc) out.push(prose(item.doc), "");
      if (item.kind === "enum" || item.kind === "struct") {
        const documented = item.members.filter((m) => m.doc || item.kind === "enum");
        if (documented.length) {
          out.push(item.kind === "enum" ? "| Constant | Meaning |" : "| Field | Meaning |", "| --- | --- |");
          for (const m of item.members) {
            const cell = (m.doc || "").replace(/\n+/g, " ").replace(/\|/g, "\\|");
            out.push(`| \`${item.kind === "enum" ? m.code : m.name}\` | ${cell} |`);
          }
          out.push("");
        }
      }
    }
  }
  return out.join("\n").replace(/\n{3,}/g, "\n\n").trimEnd() + "\n";
}

const page = render(parse(readFileSync(headerPath, "utf8")));
if (process.argv.includes("--check")) {
  let current = "";
  try {
    current = readFileSync(pagePath, "utf8");
  } catch {}
  if (current !== page) {
    console.error("docs/abi-reference.md is out of date with include/umfa.h: run `node docs/scripts/abi-reference.mjs`");
    process.exit(1);
  }
  console.log("docs/abi-reference.md is up to date");
} else {
  writeFileSync(pagePath, page);
  console.log(`wrote ${pagePath.slice(repo.length + 1)}`);
}
