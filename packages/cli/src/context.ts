import { colorEnabled, makeStyle, type Style } from './term.js';

/** What every command gets: output streams, styles and the environment. */
export interface Io {
  out: NodeJS.WriteStream;
  err: NodeJS.WriteStream;
  env: NodeJS.ProcessEnv;
  /** Style for stdout (colour only on a TTY, never with NO_COLOR). */
  style: Style;
  /** Style for stderr. */
  errStyle: Style;
  print(line?: string): void;
  /** The full command line, for the record in JSON output. */
  argv: string[];
}

export function makeIo(argv: string[], colorFlag?: boolean): Io {
  const out = process.stdout;
  const err = process.stderr;
  return {
    out,
    err,
    env: process.env,
    style: makeStyle(colorEnabled(out, process.env, colorFlag)),
    errStyle: makeStyle(colorEnabled(err, process.env, colorFlag)),
    print: (line = '') => {
      out.write(`${line}\n`);
    },
    argv,
  };
}
