#!/usr/bin/env node
// The hooks of dashboard_test.mjs for mock_server.mjs (a development aid; the
// real hooks drive farmhand-server and an agent). MOCK_STATE names the
// mock's state directory.
import {spawn} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

const state = process.env.MOCK_STATE;
if (!state) { console.error('mock_hooks: MOCK_STATE is not set'); process.exit(2); }
const port = () => fs.readFileSync(path.join(state, 'port'), 'utf8').trim();
const base = () => `http://127.0.0.1:${port()}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const up = async () => fetch(`${base()}/api/health`).then((r) => r.ok, () => false);
const [command, arg] = process.argv.slice(2);

if (command === 'emit-event') {
  console.log((await (await fetch(`${base()}/__mock/emit-event`)).json()).message);
} else if (command === 'attach-device') {
  console.log((await (await fetch(`${base()}/__mock/attach-device`)).json()).id);
} else if (command === 'container-state') {
  console.log((await (await fetch(`${base()}/__mock/container-state?name=${encodeURIComponent(arg)}`)).json()).state);
} else if (command === 'stop-server') {
  process.kill(Number(fs.readFileSync(path.join(state, 'pid'), 'utf8')), 'SIGTERM');
  while (await up()) await sleep(50);
} else if (command === 'start-server') {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const log = fs.openSync(path.join(state, 'mock.log'), 'a');
  spawn(process.execPath, [path.join(here, 'mock_server.mjs'), '--state', state, '--port', port()],
        {detached: true, stdio: ['ignore', log, log]}).unref();
  for (let i = 0; !(await up()); i++) {
    if (i > 100) { console.error('mock_hooks: the mock server did not start'); process.exit(1); }
    await sleep(50);
  }
} else {
  console.error(`mock_hooks: unknown command "${command}"`);
  process.exit(2);
}
