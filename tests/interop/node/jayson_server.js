'use strict';
// A jayson TCP server for our client. Prints {"port": N} once listening, exits when
// stdin closes. Usage: node jayson_server.js <jayson alias> [cert chain file] [key file]
// With a certificate and key it serves TLS (jayson.server.tls).

const fs = require('fs');
const { describe, exitOnStdinEnd, die } = require('./common');

const [, , , certFile, keyFile] = process.argv;

const jayson = require(process.argv[2]);
const records = [];

function positional(args) {
  return Array.isArray(args) ? args : Object.values(args || {});
}

const server = new jayson.Server({
  add(args, cb) {
    const [a, b] = positional(args);
    cb(null, a + b);
  },
  subtract(args, cb) {
    if (Array.isArray(args)) {
      cb({ code: -32602, message: 'subtract takes named params' });
      return;
    }
    cb(null, args.minuend - args.subtrahend);
  },
  echo(args, cb) {
    cb(null, positional(args)[0]);
  },
  describe(args, cb) {
    cb(null, describe(positional(args)[0]));
  },
  params(args, cb) {
    // What arrived, as jayson saw it.
    cb(null, args === undefined ? '<absent>' : args);
  },
  fail(args, cb) {
    cb({ code: -32001, message: 'custom failure', data: { why: 'asked', n: [1, 2] } });
  },
  app_fail(args, cb) {
    cb({ code: 4711, message: 'application error' });
  },
  record(args, cb) {
    records.push(positional(args)[0]);
    cb();
  },
  records(args, cb) {
    cb(null, records);
  },
  slow(args, cb) {
    const [value, ms] = positional(args);
    setTimeout(() => cb(null, value), ms);
  },
});

const tcp = certFile ? server.tls({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) }) : server.tcp();
tcp.on('error', die);
tcp.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: tcp.address().port }) + '\n');
});
exitOnStdinEnd(() => tcp.close());
