// The Colorize tab: a gray image (a colour one is shown converted to gray), and
// POST /v1/models/{id}/colorize as an async job; several colorizations with their seeds.
// Only models with 3 channels colorize (their `tasks` list has "colorize").

import { modelPath } from './api.js';
import { el, notice } from './dom.js';
import { imageShape } from './images.js';
import { SampleOptions } from './options.js';
import { figure, imageGrid } from './results.js';
import { SamplerForm, autoPreviewEvery } from './sampler.js';
import { ImageSource } from './source.js';
import { TabFrame } from './tab.js';

export class ColorizeTab {
  constructor(panel, { models, selectModel }) {
    this.models = models;
    this.selectModel = selectModel;
    this.frame = new TabFrame(panel, {
      title: 'Colorize',
      intro: ['Colour a grayscale image: the server generates the colour while the gray level of every pixel stays that of the input. ',
        'Each seed gives another colorization.'],
      runText: 'Colorize',
    });
    const update = () => this.updateRequest();
    this.source = new ImageSource({
      what: 'image (gray or colour)',
      onPicture: (p, text) => this.setPicture(p, text),
      onError: (e) => this.frame.error.show(e),
    });
    this.sourceText = el('p', { class: 'muted small', role: 'status' }, 'No image yet.');
    this.inputView = el('div', { class: 'input-view' });
    this.options = new SampleOptions({ n: 4, onChange: update });
    this.sampler = new SamplerForm({ kinds: ['pc'], onChange: update });
    this.frame.addFields(this.source.root, this.sourceText, this.inputView, this.options.root, this.sampler.root);
    this.frame.onSubmit(() => this.run());
  }

  setModel(model) {
    this.model = model;
    this.shape = imageShape(model);
    this.picture = null;
    this.inputView.replaceChildren();
    this.frame.results.replaceChildren();
    this.frame.error.clear();
    if (!model.tasks.includes('colorize')) {
      this.frame.unsupported(this.why(model));
      return;
    }
    this.frame.unsupported();
    this.sampler.setDefaults(model.default_sampler);
    this.options.setModel(model);
    this.source.setModel(model);
    this.sourceText.textContent = 'No image yet: upload one, pick an example, or draw one from the model (it is turned gray).';
    this.updateRequest();
  }

  /** The notice for a model that cannot colorize, with the models that can. */
  why(model) {
    const color = this.models().filter((m) => m.tasks.includes('colorize'));
    const reason = model.image
      ? `${model.id} has ${model.shape[0]} channel${model.shape[0] === 1 ? '' : 's'} (shape [${model.shape.join(', ')}]): colorization needs a model with 3 colour channels.`
      : `${model.id} is a vector model (shape [${model.shape.join(', ')}]): colorization needs an image model with 3 colour channels.`;
    const others = color.length
      ? el('p', {}, 'Models that colorize: ', ...color.flatMap((m, i) => [i ? ', ' : '',
        el('button', { type: 'button', class: 'link', onclick: () => this.selectModel(m.id) }, m.id)]))
      : el('p', {}, 'None of the models on this server has 3 channels; a colour image model (such as one trained on RGB images) will show up here.');
    return notice(el('strong', {}, 'No colorization with this model. '), reason, others);
  }

  setPicture(picture, text) {
    this.picture = picture.gray();
    const converted = picture.channels === 3 && !isGray(picture) ? ', shown converted to gray' : '';
    this.sourceText.textContent = `Input: ${text}${converted}.`;
    this.inputView.replaceChildren(figure(this.picture.toCanvas().toDataURL(), 'gray input', picture.width, { target: 112 }));
    this.frame.results.replaceChildren();
    this.updateRequest();
  }

  params() {
    const sampler = this.sampler.value();
    return { ...this.options.value(), sampler, format: 'json', grid: false, preview_every: autoPreviewEvery(sampler) };
  }

  updateRequest() {
    if (!this.model || !this.shape) return;
    this.frame.request.update({
      method: 'POST', path: modelPath(this.model.id, 'colorize'), output: 'colorized.json',
      parts: [{ name: 'image', file: 'gray.png' }, { name: 'params', json: this.params() }],
    }, 'gray.png: a gray PNG of the model\'s size (an RGB image is turned gray by its channel mean).');
  }

  async run() {
    const model = this.model;
    if (!this.picture) throw new Error('Choose an image first: upload one or pick an example.');
    this.frame.results.replaceChildren();
    const form = new FormData();
    form.append('image', await this.picture.toPng(), 'gray.png');
    form.append('params', new Blob([JSON.stringify(this.params())], { type: 'application/json' }));
    const result = await this.frame.job.run(modelPath(model.id, 'colorize'), form);
    if (!result) return;
    const w = this.shape.width;
    this.frame.results.append(
      el('h3', {}, `${result.images.length} colorizations`),
      el('div', { class: 'side-by-side' },
        figure(this.picture.toCanvas().toDataURL(), 'gray input', w, { target: 112 }),
        imageGrid(result.images, { name: `${model.id}-colorize`, width: w, label: 'colorization' })));
  }
}

function isGray(picture) {
  const p = picture.pixels;
  for (let i = 0; i < p.length; i += 3) if (p[i] !== p[i + 1] || p[i] !== p[i + 2]) return false;
  return true;
}
