// The page: the model picker (GET /v1/models), the API key field, the tabs, and the model card.
// Each tab lives in its own module and is told when the selected model changes.

import { apiKey, getJson, setApiKey } from './api.js';
import { renderModel } from './card.js';
import { ColorizeTab } from './colorize.js';
import { el } from './dom.js';
import { GenerateTab } from './generate.js';
import { InpaintTab } from './inpaint.js';
import { LikelihoodTab } from './likelihood.js';

const MODEL_STORE = 'scored.model';
const TABS = ['generate', 'inpaint', 'colorize', 'likelihood'];

const $ = (id) => document.getElementById(id);
let models = [];
let current = null;

const tabs = {
  generate: new GenerateTab($('panel-generate')),
  inpaint: new InpaintTab($('panel-inpaint')),
  colorize: new ColorizeTab($('panel-colorize'), { models: () => models, selectModel }),
  likelihood: new LikelihoodTab($('panel-likelihood')),
};

function showGlobalError(err) {
  const box = $('global-error');
  if (!err) {
    box.hidden = true;
    return;
  }
  const text = err.describe ? err.describe() : err.message;
  const hint = err.status === 401 ? ' Enter the server\'s API key in the field at the top.' : '';
  box.replaceChildren(el('strong', {}, 'Could not load the models: '), text, hint);
  box.hidden = false;
}

async function loadModels() {
  const picker = $('model');
  try {
    ({ models } = await getJson('/v1/models'));
  } catch (e) {
    models = [];
    picker.replaceChildren(el('option', {}, '(no models)'));
    picker.disabled = true;
    $('model-summary').textContent = 'No models loaded.';
    showGlobalError(e);
    return;
  }
  showGlobalError(null);
  picker.replaceChildren(...models.map((m) => el('option', { value: m.id },
    `${m.id} — ${m.image ? `${m.shape[0] === 3 ? 'colour' : 'gray'} ${m.shape[1]}x${m.shape[2]}` : `${m.data_dim}-D vectors`}`)));
  picker.disabled = models.length === 0;
  if (!models.length) {
    $('model-summary').textContent = 'The server has no models (see --models).';
    return;
  }
  const wanted = new URLSearchParams(window.location.search).get('model') || localStorage.getItem(MODEL_STORE);
  const first = models.find((m) => m.id === wanted) || models.find((m) => m.image) || models[0];
  selectModel(first.id);
}

function selectModel(id) {
  const model = models.find((m) => m.id === id);
  if (!model) return;
  current = model;
  $('model').value = id;
  try {
    localStorage.setItem(MODEL_STORE, id);
  } catch {
    /* storage blocked */
  }
  $('model-title').textContent = `Model: ${model.name || model.id}`;
  renderModel(model, { summary: $('model-summary'), body: $('model-card') });
  for (const tab of Object.values(tabs)) tab.setModel(model);
  document.body.dataset.model = id;
}

// ---- tabs (WAI-ARIA tabs pattern: arrow keys, Home, End) --------------------------------------

function showTab(name, focus = false) {
  for (const t of TABS) {
    const button = $(`tab-${t}`);
    const on = t === name;
    button.setAttribute('aria-selected', String(on));
    button.tabIndex = on ? 0 : -1;
    $(`panel-${t}`).hidden = !on;
    if (on && focus) button.focus();
  }
  if (window.location.hash !== `#${name}`) window.history.replaceState(null, '', `#${name}`);
}

function bindTabs() {
  const list = document.querySelector('[role=tablist]');
  list.addEventListener('click', (e) => {
    const button = e.target.closest('[role=tab]');
    if (button) showTab(button.id.slice(4));
  });
  list.addEventListener('keydown', (e) => {
    const i = TABS.indexOf(document.activeElement.id.slice(4));
    if (i < 0) return;
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: TABS.length - 1 }[e.key];
    if (next === undefined) return;
    e.preventDefault();
    showTab(TABS[(next + TABS.length) % TABS.length], true);
  });
  window.addEventListener('hashchange', () => {
    const name = window.location.hash.slice(1);
    if (TABS.includes(name)) showTab(name);
  });
  const start = window.location.hash.slice(1);
  showTab(TABS.includes(start) ? start : 'generate');
}

function bindApiKey() {
  const input = $('api-key');
  input.value = apiKey();
  input.addEventListener('change', () => {
    setApiKey(input.value.trim());
    loadModels();
    if (current) for (const tab of Object.values(tabs)) tab.updateRequest?.();
  });
}

$('model').addEventListener('change', (e) => selectModel(e.target.value));
bindTabs();
bindApiKey();
loadModels();
