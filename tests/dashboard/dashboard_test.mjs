#!/usr/bin/env node
// Browser test of the farmhand dashboard: Debian's chromium, driven by
// playwright-core, against a running farmhand-server with at least one agent.
//
//   node dashboard_test.mjs --url http://127.0.0.1:PORT --admin ada:PW --viewer val:PW \
//        --hooks PATH [--host NAME] [--container NAME] [--chromium /usr/bin/chromium]
//
// The hooks program acts on the farm outside the browser; it is run without
// a shell as `PATH COMMAND [ARG]`, and the last line it prints is its answer:
//   emit-event             make the agent emit an event; prints the event's message
//   attach-device          plug a board in; prints the device id
//   stop-server            stop farmhand-server (returns once it is down)
//   start-server           start it again on the same port (returns once it listens)
//   container-state NAME   prints running, stopped, ...
// Screenshots go to $FARMHAND_TEST_ARTIFACTS (default /tmp) on failure and at
// the end. Exit status 0 only when every step passed.

import {execFileSync} from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {chromium} from 'playwright-core';
import {steps} from './dashboard_steps.mjs';

function parseArgs(argv) {
  const options = {chromium: '/usr/bin/chromium'};
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i];
    if (!name.startsWith('--') || i + 1 >= argv.length) usage(`bad argument "${name}"`);
    options[name.slice(2)] = argv[++i];
  }
  for (const required of ['url', 'admin', 'viewer', 'hooks']) {
    if (!options[required]) usage(`--${required} is required`);
  }
  for (const role of ['admin', 'viewer']) {
    const at = options[role].indexOf(':');
    if (at <= 0) usage(`--${role}: expected USER:PASSWORD`);
    options[role] = {user: options[role].slice(0, at), password: options[role].slice(at + 1)};
  }
  options.url = options.url.replace(/\/?$/, '/');
  return options;
}

function usage(message) {
  console.error(`dashboard_test: ${message}`);
  console.error('usage: dashboard_test.mjs --url URL --admin USER:PW --viewer USER:PW --hooks PATH ' +
                '[--host NAME] [--container NAME] [--chromium PATH]');
  process.exit(2);
}

// Everything a step needs: the browser, the pages, the hooks and helpers.
class Harness {
  constructor(options) {
    this.options = options;
    this.artifacts = process.env.FARMHAND_TEST_ARTIFACTS || '/tmp';
    this.pages = {};         // role -> Page
    this.problems = [];      // uncaught page errors and CSP violations
    this.navigations = {};   // role -> count of main-frame navigations
  }

  async launch() {
    this.browser = await chromium.launch({
      executablePath: this.options.chromium,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
             '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  }

  async newPage(role) {
    const context = await this.browser.newContext({viewport: {width: 1280, height: 900}});
    const page = await context.newPage();
    this.pages[role] = page;
    this.navigations[role] = 0;
    page.on('framenavigated', (frame) => {
      if (frame === page.mainFrame()) this.navigations[role]++;
    });
    page.on('pageerror', (err) => this.problems.push(`${role} page: uncaught ${err.message}`));
    page.on('console', (msg) => {
      if (/Content Security Policy/i.test(msg.text())) this.problems.push(`${role} page: ${msg.text()}`);
    });
    return page;
  }

  hook(command, ...args) {
    const started = Date.now();
    let out;
    try {
      out = execFileSync(this.options.hooks, [command, ...args],
                         {encoding: 'utf8', timeout: 180000, stdio: ['ignore', 'pipe', 'inherit']});
    } catch (err) {
      throw new Error(`hook "${command}" failed: ${err.message.split('\n')[0]}`);
    }
    const lines = out.trim().split('\n');
    const answer = lines[lines.length - 1].trim();
    console.log(`    hook ${[command, ...args].join(' ')} -> ${JSON.stringify(answer)} (${Date.now() - started} ms)`);
    return answer;
  }

  async screenshot(label) {
    fs.mkdirSync(this.artifacts, {recursive: true});
    for (const [role, page] of Object.entries(this.pages)) {
      const file = path.join(this.artifacts, `dashboard-${label}-${role}.png`);
      try {
        await page.screenshot({path: file, fullPage: true, timeout: 10000});
        console.log(`    screenshot ${file}`);
      } catch (err) {
        console.log(`    screenshot ${file} failed: ${err.message.split('\n')[0]}`);
      }
    }
  }
}

async function main() {
  const harness = new Harness(parseArgs(process.argv.slice(2)));
  let passed = 0;
  let failed = 0;
  try {
    await harness.launch();
    for (const [name, run] of steps) {
      const started = Date.now();
      try {
        const note = await run(harness);
        passed++;
        console.log(`PASS ${name} (${Date.now() - started} ms)${note ? `: ${note}` : ''}`);
      } catch (err) {
        failed++;
        console.log(`FAIL ${name}: ${err.message}`);
        await harness.screenshot('failure');
        break;  // later steps build on this one
      }
    }
    if (!failed && harness.problems.length) {
      failed++;
      console.log(`FAIL page problems:\n  ${harness.problems.join('\n  ')}`);
    }
    await harness.screenshot('final');
  } catch (err) {
    failed++;
    console.log(`FAIL harness: ${err.message}`);
  } finally {
    if (harness.browser) await harness.browser.close().catch(() => {});
  }
  console.log(`dashboard: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();
