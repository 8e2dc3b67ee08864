// The frame every tab shares: an introduction, a form with its run button, the error line,
// the job view, the results and the "as a request" panel; and the notice shown in place of the
// form when the selected model cannot do the tab's task.

import { requestPanel } from './curl.js';
import { el, errorBox } from './dom.js';
import { JobView } from './jobview.js';

export class TabFrame {
  constructor(panel, { title, intro, runText }) {
    this.panel = panel;
    this.intro = el('p', { class: 'intro' }, ...[].concat(intro));
    this.notice = el('div', { class: 'notice-box', hidden: true });
    this.form = el('form', { class: 'controls', novalidate: true });
    this.runButton = el('button', { type: 'submit', class: 'primary' }, runText);
    this.formEnd = el('div', { class: 'form-end' }, this.runButton);
    this.error = errorBox();
    this.job = new JobView();
    this.results = el('div', { class: 'results-area', 'aria-live': 'polite' });
    this.request = requestPanel();
    this.left = el('div', { class: 'col' }, this.form, this.request);
    this.right = el('div', { class: 'col' }, this.error, this.job.root, this.results);
    this.body = el('div', { class: 'tab-body' }, this.left, this.right);
    panel.append(el('h2', { class: 'sr-only' }, title), this.intro, this.notice, this.body);
    this.job.onAccepted = (a) => this.request.setJob(a.url);
  }

  /** Adds the form's fields (before the run button). */
  addFields(...nodes) {
    this.form.append(...nodes, this.formEnd);
  }

  /** onRun(): the tab's action when the form is submitted; errors go to the error line. */
  onSubmit(onRun) {
    this.form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (this.busy) return;
      this.busy = true;
      this.runButton.disabled = true;
      this.error.clear();
      try {
        await onRun();
      } catch (err) {
        if (err.name !== 'AbortError') this.error.show(err);
      } finally {
        this.busy = false;
        this.runButton.disabled = false;
      }
    });
  }

  /** Shows a notice instead of the form (null: the form again). */
  unsupported(...children) {
    const off = children.length > 0;
    this.notice.replaceChildren(...children);
    this.notice.hidden = !off;
    this.body.hidden = off;
  }
}
