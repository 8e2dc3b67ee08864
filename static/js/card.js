// The model section: what GET /v1/models says about the selected model (shape, SDE, tasks,
// default sampler) and its free-form card (data, description, measured quality), with a grid of
// samples drawn with the default sampler.

import { modelPath, request } from './api.js';
import { el, fmt } from './dom.js';
import { pixelImage } from './images.js';
import { scatter } from './plot.js';

// Card sections that hold measured figures, shown as "measured quality".
const QUALITY_KEYS = ['quality', 'metrics', 'evaluation', 'eval', 'anomaly', 'training', 'likelihood', 'fid'];
const TEXT_KEYS = ['description', 'data'];

export function sdeText(sde) {
  if (sde.type === 've') return `VE SDE, σ from ${sde.sigma_min} to ${sde.sigma_max}, N = ${sde.N}`;
  const name = sde.type === 'subvp' ? 'sub-VP' : 'VP';
  return `${name} SDE, β from ${sde.beta_min} to ${sde.beta_max}, N = ${sde.N}`;
}

export function samplerText(s) {
  if (s.kind === 'pc') {
    const corr = s.corrector === 'none' ? 'no corrector'
      : `${s.corrector} corrector (snr ${s.snr}, ${s.corrector_steps} step${s.corrector_steps > 1 ? 's' : ''})`;
    return `PC: ${s.predictor} predictor, ${corr}, ${s.steps} steps`;
  }
  return s.solver === 'rk45'
    ? `probability-flow ODE, RK45 (rtol ${s.rtol}, atol ${s.atol})`
    : `probability-flow ODE, ${s.solver}, ${s.steps} steps`;
}

/** A short text of a value: scalars as they are, small objects as key: value lists. */
function brief(v, depth = 0) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return fmt(v);
  if (typeof v !== 'object') return String(v);
  if (Array.isArray(v)) {
    if (v.length > 6 || depth > 0) return `[${v.length} values]`;
    return v.map((x) => brief(x, depth + 1)).join(', ');
  }
  return Object.entries(v).filter(([, x]) => typeof x !== 'string' || x.length < 80)
    .map(([k, x]) => `${k} ${typeof x === 'object' && depth > 0 ? '{…}' : brief(x, depth + 1)}`).join('; ');
}

const grids = new Map(); // model id -> element: samples are drawn once per page load

export function renderModel(model, { summary, body }) {
  const card = model.card || {};
  const s = model.shape;
  summary.textContent = `${model.image ? `${s[0] === 3 ? 'colour' : 'gray'} images of ${s[1]}x${s[2]}` : `vectors of dimension ${model.data_dim}`}`
    + ` · ${model.kind} score model · ${sdeText(model.sde)}`;
  const facts = el('dl', { class: 'facts' });
  const add = (term, ...def) => facts.append(el('dt', {}, term), el('dd', {}, ...def));
  add('Shape', `[${s.join(', ')}]${model.centered ? ', data scaled to [-1, 1]' : ''}`);
  add('Tasks', model.tasks.join(', '));
  add('Default sampler', samplerText(model.default_sampler));
  if (model.labels.length) {
    add('Labels', `${model.labels.length}${model.guidable ? ' (guidable)' : ''}: ${model.labels.join(', ')}`);
  }
  const about = el('dl', { class: 'facts' });
  const addAbout = (term, ...def) => about.append(el('dt', {}, term), el('dd', {}, ...def));
  for (const k of TEXT_KEYS) if (typeof card[k] === 'string') addAbout(k, card[k]);
  const quality = QUALITY_KEYS.filter((k) => card[k] !== undefined);
  if (quality.length) {
    const list = el('ul', { class: 'quality' });
    for (const k of quality) list.append(el('li', {}, el('strong', {}, `${k}: `), brief(card[k])));
    addAbout('Measured', list);
  }
  // The card's text is long: open on wide windows, a click away on narrow ones.
  const wide = window.matchMedia('(min-width: 900px)').matches;
  const aboutBox = el('details', { class: 'about', open: wide }, el('summary', {}, 'Model card: data, description, measured quality'), about);
  const full = el('details', { class: 'full-card' },
    el('summary', {}, `Full entry of GET ${modelPath(model.id)}`),
    el('pre', { class: 'json' }, JSON.stringify(model, null, 1)));
  const gridBox = el('div', { class: 'sample-grid' });
  body.replaceChildren(el('div', { class: 'card-cols' }, el('div', {}, facts, aboutBox, full), gridBox));
  showGrid(model, gridBox);
}

function showGrid(model, box) {
  if (grids.has(model.id)) {
    box.append(grids.get(model.id));
    return;
  }
  const fig = el('figure', { class: 'grid-figure' });
  const caption = el('figcaption', {}, `Samples of ${model.id}, default sampler, seed 0`);
  const draw = async () => {
    fig.replaceChildren(el('p', { class: 'muted', role: 'status' }, 'Drawing samples…'), caption);
    try {
      const n = model.image ? 16 : 64;
      const resp = await request('POST', modelPath(model.id, 'samples'),
        { body: model.image ? { n, seed: 0, format: 'png' } : { n, seed: 0 } });
      const shown = model.image
        ? pixelImage(URL.createObjectURL(await resp.blob()), caption.textContent, null)
        : scatter((await resp.json()).samples, { label: `samples of ${model.id}`, size: 240 });
      if (model.image) shown.classList.add('grid-img');
      fig.replaceChildren(shown, caption);
      grids.set(model.id, fig);
    } catch (e) {
      fig.replaceChildren(el('p', { class: 'error' }, `Could not draw samples: ${e.describe ? e.describe() : e.message}`), button());
    }
  };
  const button = () => el('button', { type: 'button', class: 'secondary', onclick: draw },
    `Draw ${model.image ? 16 : 64} samples with the default sampler`);
  box.append(fig);
  // Analytic models sample in milliseconds; a network takes seconds, so it waits for a click.
  if (model.kind === 'network') {
    fig.replaceChildren(el('p', { class: 'muted' }, 'A neural network: sampling takes a while on a CPU.'), button(), caption);
  } else {
    draw();
  }
}
