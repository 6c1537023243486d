'use strict';
// Shared by the interop scripts: the same Unicode payload as tests/interop/_interop.py,
// and the same description of a string (code points, SHA-256 of its UTF-8).

const crypto = require('crypto');

function unicodePayload(size) {
  const unit = [
    'ascii ',
    '\u00e9t\u00e9 ',
    '\u65e5\u672c\u8a9e ',
    '\u{1F600}\u{1F680}\u{1D11E} ',
    'e\u0301 ',
    '"quote" \\backslash\\ ',
    '\t\r\n\b\f\u0000\u001f ',
    '\u2028\u2029 ',
    '\ufeff\ufffd ',
  ].join('');
  const points = Array.from(unit);
  const out = [];
  for (let i = 0; i < size; i++) {
    out.push(points[i % points.length]);
  }
  return out.join('');
}

function describe(text) {
  return [Array.from(text).length, crypto.createHash('sha256').update(Buffer.from(text, 'utf8')).digest('hex')];
}

// Every call is bounded: a reply that never comes ends the script with a message that
// names the call, so the Python side says which call hung instead of waiting.
const CALL_TIMEOUT_MS = 15000;

function bounded(promise, label) {
  let timer;
  const expired = new Promise(() => {
    timer = setTimeout(() => die(`${label}: no reply within ${CALL_TIMEOUT_MS} ms`), CALL_TIMEOUT_MS);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

// Print one JSON document and exit once stdout is flushed.
function finish(result) {
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0));
}

function die(err) {
  process.stderr.write(String((err && err.stack) || err) + '\n');
  process.exit(1);
}

// Servers stay up until the test closes our stdin.
function exitOnStdinEnd(cleanup) {
  process.stdin.on('end', () => {
    cleanup();
    process.exit(0);
  });
  process.stdin.resume();
}

module.exports = { unicodePayload, describe, bounded, finish, die, exitOnStdinEnd };
