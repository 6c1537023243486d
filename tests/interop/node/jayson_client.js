'use strict';
// jayson's TCP client against a JSON-RPC server (ours): one connection per request.
// Usage: node jayson_client.js <jayson alias> <port> <delimiter as JSON> <payload size> [CA file]
// With a CA file the client speaks TLS (jayson.client.tls) and trusts only that CA.
// Prints {"responses": {name: raw response | {"transport_error": text}}, "local": {...}}.

const fs = require('fs');
const { unicodePayload, describe, bounded, finish, die } = require('./common');

const [alias, port, delimiterJson, sizeText, caFile] = process.argv.slice(2);
const jayson = require(alias);
const delimiter = JSON.parse(delimiterJson);
const options = { host: '127.0.0.1', port: Number(port), delimiter };
if (caFile) {
  options.ca = fs.readFileSync(caFile);
}
const make = caFile ? jayson.client.tls : jayson.client.tcp;
const client = make(options);
const idNullClient = make({ ...options, notificationIdNull: true });

function call(c, method, params, id) {
  return bounded(
    new Promise((resolve) => {
      c.request(method, params, id, (err, response) => {
        resolve(err ? { transport_error: String(err) } : response === undefined ? { no_response: true } : response);
      });
    }),
    `${method} (id ${JSON.stringify(id)})`,
  );
}

function batch(c, requests) {
  return bounded(
    new Promise((resolve) => {
      c.request(requests, (err, response) => resolve(err ? { transport_error: String(err) } : response));
    }),
    'batch',
  );
}

async function main() {
  const r = {};
  const payload = unicodePayload(Number(sizeText));
  const lone = 'a\ud800b\udfffc';
  r.add = await call(client, 'add', [1, 2], 1);
  r.named = await call(client, 'subtract', { subtrahend: 3, minuend: 10 }, 'str-id');
  r.zero_id = await call(client, 'echo', ['zero'], 0);
  r.float_id = await call(client, 'echo', [null], 2.5);
  r.no_params = await call(client, 'nothing', undefined, 3);
  r.generated_id = await call(client, 'add', [20, 22], undefined);
  r.not_found = await call(client, 'nope', [], 10);
  r.bad_params = await call(client, 'add', [1], 11);
  r.custom_error = await call(client, 'fail', [], 12);
  r.app_error = await call(client, 'app_fail', [], 13);
  r.internal_error = await call(client, 'boom', [], 14);
  r.batch = await batch(client, [
    client.request('add', [1, 2], 20),
    client.request('record', ['batch-note'], null),
    client.request('nope', [], 21),
    client.request('subtract', { minuend: 5, subtrahend: 8 }, 22),
  ]);
  // A notification: jayson writes it and half-closes straight away.
  r.notification = await call(client, 'record', ['note-1'], null);
  // With notificationIdNull the "notification" carries "id": null, which JSON-RPC 2.0
  // calls a request: the server answers, jayson has already hung up.
  r.notification_id_null = await call(idNullClient, 'record', ['note-id-null'], null);
  r.unicode_echo = await call(client, 'echo', [payload], 30);
  r.unicode_describe = await call(client, 'describe', [payload], 31);
  r.lone_surrogate = await call(client, 'echo', [lone], 32);
  const parallel = [];
  for (let i = 0; i < 20; i++) {
    parallel.push(call(client, 'add', [i, 1000], 100 + i));
  }
  r.parallel = await Promise.all(parallel);
  finish({
    responses: r,
    local: {
      payload: describe(payload),
      unicode_echo_equal: r.unicode_echo.result === payload,
      lone_surrogate_equal: r.lone_surrogate.result === lone,
      generated_id_is_uuid: /^[0-9a-f-]{36}$/.test(String(r.generated_id.id)),
    },
  });
}

main().catch(die);
