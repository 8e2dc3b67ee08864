// The Inpaint tab: an image (file, example or model sample), a painted mask, and
// POST /v1/models/{id}/inpaint (multipart: image, mask, params) as an async job; the input, the
// mask and the results side by side.  For vector models: coordinates to keep and the rest
// generated (JSON data and mask).

import { modelPath } from './api.js';
import { el, field, notice, numberInput } from './dom.js';
import { imageShape } from './images.js';
import { MaskPainter } from './mask.js';
import { SampleOptions } from './options.js';
import { scatter } from './plot.js';
import { figure, imageGrid } from './results.js';
import { SamplerForm, autoPreviewEvery } from './sampler.js';
import { ImageSource } from './source.js';
import { TabFrame } from './tab.js';

export class InpaintTab {
  constructor(panel) {
    this.frame = new TabFrame(panel, {
      title: 'Inpaint',
      intro: ['Regenerate part of an image and keep the rest exactly: paint the area to regenerate, then run. ',
        'The server fills it with the replacement method of the paper (predictor-corrector samplers only).'],
      runText: 'Inpaint',
    });
    const update = () => this.updateRequest();
    this.source = new ImageSource({
      what: 'image',
      onPicture: (p, text) => this.setPicture(p, text),
      onError: (e) => this.frame.error.show(e),
    });
    this.sourceText = el('p', { class: 'muted small', role: 'status' }, 'No image yet: upload one, or pick an example.');
    this.painter = new MaskPainter({ onChange: update });
    this.files = el('p', { class: 'small files' });
    this.imageInputs = el('div', {}, this.source.root, this.sourceText, this.painter.root, this.files);
    this.vectorInputs = el('fieldset', { class: 'vector-inputs' });
    this.options = new SampleOptions({ n: 4, onChange: update });
    this.sampler = new SamplerForm({ kinds: ['pc'], onChange: update });
    this.frame.addFields(this.imageInputs, this.vectorInputs, this.options.root, this.sampler.root);
    this.frame.onSubmit(() => this.run());
  }

  setModel(model) {
    this.model = model;
    this.shape = imageShape(model);
    this.picture = null;
    this.frame.results.replaceChildren();
    this.frame.error.clear();
    this.sampler.setDefaults(model.default_sampler);
    this.options.setModel(model);
    if (!model.tasks.includes('inpaint')) {
      this.frame.unsupported(notice(`${model.id} cannot inpaint (its tasks: ${model.tasks.join(', ')}).`));
      return;
    }
    this.frame.unsupported();
    this.imageInputs.hidden = !this.shape;
    this.vectorInputs.hidden = !!this.shape;
    if (this.shape) {
      this.options.n.value = 4;
      this.source.setModel(model);
      this.painter.root.hidden = true;
      this.sourceText.textContent = 'No image yet: upload one, pick an example, or draw one from the model.';
      this.source.useUrl('examples/fmnist-trouser.png', 'example: Trouser').catch(() => {});
    } else {
      this.options.n.value = 32;
      this.buildVectorInputs(model);
    }
    this.updateRequest();
  }

  setPicture(picture, text) {
    this.picture = picture;
    this.sourceText.textContent = `Input: ${text}. Paint the area to regenerate.`;
    this.painter.root.hidden = false;
    this.painter.setPicture(picture);
    this.frame.results.replaceChildren();
  }

  buildVectorInputs(model) {
    this.coords = [];
    const rows = [];
    for (let i = 0; i < model.data_dim; i++) {
      const value = numberInput(`x${i}`, i === 0 ? 0.7 : 0, { step: 0.1 });
      const keep = el('input', { type: 'checkbox', name: `keep${i}`, checked: i === 0 });
      this.coords.push({ value, keep });
      rows.push(el('div', { class: 'row' }, field(`x[${i}]`, value),
        el('label', { class: 'check' }, keep, ` keep x[${i}] (else generate it)`)));
    }
    this.vectorInputs.replaceChildren(el('legend', {}, 'Point: the kept coordinates stay, the others are generated'), ...rows);
    this.vectorInputs.oninput = () => this.updateRequest();
  }

  params() {
    const sampler = this.sampler.value();
    return { ...this.options.value(), sampler, format: 'json', grid: false, preview_every: autoPreviewEvery(sampler) };
  }

  vectorBody() {
    const { n, seed, label, guidance } = this.options.value();
    return {
      data: this.coords.map((c) => Number(c.value.value)),
      mask: this.coords.map((c) => (c.keep.checked ? 1 : 0)),
      n, seed, label, guidance, sampler: this.sampler.value(),
    };
  }

  async updateRequest() {
    if (!this.model) return;
    const path = modelPath(this.model.id, 'inpaint');
    if (!this.shape) {
      this.frame.request.update({ method: 'POST', path, json: this.vectorBody(), output: 'inpainted.json' },
        'mask: 1 = keep that coordinate, 0 = generate it.');
      return;
    }
    this.frame.request.update({
      method: 'POST', path, output: 'inpainted.json',
      parts: [{ name: 'image', file: 'input.png' }, { name: 'mask', file: 'mask.png' }, { name: 'params', json: this.params() }],
    }, 'mask.png: white = keep, black = regenerate (or leave out the mask and send an image whose transparent pixels are to be regenerated).');
    await this.updateFileLinks();
  }

  /** Links to the input and mask PNGs, so that the curl command can be run as shown. */
  async updateFileLinks() {
    if (!this.picture) {
      this.files.replaceChildren();
      return;
    }
    const [image, mask] = await Promise.all([this.picture.toPng(), this.painter.maskPicture().toPng()]);
    for (const a of this.files.querySelectorAll('a')) URL.revokeObjectURL(a.href);
    this.files.replaceChildren('Files for the command: ',
      el('a', { href: URL.createObjectURL(image), download: 'input.png' }, 'input.png'), ' · ',
      el('a', { href: URL.createObjectURL(mask), download: 'mask.png' }, 'mask.png'));
  }

  async run() {
    const model = this.model;
    const path = modelPath(model.id, 'inpaint');
    this.frame.results.replaceChildren();
    if (!this.shape) {
      const body = this.vectorBody();
      const result = await this.frame.job.run(path, body);
      if (!result) return;
      const lines = body.mask.flatMap((k, i) => (k && i < 2 ? [i === 0 ? { x: body.data[0] } : { y: body.data[1] }] : []));
      this.frame.results.append(el('h3', {}, `${result.samples.length} completions of ${JSON.stringify(body.data)}`),
        scatter(result.samples, { label: 'inpainted points', lines }),
        el('details', {}, el('summary', {}, 'The samples as JSON'), el('pre', { class: 'json' }, JSON.stringify(result.samples))));
      return;
    }
    if (!this.picture) throw new Error('Choose an image first: upload one or pick an example.');
    if (this.painter.painted() === 0) throw new Error('Paint the area to regenerate first (or use a preset such as "Left half").');
    const maskPicture = this.painter.maskPicture();
    const [image, mask] = await Promise.all([this.picture.toPng(), maskPicture.toPng()]);
    const form = new FormData();
    form.append('image', image, 'input.png');
    form.append('mask', mask, 'mask.png');
    form.append('params', new Blob([JSON.stringify(this.params())], { type: 'application/json' }));
    const result = await this.frame.job.run(path, form);
    if (!result) return;
    const w = this.shape.width;
    this.frame.results.append(
      el('h3', {}, 'Input, mask and results'),
      el('div', { class: 'side-by-side' },
        figure(this.picture.toCanvas().toDataURL(), 'input', w, { target: 112 }),
        figure(maskPicture.toCanvas().toDataURL(), 'mask (white = keep)', w, { target: 112 }),
        imageGrid(result.images, { name: `${model.id}-inpaint`, width: w, label: 'result' })));
  }
}
