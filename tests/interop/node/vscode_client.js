'use strict';
// vscode-jsonrpc over a plain TCP socket (Content-Length framing) against our server.
// Usage: node vscode_client.js <vscode-jsonrpc alias> <port> <payload size>
// Prints {"outcomes": {name: {"result": v} | {"error": {code, message, data}}},
//         "received": [raw messages as read], "local": {...}}.

const net = require('net');
const { unicodePayload, describe, bounded, finish, die } = require('./common');

const [alias, port, sizeText] = process.argv.slice(2);
const rpc = require(`${alias}/node`);

async function main() {
  const socket = net.connect(Number(port), '127.0.0.1');
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const reader = new rpc.StreamMessageReader(socket);
  const received = [];
  const listen = reader.listen.bind(reader);
  reader.listen = (callback) =>
    listen((message) => {
      received.push(message);
      callback(message);
    });
  const connection = rpc.createMessageConnection(reader, new rpc.StreamMessageWriter(socket));
  connection.listen();

  let calls = 0;
  async function outcome(promise) {
    calls += 1;
    try {
      return { result: await bounded(promise, `request number ${calls}`) };
    } catch (err) {
      if (err instanceof rpc.ResponseError) {
        return { error: { code: err.code, message: err.message, data: err.data === undefined ? null : err.data } };
      }
      return { unexpected: String(err) };
    }
  }

  const payload = unicodePayload(Number(sizeText));
  const o = {};
  // vscode-jsonrpc numbers requests 0, 1, 2, ...: the first id is 0.
  o.add = await outcome(connection.sendRequest('add', 1, 2));
  o.named = await outcome(connection.sendRequest('subtract', { minuend: 10, subtrahend: 3 }));
  o.no_params = await outcome(connection.sendRequest('nothing'));
  o.single_null = await outcome(connection.sendRequest('echo', null));
  o.not_found = await outcome(connection.sendRequest('nope'));
  o.bad_params = await outcome(connection.sendRequest('add', 1));
  o.custom_error = await outcome(connection.sendRequest('fail'));
  o.app_error = await outcome(connection.sendRequest('app_fail'));
  o.internal_error = await outcome(connection.sendRequest('boom'));
  await connection.sendNotification('record', 'note-1');
  await connection.sendNotification('record', 'note-2');
  // $/cancelRequest for an id that already finished: a notification nobody handles.
  await connection.sendNotification('$/cancelRequest', { id: 0 });
  o.unicode_echo_ok = await outcome(connection.sendRequest('echo', payload).then((value) => value === payload));
  o.unicode_describe = await outcome(connection.sendRequest('describe', payload));
  // Cancelled while in flight: vscode-jsonrpc sends $/cancelRequest and still waits for the reply.
  const source = new rpc.CancellationTokenSource();
  const cancelled = connection.sendRequest('echo', 'cancelled-but-answered', source.token);
  source.cancel();
  o.cancelled = await outcome(cancelled);
  const parallel = [];
  for (let i = 0; i < 20; i++) {
    parallel.push(outcome(connection.sendRequest('add', i, 1000)));
  }
  o.parallel = await Promise.all(parallel);
  connection.dispose();
  socket.end();
  finish({ outcomes: o, received, local: { payload: describe(payload) } });
}

main().catch(die);
