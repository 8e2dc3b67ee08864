// The sampler settings of the generation tabs (the API's `sampler` object): pc with predictor,
// corrector, snr, corrector steps and steps, or ode with solver, rtol, atol (rk45) or steps
// (euler, heun).  Defaults come from the model's `default_sampler`.

import { el, field, intOf, numOf, numberInput, select } from './dom.js';

const PREDICTORS = ['reverse_diffusion', 'euler_maruyama', 'ancestral', 'none'];
const CORRECTORS = ['none', 'langevin', 'ald'];
const SOLVERS = ['rk45', 'heun', 'euler'];

export class SamplerForm {
  /** kinds: the sampler kinds the task takes (inpaint and colorize take pc only). */
  constructor({ kinds = ['pc', 'ode'], onChange } = {}) {
    this.kinds = kinds;
    this.kind = select('kind', kinds.map((k) => [k, k === 'pc' ? 'pc (reverse SDE)' : 'ode (probability flow)']));
    this.predictor = select('predictor', PREDICTORS);
    this.corrector = select('corrector', CORRECTORS);
    this.snr = numberInput('snr', 0.16, { min: 0, max: 10, step: 0.01 });
    this.correctorSteps = numberInput('corrector_steps', 1, { min: 1, max: 100, step: 1 });
    this.steps = numberInput('steps', 500, { min: 1, step: 1 });
    this.solver = select('solver', SOLVERS);
    this.rtol = numberInput('rtol', 1e-5, { min: 1e-12, max: 1 });
    this.atol = numberInput('atol', 1e-5, { min: 1e-12, max: 1 });

    this.pcFields = el('div', { class: 'row' },
      field('Predictor', this.predictor),
      field('Corrector', this.corrector));
    this.correctorFields = el('div', { class: 'row' },
      field('Signal-to-noise ratio (snr)', this.snr),
      field('Corrector steps', this.correctorSteps));
    this.odeFields = el('div', { class: 'row' }, field('Solver', this.solver));
    this.tolFields = el('div', { class: 'row' },
      field('rtol', this.rtol), field('atol', this.atol));
    this.stepsField = field('Steps', this.steps,
      'PC noise levels, or Euler/Heun steps');

    this.root = el('fieldset', { class: 'sampler' },
      el('legend', {}, 'Sampler'),
      el('div', { class: 'row' }, field('Kind', this.kind), this.stepsField),
      this.pcFields, this.correctorFields, this.odeFields, this.tolFields);
    if (kinds.length === 1) this.kind.disabled = true;
    this.root.addEventListener('input', () => { this.sync(); onChange?.(); });
    this.root.addEventListener('change', () => { this.sync(); onChange?.(); });
    this.sync();
  }

  /** Shows the fields the chosen kind uses. */
  sync() {
    const pc = this.kind.value === 'pc';
    this.pcFields.hidden = !pc;
    this.correctorFields.hidden = !pc || this.corrector.value === 'none';
    this.odeFields.hidden = pc;
    this.tolFields.hidden = pc || this.solver.value !== 'rk45';
    this.stepsField.hidden = !pc && this.solver.value === 'rk45';
  }

  /** Resets every field to the model's default sampler. */
  setDefaults(d) {
    this.kind.value = this.kinds.includes(d.kind) ? d.kind : this.kinds[0];
    this.predictor.value = d.predictor;
    this.corrector.value = d.corrector;
    this.snr.value = d.snr;
    this.correctorSteps.value = d.corrector_steps;
    this.steps.value = d.steps;
    this.solver.value = d.solver;
    this.rtol.value = d.rtol;
    this.atol.value = d.atol;
    this.sync();
  }

  /** The `sampler` object of the request: the fields that the chosen kind uses. */
  value() {
    const s = { kind: this.kind.value };
    if (s.kind === 'pc') {
      s.predictor = this.predictor.value;
      s.corrector = this.corrector.value;
      if (s.corrector !== 'none') {
        s.snr = numOf(this.snr);
        s.corrector_steps = intOf(this.correctorSteps);
      }
      s.steps = intOf(this.steps);
    } else {
      s.solver = this.solver.value;
      if (s.solver === 'rk45') {
        s.rtol = numOf(this.rtol);
        s.atol = numOf(this.atol);
      } else {
        s.steps = intOf(this.steps);
      }
    }
    for (const k of Object.keys(s)) if (s[k] === undefined) delete s[k];
    return s;
  }
}

/** About ten previews over a job: the preview_every of a sampler's steps. */
export function autoPreviewEvery(sampler) {
  return Math.max(1, Math.round((sampler.steps || 100) / 10));
}
