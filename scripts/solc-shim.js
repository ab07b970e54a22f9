#!/usr/bin/env node
// A native-solc-compatible front for solc-js, for py-solc-x: answers `--version` and
// `--standard-json` (JSON on stdin, JSON only on stdout), ignores path flags, and resolves
// imports from the repository and its node_modules. No compiler is downloaded: solc-js is
// the pinned npm package.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const solc = require(path.join(root, 'node_modules', 'solc'));
const args = process.argv.slice(2);

if (args.includes('--version')) {
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
  process.exit(0);
}
if (!args.includes('--standard-json')) {
  process.stderr.write('solc-shim: only --version and --standard-json are supported\n');
  process.exit(2);
}

function findImport(p) {
  for (const base of [root, path.join(root, 'node_modules')]) {
    const file = path.resolve(base, p);
    if (file.startsWith(base) && fs.existsSync(file)) {
      return { contents: fs.readFileSync(file, 'utf8') };
    }
  }
  return { error: `File not found: ${p}` };
}

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  process.stdout.write(solc.compile(input, { import: findImport }));
});
