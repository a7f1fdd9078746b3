#!/usr/bin/env node
import { main } from '../dist/main.js';

// `umfa bench | head`: a closed pipe ends the program quietly, as with any Unix tool.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e) => {
    if (e && e.code === 'EPIPE') process.exit(0);
    throw e;
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`umfa: internal error: ${e?.stack ?? e}\n`);
    process.exitCode = 1;
  },
);
