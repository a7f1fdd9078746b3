#!/usr/bin/env node
import { main } from '../dist/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`umfa: internal error: ${e?.stack ?? e}\n`);
    process.exitCode = 1;
  },
);
