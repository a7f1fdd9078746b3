/**
 * `umfa`: information, benchmarks and conformance checks for the umfa flash-attention library.
 * Exit codes: 0 success, 1 failure (a check failed or the core returned an error), 2 usage.
 */
import { makeIo, type Io } from './context.js';
import { describeError, Exit, FailureError, UsageError } from './errors.js';
import { cliVersion } from './version.js';

export const MAIN_HELP = `umfa — the umfa flash-attention library from the command line

Usage:
  umfa <command> [options]

Commands:
  info     library and ABI version, backends and devices, CPU features, library path
  bench    time attention over a grid of shapes (table, --json, --plot FILE.svg);
           --quick checks a few shapes against a float64 reference, then times them
  check    run the conformance vectors through the binding; non-zero exit on failure
  help     show help for a command (umfa help bench)

Options:
  -h, --help       show help (also after any command)
  -V, --version    print the CLI's version
      --no-color   no colours (also: NO_COLOR=1; colours are used only on a terminal)

Exit codes: 0 success, 1 failure, 2 usage error.
Environment: UMFA_LIB_DIR (where libumfa is), UMFA_NUM_THREADS (CPU threads), NO_COLOR.`;

type Command = {
  help: string;
  run: (args: string[], io: Io) => Promise<number>;
};

async function commands(): Promise<Record<string, Command>> {
  const [info, bench, check] = await Promise.all([import('./commands/info.js'), import('./commands/bench.js'), import('./commands/check.js')]);
  return {
    info: { help: info.HELP, run: info.run },
    bench: { help: bench.HELP, run: bench.run },
    check: { help: check.HELP, run: check.run },
  };
}

export async function main(argv: string[]): Promise<number> {
  // --no-color anywhere applies to everything (and is removed before the command parses).
  const noColor = argv.includes('--no-color');
  const args = argv.filter((a) => a !== '--no-color' && a !== '--color');
  const io = makeIo(argv, noColor ? false : undefined);
  const cmds = await commands();
  const [first, ...rest] = args;
  try {
    if (first === undefined) {
      io.err.write(`${MAIN_HELP}\n`);
      return Exit.USAGE;
    }
    if (first === '-h' || first === '--help') {
      io.print(MAIN_HELP);
      return Exit.OK;
    }
    if (first === '-V' || first === '--version') {
      io.print(cliVersion());
      return Exit.OK;
    }
    if (first === 'help') {
      const topic = rest[0];
      if (topic === undefined) io.print(MAIN_HELP);
      else if (cmds[topic]) io.print(cmds[topic].help);
      else throw new UsageError(`unknown command "${topic}"`);
      return Exit.OK;
    }
    const cmd = cmds[first];
    if (!cmd) {
      if (first.startsWith('-')) throw new UsageError(`unknown option "${first}"`);
      throw new UsageError(`unknown command "${first}"`);
    }
    if (rest.includes('-h') || rest.includes('--help')) {
      io.print(cmd.help);
      return Exit.OK;
    }
    return await cmd.run(rest, io);
  } catch (e) {
    if (e instanceof UsageError) {
      const where = first && cmds[first] ? ` ${first}` : '';
      io.err.write(`${io.errStyle.red('umfa: error:')} ${e.message}\nRun 'umfa${where} --help' for usage.\n`);
      return Exit.USAGE;
    }
    if (e instanceof FailureError) {
      if (e.message) io.err.write(`${io.errStyle.red('umfa:')} ${e.message}\n`);
      return Exit.FAILURE;
    }
    io.err.write(`${io.errStyle.red('umfa: error:')} ${describeError(e)}\n`);
    if (io.env.UMFA_DEBUG && e instanceof Error && e.stack) io.err.write(`${e.stack}\n`);
    return Exit.FAILURE;
  }
}
