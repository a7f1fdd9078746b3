// A minimal npm registry for the packed-tarball test: serves the @umfa tarballs of one folder
// (packuments at /<name>, tarballs at /-/<file>) on 127.0.0.1, so that npm and pnpm install them
// the way a user installs from the public registry: they read each platform package's os/cpu/libc
// from its packument and skip those of other platforms. Everything else comes from the usual
// registry (the test's .npmrc scopes only @umfa here).
//
//   node local-registry.mjs <tarball folder>     prints {"port": N} once listening
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';

const dir = process.argv[2];
const packages = new Map(); // name -> { manifest, file, bytes }
for (const file of readdirSync(dir).filter((f) => f.endsWith('.tgz'))) {
  const manifest = JSON.parse(execFileSync('tar', ['-xzOf', join(dir, file), 'package/package.json'], { encoding: 'utf8' }));
  packages.set(manifest.name, { manifest, file, bytes: readFileSync(join(dir, file)) });
}

const server = createServer((req, res) => {
  const url = decodeURIComponent((req.url ?? '/').split('?')[0]);
  const base = `http://127.0.0.1:${server.address().port}`;
  if (url.startsWith('/-/')) {
    const entry = [...packages.values()].find((p) => `/-/${p.file}` === url);
    if (!entry) return res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    return res.end(entry.bytes);
  }
  const entry = packages.get(url.slice(1));
  if (!entry) {
    res.writeHead(404, { 'content-type': 'application/json' });
    return res.end('{"error":"not found"}');
  }
  const { manifest, file, bytes } = entry;
  const version = {
    ...manifest,
    _id: `${manifest.name}@${manifest.version}`,
    dist: {
      tarball: `${base}/-/${file}`,
      shasum: createHash('sha1').update(bytes).digest('hex'),
      integrity: `sha512-${createHash('sha512').update(bytes).digest('base64')}`,
    },
  };
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ name: manifest.name, 'dist-tags': { latest: manifest.version }, versions: { [manifest.version]: version } }));
});
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));
