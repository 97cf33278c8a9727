// The /ui websocket, kept open: after a close it waits 1 s, doubling to 10 s,
// and asks GET /api/me before each new attempt. A browser does not tell a
// page why an upgrade failed, so /api/me is how a refused upgrade (an expired
// session: 401) is told apart from a server that is down (no answer).

const kProtocol = 'farmhand.ui.v1';
const kFirstDelayMs = 1000;
const kMaxDelayMs = 10000;

export class Feed {
  // handlers: onFrame(frame), onDown(), onUnauthorized()
  constructor(handlers) {
    this.handlers = handlers;
    this.socket = null;
    this.delay = kFirstDelayMs;
    this.timer = null;
    this.stopped = true;
    this.down = false;
  }

  url() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}/ui`;
  }

  start() {
    this.stopped = false;
    this.delay = kFirstDelayMs;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.close(1000, 'logout');
    }
  }

  // Only the snapshot proves the connection is useful; a server that accepts
  // and closes at once must not make us retry in a tight loop.
  connected() {
    this.delay = kFirstDelayMs;
    this.down = false;
  }

  send(frame) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  open() {
    let socket;
    try {
      socket = new WebSocket(this.url(), kProtocol);
    } catch (err) {
      this.lost();
      return;
    }
    this.socket = socket;
    socket.addEventListener('message', (e) => {
      if (socket !== this.socket || typeof e.data !== 'string') return;
      let frame;
      try {
        frame = JSON.parse(e.data);
      } catch {
        return;
      }
      if (frame && typeof frame.type === 'string') this.handlers.onFrame(frame);
    });
    socket.addEventListener('close', () => {
      if (socket !== this.socket) return;
      this.socket = null;
      this.lost();
    });
  }

  lost() {
    if (this.stopped) return;
    if (!this.down) {
      this.down = true;
      this.handlers.onDown();
    }
    this.retryLater();
  }

  retryLater() {
    clearTimeout(this.timer);
    const wait = this.delay;
    this.delay = Math.min(this.delay * 2, kMaxDelayMs);
    this.timer = setTimeout(() => this.attempt(), wait);
  }

  async attempt() {
    if (this.stopped) return;
    let status = 0;
    try {
      const answer = await fetch('/api/me', {cache: 'no-store', credentials: 'same-origin'});
      status = answer.status;
    } catch {
      status = 0;  // server unreachable
    }
    if (this.stopped) return;
    if (status === 401) {
      this.stop();
      this.handlers.onUnauthorized();
    } else if (status === 200) {
      this.open();
    } else {
      this.retryLater();
    }
  }
}
