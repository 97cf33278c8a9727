// The steps of dashboard_test.mjs, in order; each throws with a message that
// says what the page showed instead. Later steps use what earlier ones found
// (the host and the container under test), kept in `found`.

const found = {host: null, container: null};
const kMarker = 'farmhand-test-no-reload';

const sel = {
  loginForm: '[data-testid="login-form"]',
  loginUser: '[data-testid="login-user"]',
  loginPassword: '[data-testid="login-password"]',
  loginSubmit: '[data-testid="login-submit"]',
  loginError: '[data-testid="login-error"]',
  dashboard: '[data-testid="dashboard"]',
  banner: '[data-testid="disconnected-banner"]',
  host: (name) => `[data-testid="host-row"][data-host="${name}"]`,
  container: (host, name) => `[data-testid="container-row"][data-host="${host}"][data-container="${name}"]`,
  device: (id) => `[data-testid="device-row"][data-device="${id}"]`,
  actions: '[data-testid^="action-"]',
  confirm: '[data-testid="confirm-dialog"]',
  confirmOk: '[data-testid="confirm-ok"]',
};

function check(condition, message) {
  if (!condition) throw new Error(message);
}

// Waits for fn (run in the page) to return something truthy; returns it.
async function waitFor(page, what, fn, arg, timeout) {
  try {
    const handle = await page.waitForFunction(fn, arg, {timeout, polling: 50});
    return await handle.jsonValue();
  } catch (err) {
    if (/Timeout/i.test(err.message)) throw new Error(`${what}: not seen within ${timeout / 1000} s`);
    throw err;
  }
}

async function visible(page, selector) {
  return page.locator(selector).first().isVisible();
}

async function login(page, {user, password}) {
  await page.fill(sel.loginUser, user);
  await page.fill(sel.loginPassword, password);
  await page.click(sel.loginSubmit);
}

async function noReload(h, role) {
  const marker = await h.pages[role].evaluate((name) => window[name], kMarker);
  check(marker === true && h.navigations[role] === 1,
        `the ${role} page was reloaded (${h.navigations[role]} navigations), the dashboard must update live`);
}

async function loginPageShown(h) {
  const page = await h.newPage('admin');
  await page.goto(h.options.url);
  await page.evaluate((name) => { window[name] = true; }, kMarker);
  await page.waitForSelector(sel.loginForm, {state: 'visible', timeout: 10000})
    .catch(() => { throw new Error('the login form is not shown to a browser without a session'); });
  check(!(await visible(page, sel.dashboard)), 'the dashboard is visible before logging in');
}

async function wrongPasswordRefused(h) {
  const page = h.pages.admin;
  await login(page, {user: h.options.admin.user, password: `${h.options.admin.password}-wrong`});
  await page.waitForSelector(sel.loginError, {state: 'visible', timeout: 5000})
    .catch(() => { throw new Error('no error shown after a wrong password'); });
  const text = (await page.textContent(sel.loginError)).trim();
  check(/wrong/i.test(text), `the login error says "${text}", expected it to mention a wrong user or password`);
  check(!(await visible(page, sel.dashboard)), 'the dashboard opened after a wrong password');
  const status = await page.evaluate(async () => (await fetch('/api/me')).status);
  check(status === 401, `GET /api/me answers ${status} after a wrong password, expected 401`);
  return `"${text}"`;
}

async function adminSeesHost(h) {
  const page = h.pages.admin;
  await login(page, h.options.admin);
  await page.waitForSelector(sel.dashboard, {state: 'visible', timeout: 10000})
    .catch(() => { throw new Error(`the dashboard did not open after logging in as ${h.options.admin.user}`); });
  const who = (await page.textContent('[data-testid="user-name"]')).trim();
  const role = (await page.textContent('[data-testid="user-role"]')).trim();
  check(who === h.options.admin.user && role === 'admin', `the header shows "${who}" "${role}", expected "${h.options.admin.user}" "admin"`);
  found.host = await waitFor(page, `host ${h.options.host || '(any)'} online`, (name) => {
    const rows = [...document.querySelectorAll('[data-testid="host-row"][data-online="true"]')];
    const row = rows.find((r) => !name || r.dataset.host === name);
    return row && row.dataset.host;
  }, h.options.host || null, 30000);
  found.container = await waitFor(page, `a running container of ${found.host}`, ([host, name]) => {
    const rows = [...document.querySelectorAll(`[data-testid="container-row"]`)].filter((r) => r.dataset.host === host);
    const row = rows.find((r) => (name ? r.dataset.container === name : r.dataset.state === 'running'));
    return row && row.dataset.container;
  }, [found.host, h.options.container || null], 30000);
  const containers = await page.locator(`[data-testid="container-row"][data-host="${found.host}"]`).count();
  const load = (await page.locator(`${sel.host(found.host)} .metric-load .metric-value`).textContent()).trim();
  return `host ${found.host} online with ${containers} container(s), load ${load}; using ${found.container}`;
}

// host.config_commit and containers[].sources of the inventory the server
// holds (GET /api/hosts) are shown in the host's card. Both harnesses' agents
// report them, so their absence fails the step.
async function commitsShown(h) {
  const page = h.pages.admin;
  const host = await page.evaluate(async (name) => {
    const answer = await fetch('/api/hosts');
    if (!answer.ok) return {error: `GET /api/hosts answered ${answer.status}`};
    return (await answer.json()).hosts.find((x) => x.name === name) || {error: `GET /api/hosts has no host ${name}`};
  }, found.host);
  check(!host.error, host.error);
  const inventory = host.inventory || {};
  const commit = inventory.host && inventory.host.config_commit;
  check(commit, `the inventory of ${found.host} has no host.config_commit (the test's agent must report one)`);
  const containers = inventory.containers || [];
  check(containers.some((c) => c.sources && c.sources.length),
        `no container of ${found.host} reports sources in its inventory (the test's agent must report some)`);

  const card = sel.host(found.host);
  const head = page.locator(`${card} [data-testid="host-config-commit"]`);
  await head.waitFor({state: 'visible', timeout: 10000})
    .catch(() => { throw new Error(`the card of ${found.host} does not show its config commit ${commit}`); });
  const headText = (await head.textContent()).trim();
  const headTitle = await head.getAttribute('title');
  check(headText === `config ${commit.slice(0, 12)}`,
        `the card of ${found.host} shows "${headText}", expected "config ${commit.slice(0, 12)}"`);
  check(headTitle === commit, `the config commit's title is "${headTitle}", expected the full commit ${commit}`);

  const columns = await page.locator(`${card} [data-testid="containers"] thead th`).allTextContents();
  check(columns.map((c) => c.trim()).includes('Sources'),
        `the containers table of ${found.host} has columns ${JSON.stringify(columns)}, no "Sources"`);
  const shown = [];
  let dashes = 0;
  for (const c of containers) {
    const cell = page.locator(`${sel.container(found.host, c.name)} [data-testid="container-sources"]`);
    check(await cell.count() === 1, `container ${c.name} has ${await cell.count()} sources cell(s), expected 1`);
    const got = await cell.evaluate((td) => ({
      label: td.dataset.label, text: td.textContent.trim(),
      items: [...td.querySelectorAll('.source')].map((s) => ({text: s.textContent.trim(), title: s.title,
                                                             font: getComputedStyle(s).fontFamily}))}));
    check(got.label === 'Sources', `the sources cell of ${c.name} has data-label "${got.label}", expected "Sources"`);
    const want = (c.sources || []).map((s) => (s.commit ? {text: `${s.name}@${s.commit.slice(0, 7)}`, title: s.commit}
                                                         : {text: s.name, title: 'no commit checked out yet'}));
    if (!want.length) {
      check(got.text === '—' && !got.items.length,
            `container ${c.name} has no sources but shows "${got.text}", expected "—"`);
      dashes++;
      continue;
    }
    const seen = got.items.map(({text, title}) => ({text, title}));
    check(JSON.stringify(seen) === JSON.stringify(want),
          `container ${c.name} shows sources ${JSON.stringify(seen)}, expected ${JSON.stringify(want)}`);
    for (const item of got.items) {
      check(/mono/i.test(item.font), `source ${item.text} of ${c.name} is not monospace (font ${item.font})`);
    }
    shown.push(`${c.name}: ${want.map((w) => w.text).join(', ')}`);
  }
  // The payload column: the state the inventory says (a container with
  // sources has a payload), and a rebuild button for an admin when the
  // agent offers rebuild.
  check(columns.map((c) => c.trim()).includes('Payload'),
        `the containers table of ${found.host} has columns ${JSON.stringify(columns)}, no "Payload"`);
  check(containers.some((c) => c.payload && c.payload.state),
        `no container of ${found.host} reports its payload state in its inventory (the test's agent applies one)`);
  const offersRebuild = ((inventory.host && inventory.host.actions) || []).includes('rebuild');
  for (const c of containers) {
    const row = sel.container(found.host, c.name);
    const text = (await page.locator(`${row} [data-testid="container-payload"]`).textContent()).trim();
    const want = c.payload && c.payload.state ? c.payload.state : '—';
    check(text.startsWith(want), `the payload cell of ${c.name} shows "${text}", expected "${want}"`);
    const rebuild = await page.locator(`${row} [data-testid="action-rebuild"]`).count();
    const wantRebuild = Boolean(c.payload && offersRebuild);
    check((rebuild === 1) === wantRebuild,
          `container ${c.name} has ${rebuild} rebuild button(s), expected ${wantRebuild ? 1 : 0}`);
  }
  return `${headText}; ${shown.join('; ')}${dashes ? `; ${dashes} container(s) without sources show —` : ''}`;
}

async function liveEvent(h) {
  const page = h.pages.admin;
  const message = h.hook('emit-event');
  const returned = Date.now();
  check(message, 'the emit-event hook printed no message');
  const find = (msg) => {
    const item = [...document.querySelectorAll('[data-testid="event-item"]')]
      .find((n) => n.querySelector('[data-testid="event-message"]').textContent === msg);
    return item ? {received: Number(item.dataset.receivedAt) || 0, shown: Date.now(), visible: item.offsetParent !== null} : null;
  };
  let seen;
  try {
    seen = await waitFor(page, 'the event', find, message, 5000);
  } catch (err) {
    throw new Error(`the event "${message}" did not appear in the timeline within 5 s of the hook returning`);
  }
  // received_at is set when the live frame arrives; an event loaded by a query has none.
  const latency = (seen.received || seen.shown) - returned;
  check(seen.visible, `the event "${message}" is in the timeline but not visible`);
  check(latency <= 1000, `the event "${message}" appeared ${latency} ms after the hook returned (limit 1000 ms)`);
  await noReload(h, 'admin');
  console.log(`    event latency: ${latency} ms from the hook returning to the frame in the page` +
              (latency <= 0 ? ' (the frame arrived before the hook returned)' : ''));
  return `${Math.max(latency, 0)} ms`;
}

async function deviceAttach(h) {
  const page = h.pages.admin;
  const id = h.hook('attach-device');
  check(id, 'the attach-device hook printed no device id');
  await page.waitForSelector(sel.device(id), {state: 'visible', timeout: 30000})
    .catch(() => { throw new Error(`device ${id} is not shown in the devices view within 30 s`); });
  const row = page.locator(sel.device(id));
  const state = (await row.locator('[data-testid="device-state"]').textContent()).trim();
  const container = (await row.locator('[data-testid="device-container"]').textContent()).trim();
  check(state === 'attached' || state === 'pending', `device ${id} has state "${state}"`);
  await noReload(h, 'admin');
  return `${id} ${state} in ${container}`;
}

async function serverStopGreys(h) {
  const page = h.pages.admin;
  h.hook('stop-server');
  await page.waitForSelector(sel.banner, {state: 'visible', timeout: 10000})
    .catch(() => { throw new Error('the "connection lost" banner did not show within 10 s of the server stopping'); });
  const look = await page.evaluate(() => {
    const style = getComputedStyle(document.querySelector('[data-testid="dashboard"]'));
    return {greyed: document.body.classList.contains('disconnected'), filter: style.filter, opacity: Number(style.opacity)};
  });
  check(look.greyed && (look.opacity < 1 || /grayscale/.test(look.filter)),
        `the page is not greyed out while disconnected (filter ${look.filter}, opacity ${look.opacity})`);
  const text = (await page.textContent(sel.banner)).trim();
  await h.screenshot('disconnected');
  return `"${text}"`;
}

async function serverRestartRecovers(h) {
  const page = h.pages.admin;
  const started = Date.now();
  h.hook('start-server');
  const fellBack = 'the page fell back to the login form: the session did not survive the server restart';
  try {
    await page.waitForSelector(sel.banner, {state: 'hidden', timeout: 25000});
  } catch {
    check(!(await visible(page, sel.loginForm)), fellBack);
    throw new Error('the "connection lost" banner is still shown 25 s after the server restarted');
  }
  check(!(await visible(page, sel.loginForm)), fellBack);
  const back = Date.now() - started;
  await waitFor(page, `host ${found.host} online again with container ${found.container}`, ([host, name]) => {
    const row = document.querySelector(`[data-testid="host-row"][data-host="${host}"]`);
    return row && row.dataset.online === 'true' &&
      [...row.querySelectorAll('[data-testid="container-row"]')].some((r) => r.dataset.container === name);
  }, [found.host, found.container], 60000);
  check(!(await page.evaluate(() => document.body.classList.contains('disconnected'))), 'the page is still greyed out');
  await noReload(h, 'admin');
  return `banner gone ${back} ms after start-server, host back online in ${Date.now() - started} ms`;
}

async function adminRestartsContainer(h) {
  const page = h.pages.admin;
  const row = page.locator(sel.container(found.host, found.container));
  const button = row.locator('[data-testid="action-restart"]');
  await button.waitFor({state: 'visible', timeout: 10000})
    .catch(() => { throw new Error(`no restart button on container ${found.container} for the admin`); });
  await page.evaluate(() => { for (const t of document.querySelectorAll('[data-testid="toast"]')) t.remove(); });
  const before = await page.evaluate(() => ({sent: window.__farmhand.commandsSent.length,
                                             errors: window.__farmhand.errors.length}));
  await button.click();
  await page.waitForSelector(sel.confirm, {state: 'visible', timeout: 5000})
    .catch(() => { throw new Error('clicking restart did not ask for confirmation'); });
  await page.click(sel.confirmOk);
  await page.waitForSelector(sel.confirm, {state: 'hidden', timeout: 5000});
  const answer = await waitFor(page, 'command_sent or error after confirming the restart', (b) => {
    const f = window.__farmhand;
    if (f.errors.length > b.errors) return {error: f.errors[f.errors.length - 1]};
    return f.commandsSent.length > b.sent && {sent: f.commandsSent[f.commandsSent.length - 1]};
  }, before, 10000);
  check(!answer.error, `the server refused the restart: ${answer.error && `${answer.error.code} "${answer.error.message}"`}`);
  await page.waitForSelector('[data-testid="toast"][data-type="command_sent"]', {state: 'attached', timeout: 2000})
    .catch(() => { throw new Error(`no toast shows that command ${answer.sent.id} was sent`); });
  const result = page.locator('[data-testid="toast"][data-type="command_result"]');
  await result.first().waitFor({state: 'attached', timeout: 180000})
    .catch(() => { throw new Error('no command_result toast within 180 s of the restart'); });
  const kind = await result.first().getAttribute('data-kind');
  const text = (await result.first().innerText()).replace(/\s*×\s*$/, '').replace(/\s*\n+\s*/g, ' — ');
  check(kind === 'ok', `the restart failed: toast "${text}"`);
  const state = h.hook('container-state', found.container);
  check(state === 'running', `container ${found.container} is "${state}" after the restart, expected running`);
  await noReload(h, 'admin');
  return `command ${answer.sent.id}: "${text}"`;
}

async function viewerCannotCommand(h) {
  const page = await h.newPage('viewer');
  await page.goto(h.options.url);
  await page.evaluate((name) => { window[name] = true; }, kMarker);
  await page.waitForSelector(sel.loginForm, {state: 'visible', timeout: 10000});
  await login(page, h.options.viewer);
  await page.waitForSelector(sel.container(found.host, found.container), {state: 'visible', timeout: 30000})
    .catch(() => { throw new Error(`the viewer does not see container ${found.container} of ${found.host}`); });
  const role = (await page.textContent('[data-testid="user-role"]')).trim();
  check(role === 'viewer', `the viewer's header shows role "${role}"`);
  const buttons = await page.locator(sel.actions).count();
  check(buttons === 0, `the viewer sees ${buttons} action button(s)`);
  const sent = await page.evaluate(([host, container]) => {
    const socket = window.__farmhand && window.__farmhand.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify({type: 'command', host, action: 'restart', container}));
    return true;
  }, [found.host, found.container]);
  check(sent, 'the viewer page has no open socket at window.__farmhand.socket');
  let error;
  try {
    error = await waitFor(page, 'an error frame answering the forged command',
      () => window.__farmhand.errors.length && window.__farmhand.errors[window.__farmhand.errors.length - 1],
      null, 5000);
  } catch (err) {
    const accepted = await page.evaluate(() => window.__farmhand.commandsSent.length);
    throw new Error(accepted ? 'the server accepted a command from a viewer (command_sent)' : err.message);
  }
  check(error.code === 'not_allowed', `the forged command got error "${error.code}" (${error.message}), expected not_allowed`);
  const accepted = await page.evaluate(() => window.__farmhand.commandsSent.length);
  check(accepted === 0, 'the server answered command_sent to a viewer');
  await page.waitForTimeout(300);
  const open = await page.evaluate(() => window.__farmhand.socket && window.__farmhand.socket.readyState === WebSocket.OPEN);
  check(open, 'the viewer\'s connection was closed after not_allowed; the protocol keeps it open');
  await noReload(h, 'viewer');
  return `no action buttons; forged command refused: ${error.code} "${error.message}"`;
}

async function expiredSessionShowsLogin(h) {
  const page = h.pages.viewer;
  await page.context().clearCookies();
  await page.evaluate(() => window.__farmhand.socket.close());
  await page.waitForSelector(sel.loginForm, {state: 'visible', timeout: 15000})
    .catch(() => { throw new Error('without a valid session the page did not fall back to the login form'); });
  check(!(await visible(page, sel.dashboard)), 'the dashboard is still shown next to the login form');
  await noReload(h, 'viewer');
}

export const steps = [
  ['login page shown', loginPageShown],
  ['wrong password refused', wrongPasswordRefused],
  ['admin login shows the host and its containers', adminSeesHost],
  ['config commit and container sources are shown', commitsShown],
  ['new event appears live within 1 s', liveEvent],
  ['attached device shows in the devices view', deviceAttach],
  ['stopped server greys the page', serverStopGreys],
  ['restarted server recovers the page without reload', serverRestartRecovers],
  ['admin restarts a container', adminRestartsContainer],
  ['viewer has no actions and a forged command is refused', viewerCannotCommand],
  ['lost session falls back to the login form', expiredSessionShowsLogin],
];
