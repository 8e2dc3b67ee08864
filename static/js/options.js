// The fields that /samples, /inpaint and /colorize share besides the sampler: n, seed, and the
// class label and guidance weight (only for models that can guide towards their labels).

import { el, field, intOf, numOf, numberInput, select } from './dom.js';

export const MAX_SEED = 2 ** 53 - 1;

export function randomSeed() {
  return Math.floor(Math.random() * 1e9);
}

export class SampleOptions {
  constructor({ n = 4, maxN = 64, onChange } = {}) {
    this.n = numberInput('n', n, { min: 1, max: maxN, step: 1 });
    this.seed = numberInput('seed', randomSeed(), { min: 0, max: MAX_SEED, step: 1 });
    this.reseed = el('button', { type: 'button', class: 'small secondary', 'aria-label': 'new random seed' }, 'New seed');
    this.label = select('label', [['', '(none)']]);
    this.guidance = numberInput('guidance', 1, { min: 0, max: 100, step: 0.5 });
    this.labelFields = el('div', { class: 'row' },
      field('Class label', this.label, 'guides samples towards the class'),
      field('Guidance weight', this.guidance));
    this.root = el('div', { class: 'options' },
      el('div', { class: 'row' },
        field('Samples (n)', this.n),
        el('div', { class: 'field-with-button' }, field('Seed', this.seed, 'sample i uses the stream (seed, i)'), this.reseed)),
      this.labelFields);
    this.reseed.addEventListener('click', () => {
      this.seed.value = randomSeed();
      onChange?.();
    });
    this.root.addEventListener('input', () => onChange?.());
    this.root.addEventListener('change', () => onChange?.());
  }

  setModel(model) {
    const guided = model.guidable && model.labels.length > 0;
    this.labelFields.hidden = !guided;
    this.label.replaceChildren(el('option', { value: '' }, '(none)'),
      ...(guided ? model.labels : []).map((name) => el('option', { value: name }, name)));
  }

  /** {n, seed, label?, guidance?} for the request. */
  value() {
    const v = { n: intOf(this.n), seed: intOf(this.seed) };
    if (!this.labelFields.hidden && this.label.value) {
      v.label = this.label.value;
      v.guidance = numOf(this.guidance);
    }
    for (const k of Object.keys(v)) if (v[k] === undefined) delete v[k];
    return v;
  }
}
