#!/usr/bin/env node
// Builds dist/: index.js (ESM, for bundlers and Node), webhooks.js (Node), the .d.ts files (tsc), and
// ck-client.browser.js, one minified self-contained ESM file that ck serves at GET /client.js.
// Prints the browser bundle's size and fails above the budget.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const BUDGET = 6 * 1024; // bytes, minified + gzip
const dir = new URL('..', import.meta.url).pathname;
const common = { absWorkingDir: dir, bundle: true, format: 'esm', target: 'es2022', logLevel: 'warning' };

rmSync(`${dir}dist`, { recursive: true, force: true });
await Promise.all([
  build({ ...common, entryPoints: ['src/index.ts'], outfile: 'dist/index.js', platform: 'neutral', sourcemap: true }),
  build({ ...common, entryPoints: ['src/webhooks.ts'], outfile: 'dist/webhooks.js', platform: 'node', sourcemap: true }),
  build({
    ...common, entryPoints: ['src/index.ts'], outfile: 'dist/ck-client.browser.js', platform: 'browser',
    target: ['chrome100', 'firefox100', 'safari15.4'], minify: true, legalComments: 'none',
  }),
]);
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: dir, stdio: 'inherit' });

const bundle = readFileSync(`${dir}dist/ck-client.browser.js`);
const gz = gzipSync(bundle, { level: 9 }).length;
console.log(`dist/ck-client.browser.js: ${bundle.length} B minified, ${gz} B min+gzip (budget ${BUDGET} B)`);
if (gz > BUDGET) {
  console.error('over the size budget');
  process.exit(1);
}
