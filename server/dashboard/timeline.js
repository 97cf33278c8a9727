// The event timeline: newest first, live from the feed, filtered by host,
// kind and container. A filter change applies at once to the events already
// in the page, then asks GET /api/events again with the same filters; the
// "older…" button pages back with the `next` the server returned.

import {absolute, byId, clear, clock, el, liveTime} from './util.js';

const kKinds = ['container_started', 'container_stopped', 'device_attached', 'device_detached',
                'device_pending', 'network_changed', 'apply', 'command', 'config_applied', 'config_rejected',
                'step_failed', 'agent_started', 'error'];
const kPageSize = 50;
const kMaxEvents = 1000;

export class Timeline {
  // api(path) resolves to parsed JSON or throws; onError(message) reports.
  constructor(api, onError) {
    this.api = api;
    this.onError = onError;
    this.events = [];          // newest first (highest id first)
    this.ids = new Set();
    this.next = null;
    this.filters = {host: '', kind: '', container: ''};
    this.generation = 0;       // drops answers to superseded queries
    this.knownHosts = new Set();
    this.knownKinds = new Set(kKinds);
    this.knownContainers = new Set();
  }

  install() {
    const changed = () => this.setFilters({
      host: byId('filter-host').value,
      kind: byId('filter-kind').value,
      container: byId('filter-container').value.trim(),
    });
    byId('filter-host').addEventListener('change', changed);
    byId('filter-kind').addEventListener('change', changed);
    let timer = null;
    byId('filter-container').addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(changed, 300);
    });
    byId('event-filters').addEventListener('submit', (e) => { e.preventDefault(); changed(); });
    byId('events-older').addEventListener('click', () => this.loadOlder());
    this.refreshFilterOptions();
  }

  matches(ev) {
    const f = this.filters;
    return (!f.host || ev.host === f.host) && (!f.kind || ev.kind === f.kind) &&
           (!f.container || ev.container === f.container);
  }

  setFilters(filters) {
    this.filters = filters;
    this.render();   // immediate, on what the page already has
    this.reload();
  }

  query(extra = {}) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries({...this.filters, limit: kPageSize, ...extra})) {
      if (v !== '' && v !== null && v !== undefined) params.set(k, String(v));
    }
    return `/api/events?${params}`;
  }

  // The first page for the current filters; live events that arrived while
  // the query ran are kept.
  async reload() {
    const generation = ++this.generation;
    let answer;
    try {
      answer = await this.api(this.query());
    } catch (err) {
      if (generation === this.generation) this.onError(`events: ${err.message}`);
      return;
    }
    if (generation !== this.generation) return;
    const live = this.events.filter((ev) => ev.live && this.matches(ev));
    this.events = [];
    this.ids.clear();
    for (const ev of [...answer.events, ...live]) this.insert(ev);
    this.next = answer.next ?? null;
    this.render();
  }

  async loadOlder() {
    if (this.next === null) return;
    const generation = this.generation;
    const button = byId('events-older');
    button.disabled = true;
    try {
      const answer = await this.api(this.query({before: this.next}));
      if (generation !== this.generation) return;
      const list = byId('events');
      for (const ev of answer.events) {
        if (this.insert(ev) && this.matches(ev)) list.append(this.item(ev));
      }
      this.next = answer.next ?? null;
      this.updateFooter();
    } catch (err) {
      this.onError(`older events: ${err.message}`);
    } finally {
      button.disabled = false;
    }
  }

  // A live `event` frame.
  addLive(frame) {
    const ev = {...frame, live: true, received_at: Date.now()};
    delete ev.type;
    if (!this.insert(ev)) return;
    this.trim();
    if (!this.matches(ev)) return;
    const node = this.item(ev);
    node.classList.add('is-new');
    const list = byId('events');
    const index = this.events.filter((e) => this.matches(e)).indexOf(ev);
    const before = list.children[index] || null;
    list.insertBefore(node, before);
    this.updateFooter();
  }

  insert(ev) {
    if (this.ids.has(ev.id)) return false;
    this.ids.add(ev.id);
    let i = 0;
    while (i < this.events.length && this.events[i].id > ev.id) i++;
    this.events.splice(i, 0, ev);
    this.learn(ev);
    return true;
  }

  trim() {
    if (this.events.length <= kMaxEvents) return;
    for (const ev of this.events.splice(kMaxEvents)) this.ids.delete(ev.id);
    // Paging goes on from the oldest event kept.
    this.next = this.events[this.events.length - 1].id;
    this.render();
  }

  learn(ev) {
    let changed = false;
    for (const [set, value] of [[this.knownHosts, ev.host], [this.knownKinds, ev.kind],
                                [this.knownContainers, ev.container]]) {
      if (value && !set.has(value)) { set.add(value); changed = true; }
    }
    if (changed) this.refreshFilterOptions();
  }

  learnHosts(hosts) {
    let changed = false;
    for (const host of hosts) {
      if (!this.knownHosts.has(host.name)) { this.knownHosts.add(host.name); changed = true; }
      for (const c of (host.inventory && host.inventory.containers) || []) {
        if (!this.knownContainers.has(c.name)) { this.knownContainers.add(c.name); changed = true; }
      }
    }
    if (changed) this.refreshFilterOptions();
  }

  refreshFilterOptions() {
    fillSelect(byId('filter-host'), 'all hosts', [...this.knownHosts].sort());
    fillSelect(byId('filter-kind'), 'all kinds', [...this.knownKinds].sort());
    const list = byId('container-names');
    clear(list);
    for (const name of [...this.knownContainers].sort()) list.append(el('option', {value: name}));
  }

  render() {
    const list = byId('events');
    clear(list);
    for (const ev of this.events) if (this.matches(ev)) list.append(this.item(ev));
    this.updateFooter();
  }

  updateFooter() {
    byId('events-empty').hidden = byId('events').children.length > 0;
    byId('events-older').hidden = this.next === null;
  }

  item(ev) {
    return el('li', {class: `event kind-${ev.kind}`, 'data-testid': 'event-item', 'data-event-id': ev.id,
                     'data-host': ev.host, 'data-kind': ev.kind, 'data-container': ev.container || '',
                     'data-received-at': ev.received_at || ''},
      el('div', {class: 'event-head'},
        el('span', {class: 'kind', 'data-testid': 'event-kind'}, ev.kind.replace(/_/g, ' ')),
        el('span', {class: 'event-time', title: absolute(ev.time)},
           clock(ev.time), ' · ', liveTime(ev.time, 'ago'))),
      el('div', {class: 'event-body'},
        el('span', {class: 'event-where', 'data-testid': 'event-where'},
           ev.host, ev.container ? ` · ${ev.container}` : ''),
        el('span', {class: 'event-message', 'data-testid': 'event-message'}, ev.message || '')),
      ev.device ? el('div', {class: 'event-device mono'}, ev.device) : null);
  }
}

function fillSelect(select, allLabel, values) {
  const current = select.value;
  clear(select);
  select.append(el('option', {value: ''}, allLabel));
  for (const value of values) select.append(el('option', {value}, value));
  if (current && !values.includes(current)) select.append(el('option', {value: current}, current));
  select.value = current;
}
