// Where an input image comes from in the Inpaint and Colorize tabs: a file (chosen or dropped),
// one of the examples in static/examples/, or a sample drawn from the model itself.  Every
// source is fitted to the model's [C, H, W] and handed on as a Picture.

import { modelPath, request } from './api.js';
import { el } from './dom.js';
import { imageShape, loadBitmap, pictureOf } from './images.js';
import { randomSeed } from './options.js';

let examplesPromise = null;

/** The list in static/examples/examples.json ([] when it is missing). */
export function loadExamples() {
  examplesPromise ??= fetch('examples/examples.json')
    .then((r) => (r.ok ? r.json() : { examples: [] }))
    .then((doc) => doc.examples || [])
    .catch(() => []);
  return examplesPromise;
}

export class ImageSource {
  /** onPicture(picture, text): a new input; onError(err). */
  constructor({ onPicture, onError, what = 'image' }) {
    this.onPicture = onPicture;
    this.onError = onError;
    this.file = el('input', { type: 'file', accept: 'image/*', class: 'file-input' });
    this.drop = el('div', { class: 'drop', tabindex: '-1' },
      el('label', {}, `Upload an ${what} `, this.file),
      el('span', { class: 'muted' }, ' or drop one here'));
    this.examples = el('div', { class: 'thumbs', role: 'group', 'aria-label': 'examples' });
    this.sampleButton = el('button', { type: 'button', class: 'secondary' }, 'Draw one from the model');
    this.root = el('div', { class: 'source' },
      this.drop,
      el('div', { class: 'examples-row' }, el('span', { class: 'muted' }, 'Examples: '), this.examples, this.sampleButton));
    this.file.addEventListener('change', () => {
      if (this.file.files[0]) this.useFile(this.file.files[0]);
    });
    dropTarget(this.drop, (files) => this.useFile(files[0]));
    this.sampleButton.addEventListener('click', () => this.drawFromModel());
  }

  async setModel(model) {
    this.model = model;
    this.shape = imageShape(model);
    const examples = await loadExamples();
    this.examples.replaceChildren(...examples.map((ex) => el('button', {
      type: 'button', class: 'thumb', title: ex.title, 'aria-label': `example: ${ex.title}`,
      onclick: () => this.useUrl(`examples/${ex.file}`, `example: ${ex.title}`),
    }, el('img', { src: `examples/${ex.file}`, alt: '', class: 'px' }))));
  }

  async use(bitmapPromise, text) {
    try {
      const bitmap = await bitmapPromise;
      const { channels, height, width } = this.shape;
      const picture = pictureOf(bitmap, width, height, channels);
      const note = picture.fitted
        ? ` (${picture.original.join('x')}, fitted to ${width}x${height})` : '';
      this.onPicture(picture, `${text}${note}`);
    } catch (e) {
      this.onError(e);
    }
  }

  useFile(file) {
    return this.use(loadBitmap(file), file.name);
  }

  useUrl(url, text) {
    return this.use(loadBitmap(url), text);
  }

  async drawFromModel() {
    const seed = randomSeed();
    this.sampleButton.disabled = true;
    const old = this.sampleButton.textContent;
    this.sampleButton.textContent = 'Drawing…';
    try {
      const resp = await request('POST', modelPath(this.model.id, 'samples'),
        { body: { n: 1, seed, format: 'png' } });
      await this.use(loadBitmap(await resp.blob()), `a sample of ${this.model.id}, seed ${seed}`);
    } catch (e) {
      this.onError(e);
    } finally {
      this.sampleButton.disabled = false;
      this.sampleButton.textContent = old;
    }
  }
}

/** Makes an element accept dropped files: onFiles(File[]). */
export function dropTarget(node, onFiles) {
  node.addEventListener('dragover', (e) => {
    e.preventDefault();
    node.classList.add('over');
  });
  node.addEventListener('dragleave', () => node.classList.remove('over'));
  node.addEventListener('drop', (e) => {
    e.preventDefault();
    node.classList.remove('over');
    const files = [...(e.dataTransfer?.files || [])];
    if (files.length) onFiles(files);
  });
}
