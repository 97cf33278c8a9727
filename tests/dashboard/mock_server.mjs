// A stand-in for farmhand-server, for working on the dashboard without the
// real server and agent: it serves server/dashboard/ and speaks the JSON API
// and the /ui feed of docs/protocol.md with one fake host. A development aid
// only; the real test runs against the real server (tests/integration).
//
//   node mock_server.mjs --state DIR [--port N]
//
// It writes DIR/port and DIR/pid once listening, and keeps sessions and
// events in DIR/state.json so that a restart on the same port keeps them,
// like the real server's SQLite. Users: ada/pw (admin), val/pw (viewer).
// Unauthenticated /__mock/* endpoints drive the fake farm (see mock_hooks.sh).

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../../server/dashboard');
const args = Object.fromEntries(process.argv.slice(2).reduce((pairs, arg, i, all) =>
  (arg.startsWith('--') ? [...pairs, [arg.slice(2), all[i + 1]]] : pairs), []));
const stateDir = args.state || fs.mkdtempSync('/tmp/farmhand-mock-');
const stateFile = path.join(stateDir, 'state.json');
const users = {ada: {password: 'pw', role: 'admin'}, val: {password: 'pw', role: 'viewer'}};
const heartbeatMs = Number(process.env.MOCK_HEARTBEAT_MS || 2000);

const saved = fs.existsSync(stateFile) ? JSON.parse(fs.readFileSync(stateFile, 'utf8')) : {};
const sessions = new Map(saved.sessions || []);
const events = saved.events || [];
let nextCommand = saved.nextCommand || 1;
const save = () => fs.writeFileSync(stateFile, JSON.stringify(
  {sessions: [...sessions], events, nextCommand, devices: host.inventory.devices}));

const now = () => Date.now();
const started = now();
function heartbeat(time) {
  const t = time / 60000;
  return {time, load: [0.6 + 0.4 * Math.sin(t), 0.5, 0.4],
          memory_total_kb: 8052124, memory_available_kb: Math.round(4200000 + 900000 * Math.sin(t / 3)),
          disk_total_kb: 102400000, disk_free_kb: 51200000 - Math.round(t % 1000) * 10, uptime_s: 86400 + Math.round((time - started) / 1000)};
}
const history = [];
for (let t = now() - 3600000; t < now(); t += 20000) history.push(heartbeat(t));
const host = {
  name: 'builder-01', online: true, last_seen: now(), acked_seq: events.length, heartbeat: history.at(-1),
  inventory: {time: now(), host: {hostname: 'builder-01', os: 'Debian GNU/Linux 12 (bookworm)', kernel: '6.1.0-18-amd64',
                                   arch: 'x86_64', farmhand_version: '0.1.0', network_backend: 'networkmanager', firewall: 'firewalld',
                                   config_commit: '3f9c2a71be0d48e6a5c1f27d9b84e0c6a13d5f28'},
    containers: [
      {name: 'deb12', distro: 'debian', release: 'bookworm', state: 'running', address: '192.168.80.2', network: 'healthy', network_reason: '', since: now() - 7200000,
       sources: [{name: 'builder', commit: 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678'},
                 {name: 'sai', commit: '0f1e2d3c4b5a69788796a5b4c3d2e1f00112233e'}]},
      {name: 'fed40', distro: 'fedora', release: '40', state: 'running', address: '192.168.80.3', network: 'unhealthy', network_reason: 'no default route in the container', since: now() - 600000},
      {name: 'u2404', distro: 'ubuntu', release: 'noble', state: 'stopped', address: '', network: 'unknown', network_reason: ''},
    ],
    devices: saved.devices || [{id: 'usb-FTDI_FT232R_A1B2C3-if00-port0', node: '/dev/ttyUSB0', container: 'deb12', state: 'attached', since: now() - 3000000}]},
};
const offlineHost = {name: 'builder-02', online: false, last_seen: now() - 5400000, acked_seq: 0, heartbeat: null, inventory: null};
const hosts = () => [host, offlineHost];

const clients = new Set();
if (!events.length) {
  const seed = [['agent_started', null, 'farmhand 0.1.0 started'], ['container_started', 'deb12', 'deb12 started'],
                ['device_attached', 'deb12', '/dev/ttyUSB0 attached to deb12 as /dev/ttyUSB0'],
                ['network_changed', 'fed40', 'fed40: no default route in the container']];
  for (const [kind, container, message] of seed) {
    events.push({host: host.name, id: 1001 + events.length, seq: events.length + 1, time: now() - 60000 * (10 - events.length), kind,
                 ...(container ? {container} : {}), ...(kind === 'device_attached' ? {device: 'usb-FTDI_FT232R_A1B2C3-if00-port0'} : {}), message});
  }
}
const broadcast = (frame) => { for (const c of clients) c.send(frame); };

function addEvent(fields) {
  const ev = {host: host.name, id: 1000 + events.length + 1, seq: events.length + 1, time: now(), ...fields};
  events.push(ev);
  host.acked_seq = ev.seq;
  save();
  broadcast({type: 'event', ...ev});
  return ev;
}
const inventoryChanged = () => { host.inventory.time = now(); save(); broadcast({type: 'host', host}); };

setInterval(() => {
  const hb = heartbeat(now());
  host.heartbeat = hb;
  host.last_seen = hb.time;
  history.push(hb);
  broadcast({type: 'heartbeat', host: host.name, heartbeat: hb});
}, heartbeatMs).unref();

function runCommand(client, frame) {
  if (client.role !== 'admin') return client.send({type: 'error', code: 'not_allowed', message: 'viewers cannot send commands'});
  const target = hosts().find((h) => h.name === frame.host);
  if (!target) return client.send({type: 'error', code: 'bad_frame', message: `/host: unknown host ${frame.host}`});
  if (!target.online) return client.send({type: 'error', code: 'not_allowed', message: `${frame.host} is offline`});
  const id = `c-${nextCommand++}`;
  client.send({type: 'command_sent', host: frame.host, id});
  const container = host.inventory.containers.find((c) => c.name === frame.container);
  setTimeout(() => {
    let ok = true;
    let message = '';
    if (frame.action === 'detach') {
      const device = host.inventory.devices.find((d) => d.id === frame.device);
      ok = Boolean(device);
      message = ok ? `${frame.device} detached` : `no device ${frame.device}`;
      if (ok) {
        host.inventory.devices = host.inventory.devices.filter((d) => d !== device);
        addEvent({kind: 'device_detached', container: device.container, device: device.id, message: `${device.node} detached from ${device.container}`});
        inventoryChanged();
      }
    } else if (!container) {
      ok = false;
      message = `no container ${frame.container}`;
    } else {
      container.state = frame.action === 'stop' ? 'stopped' : 'running';
      container.since = container.state === 'running' ? now() : undefined;
      if (frame.action !== 'start') addEvent({kind: 'container_stopped', container: container.name, message: `${container.name} stopped`});
      if (frame.action !== 'stop') addEvent({kind: 'container_started', container: container.name, message: `${container.name} started`});
      message = `${container.name} ${frame.action === 'stop' ? 'stopped' : frame.action + 'ed'}`;
      inventoryChanged();
    }
    broadcast({type: 'command_result', host: frame.host, id, ok, message});
  }, 400);
}

function cookieSession(req) {
  const match = /(?:^|;\s*)fh_session=([^;]+)/.exec(req.headers.cookie || '');
  return match ? sessions.get(match[1]) : undefined;
}

function json(res, status, body, headers = {}) {
  res.writeHead(status, {'Content-Type': 'application/json', ...headers});
  res.end(JSON.stringify(body));
}

const kTypes = {'.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8'};

async function handle(req, res) {
  const url = new URL(req.url, 'http://mock');
  const body = await new Promise((resolve) => { let b = ''; req.on('data', (c) => { b += c; }); req.on('end', () => resolve(b)); });
  if (url.pathname.startsWith('/__mock/')) return mockControl(url, res);
  if (url.pathname === '/api/login' && req.method === 'POST') {
    let creds = {};
    try { creds = JSON.parse(body); } catch { return json(res, 400, {error: 'bad json'}); }
    const user = users[creds.user];
    if (!user || user.password !== creds.password) return json(res, 401, {error: 'wrong user or password'});
    const id = crypto.randomBytes(16).toString('hex');
    sessions.set(id, {user: creds.user, role: user.role});
    save();
    return json(res, 200, {user: creds.user, role: user.role}, {'Set-Cookie': `fh_session=${id}; HttpOnly; SameSite=Strict; Path=/`});
  }
  if (url.pathname === '/api/health') return json(res, 200, {ok: true, agents: 1, ui_clients: clients.size});
  if (url.pathname.startsWith('/api/')) {
    const session = cookieSession(req);
    if (!session) return json(res, 401, {error: 'not logged in'});
    if (url.pathname === '/api/logout') {
      sessions.delete(/fh_session=([^;]+)/.exec(req.headers.cookie)[1]);
      save();
      return json(res, 200, {}, {'Set-Cookie': 'fh_session=; Max-Age=0; Path=/'});
    }
    if (url.pathname === '/api/me') return json(res, 200, session);
    if (url.pathname === '/api/hosts') return json(res, 200, {hosts: hosts()});
    const hb = /^\/api\/hosts\/([^/]+)\/heartbeats$/.exec(url.pathname);
    if (hb) {
      const since = Number(url.searchParams.get('since') || 0);
      return json(res, 200, {heartbeats: decodeURIComponent(hb[1]) === host.name ? history.filter((h) => h.time >= since).slice(-1000) : []});
    }
    if (url.pathname === '/api/events') {
      const q = url.searchParams;
      const limit = Number(q.get('limit') || 100);
      if (!(limit >= 1 && limit <= 1000)) return json(res, 400, {error: 'limit: expected an integer from 1 to 1000'});
      const before = q.has('before') ? Number(q.get('before')) : Infinity;
      const list = events.filter((e) => e.id < before && (!q.get('host') || e.host === q.get('host')) &&
        (!q.get('kind') || e.kind === q.get('kind')) && (!q.get('container') || e.container === q.get('container'))).reverse();
      const page = list.slice(0, limit);
      return json(res, 200, {events: page, next: list.length > limit ? page.at(-1).id : null});
    }
    return json(res, 404, {error: 'not found'});
  }
  const file = url.pathname === '/' ? 'index.html' : url.pathname.slice(1);
  const full = path.join(root, file);
  if (!full.startsWith(root + path.sep) || !fs.existsSync(full)) return json(res, 404, {error: 'not found'});
  res.writeHead(200, {'Content-Type': kTypes[path.extname(full)] || 'application/octet-stream',
                      'Content-Security-Policy': "default-src 'self'; connect-src 'self' ws: wss:",
                      'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store'});
  res.end(fs.readFileSync(full));
}

function mockControl(url, res) {
  const op = url.pathname.slice('/__mock/'.length);
  if (op === 'emit-event') {
    const ev = addEvent({kind: 'apply', container: 'deb12', message: `mock apply ${crypto.randomBytes(4).toString('hex')}`});
    return json(res, 200, {message: ev.message});
  }
  if (op === 'attach-device') {
    const id = `usb-Mock_Board_${crypto.randomBytes(3).toString('hex')}-if00`;
    const node = `/dev/ttyACM${host.inventory.devices.length}`;
    host.inventory.devices.push({id, node, container: 'deb12', state: 'attached', since: now()});
    addEvent({kind: 'device_attached', container: 'deb12', device: id, message: `${node} attached to deb12`});
    inventoryChanged();
    return json(res, 200, {id});
  }
  if (op === 'container-state') {
    const c = host.inventory.containers.find((x) => x.name === url.searchParams.get('name'));
    return json(res, c ? 200 : 404, {state: c ? c.state : 'missing'});
  }
  return json(res, 404, {error: 'unknown mock op'});
}

// A minimal RFC 6455 server side: text frames from a masked client, no
// fragmentation, ping answered, close echoed.
function upgrade(req, socket) {
  const session = cookieSession(req);
  const protocols = (req.headers['sec-websocket-protocol'] || '').split(',').map((p) => p.trim());
  if (new URL(req.url, 'http://mock').pathname !== '/ui' || !session || !protocols.includes('farmhand.ui.v1')) {
    socket.end(`HTTP/1.1 ${session ? 400 : 401} Refused\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
    return;
  }
  const accept = crypto.createHash('sha1').update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: farmhand.ui.v1\r\n\r\n`);
  const client = {role: session.role, send: (frame) => socket.write(encodeFrame(1, Buffer.from(JSON.stringify(frame))))};
  clients.add(client);
  let buffer = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    buffer = Buffer.concat([buffer, chunk]);
    for (;;) {
      const frame = decodeFrame(buffer);
      if (!frame) break;
      buffer = buffer.subarray(frame.used);
      if (frame.opcode === 8) { socket.end(encodeFrame(8, Buffer.alloc(0))); return; }
      if (frame.opcode === 9) { socket.write(encodeFrame(10, frame.payload)); continue; }
      if (frame.opcode !== 1) continue;
      let msg;
      try { msg = JSON.parse(frame.payload.toString('utf8')); } catch { client.send({type: 'error', code: 'bad_json', message: 'not JSON'}); continue; }
      if (msg.type === 'command') runCommand(client, msg);
      else client.send({type: 'error', code: 'unknown_type', message: `unknown type ${msg.type}`});
    }
  });
  const drop = () => clients.delete(client);
  socket.on('close', drop);
  socket.on('error', drop);
  client.send({type: 'snapshot', role: session.role, hosts: hosts()});
}

function encodeFrame(opcode, payload) {
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | opcode, len])
    : len < 65536 ? Buffer.from([0x80 | opcode, 126, len >> 8, len & 255])
    : Buffer.concat([Buffer.from([0x80 | opcode, 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(len)); return b; })()]);
  return Buffer.concat([head, payload]);
}

function decodeFrame(buf) {
  if (buf.length < 2) return null;
  let len = buf[1] & 127;
  let offset = 2;
  if (len === 126) { if (buf.length < 4) return null; len = buf.readUInt16BE(2); offset = 4; }
  else if (len === 127) { if (buf.length < 10) return null; len = Number(buf.readBigUInt64BE(2)); offset = 10; }
  const masked = (buf[1] & 128) !== 0;
  const mask = masked ? buf.subarray(offset, offset + 4) : null;
  if (masked) offset += 4;
  if (buf.length < offset + len) return null;
  const payload = Buffer.from(buf.subarray(offset, offset + len));
  if (mask) for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
  return {opcode: buf[0] & 15, payload, used: offset + len};
}

const server = http.createServer((req, res) => handle(req, res).catch((err) => json(res, 500, {error: String(err)})));
server.on('upgrade', upgrade);
server.listen(Number(args.port || 0), '127.0.0.1', () => {
  fs.writeFileSync(path.join(stateDir, 'port'), String(server.address().port));
  fs.writeFileSync(path.join(stateDir, 'pid'), String(process.pid));
  console.log(`mock farmhand-server on http://127.0.0.1:${server.address().port}/ (state ${stateDir})`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
