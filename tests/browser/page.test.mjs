// Browser end-to-end tests of the web page (static/) against the real ./scored binary: each
// tab's main flow, driven through Debian's chromium, asserting what the page shows.  A
// screenshot of each tab goes to build/browser/.
//
//   cd tests/browser && npm ci && node --test        (make browser-test does both)

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  API_KEY, COLOR_MODEL, REPO, Server, cleanup, launch, modelsDir, openPage, screenshot,
} from './harness.mjs';
import { decodePng, encodePng } from './png.mjs';

let server;
let browser;
let models;

before(async () => {
  models = modelsDir();
  server = new Server('main', { models });
  await server.start();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  const rc = await server?.stop();
  cleanup(models);
  assert.equal(rc, 0, `scored exited with ${rc} after SIGTERM:\n${server?.log.slice(-2000)}`);
});

const open = (model, tab, opts) => openPage(browser, `${server.url}/?model=${model}#${tab}`, opts);

/** The result images of a panel, decoded from their download links. */
async function resultImages(panel) {
  const hrefs = await panel.locator('.results a.download').evaluateAll((as) => as.map((a) => a.href));
  return hrefs.map((h) => decodePng(Buffer.from(h.slice(h.indexOf(',') + 1), 'base64')));
}

async function pickModelReady(page, id) {
  await page.locator(`body[data-model="${id}"]`).waitFor();
}

/** The page at a model and tab, once the model is shown: {page, panel}. */
async function openTab(model, tab, opts) {
  const page = await open(model, tab, opts);
  await pickModelReady(page, model);
  return { page, panel: page.locator(`#panel-${tab}`) };
}

describe('model picker and card', () => {
  it('lists every model of GET /v1/models and shows the card and a sample grid', async () => {
    const { body } = await server.api('GET', '/v1/models');
    const page = await open('fmnist-gmm', 'generate');
    await pickModelReady(page, 'fmnist-gmm');
    const options = await page.locator('#model option').evaluateAll((os) => os.map((o) => o.value));
    assert.deepEqual(options, body.models.map((m) => m.id));
    const card = page.locator('#model-info');
    await card.getByText('PC: reverse_diffusion predictor, no corrector, 500 steps').waitFor();
    await card.getByText('VP SDE, β from 0.1 to 20, N = 1000').waitFor();
    await card.getByText(/threshold 50\.69/).waitFor(); // the card's measured anomaly figures
    const grid = card.locator('img.grid-img');
    await grid.waitFor();
    assert.ok(await grid.evaluate((img) => img.complete && img.naturalWidth > 100));
    // A vector model: its samples as a scatter plot.
    await page.locator('#model').selectOption('gmm-2d');
    await card.locator('svg.plot circle.point').first().waitFor();
    assert.equal(await card.locator('svg.plot circle.point').count(), 64);
    // A network waits for a click before sampling.
    await page.locator('#model').selectOption('fmnist-vp');
    await card.getByRole('button', { name: /Draw 16 samples/ }).waitFor();
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });
});

describe('Generate', () => {
  it('samples a grid with progress events and previews, one download link per image', async () => {
    const { page, panel } = await openTab('fmnist-vp', 'generate');
    await panel.getByLabel('Samples (n)').fill('4');
    await panel.getByLabel('Seed', { exact: true }).fill('7');
    await panel.getByLabel('Kind').selectOption('ode');
    await panel.getByLabel('Solver').selectOption('heun');
    await panel.getByLabel('Steps', { exact: true }).fill('10');
    await panel.getByLabel('Preview every (steps)').fill('1');
    const curl = await panel.locator('pre.curl code').first().textContent();
    assert.match(curl, /"sampler":\{"kind":"ode","solver":"heun","steps":10\}/);
    await panel.getByRole('button', { name: 'Generate' }).click();
    const job = panel.locator('.job');
    await panel.locator('.results a.download').nth(3).waitFor();
    assert.equal(await job.getAttribute('data-state'), 'done');
    assert.ok(Number(await job.getAttribute('data-progress-events')) >= 1, 'no progress event shown');
    assert.ok(Number(await job.getAttribute('data-preview-events')) >= 1, 'no preview event shown');
    await panel.locator('.preview img').waitFor();
    const images = await resultImages(panel);
    assert.equal(images.length, 4);
    for (const im of images) assert.deepEqual([im.width, im.height, im.channels], [28, 28, 1]);
    const names = await panel.locator('.results a.download').evaluateAll((as) => as.map((a) => a.download));
    assert.deepEqual(names, [0, 1, 2, 3].map((i) => `fmnist-vp-seed7-${i}.png`));
    // The same request through the API gives the same pixels (seed 7, samples 0..3).
    const { body } = await server.api('POST', '/v1/models/fmnist-vp/samples',
      { n: 4, seed: 7, sampler: { kind: 'ode', solver: 'heun', steps: 10 }, format: 'json', grid: false });
    body.images.forEach((im, i) => {
      assert.deepEqual(decodePng(Buffer.from(im.png_base64, 'base64')).pixels, images[i].pixels);
    });
    await screenshot(page, 'generate');
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  it('cancels a long job', async () => {
    const { page, panel } = await openTab('fmnist-gmm', 'generate');
    await panel.getByLabel('Samples (n)').fill('1');
    await panel.getByLabel('Corrector', { exact: true }).selectOption('langevin');
    await panel.getByLabel('Corrector steps').fill('100');
    await panel.getByLabel('Steps', { exact: true }).fill('10000');
    await panel.getByRole('button', { name: 'Generate' }).click();
    const status = panel.locator('.job-status');
    await status.getByText(/running: step \d+ of 10000/).waitFor();
    const id = await panel.locator('.job').getAttribute('data-job');
    await panel.getByRole('button', { name: 'Cancel' }).click();
    await status.getByText(/cancelled at step \d+/).waitFor();
    const { body } = await server.api('GET', `/v1/jobs/${id}`);
    assert.equal(body.status, 'cancelled');
    assert.ok(body.progress.step < 10000);
    assert.equal(await panel.locator('.results img').count(), 0);
    await page.context().close();
  });

  it('shows the server\'s error message', async () => {
    const { page, panel } = await openTab('fmnist-gmm', 'generate');
    await panel.getByLabel('Kind').selectOption('pc');
    await panel.getByLabel('Steps', { exact: true }).fill('100001');
    await panel.getByRole('button', { name: 'Generate' }).click();
    const { status, body } = await server.api('POST', '/v1/models/fmnist-gmm/samples', { sampler: { steps: 100001 } });
    assert.equal(status, 422);
    await panel.getByRole('alert').getByText(`422 ${body.error.code}: ${body.error.message}`).waitFor();
    await page.context().close();
  });

  it('runs the curl command it shows', async () => {
    const { page, panel } = await openTab('gmm-2d', 'generate');
    await panel.getByLabel('Samples (n)').fill('5');
    await panel.getByLabel('Steps', { exact: true }).fill('50');
    await panel.getByRole('button', { name: 'Copy' }).first().click();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    assert.equal(copied, await panel.locator('pre.curl code').first().textContent());
    const dir = mkdtempSync(join(tmpdir(), 'scored-curl-'));
    try {
      execFileSync('bash', ['-c', copied], { cwd: dir, timeout: 30000 });
      const out = JSON.parse(readFileSync(join(dir, 'samples.json'), 'utf8'));
      assert.equal(out.samples.length, 5);
    } finally {
      cleanup(dir);
    }
    await panel.getByRole('button', { name: 'Generate' }).click();
    await panel.locator('.results-area svg.plot').waitFor();
    assert.equal(await panel.locator('.results-area svg circle.point').count(), 5);
    await page.context().close();
  });
});

describe('Inpaint', () => {
  it('sends the painted mask: the kept half of the result equals the input', async () => {
    const { page, panel } = await openTab('fmnist-gmm', 'inpaint');
    await panel.getByRole('button', { name: /example: Bag/ }).click();
    await panel.getByText('Input: example: Bag').waitFor();
    await panel.getByLabel('Brush size (pixels)').fill('3');
    // Paint columns 0..13 (brush 3: strokes at x <= 12 reach pixel 13 at most).
    const canvas = panel.locator('canvas.mask-canvas');
    const box = await canvas.boundingBox();
    const px = box.width / 28;
    for (let y = 0.5; y < 28; y += 1.5) {
      await page.mouse.move(box.x + 0.5 * px, box.y + y * px);
      await page.mouse.down();
      await page.mouse.move(box.x + 12 * px, box.y + y * px, { steps: 8 });
      await page.mouse.up();
    }
    const painted = Number(await panel.locator('.mask-editor').getAttribute('data-painted'));
    assert.ok(painted >= 13 * 28 && painted <= 14 * 28, `painted ${painted} pixels`);
    await panel.getByLabel('Samples (n)').fill('2');
    await panel.getByLabel('Steps', { exact: true }).fill('200');
    await panel.getByRole('button', { name: 'Inpaint' }).click();
    await panel.locator('.results a.download').nth(1).waitFor();
    await panel.getByText('mask (white = keep)').waitFor();
    const input = decodePng(readFileSync(join(REPO, 'static/examples/fmnist-bag.png')));
    const results = await resultImages(panel);
    assert.equal(results.length, 2);
    for (const r of results) {
      let changed = 0;
      for (let y = 0; y < 28; y++) {
        for (let x = 0; x < 28; x++) {
          const i = y * 28 + x;
          if (x >= 14) assert.equal(r.pixels[i], input.pixels[i], `kept pixel (${x}, ${y}) changed`);
          else if (r.pixels[i] !== input.pixels[i]) changed++;
        }
      }
      assert.ok(changed > 50, `only ${changed} painted pixels were regenerated`);
    }
    await screenshot(page, 'inpaint');
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  it('keeps a coordinate of a vector model', async () => {
    const { page, panel } = await openTab('gmm-2d', 'inpaint');
    await panel.getByLabel('Steps', { exact: true }).fill('100');
    await panel.getByRole('button', { name: 'Inpaint' }).click();
    await panel.locator('.results-area pre.json').waitFor({ state: 'attached' });
    assert.equal(await panel.locator('.results-area svg.plot line.kept').count(), 1);
    const json = JSON.parse(await panel.locator('.results-area pre.json').textContent());
    assert.equal(json.length, 32);
    for (const [x] of json) assert.ok(Math.abs(x - 0.7) < 1e-6);
    await page.context().close();
  });
});

describe('Colorize', () => {
  it('says that a 1-channel model cannot colorize', async () => {
    const { page, panel } = await openTab('fmnist-gmm', 'colorize');
    await panel.getByText('colorization needs a model with 3 colour channels').waitFor();
    assert.equal(await panel.getByRole('button', { name: 'Colorize' }).isVisible(), false);
    // It offers the 3-channel model of this server.
    await panel.getByRole('button', { name: COLOR_MODEL }).click();
    await pickModelReady(page, COLOR_MODEL);
    await panel.getByRole('button', { name: 'Colorize' }).waitFor();
    await page.context().close();
  });

  it('colorizes an uploaded gray image, several seeds, gray level kept', async () => {
    const { page, panel } = await openTab(COLOR_MODEL, 'colorize');
    const gray = new Uint8Array(32 * 32);
    for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) gray[y * 32 + x] = 80 + 2 * y + (x > 16 ? 20 : 0);
    await panel.locator('input[type=file]').setInputFiles({ name: 'gray.png', mimeType: 'image/png', buffer: encodePng(gray, 32, 32, 1) });
    await panel.getByText('Input: gray.png').waitFor();
    await panel.getByLabel('Samples (n)').fill('3');
    await panel.getByLabel('Seed', { exact: true }).fill('11');
    await panel.getByLabel('Steps', { exact: true }).fill('200');
    await panel.getByRole('button', { name: 'Colorize' }).click();
    await panel.locator('.results a.download').nth(2).waitFor();
    const captions = await panel.locator('.results li figcaption').allTextContents();
    assert.deepEqual(captions.map((c) => c.match(/seed \d+ #\d/)[0]), ['seed 11 #0', 'seed 11 #1', 'seed 11 #2']);
    const results = await resultImages(panel);
    let colourful = 0;
    for (const r of results) {
      assert.deepEqual([r.width, r.height, r.channels], [32, 32, 3]);
      for (let i = 0; i < 32 * 32; i++) {
        const [R, G, B] = r.pixels.subarray(3 * i, 3 * i + 3);
        // The gray level is the input's, up to rounding, where no channel was clipped.
        const clipped = [R, G, B].some((v) => v === 0 || v === 255);
        if (!clipped) assert.ok(Math.abs((R + G + B) / 3 - gray[i]) <= 1, `pixel ${i}: gray level ${(R + G + B) / 3}, input ${gray[i]}`);
        if (Math.max(R, G, B) - Math.min(R, G, B) > 20) colourful++;
      }
    }
    assert.ok(colourful > 1000, `only ${colourful} coloured pixels`);
    await screenshot(page, 'colorize');
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });
});

describe('Likelihood and anomaly', () => {
  it('scores many images: bits/dim, verdicts with the threshold, the card plot', async () => {
    const { page, panel } = await openTab('fmnist-gmm', 'likelihood');
    await panel.getByRole('button', { name: 'Add all' }).click();
    await panel.locator('ul.items[data-count="8"]').waitFor();
    await panel.getByRole('button', { name: 'Score' }).click();
    const rows = panel.locator('table.scores tbody tr');
    await rows.nth(7).waitFor();
    const text = await rows.allTextContents();
    for (let i = 0; i < 6; i++) assert.match(text[i], /in distribution \([\d.]+ ≤ 50\.699\)/);
    assert.match(text[6], /uniform noise.*anomaly \([\d.]+ > 50\.699\)/);
    assert.match(text[7], /checkerboard.*anomaly/);
    assert.equal(await panel.locator('svg.plot .item').count(), 8);
    assert.equal(await panel.locator('svg.plot .item.anomalous').count(), 2);
    await panel.locator('svg.plot text.threshold').getByText('threshold 50.699').waitFor();
    await panel.getByText(/the card has no histogram/).waitFor();
    await screenshot(page, 'likelihood');
    assert.deepEqual(page.problems, []);
    await page.context().close();
  });

  it('takes a threshold of one\'s own for a score the card does not calibrate', async () => {
    const { page, panel } = await openTab('fmnist-gmm', 'likelihood');
    await panel.getByRole('button', { name: /add example: Trouser/ }).click();
    await panel.getByRole('button', { name: /add example: uniform noise/ }).click();
    await panel.locator('ul.items[data-count="2"]').waitFor();
    await panel.getByLabel('Score', { exact: true }).selectOption('complexity');
    const choices = await panel.getByLabel('Threshold', { exact: true }).locator('option').allTextContents();
    assert.deepEqual(choices, ['a value of my own', 'none: likelihood only']); // fmnist-gmm calibrates bpd only
    await panel.getByLabel('Threshold', { exact: true }).selectOption('custom');
    await panel.getByLabel('Threshold (score units)').fill('20');
    assert.match(await panel.locator('pre.curl code').first().textContent(), /"score":"complexity","threshold":20/);
    await panel.getByRole('button', { name: 'Score' }).click();
    const rows = panel.locator('table.scores tbody tr');
    await rows.nth(1).waitFor();
    await panel.getByText('verdict (score complexity, threshold from request)').waitFor();
    const text = await rows.allTextContents();
    assert.match(text[0], /in distribution \(-?[\d.]+ ≤ 20\)/);
    assert.match(text[1], /anomaly \([\d.]+ > 20\)/);
    await page.context().close();
  });

  it('shows the server\'s message for an image of the wrong size', async () => {
    const { page, panel } = await openTab('fmnist-gmm', 'likelihood');
    const wrong = encodePng(new Uint8Array(32 * 32).fill(128), 32, 32, 1);
    await panel.locator('input[type=file]').setInputFiles([{ name: 'big.png', mimeType: 'image/png', buffer: wrong }]);
    await panel.locator('ul.items[data-count="1"]').waitFor();
    await panel.getByRole('button', { name: 'Score' }).click();
    const alert = panel.getByRole('alert');
    await alert.getByText(/^422 shape_mismatch: /).waitFor();
    assert.match(await alert.textContent(), /28/);
    await page.context().close();
  });
});

describe('API key, keyboard, narrow window', () => {
  it('asks for the API key of a server that needs one and keeps it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scored-keys-'));
    const keyFile = join(dir, 'keys');
    execFileSync('bash', ['-c', `printf '# test keys\\n%s\\n' "$1" > "$2"`, '_', API_KEY, keyFile]);
    const secured = new Server('auth', { models, args: ['--api-key-file', keyFile] });
    await secured.start();
    try {
      const page = await openPage(browser, `${secured.url}/#generate`);
      await page.locator('#global-error').getByText(/401 unauthorized: .*Enter the server's API key/).waitFor();
      await page.getByLabel(/API key/).fill(API_KEY);
      await page.getByLabel(/API key/).press('Enter');
      await page.getByLabel(/API key/).blur();
      await page.locator('body[data-model]').waitFor();
      assert.equal(await page.locator('#global-error').isVisible(), false);
      assert.equal(await page.evaluate(() => localStorage.getItem('scored.apiKey')), API_KEY);
      await page.reload();
      await page.locator('body[data-model]').waitFor();
      const curl = await page.locator('#panel-generate pre.curl code').first().textContent();
      assert.match(curl, /Authorization: Bearer \$SCORED_API_KEY/);
      await page.context().close();
    } finally {
      assert.equal(await secured.stop(), 0);
      cleanup(dir);
    }
  });

  it('works from the keyboard, labels every control, fits a narrow window', async () => {
    const page = await open('fmnist-gmm', 'generate', { width: 390, height: 844 });
    await pickModelReady(page, 'fmnist-gmm');
    await page.getByRole('tab', { name: 'Generate' }).focus();
    await page.keyboard.press('ArrowRight');
    assert.equal(await page.getByRole('tab', { name: 'Inpaint' }).getAttribute('aria-selected'), 'true');
    assert.ok(await page.locator('#panel-inpaint').isVisible());
    await page.keyboard.press('End');
    assert.ok(await page.locator('#panel-likelihood').isVisible());
    await page.keyboard.press('Home');
    assert.ok(await page.locator('#panel-generate').isVisible());
    // The mask painter: arrow keys move the brush, Space paints.
    await page.getByRole('tab', { name: 'Inpaint' }).click();
    const editor = page.locator('#panel-inpaint .mask-editor');
    await editor.waitFor();
    await page.locator('#panel-inpaint canvas.mask-canvas').focus();
    await page.keyboard.press('Space');
    const first = Number(await editor.getAttribute('data-painted'));
    assert.ok(first > 0);
    for (let i = 0; i < 6; i++) await page.keyboard.press('ArrowLeft');
    await page.keyboard.press('Space');
    assert.ok(Number(await editor.getAttribute('data-painted')) > first);
    await page.getByRole('button', { name: 'Clear' }).click();
    assert.equal(await editor.getAttribute('data-painted'), '0');
    // Every visible form control has an accessible name.
    const unnamed = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea, button')]
      .filter((c) => c.offsetParent !== null)
      .filter((c) => !(c.labels?.length || c.getAttribute('aria-label') || c.textContent.trim() || c.title))
      .map((c) => c.outerHTML.slice(0, 80)));
    assert.deepEqual(unnamed, []);
    // Nothing wider than the window.
    for (const tab of ['Generate', 'Inpaint', 'Colorize', 'Likelihood & anomaly']) {
      await page.getByRole('tab', { name: tab }).click();
      const [scroll, inner] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
      assert.ok(scroll <= inner, `${tab}: page ${scroll} px wide in a ${inner} px window`);
    }
    await page.getByRole('tab', { name: 'Generate' }).click();
    await screenshot(page, 'narrow');
    await page.context().close();
  });
});
