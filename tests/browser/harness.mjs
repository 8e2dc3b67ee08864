// The browser tests' fixtures: the real ./scored binary serving static/ on a free port (with a
// temporary models directory), Debian's chromium driven by playwright-core, and screenshots.

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = join(REPO, 'scored');
export const OUT = join(REPO, 'build', 'browser');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const API_KEY = 'browser-test-key-5ec2e7';
export const COLOR_MODEL = 'rgb-gmm-32';

mkdirSync(OUT, { recursive: true });

export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.unref();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/**
 * A 3-channel 32x32 analytic model for the Colorize tab: three Gaussians, reddish, greenish and
 * bluish, with a vertical brightness gradient.
 */
export function colorModel() {
  const hues = { reddish: [0.7, -0.5, -0.5], greenish: [-0.5, 0.5, -0.4], bluish: [-0.6, -0.2, 0.7] };
  const means = Object.values(hues).map((rgb) => {
    const m = [];
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) m.push(rgb[c] * 0.8 + (y / 31 - 0.5) * 0.6);
    }
    return m;
  });
  return {
    kind: 'gmm', name: COLOR_MODEL, shape: [3, 32, 32],
    sde: { type: 'vp', beta_min: 0.1, beta_max: 20, N: 1000 },
    centered: true, weights: [1 / 3, 1 / 3, 1 / 3], means, stds: [0.15, 0.15, 0.15],
    labels: Object.keys(hues),
    card: { description: 'browser-test model: three colours on 32x32 images', data: 'synthetic; no data set' },
  };
}

/** A models directory: links to the bundled models, plus the colour test model. */
export function modelsDir() {
  const dir = mkdtempSync(join(tmpdir(), 'scored-browser-models-'));
  for (const f of readdirSync(join(REPO, 'models'))) {
    if (f.endsWith('.json') || f.endsWith('.safetensors')) symlinkSync(join(REPO, 'models', f), join(dir, f));
  }
  writeFileSync(join(dir, `${COLOR_MODEL}.json`), JSON.stringify(colorModel()));
  return dir;
}

export class Server {
  constructor(name, { models, args = [] } = {}) {
    this.name = name;
    this.models = models;
    this.args = args;
    this.log = '';
  }

  async start() {
    this.port = await freePort();
    this.url = `http://127.0.0.1:${this.port}`;
    this.proc = spawn(BIN, ['serve', '--models', this.models, '--static', join(REPO, 'static'),
      '--host', '127.0.0.1', '--port', String(this.port), ...this.args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    this.exited = new Promise((ok) => this.proc.on('exit', (code, signal) => ok({ code, signal })));
    await new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`${this.name}: not ready in 30 s:\n${this.log}`)), 30000);
      const onData = (d) => {
        this.log += d;
        if (this.log.includes('scored: serving')) {
          clearTimeout(timer);
          ok();
        }
      };
      this.proc.stdout.on('data', onData);
      this.proc.stderr.on('data', onData);
      this.exited.then(({ code }) => {
        clearTimeout(timer);
        fail(new Error(`${this.name}: exited with ${code} before serving:\n${this.log}`));
      });
    });
  }

  /** SIGTERM; resolves to the exit status (null after 15 s, then the process is killed). */
  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return this.proc?.exitCode ?? null;
    this.proc.kill('SIGTERM');
    let timer;
    const timeout = new Promise((ok) => { timer = setTimeout(() => ok(null), 15000); });
    const r = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (r === null) {
      this.proc.kill('SIGKILL');
      return null;
    }
    return r.code;
  }

  async api(method, path, body) {
    const init = { method, headers: {} };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(this.url + path, init);
    return { status: resp.status, body: await resp.json() };
  }
}

export function cleanup(dir) {
  rmSync(dir, { recursive: true, force: true });
}

export async function launch() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
}

/**
 * A fresh page (own context) at url; console errors and page errors are collected in
 * page.problems so that a test can assert there were none.
 */
export async function openPage(browser, url, { width = 1280, height = 900 } = {}) {
  const context = await browser.newContext({ viewport: { width, height } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(url).origin });
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) page.problems.push(`console: ${m.text()}`);
  });
  page.setDefaultTimeout(30000);
  await page.goto(url);
  return page;
}

/** build/browser/NAME.png (the whole page) and NAME-tab.png (the tab alone, for the README). */
export async function screenshot(page, name) {
  const path = join(OUT, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  await page.locator('main').screenshot({ path: join(OUT, `${name}-tab.png`) });
  return path;
}
