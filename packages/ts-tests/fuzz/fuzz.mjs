#!/usr/bin/env node
// Coverage-guided fuzzer of the TypeScript bindings (@umfa/koffi, @umfa/napi). See README.md.
//
//   node fuzz.mjs fuzz   [--binding koffi|napi] [--seconds N] [--seed S] [--timeout S]
//                        [--uncovered] [--save-corpus DIR]
//   node fuzz.mjs replay [--binding koffi|napi|both] [--trace] [FILE...]
//   node fuzz.mjs merge  --out DIR [--binding koffi|napi|both] DIR...
//
// This process only supervises: a worker process (lib/worker.mjs) runs the inputs. A worker that
// dies (a crash) or stops reporting progress for --timeout seconds (a hang) is a finding too; its
// last input is kept, and fuzzing resumes in a new worker. So is a worker that crashes or hangs
// while exiting after its last input.
import { fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const WORKER = join(here, 'lib', 'worker.mjs');
const SEED_DIRS = [join(here, 'corpus'), join(here, 'regressions')];
const FINDINGS = process.env.UMFA_TS_FUZZ_FINDINGS ?? join(here, 'findings');
const MAX_LENGTH = 2048;
const MAX_RESTARTS = 20;

function parseArgs(argv) {
  const args = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--trace') args.trace = true;
    else if (a === '--uncovered') args.uncovered = true;
    else if (a.startsWith('--')) args[a.slice(2)] = argv[++i];
    else args._.push(a);
  }
  return args;
}

function usage(message) {
  if (message) console.error(`fuzz-ts: ${message}`);
  console.error('usage: node fuzz.mjs fuzz [--binding koffi|napi] [--seconds N] [--seed S] [--timeout S] [--uncovered] [--save-corpus DIR]');
  console.error('       node fuzz.mjs replay [--binding koffi|napi|both] [--trace] [FILE...]');
  console.error('       node fuzz.mjs merge --out DIR [--binding koffi|napi|both] DIR...');
  process.exit(2);
}

/** Every regular file under the given files and folders (README files left out), sorted. */
function inputFiles(paths) {
  const files = [];
  for (const p of paths) {
    if (!existsSync(p)) continue;
    if (statSync(p).isDirectory()) {
      for (const name of readdirSync(p).sort()) {
        const f = join(p, name);
        if (statSync(f).isFile() && !name.endsWith('.md') && !name.startsWith('.')) files.push(f);
      }
    } else {
      files.push(p);
    }
  }
  return files;
}

const sha1 = (data) => createHash('sha1').update(data).digest('hex');
const shown = (p) => relative(process.cwd(), p) || p;

/** Writes a finding's input and report into the findings folder; prints how to replay it. */
function keepFinding(binding, kind, message, data) {
  mkdirSync(FINDINGS, { recursive: true });
  const file = join(FINDINGS, `${binding}-${kind}-${sha1(data).slice(0, 12)}.bin`);
  writeFileSync(file, data);
  const command = `node ${shown(join(here, 'fuzz.mjs'))} replay --binding ${binding} --trace ${shown(file)}`;
  writeFileSync(file.replace(/\.bin$/, '.txt'), `${kind} (${binding})\n${message}\n\nreproduce: ${command}\n`);
  console.log(`fuzz-ts: FINDING ${kind} (${binding}): ${message.split('\n').slice(0, 6).join('\n    ')}`);
  console.log(`  input: ${shown(file)}\n  reproduce: ${command}`);
}

/**
 * Runs one worker to completion. `onMessage` sees its messages; returns how it ended: 'done', or
 * 'crash' / 'hang' (with the input it was running) / 'exit-crash' / 'exit-hang', with the tail of
 * its output.
 */
function runWorker(config, { timeoutSeconds, onMessage }) {
  const work = mkdtempSync(join(tmpdir(), 'umfa-fuzz-ts-'));
  const currentPath = join(work, 'current');
  const child = fork(WORKER, [], {
    cwd: here,
    execArgv: ['--expose-gc'],
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let tail = '';
  const keep = (chunk) => {
    tail = (tail + chunk.toString()).slice(-6000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let lastProgress = Date.now();
  let done = false;
  let killed = false;
  child.on('message', (m) => {
    lastProgress = Date.now();
    if (m.type === 'done') done = true;
    onMessage(m);
  });
  const watchdog = setInterval(() => {
    // A worker that finished but does not exit is given the same time as one input.
    if (Date.now() - lastProgress > timeoutSeconds * 1000) {
      killed = true;
      child.kill('SIGKILL');
    }
  }, 500);
  child.send({ ...config, currentPath });
  return new Promise((resolvePromise) => {
    child.on('exit', (code, signal) => {
      clearInterval(watchdog);
      const input = existsSync(currentPath) ? readFileSync(currentPath) : undefined;
      rmSync(work, { recursive: true, force: true });
      const status = signal ? `signal ${signal}` : `code ${code}`;
      if (killed && done) resolvePromise({ how: 'exit-hang', input, detail: `the worker finished its inputs but did not exit within ${timeoutSeconds} s`, tail });
      else if (killed) resolvePromise({ how: 'hang', input, detail: `no progress for ${timeoutSeconds} s`, tail });
      else if (done && (signal !== null || code !== 0)) {
        // Every input ran; the process died while exiting (native code torn down under it).
        resolvePromise({ how: 'exit-crash', input, detail: `the worker finished its inputs, then died while exiting with ${status}`, tail });
      } else if (done) resolvePromise({ how: 'done' });
      else resolvePromise({ how: 'crash', input, detail: `the worker died with ${status}`, tail });
    });
  });
}

/** Prints the blocks of the bindings' code that no input reached, one line each with its source. */
function printUncovered(blocks) {
  const sources = new Map();
  for (const b of blocks) {
    const file = fileURLToPath(b.url);
    if (!sources.has(file)) sources.set(file, readFileSync(file, 'utf8'));
    const text = sources.get(file);
    const line = text.slice(0, b.start).split('\n').length;
    const snippet = text.slice(b.start, Math.min(b.end, b.start + 90)).replace(/\s+/g, ' ');
    console.log(`uncovered ${shown(file)}:${line}: ${snippet}`);
  }
}

const readInput = (file) => ({ name: file, data: readFileSync(file).toString('base64') });

async function fuzz(args) {
  const binding = args.binding ?? 'koffi';
  if (binding !== 'koffi' && binding !== 'napi') usage(`unknown binding ${binding}`);
  const seconds = Number(args.seconds ?? process.env.UMFA_TS_FUZZ_SECONDS ?? 30);
  const timeoutSeconds = Number(args.timeout ?? 30);
  const seed = args.seed !== undefined ? Number(args.seed) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
  const deadline = Date.now() + seconds * 1000;
  // Seeds and regressions first; then whatever each worker adds (kept for a restarted worker).
  const inputs = inputFiles(SEED_DIRS).map(readInput);
  const found = [];
  let executions = 0;
  let best = { corpus: 0, blocks: 0, pairs: 0, features: 0 };
  let findings = 0;
  let restarts = 0;
  console.log(`fuzz-ts: ${binding}: ${seconds} s, seed ${seed}, ${inputs.length} seed inputs`);
  const started = Date.now();
  for (;;) {
    let runExecutions = 0;
    const ended = await runWorker(
      { mode: 'fuzz', binding, seed: seed + restarts, deadline, maxLength: MAX_LENGTH, inputs: [...inputs, ...found], uncovered: args.uncovered === true },
      {
        timeoutSeconds,
        onMessage: (m) => {
          if (m.type === 'corpus') found.push({ name: 'found', data: m.data });
          else if (m.type === 'finding') {
            findings++;
            keepFinding(binding, m.kind, m.message, Buffer.from(m.data, 'base64'));
          } else if (m.type === 'stats' || m.type === 'done') {
            runExecutions = m.executions;
            if (m.blocks >= best.blocks) best = m;
            if (m.uncovered) printUncovered(m.uncovered);
          } else if (m.type === 'alive') runExecutions = m.executions;
        },
      },
    );
    executions += runExecutions;
    if (ended.how === 'done') break;
    findings++;
    keepFinding(binding, ended.how, `${ended.detail}\n${ended.tail}`, ended.input ?? Buffer.alloc(0));
    if (ended.how.startsWith('exit-') || Date.now() >= deadline || ++restarts > MAX_RESTARTS) break;
  }
  const elapsed = (Date.now() - started) / 1000;
  console.log(
    `fuzz-ts: ${binding}: ${executions} executions (${Math.round(executions / elapsed)}/s), ${best.corpus} corpus entries, ` +
      `${best.blocks} blocks covered, ${findings} findings`,
  );
  if (args['save-corpus']) {
    mkdirSync(args['save-corpus'], { recursive: true });
    for (const f of found) {
      const data = Buffer.from(f.data, 'base64');
      writeFileSync(join(args['save-corpus'], `${sha1(data).slice(0, 16)}.bin`), data);
    }
  }
  return findings === 0;
}

/** Runs `files` through one binding's worker, restarting it after a crash; returns the findings. */
async function replayBinding(binding, files, args) {
  const timeoutSeconds = Number(args.timeout ?? 60);
  let remaining = files;
  let findings = 0;
  while (remaining.length > 0) {
    let current;
    const finished = new Set();
    const ended = await runWorker(
      { mode: 'replay', binding, trace: args.trace === true, inputs: remaining.map(readInput) },
      {
        timeoutSeconds,
        onMessage: (m) => {
          if (m.type === 'begin') current = m.name;
          else if (m.type === 'replayed') {
            finished.add(m.name);
            if (args.trace) console.log(`--- ${shown(m.name)} (${binding})\n${m.trace.join('\n')}`);
          } else if (m.type === 'finding') {
            findings++;
            console.log(`fuzz-ts: replay ${binding}: ${shown(m.name)}: ${m.kind}: ${m.message.split('\n').slice(0, 6).join('\n    ')}`);
          }
        },
      },
    );
    if (ended.how === 'done') break;
    findings++;
    console.log(`fuzz-ts: replay ${binding}: ${shown(current ?? '?')}: ${ended.how}: ${ended.detail}\n${ended.tail}`);
    if (ended.how.startsWith('exit-')) break;
    const at = remaining.indexOf(current);
    remaining = at >= 0 ? remaining.slice(at + 1) : remaining.filter((f) => !finished.has(f));
  }
  console.log(`fuzz-ts: replay ${binding}: ${files.length} inputs, ${findings} findings`);
  return findings;
}

async function replay(args) {
  const files = inputFiles(args._.length > 0 ? args._ : SEED_DIRS);
  if (files.length === 0) usage('no inputs to replay');
  const bindings = args.binding === undefined || args.binding === 'both' ? ['koffi', 'napi'] : [args.binding];
  let findings = 0;
  for (const b of bindings) findings += await replayBinding(b, files, args);
  return findings === 0;
}

/**
 * Keeps, from the inputs under DIR..., a small set that reaches every block and decoder feature
 * they reach together (greedy set cover: the input adding the most goes first).
 */
async function merge(args) {
  const out = args.out ?? usage('merge needs --out DIR');
  const files = inputFiles(args._);
  const bindings = args.binding === undefined || args.binding === 'both' ? ['koffi', 'napi'] : [args.binding];
  const reaches = new Map(files.map((f) => [f, new Set()]));
  for (const binding of bindings) {
    const ended = await runWorker(
      { mode: 'merge', binding, inputs: files.map(readInput) },
      {
        timeoutSeconds: Number(args.timeout ?? 60),
        onMessage: (m) => {
          if (m.type === 'reached') for (const item of m.items) reaches.get(m.name).add(`${binding}:${item}`);
        },
      },
    );
    if (ended.how !== 'done') {
      console.log(`fuzz-ts: merge ${binding}: ${ended.how}: ${ended.detail}\n${ended.tail}`);
      return false;
    }
  }
  const covered = new Set();
  const kept = [];
  for (;;) {
    let best;
    let gain = 0;
    for (const [file, items] of reaches) {
      let n = 0;
      for (const item of items) if (!covered.has(item)) n++;
      if (n > gain || (n === gain && n > 0 && statSync(file).size < statSync(best).size)) [best, gain] = [file, n];
    }
    if (best === undefined) break;
    kept.push(best);
    for (const item of reaches.get(best)) covered.add(item);
    reaches.delete(best);
  }
  mkdirSync(out, { recursive: true });
  for (const f of kept) {
    const data = readFileSync(f);
    writeFileSync(join(out, `${sha1(data).slice(0, 16)}.bin`), data);
  }
  console.log(`fuzz-ts: merge: kept ${kept.length} of ${files.length} inputs (${covered.size} blocks and features) in ${shown(out)}`);
  return true;
}

const args = parseArgs(process.argv.slice(2));
const command = args._.shift();
const commands = { fuzz, replay, merge };
if (!(command in commands)) usage(command ? `unknown command ${command}` : undefined);
const ok = await commands[command](args);
process.exit(ok ? 0 : 1);
