// The Likelihood & anomaly tab: drop one or many images (or give points for vector models),
// POST /v1/models/{id}/anomaly (or /likelihood when no threshold is wanted) as an async job;
// bits/dim per image, the verdict with the threshold used, and where each image falls against
// the in-distribution figures of the model card.

import { modelPath } from './api.js';
import { clear, el, field, fmt, intOf, notice, numOf, numberInput, select } from './dom.js';
import { imageShape, loadBitmap, pictureOf } from './images.js';
import { bpdAxis } from './plot.js';
import { dropTarget, loadExamples } from './source.js';
import { TabFrame } from './tab.js';

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47];

/** The bytes to upload for a file: a PNG as it is, anything else re-encoded as PNG. */
async function pngOf(file) {
  const head = new Uint8Array(await file.slice(0, 4).arrayBuffer());
  if (PNG_MAGIC.every((b, i) => head[i] === b)) return file;
  const bitmap = await loadBitmap(file);
  return pictureOf(bitmap, bitmap.width, bitmap.height, 3).toPng();
}

export class LikelihoodTab {
  constructor(panel) {
    this.frame = new TabFrame(panel, {
      title: 'Likelihood and anomaly',
      intro: ['Exact log-likelihoods through the probability-flow ODE, in bits per dimension: lower means more typical of the training data. ',
        'An image whose score is above the threshold is flagged as an anomaly.'],
      runText: 'Score',
    });
    this.items = [];
    const update = () => this.updateRequest();
    // Image inputs.
    this.file = el('input', { type: 'file', accept: 'image/*', multiple: true, class: 'file-input' });
    this.drop = el('div', { class: 'drop big' },
      el('label', {}, 'Add images ', this.file),
      el('span', { class: 'muted' }, ' or drop one or many here. Images must have the model\'s size; PNGs are sent as they are.'));
    this.examples = el('div', { class: 'thumbs', role: 'group', 'aria-label': 'examples' });
    this.list = el('ul', { class: 'items', 'aria-label': 'images to score' });
    this.clearButton = el('button', { type: 'button', class: 'small secondary' }, 'Remove all');
    this.imageInputs = el('div', {}, this.drop,
      el('div', { class: 'examples-row' }, el('span', { class: 'muted' }, 'Examples: '), this.examples),
      this.list, this.clearButton);
    this.file.addEventListener('change', () => {
      this.addFiles([...this.file.files]);
      this.file.value = '';
    });
    dropTarget(this.drop, (files) => this.addFiles(files));
    this.clearButton.addEventListener('click', () => {
      this.items = [];
      this.renderItems();
    });
    // Vector inputs.
    this.data = el('textarea', { name: 'data', rows: 4, spellcheck: 'false' });
    this.vectorInputs = field('Points (JSON, [n, ...shape] in data units)', this.data);
    this.data.addEventListener('input', update);
    // Options.
    this.solver = select('solver', [['rk45', 'rk45 (adaptive)'], 'heun', 'euler'], 'rk45');
    this.rtol = numberInput('rtol', 1e-5, { min: 1e-12, max: 1 });
    this.atol = numberInput('atol', 1e-5, { min: 1e-12, max: 1 });
    this.steps = numberInput('steps', 100, { min: 1, step: 1 });
    this.tolFields = el('div', { class: 'row' }, field('rtol', this.rtol), field('atol', this.atol));
    this.stepsField = field('Steps', this.steps);
    this.score = select('score', [['bpd', 'bits/dim'], ['complexity', 'complexity (bits/dim minus PNG bits/dim)']], 'bpd');
    this.threshold = select('threshold', []);
    this.customThreshold = numberInput('custom_threshold', '', { step: 'any' });
    this.customField = field('Threshold (score units)', this.customThreshold);
    this.frame.addFields(this.imageInputs, this.vectorInputs,
      el('fieldset', {}, el('legend', {}, 'Probability-flow ODE'),
        el('div', { class: 'row' }, field('Solver', this.solver), this.stepsField), this.tolFields),
      el('fieldset', {}, el('legend', {}, 'Anomaly check'),
        field('Score', this.score),
        el('div', { class: 'row' }, field('Threshold', this.threshold), this.customField)));
    for (const c of [this.solver, this.threshold]) c.addEventListener('change', () => this.sync());
    this.score.addEventListener('change', () => {
      this.fillThresholds();
      this.sync();
    });
    this.frame.form.addEventListener('input', update);
    this.frame.form.addEventListener('change', update);
    this.frame.onSubmit(() => this.run());
  }

  sync() {
    const rk45 = this.solver.value === 'rk45';
    this.tolFields.hidden = !rk45;
    this.stepsField.hidden = rk45;
    this.customField.hidden = this.threshold.value !== 'custom';
  }

  /**
   * The card's calibration of a score ({threshold, quantiles, ...}): anomaly.scores.<score>,
   * else the top-level figures, which calibrate the card's anomaly.score (default bpd) only.
   */
  calibration(score) {
    const a = this.anomaly;
    if (!a) return null;
    if (a.scores && a.scores[score]) return a.scores[score];
    return (a.score || 'bpd') === score ? a : null;
  }

  /** The threshold choices for the chosen score: the card's, its quantiles, one's own, none. */
  fillThresholds() {
    const score = this.score.value;
    const cal = this.calibration(score) || {};
    const opts = [];
    if (typeof cal.threshold === 'number') opts.push(['card', `the model card's: ${fmt(cal.threshold)}`]);
    for (const [q, v] of Object.entries(cal.quantiles || {})) opts.push([`q:${q}`, `the card's ${q} quantile: ${fmt(v)}`]);
    opts.push(['custom', 'a value of my own'], ['none', 'none: likelihood only']);
    const old = this.threshold.value;
    this.threshold.replaceChildren(...opts.map(([v, t]) => el('option', { value: v }, t)));
    const values = opts.map(([v]) => v);
    this.threshold.value = values.includes(old) && old !== 'none' ? old : (opts[0][0] === 'custom' ? 'none' : opts[0][0]);
  }

  setModel(model) {
    this.model = model;
    this.shape = imageShape(model);
    this.frame.results.replaceChildren();
    this.frame.error.clear();
    if (!model.tasks.includes('likelihood')) {
      this.frame.unsupported(notice(`${model.id} does not compute likelihoods.`));
      return;
    }
    this.frame.unsupported();
    this.anomaly = (model.card && model.card.anomaly) || null;
    // complexity needs PNG inputs: image models only.
    this.score.querySelector('option[value=complexity]').hidden = !this.shape;
    this.score.value = (this.anomaly && this.anomaly.score) || 'bpd';
    if (!this.shape) this.score.value = 'bpd';
    this.threshold.replaceChildren();
    this.fillThresholds();
    this.imageInputs.hidden = !this.shape;
    this.vectorInputs.hidden = !!this.shape;
    if (this.shape) {
      this.items = [];
      this.renderItems();
      this.renderExamples();
    } else {
      const [d] = model.shape;
      const pts = [Array.from({ length: d }, (_, i) => (i === 0 ? 1 : 0)), Array(d).fill(0),
        Array.from({ length: d }, (_, i) => (i === 0 ? 2.5 : 0))];
      this.data.value = JSON.stringify(pts);
    }
    this.sync();
    this.updateRequest();
  }

  async renderExamples() {
    const s = this.shape;
    const fits = (await loadExamples()).filter((ex) => ex.shape && ex.shape.join() === this.model.shape.join());
    clear(this.examples);
    if (!fits.length) {
      this.examples.append(el('span', { class: 'muted' }, `none of size ${s.channels}x${s.height}x${s.width}`));
      return;
    }
    for (const ex of fits) {
      this.examples.append(el('button', {
        type: 'button', class: 'thumb', title: ex.title, 'aria-label': `add example: ${ex.title}`,
        onclick: async () => this.addItem(ex.title, await (await fetch(`examples/${ex.file}`)).blob()),
      }, el('img', { src: `examples/${ex.file}`, alt: '', class: 'px' })));
    }
    this.examples.append(el('button', {
      type: 'button', class: 'small secondary',
      onclick: async () => {
        for (const ex of fits) this.addItem(ex.title, await (await fetch(`examples/${ex.file}`)).blob(), false);
        this.renderItems();
      },
    }, 'Add all'));
  }

  async addFiles(files) {
    for (const f of files) {
      try {
        this.addItem(f.name, await pngOf(f), false);
      } catch (e) {
        this.frame.error.show(e);
      }
    }
    this.renderItems();
  }

  addItem(name, blob, render = true) {
    if (this.items.length >= 64) {
      this.frame.error.show(new Error('At most 64 images per request.'));
      return;
    }
    this.items.push({ name, blob, url: URL.createObjectURL(blob) });
    if (render) this.renderItems();
  }

  renderItems() {
    clear(this.list);
    this.items.forEach((it, i) => {
      this.list.append(el('li', {},
        el('img', { src: it.url, alt: '', class: 'px thumb-img' }),
        el('span', {}, `${i + 1}. ${it.name}`),
        el('button', {
          type: 'button', class: 'small secondary', 'aria-label': `remove ${it.name}`,
          onclick: () => {
            URL.revokeObjectURL(it.url);
            this.items.splice(i, 1);
            this.renderItems();
          },
        }, 'Remove')));
    });
    this.clearButton.hidden = this.items.length === 0;
    this.list.dataset.count = this.items.length;
    this.updateRequest();
  }

  /** The task (anomaly or likelihood) and the options of the request. */
  options() {
    const o = { solver: this.solver.value };
    if (o.solver === 'rk45') {
      o.rtol = numOf(this.rtol);
      o.atol = numOf(this.atol);
    } else {
      o.steps = intOf(this.steps);
    }
    const t = this.threshold.value;
    if (t === 'none') return { task: 'likelihood', params: o };
    o.score = this.score.value;
    if (t.startsWith('q:')) o.quantile = Number(t.slice(2));
    if (t === 'custom') o.threshold = numOf(this.customThreshold);
    for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
    return { task: 'anomaly', params: o };
  }

  vectorData() {
    try {
      return JSON.parse(this.data.value);
    } catch {
      return null;
    }
  }

  updateRequest() {
    if (!this.model) return;
    const { task, params } = this.options();
    const path = modelPath(this.model.id, task);
    if (!this.shape) {
      this.frame.request.update({ method: 'POST', path, json: { data: this.vectorData(), ...params }, output: `${task}.json` },
        'Continuous data: log-likelihood in nats (no bits/dim); the anomaly score is -log p / (D ln 2).');
      return;
    }
    const n = Math.max(1, this.items.length);
    const parts = Array.from({ length: n }, (_, i) => ({ name: 'image', file: `image${i + 1}.png` }));
    this.frame.request.update({ method: 'POST', path, output: `${task}.json`, parts: [...parts, { name: 'params', json: params }] },
      'One image part per image; the answer has one result per image, in order.');
  }

  async run() {
    const model = this.model;
    const { task, params } = this.options();
    const path = modelPath(model.id, task);
    this.frame.results.replaceChildren();
    let body;
    if (this.shape) {
      if (!this.items.length) throw new Error('Add at least one image first.');
      body = new FormData();
      this.items.forEach((it, i) => body.append('image', it.blob, `image${i + 1}.png`));
      body.append('params', new Blob([JSON.stringify(params)], { type: 'application/json' }));
    } else {
      const data = this.vectorData();
      if (!data) throw new Error('The points are not valid JSON.');
      body = { data, ...params };
    }
    const result = await this.frame.job.run(path, body);
    if (!result) return;
    this.show(result, task);
  }

  show(result, task) {
    const anomaly = task === 'anomaly';
    const image = !!this.shape;
    const rows = result.results.map((r) => {
      const item = image ? this.items[r.index] : null;
      const verdict = anomaly
        ? el('td', { class: r.is_anomaly ? 'bad' : 'good' },
          r.is_anomaly ? 'anomaly' : 'in distribution', ` (${fmt(r.score)} ${r.is_anomaly ? '>' : '≤'} ${fmt(r.threshold)})`)
        : null;
      return el('tr', { dataset: { index: r.index } },
        el('td', {}, String(r.index + 1)),
        image ? el('td', {}, el('img', { src: item.url, alt: item.name, class: 'px thumb-img' }), ' ', item.name) : el('td', {}, JSON.stringify(this.vectorData()[r.index] ?? '')),
        el('td', { class: 'num' }, image ? fmt(r.bits_per_dim) : fmt(r.log_likelihood_nats)),
        verdict,
        el('td', { class: 'num' }, fmt(r.nfe)));
    });
    const head = el('tr', {}, el('th', { scope: 'col' }, '#'), el('th', { scope: 'col' }, image ? 'image' : 'point'),
      el('th', { scope: 'col' }, image ? 'bits/dim' : 'log-likelihood (nats)'),
      anomaly ? el('th', { scope: 'col' }, `verdict (score ${result.score_kind}, threshold from ${result.threshold_source})`) : null,
      el('th', { scope: 'col' }, 'score evaluations'));
    this.frame.results.append(
      el('h3', {}, `${result.results.length} ${image ? 'images' : 'points'} scored in ${fmt(result.seconds)} s`),
      el('table', { class: 'scores' }, el('thead', {}, head), el('tbody', {}, ...rows)));
    if (image) this.frame.results.append(this.plot(result, anomaly));
  }

  /** Bits/dim of the images against the card's in-distribution figures. */
  plot(result, anomaly) {
    const kind = anomaly ? result.score_kind : 'bpd';
    const items = result.results.map((r) => ({
      n: r.index + 1, value: kind === 'bpd' ? r.bits_per_dim : r.score, anomalous: anomaly && r.is_anomaly,
    }));
    const cal = this.calibration(kind) || {};
    const mean = cal.mean ?? (kind === 'bpd' ? cal.bpd_mean : undefined);
    const ref = { mean, quantiles: cal.quantiles, histogram: cal.histogram };
    if (anomaly) ref.threshold = result.results[0].threshold;
    const what = cal.histogram
      ? `the histogram of in-distribution ${kind} scores from the model card`
      : Object.keys(cal).length
        ? 'the model card\'s in-distribution mean and quantiles (the card has no histogram)'
        : `nothing from the model card (it has no calibration of the ${kind} score)`;
    return el('figure', { class: 'bpd-plot' },
      bpdAxis(items, ref),
      el('figcaption', {}, `Where each image falls: numbered dots are the images (red: anomaly), against ${what}${anomaly ? ', and the threshold used' : ''}.`));
  }
}
