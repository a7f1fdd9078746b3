// The fuzz worker, a child process of fuzz.mjs: loads one binding under V8 block coverage and
// runs inputs in-process (fuzzing, replaying or merging). Before each input it writes the input
// to a file, so that the parent can keep an input that crashes or hangs this process.
import { writeFileSync } from 'node:fs';
import { Rng } from './bytes.mjs';
import { BlockCoverage } from './coverage.mjs';
import { Mutator } from './mutate.mjs';
import { runProgram } from './program.mjs';

/** The built JavaScript whose coverage guides the fuzzer: the shared layer and both drivers. */
const MEASURED = ['api', 'ts-koffi', 'ts-napi'].map((p) => new URL(`../../../${p}/dist/`, import.meta.url).href);

const send = (message) => process.send?.(message);

const config = await new Promise((resolve) => process.once('message', resolve));
const coverage = new BlockCoverage((url) => MEASURED.some((prefix) => url.startsWith(prefix)));
coverage.start();
const u = await import(`@umfa/${config.binding}/internal`);
// Load the native library now: its first use is not part of any input's behaviour (the blocks
// that ran while loading count as covered).
u.version();
coverage.commit(coverage.take());

process.on('unhandledRejection', (e) => {
  report({ kind: 'unexpected-error', message: `unhandled rejection: ${e?.stack ?? e}` }, currentInput, currentName);
});

/** Decoder features seen so far (counted as coverage next to the blocks). */
const features = new Set();
const reported = new Set();
let currentInput = new Uint8Array(0);
let currentName;
let executions = 0;
let lastAlive = 0;

function alive() {
  const now = Date.now();
  if (now - lastAlive < 200) return;
  lastAlive = now;
  send({ type: 'alive', executions });
}

/** Sends a finding once per kind and message shape (numbers left out). */
function report(finding, data, name) {
  const key = `${finding.kind}:${finding.message.split('\n')[0].replace(/[0-9]+/g, 'N')}`;
  if (reported.has(key)) return;
  reported.add(key);
  send({ type: 'finding', ...finding, name, data: Buffer.from(data).toString('base64') });
}

/**
 * Runs one input; returns what it reached that no committed input did (blocks, bucketed counts,
 * decoder features), and its trace when asked for.
 */
async function execute(data, { name, trace = false } = {}) {
  currentInput = data;
  currentName = name;
  writeFileSync(config.currentPath, data);
  const result = await runProgram(u, data, { trace });
  executions++;
  const reached = coverage.take();
  const fresh = [...result.features].filter((f) => !features.has(f));
  for (const f of result.findings) report(f, data, name);
  alive();
  return { reached, fresh, result };
}

function commit({ reached, fresh }) {
  coverage.commit(reached);
  for (const f of fresh) features.add(f);
}

const isNew = ({ reached, fresh }) => reached.blocks.length + reached.pairs.length + fresh.length > 0;

function stats(corpusSize) {
  return { executions, corpus: corpusSize, blocks: coverage.covered.size, pairs: coverage.buckets.size, features: features.size };
}

const decode = (b64) => new Uint8Array(Buffer.from(b64, 'base64'));

if (config.mode === 'fuzz') {
  const rng = new Rng(config.seed);
  const mutator = new Mutator(rng, config.maxLength);
  const corpus = [];
  for (const input of config.inputs) {
    const data = decode(input.data);
    const outcome = await execute(data, { name: input.name });
    if (isNew(outcome)) {
      commit(outcome);
      corpus.push(data);
    }
  }
  if (corpus.length === 0) {
    const outcome = await execute(new Uint8Array(0));
    commit(outcome);
    corpus.push(new Uint8Array(0));
  }
  send({ type: 'stats', ...stats(corpus.length) });
  let lastStats = Date.now();
  while (Date.now() < config.deadline) {
    let child;
    if (rng.below(32) === 0) {
      child = Uint8Array.from({ length: 8 + rng.below(248) }, () => rng.below(256));
    } else {
      // Newer entries were found later, deeper in the search: favour them a little.
      const pick = () => corpus[corpus.length - 1 - Math.min(corpus.length - 1, Math.floor(-Math.log(1 - rng.next()) * corpus.length * 0.5))];
      child = mutator.mutate(pick(), pick());
    }
    const outcome = await execute(child);
    if (isNew(outcome)) {
      commit(outcome);
      corpus.push(child);
      send({ type: 'corpus', data: Buffer.from(child).toString('base64') });
    }
    if (Date.now() - lastStats > 1000) {
      lastStats = Date.now();
      send({ type: 'stats', ...stats(corpus.length) });
    }
  }
  send({ type: 'done', ...stats(corpus.length), uncovered: config.uncovered ? coverage.uncovered() : undefined });
} else if (config.mode === 'replay') {
  for (const input of config.inputs) {
    send({ type: 'begin', name: input.name });
    const { result } = await execute(decode(input.data), { name: input.name, trace: config.trace });
    send({ type: 'replayed', name: input.name, findings: result.findings.length, trace: result.trace });
  }
  send({ type: 'done', ...stats(0) });
} else if (config.mode === 'merge') {
  // Report what each input reaches by itself (nothing is committed): blocks and decoder features.
  for (const input of config.inputs) {
    send({ type: 'begin', name: input.name });
    const { reached, result } = await execute(decode(input.data), { name: input.name });
    if (result.findings.length > 0) continue;
    send({ type: 'reached', name: input.name, items: [...reached.blocks.map((id) => `block:${id}`), ...result.features] });
  }
  send({ type: 'done', ...stats(0) });
}
process.disconnect?.();
