'use strict';
// A vscode-jsonrpc server on a plain TCP socket (Content-Length framing) for our client.
// Prints {"port": N} once listening, exits when stdin closes.
// Usage: node vscode_server.js <vscode-jsonrpc alias>

const net = require('net');
const { describe, exitOnStdinEnd, die } = require('./common');

const rpc = require(`${process.argv[2]}/node`);
const records = [];
const connections = [];

const server = net.createServer((socket) => {
  const connection = rpc.createMessageConnection(
    new rpc.StreamMessageReader(socket),
    new rpc.StreamMessageWriter(socket),
  );
  connections.push(connection);
  connection.onRequest('add', (a, b) => a + b);
  connection.onRequest('subtract', (params) => params.minuend - params.subtrahend);
  connection.onRequest('echo', (value) => value);
  connection.onRequest('describe', (value) => describe(value));
  connection.onRequest('params', (...args) => args.length - 1); // the last one is the cancel token
  connection.onRequest('fail', () => {
    throw new rpc.ResponseError(-32001, 'custom failure', { why: 'asked', n: [1, 2] });
  });
  connection.onRequest('app_fail', () => {
    throw new rpc.ResponseError(4711, 'application error');
  });
  connection.onRequest('boom', () => {
    throw new Error('kaput');
  });
  connection.onRequest('slow', (value, ms) => new Promise((resolve) => setTimeout(() => resolve(value), ms)));
  connection.onNotification('record', (value) => records.push(value));
  // Like a language server: talk to the client (a notification and a request it will
  // never answer) before replying. The unanswered request is dropped on dispose.
  connection.onRequest('chatty', async () => {
    await connection.sendNotification('window/logMessage', { type: 3, message: 'hello' });
    connection.sendRequest('client/ping', 1).catch(() => undefined);
    return 'done';
  });
  connection.onRequest('records', () => records);
  socket.on('error', () => connection.dispose());
  connection.listen();
});
server.on('error', die);
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
exitOnStdinEnd(() => {
  connections.forEach((c) => c.dispose());
  server.close();
});
