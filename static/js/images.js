// Pictures of a model's size: loading files and URLs, fitting them to [C, H, W], gray
// conversion, PNG bytes for upload, and <img>/<canvas> elements that show them enlarged.

import { encodePng } from './png.js';

/** A picture in the model's layout: pixels is H * W * channels bytes, interleaved. */
export class Picture {
  constructor(pixels, width, height, channels) {
    Object.assign(this, { pixels, width, height, channels });
  }

  /** The picture as RGBA for a canvas (gray replicated). */
  rgba() {
    const { pixels, width, height, channels } = this;
    const out = new Uint8ClampedArray(width * height * 4);
    for (let i = 0; i < width * height; i++) {
      const p = pixels.subarray(i * channels, (i + 1) * channels);
      out[4 * i] = p[0];
      out[4 * i + 1] = channels >= 3 ? p[1] : p[0];
      out[4 * i + 2] = channels >= 3 ? p[2] : p[0];
      out[4 * i + 3] = 255;
    }
    return out;
  }

  /** Gray by the channel mean (what the API does to a colour image for a 1-channel model). */
  gray() {
    if (this.channels === 1) return this;
    const n = this.width * this.height;
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const p = this.pixels.subarray(i * this.channels, i * this.channels + 3);
      out[i] = Math.round((p[0] + p[1] + p[2]) / 3);
    }
    return new Picture(out, this.width, this.height, 1);
  }

  toCanvas() {
    const canvas = document.createElement('canvas');
    canvas.width = this.width;
    canvas.height = this.height;
    canvas.getContext('2d').putImageData(new ImageData(this.rgba(), this.width, this.height), 0, 0);
    return canvas;
  }

  toPng() {
    return encodePng(this.pixels, this.width, this.height, this.channels);
  }
}

/** An ImageBitmap of a Blob, File or URL, with no colour management (exact pixel values). */
export async function loadBitmap(source) {
  const blob = typeof source === 'string' ? await (await fetch(source)).blob() : source;
  try {
    return await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch {
    throw new Error(`${source.name || 'the file'} is not an image this browser can read`);
  }
}

/**
 * The bitmap as a Picture of width x height x channels.  Another size is centre-cropped to the
 * aspect ratio and scaled (fitted = true); transparency is composited on white.
 */
export function pictureOf(bitmap, width, height, channels) {
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, width, height);
  const fitted = bitmap.width !== width || bitmap.height !== height;
  if (fitted) {
    const scale = Math.max(width / bitmap.width, height / bitmap.height);
    const sw = width / scale;
    const sh = height / scale;
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = 'high';
    ctx.drawImage(bitmap, (bitmap.width - sw) / 2, (bitmap.height - sh) / 2, sw, sh, 0, 0, width, height);
  } else {
    ctx.drawImage(bitmap, 0, 0);
  }
  const rgba = ctx.getImageData(0, 0, width, height).data;
  const pixels = new Uint8Array(width * height * channels);
  for (let i = 0; i < width * height; i++) {
    if (channels === 1) {
      pixels[i] = Math.round((rgba[4 * i] + rgba[4 * i + 1] + rgba[4 * i + 2]) / 3);
    } else {
      pixels.set(rgba.subarray(4 * i, 4 * i + 3), i * 3);
    }
  }
  const picture = new Picture(pixels, width, height, channels);
  picture.fitted = fitted;
  picture.original = [bitmap.width, bitmap.height];
  return picture;
}

/** A model's image size: {channels, height, width}, or null for vector models. */
export function imageShape(model) {
  if (!model.image) return null;
  const [channels, height, width] = model.shape;
  return { channels, height, width };
}

export const pngDataUrl = (b64) => `data:image/png;base64,${b64}`;

export function b64ToBlob(b64) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Blob([bytes], { type: 'image/png' });
}

/** How many CSS pixels per image pixel make a small image readable (at most `target` px). */
export function zoomFor(width, target = 168) {
  return Math.max(1, Math.floor(target / width));
}

/** An <img> of a PNG (URL or base64), enlarged with crisp pixels. */
export function pixelImage(src, alt, width, target) {
  const img = document.createElement('img');
  img.src = src.startsWith('data:') || src.startsWith('/') || src.startsWith('blob:') ? src : pngDataUrl(src);
  img.alt = alt;
  img.className = 'px';
  if (width) img.style.width = `${width * zoomFor(width, target)}px`;
  return img;
}
