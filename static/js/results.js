// Result images of /samples, /inpaint and /colorize (JSON answers: images[i] = {index, seed,
// png_base64}): a grid of figures, each with its seed and a download link.

import { el } from './dom.js';
import { pixelImage, pngDataUrl } from './images.js';

/** A labelled figure of one image (a PNG URL or base64). */
export function figure(src, caption, width, { alt, target } = {}) {
  return el('figure', { class: 'shot' },
    pixelImage(src, alt || caption, width, target),
    el('figcaption', {}, caption));
}

/**
 * images: the response's `images`; name: the download file name's stem (model and task).
 */
export function imageGrid(images, { name, width, label = 'sample' }) {
  const list = el('ul', { class: 'grid results', 'aria-label': `${images.length} ${label}s` });
  const target = images.length > 9 ? 84 : 112;
  for (const im of images) {
    const file = `${name}-seed${im.seed}-${im.index}.png`;
    list.append(el('li', { class: 'result' },
      el('figure', { class: 'shot' },
        pixelImage(im.png_base64, `${label} ${im.index}, seed ${im.seed}`, width, target),
        el('figcaption', {},
          `seed ${im.seed} #${im.index}`, el('br'),
          el('a', { href: pngDataUrl(im.png_base64), download: file, class: 'download' },
            'download', el('span', { class: 'sr-only' }, ` ${label} ${im.index}`))))));
  }
  return list;
}
