// The mask painter of the Inpaint tab: paint the area to regenerate over the image (brush size,
// eraser, clear, invert, half-image presets; arrow keys and Space paint from the keyboard).
// The mask goes to the API as a gray PNG: white = keep, black = generate.

import { el, field } from './dom.js';
import { Picture } from './images.js';

export class MaskPainter {
  constructor({ onChange } = {}) {
    this.onChange = onChange;
    this.canvas = el('canvas', {
      class: 'mask-canvas', tabindex: '0', role: 'img',
      'aria-label': 'image with the mask painted over it; arrow keys move the brush, Space paints, Shift+Space erases',
    });
    this.brush = el('input', { type: 'range', name: 'brush', min: 1, max: 14, value: 4 });
    this.paintMode = el('input', { type: 'radio', name: `mask-mode-${Math.random()}`, value: 'paint', checked: true });
    this.eraseMode = el('input', { type: 'radio', name: this.paintMode.name, value: 'erase' });
    const button = (text, fn) => el('button', { type: 'button', class: 'small secondary', onclick: fn }, text);
    this.coverage = el('span', { class: 'muted', role: 'status' });
    this.root = el('div', { class: 'mask-editor' },
      this.canvas,
      el('div', { class: 'mask-tools' },
        field('Brush size (pixels)', this.brush),
        el('fieldset', { class: 'inline' }, el('legend', {}, 'Brush'),
          el('label', {}, this.paintMode, ' paint (regenerate)'),
          el('label', {}, this.eraseMode, ' eraser (keep)')),
        el('div', { class: 'buttons' },
          button('Clear', () => this.fill(() => 0)),
          button('Invert', () => this.fill((x, y, old) => 1 - old)),
          button('Left half', () => this.fill((x) => (x < this.w / 2 ? 1 : 0))),
          button('Right half', () => this.fill((x) => (x >= this.w / 2 ? 1 : 0))),
          button('Top half', () => this.fill((x, y) => (y < this.h / 2 ? 1 : 0))),
          button('Bottom half', () => this.fill((x, y) => (y >= this.h / 2 ? 1 : 0)))),
        this.coverage));
    this.cursor = null;
    this.bindPointer();
    this.bindKeys();
  }

  /** A new picture: the mask is cleared. */
  setPicture(picture) {
    this.picture = picture;
    this.w = picture.width;
    this.h = picture.height;
    this.zoom = Math.max(1, Math.floor(280 / this.w));
    this.canvas.width = this.w * this.zoom;
    this.canvas.height = this.h * this.zoom;
    this.brush.max = Math.max(2, Math.ceil(this.w / 2));
    this.mask = new Uint8Array(this.w * this.h); // 1 = generate
    this.cursor = { x: Math.floor(this.w / 2), y: Math.floor(this.h / 2) };
    this.draw();
    this.changed();
  }

  fill(fn) {
    if (!this.mask) return;
    for (let y = 0; y < this.h; y++) {
      for (let x = 0; x < this.w; x++) this.mask[y * this.w + x] = fn(x, y, this.mask[y * this.w + x]);
    }
    this.draw();
    this.changed();
  }

  /** Paints (value 1) or erases (0) a disc of the brush's diameter around model pixel (cx, cy). */
  dab(cx, cy, value, redraw = true) {
    const d = Number(this.brush.value);
    const r = d / 2;
    for (let y = Math.floor(cy - r); y <= Math.ceil(cy + r); y++) {
      for (let x = Math.floor(cx - r); x <= Math.ceil(cx + r); x++) {
        if (x < 0 || y < 0 || x >= this.w || y >= this.h) continue;
        if ((x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2 <= r * r || d <= 1) this.mask[y * this.w + x] = value;
      }
    }
    if (redraw) this.draw();
  }

  bindPointer() {
    let last = null; // the previous brush position of a stroke, in model pixels
    const at = (e) => {
      const box = this.canvas.getBoundingClientRect();
      return { x: ((e.clientX - box.left) / box.width) * this.w, y: ((e.clientY - box.top) / box.height) * this.h };
    };
    // Browsers coalesce pointer moves: paint along the segment from the last position.
    const stroke = (e) => {
      const p = at(e);
      const value = this.eraseMode.checked || e.buttons === 2 ? 0 : 1;
      const from = last || p;
      const gap = Math.max(0.25, Number(this.brush.value) / 4);
      const n = Math.max(1, Math.ceil(Math.hypot(p.x - from.x, p.y - from.y) / gap));
      for (let i = 1; i <= n; i++) {
        this.dab(from.x + ((p.x - from.x) * i) / n, from.y + ((p.y - from.y) * i) / n, value, false);
      }
      last = p;
      this.draw();
    };
    this.canvas.addEventListener('pointerdown', (e) => {
      if (!this.mask) return;
      last = null;
      this.canvas.setPointerCapture(e.pointerId);
      stroke(e);
    });
    this.canvas.addEventListener('pointermove', (e) => {
      if (last) stroke(e);
    });
    const stop = () => {
      if (last) this.changed();
      last = null;
    };
    this.canvas.addEventListener('pointerup', stop);
    this.canvas.addEventListener('pointercancel', stop);
    this.canvas.addEventListener('contextmenu', (e) => e.preventDefault());
  }

  bindKeys() {
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    this.canvas.addEventListener('keydown', (e) => {
      if (!this.mask) return;
      if (moves[e.key]) {
        const [dx, dy] = moves[e.key];
        this.cursor.x = Math.min(this.w - 1, Math.max(0, this.cursor.x + dx));
        this.cursor.y = Math.min(this.h - 1, Math.max(0, this.cursor.y + dy));
        this.draw();
      } else if (e.key === ' ' || e.key === 'Enter') {
        const erase = e.shiftKey || this.eraseMode.checked;
        this.dab(this.cursor.x + 0.5, this.cursor.y + 0.5, erase ? 0 : 1);
        this.changed();
      } else {
        return;
      }
      e.preventDefault();
    });
    this.canvas.addEventListener('blur', () => this.draw());
    this.canvas.addEventListener('focus', () => this.draw());
  }

  draw() {
    const ctx = this.canvas.getContext('2d');
    const z = this.zoom;
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.picture.toCanvas(), 0, 0, this.w * z, this.h * z);
    ctx.fillStyle = 'rgba(230, 40, 90, 0.55)';
    for (let y = 0; y < this.h; y++) {
      for (let x = 0; x < this.w; x++) if (this.mask[y * this.w + x]) ctx.fillRect(x * z, y * z, z, z);
    }
    if (document.activeElement === this.canvas && this.cursor) {
      const r = (Number(this.brush.value) / 2) * z;
      ctx.strokeStyle = '#0a7';
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc((this.cursor.x + 0.5) * z, (this.cursor.y + 0.5) * z, Math.max(r, z / 2), 0, 2 * Math.PI);
      ctx.stroke();
    }
  }

  changed() {
    const painted = this.mask.reduce((a, b) => a + b, 0);
    const pct = Math.round((100 * painted) / this.mask.length);
    this.coverage.textContent = `${painted} of ${this.mask.length} pixels to regenerate (${pct}%)`;
    this.root.dataset.painted = painted;
    this.onChange?.();
  }

  /** The number of pixels to regenerate. */
  painted() {
    return this.mask ? this.mask.reduce((a, b) => a + b, 0) : 0;
  }

  /** The mask as the API reads it: a gray Picture, 255 = keep, 0 = generate. */
  maskPicture() {
    const px = new Uint8Array(this.mask.length);
    for (let i = 0; i < px.length; i++) px[i] = this.mask[i] ? 0 : 255;
    return new Picture(px, this.w, this.h, 1);
  }
}
