// The running job of a tab: a progress bar, the status line, the preview images streamed from
// /v1/jobs/{id}/events, a cancel button and the list of events received.

import { ApiError, cancelJob, runJob } from './api.js';
import { el, fmt } from './dom.js';
import { pixelImage } from './images.js';

const MAX_LOG = 40;

export class JobView {
  constructor() {
    this.bar = el('progress', { max: 1, value: 0, 'aria-label': 'job progress' });
    this.status = el('span', { class: 'job-status', role: 'status', 'aria-live': 'polite' }, 'idle');
    this.cancel = el('button', { type: 'button', class: 'secondary', disabled: true }, 'Cancel');
    this.preview = el('figure', { class: 'preview', hidden: true });
    this.log = el('ol', { class: 'event-log' });
    this.logSummary = el('summary', {}, 'Events');
    this.root = el('div', { class: 'job', hidden: true },
      el('div', { class: 'job-line' }, this.bar, this.cancel, this.status),
      this.preview,
      el('details', { class: 'events' }, this.logSummary, this.log));
    this.cancel.addEventListener('click', () => this.requestCancel());
    this.url = null;
  }

  setStatus(text) {
    this.status.textContent = text;
  }

  async requestCancel() {
    if (!this.url) return;
    this.cancel.disabled = true;
    this.setStatus('cancelling…');
    try {
      await cancelJob(this.url);
    } catch (e) {
      this.setStatus(`cancel failed: ${e.describe ? e.describe() : e.message}`);
    }
  }

  logEvent(name, data) {
    const shown = { ...data };
    if (shown.png_base64) shown.png_base64 = `${shown.png_base64.slice(0, 16)}…`;
    if (shown.result) shown.result = '{…}';
    this.log.append(el('li', {}, el('code', {}, `${name} ${JSON.stringify(shown)}`)));
    while (this.log.children.length > MAX_LOG) this.log.firstChild.remove();
    this.counts[name] = (this.counts[name] || 0) + 1;
    this.root.dataset.progressEvents = this.counts.progress || 0;
    this.root.dataset.previewEvents = this.counts.preview || 0;
    const parts = Object.entries(this.counts).map(([k, v]) => `${v} ${k}`);
    this.logSummary.textContent = `Events from ${this.url}/events: ${parts.join(', ')}`;
  }

  onProgress(p) {
    if (p.steps) {
      this.bar.max = p.steps;
      this.bar.value = p.step;
    } else {
      this.bar.removeAttribute('value'); // adaptive solver: steps unknown in advance
    }
    const steps = p.steps ? `step ${p.step} of ${p.steps}` : `step ${p.step} (adaptive)`;
    this.setStatus(`${p.status}: ${steps}, ${fmt(p.nfe)} score evaluations per sample`);
  }

  onPreview(p) {
    const img = pixelImage(p.png_base64, `preview at step ${p.step}`, null);
    img.addEventListener('load', () => {
      const w = img.naturalWidth;
      img.style.width = `${w * Math.max(1, Math.floor(240 / w))}px`;
    }, { once: true });
    this.preview.replaceChildren(img, el('figcaption', {}, `preview at step ${p.step}`));
    this.preview.hidden = false;
  }

  /**
   * Runs a job; resolves to its result (the body a synchronous call would give), or null when
   * it was cancelled.  Rejects with ApiError (the request's or the failed job's error).
   */
  async run(path, body) {
    this.root.hidden = false;
    this.preview.hidden = true;
    this.log.replaceChildren();
    this.counts = {};
    this.url = null;
    this.bar.max = 1;
    this.bar.value = 0;
    this.setStatus('submitting…');
    this.root.dataset.state = 'running';
    try {
      const job = await runJob(path, body, {
        accepted: (a) => {
          this.url = a.url;
          this.root.dataset.job = a.id;
          this.cancel.disabled = false;
          this.setStatus(`queued as job ${a.id}`);
          this.onAccepted?.(a);
        },
        event: (name, data) => this.logEvent(name, data),
        progress: (p) => this.onProgress(p),
        preview: (p) => this.onPreview(p),
      });
      this.root.dataset.state = job.status;
      if (job.status === 'done') {
        this.bar.max = 1;
        this.bar.value = 1;
        const r = job.result || {};
        const secs = typeof r.seconds === 'number' ? ` in ${fmt(r.seconds)} s` : '';
        const nfe = typeof r.nfe === 'number' ? `, ${fmt(r.nfe)} score evaluations per sample` : '';
        this.setStatus(`done${secs}${nfe}`);
        return job.result;
      }
      if (job.status === 'cancelled') {
        this.setStatus(`cancelled at step ${job.progress?.step ?? '?'}`);
        return null;
      }
      const err = job.error || { code: 'failed', message: 'the job failed' };
      throw new ApiError(0, err.code, `job failed: ${err.code}: ${err.message}`);
    } catch (e) {
      this.root.dataset.state = 'error';
      this.setStatus(e.name === 'ApiError' ? 'error (see above)' : `error: ${e.message}`);
      throw e;
    } finally {
      this.cancel.disabled = true;
    }
  }
}
