// The hosts panel (one card per host: status, metrics with sparklines and the
// containers table) and the devices table. Both are rebuilt from the store
// whenever a `snapshot` or `host` frame arrives; a `heartbeat` only refreshes
// the metrics strip of its host.

import {byId, clear, diskPercent, el, kib, liveTime, load1, memoryPercent, sparkline} from './util.js';

// What a device's state means, on hovering it. "attaching" and "revoking"
// are a hand-over the agent has not finished: it retries until it has.
const kDeviceStates = {
  attached: 'in the container, usable',
  pending: 'waits for its container to run',
  attaching: 'being handed over; the agent retries until it is attached',
  revoking: 'being taken back; the agent retries until its access is revoked',
};

// actions: {isAdmin(): bool, request({host, action, container|device, label})}
export class HostsView {
  constructor(store, actions) {
    this.store = store;
    this.actions = actions;
  }

  renderAll() {
    const box = byId('hosts');
    const hosts = this.store.sortedHosts();
    const wanted = new Set(hosts.map((h) => h.name));
    for (const card of [...box.children]) {
      if (!wanted.has(card.dataset.host)) card.remove();
    }
    for (const host of hosts) this.renderHost(host.name);
    // Keep the cards in name order after inserts.
    for (const host of hosts) box.append(this.card(host.name));
    byId('hosts-empty').hidden = hosts.length > 0;
    const online = hosts.filter((h) => h.online).length;
    byId('hosts-summary').textContent = hosts.length ? `${online} of ${hosts.length} online` : '';
    this.renderDevices();
  }

  card(name) {
    return [...byId('hosts').children].find((c) => c.dataset.host === name) || null;
  }

  renderHost(name) {
    const host = this.store.hosts.get(name);
    if (!host) return;
    const inventory = host.inventory || {};
    const info = inventory.host || {};
    const facts = [info.os, info.kernel, info.arch, info.farmhand_version && `farmhand ${info.farmhand_version}`]
      .filter(Boolean).join(' · ');
    const card = el('article', {class: `host-card ${host.online ? 'is-online' : 'is-offline'}`,
                                'data-testid': 'host-row', 'data-host': name,
                                'data-online': host.online ? 'true' : 'false'},
      el('header', {class: 'host-head'},
        el('h3', {class: 'host-name', 'data-testid': 'host-name'}, name),
        el('span', {class: `badge ${host.online ? 'badge-ok' : 'badge-off'}`, 'data-testid': 'host-status'},
           host.online ? 'online' : 'offline'),
        el('span', {class: 'muted host-seen'}, 'last seen ',
           host.last_seen ? liveTime(host.last_seen, 'ago', {'data-testid': 'host-last-seen'}) : 'never'),
        info.config_commit
          ? el('span', {class: 'muted host-config', title: info.config_commit, 'data-testid': 'host-config-commit'},
               'config ', el('span', {class: 'mono'}, info.config_commit.slice(0, 12)))
          : null,
        el('span', {class: 'muted host-facts', title: facts}, facts)),
      el('div', {class: 'metrics', 'data-testid': 'host-metrics'}),
      this.containersTable(host));
    const old = this.card(name);
    if (old) old.replaceWith(card);
    else byId('hosts').append(card);
    this.renderMetrics(name);
  }

  renderMetrics(name) {
    const host = this.store.hosts.get(name);
    const card = this.card(name);
    if (!host || !card) return;
    const strip = card.querySelector('.metrics');
    const hb = host.heartbeat;
    const history = this.store.history.get(name) || [];
    const fmt = (v, digits, suffix) => (v === null ? '—' : `${v.toFixed(digits)}${suffix}`);
    const memory = memoryPercent(hb);
    const disk = diskPercent(hb);
    clear(strip);
    if (!hb && !history.length) {
      strip.append(el('p', {class: 'empty small'}, 'No heartbeat yet.'));
      return;
    }
    strip.append(
      metric('Load (1 min)', fmt(load1(hb), 2, ''), 'metric-load',
             sparkline(history.map(load1), {label: 'load history'}), hb && `load ${hb.load.join(' / ')}`),
      metric('Memory used', fmt(memory, 0, ' %'), 'metric-memory',
             sparkline(history.map(memoryPercent), {max: 100, label: 'memory history'}),
             hb && `${kib(hb.memory_total_kb - hb.memory_available_kb)} of ${kib(hb.memory_total_kb)}`),
      metric('Disk used', fmt(disk, 0, ' %'), 'metric-disk',
             sparkline(history.map(diskPercent), {max: 100, label: 'disk history'}),
             hb && `${kib(hb.disk_total_kb - hb.disk_free_kb)} of ${kib(hb.disk_total_kb)}`),
      el('div', {class: 'metric metric-uptime'},
         el('span', {class: 'metric-label'}, 'Host uptime'),
         el('span', {class: 'metric-value'}, hb ? liveTime(hb.time - hb.uptime_s * 1000, 'for') : '—')));
    for (const [cls, value] of [['metric-memory', memory], ['metric-disk', disk]]) {
      strip.querySelector(`.${cls}`).classList.toggle('is-high', value !== null && value >= 90);
    }
  }

  containersTable(host) {
    const containers = (host.inventory && host.inventory.containers) || [];
    if (!containers.length) {
      return el('p', {class: 'empty small'}, host.inventory ? 'No container.' : 'No inventory yet.');
    }
    const admin = this.actions.isAdmin();
    const rows = [...containers].sort((a, b) => a.name.localeCompare(b.name)).map((c) => {
      const net = c.network || 'unknown';
      return el('tr', {'data-testid': 'container-row', 'data-host': host.name, 'data-container': c.name,
                       'data-state': c.state},
        el('td', {class: 'mono strong', 'data-label': 'Container'}, c.name),
        el('td', {'data-label': 'State'},
           el('span', {class: `badge state-${c.state}`, 'data-testid': 'container-state'}, c.state)),
        el('td', {class: 'words', 'data-label': 'Distro'}, [c.distro, c.release].filter(Boolean).join(' ')),
        el('td', {class: 'mono', 'data-label': 'Address'}, c.address || '—'),
        el('td', {'data-label': 'Network'},
           el('span', {class: `badge net-${net}`, 'data-testid': 'container-network',
                       title: c.network_reason || (net === 'healthy' ? 'network is healthy' : net)}, net)),
        el('td', {'data-label': 'Up for'},
           c.since && c.state === 'running' ? liveTime(c.since, 'for') : '—'),
        el('td', {'data-label': 'Sources', 'data-testid': 'container-sources'}, sources(c.sources)),
        el('td', {'data-label': 'Payload', 'data-testid': 'container-payload'}, payload(c.payload)),
        admin ? el('td', {class: 'actions'}, this.containerButtons(host, c)) : null);
    });
    return el('div', {class: 'table-wrap'},
      el('table', {class: 'table containers', 'data-testid': 'containers'},
        el('thead', {}, el('tr', {},
          ['Container', 'State', 'Distro', 'Address', 'Network', 'Up for', 'Sources', 'Payload'].map((h) => el('th', {}, h)),
          admin ? el('th', {class: 'actions-col'}) : null)),
        el('tbody', {}, rows)));
  }

  containerButtons(host, c) {
    const running = c.state === 'running';
    // An agent says which actions its host supports (no start, stop or
    // restart without systemd); an older one does not, and gets all three.
    const supported = host.inventory && host.inventory.host && host.inventory.host.actions;
    const offered = (action) => !Array.isArray(supported) || supported.includes(action);
    const actions = [['restart', true], ['start', !running], ['stop', running]];
    const buttons = actions.filter(([action, shown]) => shown && offered(action)).map(([action]) =>
      this.button(host, action, {container: c.name}, `${action} ${c.name} on ${host.name}`));
    // Rerunning the setup steps: only an agent that says it can, for a
    // container with a payload.
    if (c.payload && Array.isArray(supported) && supported.includes('rebuild')) {
      buttons.push(this.button(host, 'rebuild', {container: c.name},
                               `rerun the setup steps of ${c.name} on ${host.name}`));
    }
    return buttons;
  }

  button(host, action, target, label) {
    const button = el('button', {type: 'button', class: `btn btn-small ${action === 'start' ? '' : 'btn-warn'}`,
                                 'data-testid': `action-${action}`, disabled: !host.online,
                                 title: host.online ? label : `${host.name} is offline`}, action);
    button.addEventListener('click', () => this.actions.request({host: host.name, action, ...target, label}));
    return button;
  }

  renderDevices() {
    const body = byId('devices-body');
    const admin = this.actions.isAdmin();
    const devices = [];
    for (const host of this.store.sortedHosts()) {
      for (const d of (host.inventory && host.inventory.devices) || []) devices.push({host, d});
    }
    clear(body);
    for (const {host, d} of devices) {
      body.append(el('tr', {'data-testid': 'device-row', 'data-host': host.name, 'data-device': d.id,
                            'data-state': d.state},
        el('td', {class: 'mono strong wrap', 'data-label': 'Device'}, d.id),
        el('td', {class: 'mono', 'data-label': 'Node'}, d.node || '—'),
        el('td', {'data-label': 'Host'}, host.name),
        el('td', {class: 'mono', 'data-label': 'Container', 'data-testid': 'device-container'}, d.container || '—'),
        el('td', {'data-label': 'State'},
           el('span', {class: `badge dev-${d.state}`, 'data-testid': 'device-state',
                       title: Object.hasOwn(kDeviceStates, d.state) ? kDeviceStates[d.state] : undefined}, d.state)),
        el('td', {'data-label': 'Since'}, d.since ? liveTime(d.since, 'ago') : '—'),
        // A device left attaching or revoking may hold a grant: detaching
        // it takes that back now rather than at the agent's next retry.
        el('td', {class: 'actions'}, admin && ['attached', 'attaching', 'revoking'].includes(d.state)
          ? this.button(host, 'detach', {device: d.id}, `detach ${d.id} from ${d.container} on ${host.name}`)
          : null)));
    }
    byId('devices-empty').hidden = devices.length > 0;
    const count = (state) => devices.filter(({d}) => d.state === state).length;
    // Attached and pending always; the states of an unfinished hand-over
    // only while there are any.
    const parts = [`${count('attached')} attached`, `${count('pending')} pending`];
    for (const state of ['attaching', 'revoking']) {
      if (count(state)) parts.push(`${count(state)} ${state}`);
    }
    byId('devices-summary').textContent = devices.length ? parts.join(', ') : '';
  }
}

// The git sources of a container as "name@abc1234" (the full commit on
// hover), or a dash when it has none.
function sources(list) {
  if (!Array.isArray(list) || !list.length) return '—';
  return el('span', {class: 'sources'}, list.map((s) =>
    el('span', {class: 'mono source', 'data-source': s.name, title: s.commit || 'no commit checked out yet'},
       s.commit ? `${s.name}@${s.commit.slice(0, 7)}` : s.name)));
}

// How a container's payload last went: a badge (ok, running, failed,
// interrupted) with the item at work or that failed, and the error's last
// line on hover; a dash when it has no payload.
function payload(p) {
  if (!p || !p.state) return '—';
  const item = (p.item || '').replace(/^setup /, 'step ');
  const when = p.time ? new Date(p.time).toLocaleString() : '';
  const title = p.state === 'failed' ? `${item} failed${when ? ` at ${when}` : ''}: ${p.message || ''}`
              : p.state === 'running' ? `running ${item}` : p.state === 'ok' ? `applied ${when}` : `interrupted at ${item}`;
  return el('span', {class: 'payload'},
    el('span', {class: `badge payload-${p.state}`, 'data-testid': 'payload-state', title}, p.state),
    p.state !== 'ok' && item ? el('span', {class: 'mono small payload-item'}, ` ${item}`) : null);
}

function metric(label, value, cls, chart, title) {
  return el('div', {class: `metric ${cls}`, title: title || ''},
    el('span', {class: 'metric-label'}, label),
    el('span', {class: 'metric-value'}, value),
    chart);
}
