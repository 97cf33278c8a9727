// farmhand dashboard: the login form, the session, and the dispatch of /ui
// frames (docs/protocol.md, "Dashboard feed") to the views. No framework and
// no build step: the server embeds these files as they are.

import {Feed} from './feed.js';
import {HostsView} from './hosts.js';
import {Timeline} from './timeline.js';
import {byId, refreshAllTimes} from './util.js';
import {closeConfirm, confirmAction, installConfirm, toast} from './widgets.js';

const kHistoryMs = 60 * 60 * 1000;   // the sparklines show the last hour
const kHistoryMax = 720;

class Store {
  constructor() {
    this.hosts = new Map();     // name -> HOST object of the feed
    this.history = new Map();   // name -> [HEARTBEAT], oldest first
  }

  sortedHosts() {
    return [...this.hosts.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  addHeartbeats(name, beats) {
    const merged = new Map((this.history.get(name) || []).map((hb) => [hb.time, hb]));
    for (const hb of beats) merged.set(hb.time, hb);
    const cutoff = Date.now() - kHistoryMs;
    const list = [...merged.values()].filter((hb) => hb.time >= cutoff).sort((a, b) => a.time - b.time);
    this.history.set(name, list.slice(-kHistoryMax));
  }
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const init = {credentials: 'same-origin', cache: 'no-store', ...options,
                headers: {'Accept': 'application/json', ...(options.headers || {})}};
  if (options.json !== undefined) {
    init.method = init.method || 'POST';
    init.body = JSON.stringify(options.json);
    init.headers['Content-Type'] = 'application/json';
  }
  const answer = await fetch(path, init);
  let body = null;
  try {
    body = await answer.json();
  } catch {
    body = null;
  }
  if (!answer.ok) {
    if (answer.status === 401 && path !== '/api/login') app.sessionEnded();
    throw new ApiError(answer.status, (body && body.error) || `HTTP ${answer.status}`);
  }
  return body;
}

class App {
  constructor() {
    this.store = new Store();
    this.me = null;
    this.role = null;
    this.commands = new Map();  // command id -> label, for the result toast
    this.unanswered = [];       // labels of commands sent, awaiting command_sent or error
    this.errors = [];           // error frames received, newest last (for tests)
    this.sent = [];             // command_sent frames received, newest last (for tests)
    this.progress = new Map();  // command id -> its progress toast, updated in place
    this.hostsView = new HostsView(this.store, {
      isAdmin: () => this.role === 'admin',
      request: (cmd) => this.requestCommand(cmd),
    });
    this.timeline = new Timeline((path) => api(path), (message) => toast({kind: 'error', title: message}));
    this.feed = new Feed({
      onFrame: (frame) => this.onFrame(frame),
      onDown: () => this.setDisconnected(true),
      onUnauthorized: () => this.sessionEnded(),
    });
  }

  async boot() {
    installConfirm();
    this.timeline.install();
    byId('login-form').addEventListener('submit', (e) => { e.preventDefault(); this.login(); });
    byId('logout').addEventListener('click', () => this.logout());
    setInterval(() => refreshAllTimes(), 1000);
    try {
      this.enter(await api('/api/me'));
    } catch (err) {
      if (err.status !== 401) toast({kind: 'error', title: 'The server did not answer', message: err.message});
      this.showLogin();
    }
    document.body.classList.remove('booting');
  }

  showLogin(message = '') {
    this.feed.stop();
    closeConfirm();
    this.me = null;
    this.role = null;
    this.unanswered = [];
    // The next user must not glimpse this one's farm before their snapshot.
    this.store.hosts.clear();
    this.store.history.clear();
    this.hostsView.renderAll();
    this.setDisconnected(false);
    byId('dashboard-view').hidden = true;
    byId('session').hidden = true;
    byId('login-view').hidden = false;
    const error = byId('login-error');
    error.textContent = message;
    error.hidden = !message;
    byId('login-password').value = '';
    byId(byId('login-user').value ? 'login-password' : 'login-user').focus();
  }

  sessionEnded() {
    if (this.me) this.showLogin('Your session has ended. Please sign in again.');
  }

  async login() {
    const user = byId('login-user').value.trim();
    const password = byId('login-password').value;
    const submit = byId('login-submit');
    submit.disabled = true;
    try {
      this.enter(await api('/api/login', {json: {user, password}}));
    } catch (err) {
      const error = byId('login-error');
      error.textContent = err.status === 401 ? 'Wrong user or password.' : `Sign-in failed: ${err.message}`;
      error.hidden = false;
      byId('login-password').select();
    } finally {
      submit.disabled = false;
    }
  }

  async logout() {
    this.feed.stop();
    try {
      await api('/api/logout', {json: {}});
    } catch {
      // The session is gone either way.
    }
    this.me = null;
    this.showLogin();
  }

  enter(me) {
    this.me = me;
    this.setRole(me.role);
    byId('user-name').textContent = me.user;
    byId('session').hidden = false;
    byId('login-view').hidden = true;
    byId('login-error').hidden = true;
    byId('dashboard-view').hidden = false;
    this.feed.start();
    this.timeline.reload();
  }

  setRole(role) {
    const changed = role !== this.role;
    this.role = role;
    const badge = byId('user-role');
    badge.textContent = role;
    badge.className = `role-badge role-${role}`;
    document.body.classList.toggle('is-admin', role === 'admin');
    if (changed) this.hostsView.renderAll();
  }

  setDisconnected(down) {
    document.body.classList.toggle('disconnected', down);
    byId('disconnected-banner').hidden = !down;
    byId('live-dot').classList.toggle('is-live', !down && this.me !== null);
  }

  onFrame(frame) {
    switch (frame.type) {
      case 'snapshot': return this.onSnapshot(frame);
      case 'host': return this.onHost(frame.host);
      case 'heartbeat': return this.onHeartbeat(frame.host, frame.heartbeat);
      case 'event': return this.timeline.addLive(frame);
      case 'command_sent': return this.onCommandSent(frame);
      case 'command_result': return this.onCommandResult(frame);
      case 'progress': return this.onProgress(frame);
      case 'error': return this.onError(frame);
      default: return undefined;  // a newer server may send more
    }
  }

  onSnapshot(frame) {
    const reconnected = document.body.classList.contains('disconnected');
    this.feed.connected();
    this.setDisconnected(false);
    this.unanswered = [];
    this.store.hosts = new Map(frame.hosts.map((h) => [h.name, h]));
    for (const name of [...this.store.history.keys()]) {
      if (!this.store.hosts.has(name)) this.store.history.delete(name);
    }
    this.setRole(frame.role);
    this.hostsView.renderAll();
    this.timeline.learnHosts(frame.hosts);
    for (const host of frame.hosts) this.loadHistory(host.name);
    // Events stored while we were away are not replayed on the feed.
    if (reconnected) this.timeline.reload();
  }

  async loadHistory(name) {
    try {
      const since = Date.now() - kHistoryMs;
      const answer = await api(`/api/hosts/${encodeURIComponent(name)}/heartbeats?since=${since}`);
      this.store.addHeartbeats(name, answer.heartbeats);
      this.hostsView.renderMetrics(name);
    } catch (err) {
      if (err.status !== 401) toast({kind: 'error', title: `History of ${name}`, message: err.message});
    }
  }

  onHost(host) {
    const known = this.store.hosts.has(host.name);
    this.store.hosts.set(host.name, host);
    if (host.heartbeat) this.store.addHeartbeats(host.name, [host.heartbeat]);
    this.timeline.learnHosts([host]);
    this.hostsView.renderAll();
    if (!known) this.loadHistory(host.name);
  }

  onHeartbeat(name, heartbeat) {
    const host = this.store.hosts.get(name);
    if (!host || !heartbeat) return;
    host.heartbeat = heartbeat;
    host.last_seen = Math.max(host.last_seen || 0, heartbeat.time);
    this.store.addHeartbeats(name, [heartbeat]);
    this.hostsView.renderMetrics(name);
    const seen = this.hostsView.card(name)?.querySelector('[data-testid="host-last-seen"]');
    if (seen) {
      seen.dataset.ts = String(host.last_seen);
      refreshAllTimes(seen.parentElement);
    }
  }

  async requestCommand({host, action, container, device, label}) {
    const target = container || device;
    const ok = await confirmAction({
      title: `${action[0].toUpperCase()}${action.slice(1)} ${target}?`,
      body: device ? `Detach device ${device} from its container on ${host}.`
                   : `${action[0].toUpperCase()}${action.slice(1)} container ${container} on ${host}.`,
      confirmLabel: action,
      danger: action !== 'start',
    });
    if (!ok) return;
    const frame = {type: 'command', host, action};
    if (container) frame.container = container;
    if (device) frame.device = device;
    if (this.feed.send(frame)) {
      this.unanswered.push(label);  // the server answers commands in order
    } else {
      toast({kind: 'error', title: `Not sent: ${label}`, message: 'not connected to the server'});
    }
  }

  onCommandSent(frame) {
    this.sent.push(frame);
    const label = this.unanswered.shift() || `command on ${frame.host}`;
    this.commands.set(frame.id, label);
    toast({kind: 'info', type: 'command_sent', title: `Sent: ${label}`, message: `command ${frame.id}, waiting for ${frame.host}`});
  }

  // Where a command's apply is: one toast per command, its line replaced by
  // each step that starts and each heartbeat of a long one.
  onProgress(frame) {
    const label = this.commands.get(frame.command) || `command ${frame.command} on ${frame.host}`;
    const line = `${frame.container}: ${frame.text || `${frame.step}…`}`;
    const node = this.progress.get(frame.command);
    if (node && node.isConnected) {
      node.querySelector('.toast-message').textContent = line;
      return;
    }
    this.progress.set(frame.command, toast({kind: 'info', type: 'progress', title: `Running: ${label}`, message: line}));
  }

  onCommandResult(frame) {
    const label = this.commands.get(frame.id) || `command ${frame.id} on ${frame.host}`;
    this.commands.delete(frame.id);
    const running = this.progress.get(frame.id);
    if (running) running.remove();
    this.progress.delete(frame.id);
    toast({kind: frame.ok ? 'ok' : 'error', type: 'command_result',
           title: `${frame.ok ? 'Done' : 'Failed'}: ${label}`, message: frame.message || ''});
  }

  onError(frame) {
    this.errors.push({code: frame.code, message: frame.message, time: Date.now()});
    // The dashboard sends nothing but commands, so an error answers the oldest one.
    const label = this.unanswered.shift();
    const title = `${frame.code === 'not_allowed' ? 'Not allowed' : `Refused (${frame.code})`}${label ? `: ${label}` : ''}`;
    toast({kind: 'error', type: 'error', code: frame.code, title, message: frame.message || frame.code});
  }
}

const app = new App();

// For browser tests: the live socket, the role and the error frames seen.
window.__farmhand = {
  get socket() { return app.feed.socket; },
  get role() { return app.role; },
  get errors() { return app.errors; },
  get commandsSent() { return app.sent; },
  get store() { return app.store; },
};

app.boot();
