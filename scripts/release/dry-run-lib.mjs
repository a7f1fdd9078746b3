import { collectSites, expectedFor, releaseVersion } from "./versions.mjs";

/** { ok, expected, bad: ["file (kind): version", ...] } for the repository at `root`. */
export function checkVersionsAgree(root) {
  const expected = releaseVersion(root);
  const bad = collectSites(root)
    .map((s) => ({ s, v: s.get() }))
    .filter(({ s, v }) => v !== expectedFor(s, expected))
    .map(({ s, v }) => `${s.file} (${s.kind}): ${v}`);
  return { ok: bad.length === 0, expected, bad };
}
