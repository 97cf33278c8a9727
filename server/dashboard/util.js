// Small DOM and formatting helpers shared by the dashboard's views.
// Every piece of data reaches the page through textContent or setAttribute,
// never through innerHTML, so a host or container name cannot inject markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

// el('td', {class: 'x', 'data-testid': 'y'}, child, 'text', ...)
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttributes(node, attrs);
  append(node, children);
  return node;
}

function setAttributes(node, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    node.setAttribute(name, value === true ? '' : String(value));
  }
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function byId(id) {
  return document.getElementById(id);
}

export function clear(node) {
  node.replaceChildren();
}

// "12 s ago", "3 min ago", "2 h ago", "5 d ago"
export function relative(ms, now = Date.now()) {
  const seconds = Math.round((now - ms) / 1000);
  if (seconds < 0) return 'just now';
  if (seconds < 5) return 'just now';
  return `${duration(seconds)} ago`;
}

// "42 s", "3 min", "2 h 5 min", "4 d 3 h"
export function duration(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return minutes % 60 ? `${hours} h ${minutes % 60} min` : `${hours} h`;
  const days = Math.floor(hours / 24);
  return hours % 24 ? `${days} d ${hours % 24} h` : `${days} d`;
}

export function absolute(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
         `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function clock(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// A <time> whose text the ticker in app.js refreshes every second.
// mode 'ago' shows "3 min ago"; mode 'for' shows an uptime like "2 h 5 min".
export function liveTime(ms, mode = 'ago', attrs = {}) {
  const node = el('time', {...attrs, 'data-ts': ms, 'data-mode': mode,
                           datetime: new Date(ms).toISOString(), title: absolute(ms)});
  refreshTime(node);
  return node;
}

export function refreshTime(node, now = Date.now()) {
  const ms = Number(node.dataset.ts);
  node.textContent = node.dataset.mode === 'for' ? duration((now - ms) / 1000) : relative(ms, now);
}

export function refreshAllTimes(root = document) {
  const now = Date.now();
  for (const node of root.querySelectorAll('time[data-ts]')) refreshTime(node, now);
}

export function percent(used, total) {
  if (!total) return null;
  return Math.min(100, Math.max(0, (100 * used) / total));
}

export function memoryPercent(hb) {
  return hb ? percent(hb.memory_total_kb - hb.memory_available_kb, hb.memory_total_kb) : null;
}

export function diskPercent(hb) {
  return hb ? percent(hb.disk_total_kb - hb.disk_free_kb, hb.disk_total_kb) : null;
}

export function load1(hb) {
  return hb && Array.isArray(hb.load) && hb.load.length ? hb.load[0] : null;
}

export function kib(kb) {
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = kb;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  return `${value.toFixed(value < 10 && unit ? 1 : 0)} ${units[unit]}`;
}

// An inline SVG sparkline of values (oldest first). max fixes the top of the
// scale (100 for percentages); without it the scale follows the data.
export function sparkline(values, {max = null, width = 120, height = 28, label = ''} = {}) {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  const points = values.filter((v) => typeof v === 'number' && Number.isFinite(v));
  if (points.length < 2) {
    svg.classList.add('spark-empty');
    const line = document.createElementNS(SVG_NS, 'line');
    line.setAttribute('x1', '0');
    line.setAttribute('x2', String(width));
    line.setAttribute('y1', String(height - 1));
    line.setAttribute('y2', String(height - 1));
    line.setAttribute('class', 'spark-base');
    svg.append(line);
    return svg;
  }
  const top = Math.max(max ?? Math.max(...points) * 1.15, 1e-6);
  const step = width / (points.length - 1);
  const y = (v) => (height - 2 - (Math.min(v, top) / top) * (height - 4)).toFixed(1);
  const coords = points.map((v, i) => `${(i * step).toFixed(1)},${y(v)}`);
  const area = document.createElementNS(SVG_NS, 'polygon');
  area.setAttribute('points', `0,${height} ${coords.join(' ')} ${width},${height}`);
  area.setAttribute('class', 'spark-area');
  const line = document.createElementNS(SVG_NS, 'polyline');
  line.setAttribute('points', coords.join(' '));
  line.setAttribute('class', 'spark-line');
  svg.append(area, line);
  return svg;
}
