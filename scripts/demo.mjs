// The README's first command ends here: build the core and the CLI (cached by Nx), then run
// `umfa bench --quick` on the CPU backend — attention computed, checked against a float64
// reference, and timed.
import { spawnSync } from "node:child_process";

const env = { ...process.env, NX_DAEMON: "false", NX_NO_CLOUD: "true", NX_TUI: "false" };
const step = (cmd, args) => {
  const r = spawnSync(cmd, args, { stdio: "inherit", env });
  if (r.status !== 0) process.exit(r.status ?? 1);
};

step("pnpm", ["nx", "run", "@umfa/cli:build", "--outputStyle=static"]);
step("node", ["packages/cli/bin/umfa.js", "bench", "--quick", "--backend", "cpu", ...process.argv.slice(2)]);
