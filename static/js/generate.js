// The Generate tab: POST /v1/models/{id}/samples with the sampler settings, run as an async
// job (progress bar, previews, cancel); the result is a grid of images with their seeds and
// download links, or a scatter plot of the samples for vector models.

import { modelPath } from './api.js';
import { el, field, intOf, numberInput } from './dom.js';
import { imageShape } from './images.js';
import { SampleOptions } from './options.js';
import { scatter } from './plot.js';
import { imageGrid } from './results.js';
import { SamplerForm, autoPreviewEvery } from './sampler.js';
import { TabFrame } from './tab.js';

export class GenerateTab {
  constructor(panel) {
    this.frame = new TabFrame(panel, {
      title: 'Generate',
      intro: ['Draw samples by solving the reverse-time SDE (predictor-corrector) or the probability-flow ODE. ',
        'The page submits the request as an asynchronous job and follows its events, so you see its progress and previews.'],
      runText: 'Generate',
    });
    const update = () => this.updateRequest();
    this.sampler = new SamplerForm({ onChange: update });
    this.options = new SampleOptions({ n: 16, onChange: update });
    this.previewEvery = numberInput('preview_every', '', { min: 1, step: 1, placeholder: 'auto' });
    this.previewField = field('Preview every (steps)', this.previewEvery, 'empty: about ten previews');
    this.previewEvery.addEventListener('input', update);
    this.frame.addFields(this.options.root, this.sampler.root, this.previewField);
    this.frame.onSubmit(() => this.run());
  }

  setModel(model) {
    this.model = model;
    this.sampler.setDefaults(model.default_sampler);
    this.options.setModel(model);
    this.options.n.value = model.image ? 16 : 64;
    this.previewField.hidden = !model.image;
    this.frame.results.replaceChildren();
    this.frame.error.clear();
    if (!model.tasks.includes('samples')) {
      this.frame.unsupported(el('p', {}, `${model.id} does not draw samples.`));
      return;
    }
    this.frame.unsupported();
    this.updateRequest();
  }

  body() {
    const sampler = this.sampler.value();
    const body = { ...this.options.value(), sampler };
    if (this.model.image) {
      body.format = 'json';
      body.grid = false;
      body.preview_every = intOf(this.previewEvery) ?? autoPreviewEvery(sampler);
    }
    return body;
  }

  updateRequest() {
    if (!this.model) return;
    const image = this.model.image;
    this.frame.request.update({
      method: 'POST', path: modelPath(this.model.id, 'samples'), json: this.body(), output: 'samples.json',
    }, image
      ? 'images[i].png_base64 is sample i, drawn from the stream (seed, i). Leave out "format" and "grid" (and "preview_every") to get one PNG grid instead: -o grid.png.'
      : 'A vector model: "samples" is [n, ...shape] in data units.');
  }

  async run() {
    const model = this.model;
    this.frame.results.replaceChildren();
    const result = await this.frame.job.run(modelPath(model.id, 'samples'), this.body());
    if (!result) return;
    const shape = imageShape(model);
    if (shape) {
      this.frame.results.append(
        el('h3', {}, `${result.images.length} samples of ${model.id}`),
        imageGrid(result.images, { name: `${model.id}`, width: shape.width }));
    } else {
      this.frame.results.append(
        el('h3', {}, `${result.samples.length} samples of ${model.id} (seed ${result.seed})`),
        scatter(result.samples, { label: `samples of ${model.id}` }),
        el('details', {}, el('summary', {}, 'The samples as JSON'),
          el('pre', { class: 'json' }, JSON.stringify(result.samples))));
    }
  }
}
