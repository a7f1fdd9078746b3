// Prints the Nx projects that have a `test` target, in the order the test script runs them:
// the core first (its conformance runner validates the library every binding loads), then the
// rest alphabetically.
import { execFileSync } from "node:child_process";

const out = execFileSync("pnpm", ["nx", "show", "projects", "--with-target", "test", "--json"], {
  encoding: "utf8",
  env: { ...process.env, NX_DAEMON: "false" },
});
const projects = JSON.parse(out).sort();
const first = projects.filter((p) => p === "@umfa/core");
console.log([...first, ...projects.filter((p) => p !== "@umfa/core")].join("\n"));
