// The "as a request" panel: the curl command equivalent to a tab's current settings, with a
// copy button, and how the page ran it (asynchronously, following the job's events).

import { apiKey } from './api.js';
import { el } from './dom.js';

/** Quotes a word for a POSIX shell. */
export function shellQuote(s) {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * The curl command of a request.
 * req: {method, path, json?: object, parts?: [{name, file} | {name, json}], output?: file,
 *       accept?: string}
 */
export function curlCommand(req, origin = window.location.origin) {
  const lines = [`curl -s${req.method === 'GET' ? '' : ` -X ${req.method}`} ${shellQuote(origin + req.path)}`];
  if (apiKey()) lines.push(`-H "Authorization: Bearer $SCORED_API_KEY"`);
  if (req.json) {
    lines.push(`-H 'Content-Type: application/json'`);
    lines.push(`-d ${shellQuote(JSON.stringify(req.json))}`);
  }
  for (const part of req.parts || []) {
    if (part.file) lines.push(`-F ${shellQuote(`${part.name}=@${part.file}`)}`);
    else lines.push(`-F ${shellQuote(`${part.name}=${JSON.stringify(part.json)};type=application/json`)}`);
  }
  if (req.output) lines.push(`-o ${shellQuote(req.output)}`);
  return lines.join(' \\\n     ');
}

/**
 * A <details> panel that shows a request as curl, with a copy button.
 * panel.update(req, note) redraws it; panel.setJob(url) shows the last async job's commands.
 */
export function requestPanel(title = 'As a request') {
  const code = el('code');
  const pre = el('pre', { class: 'curl', tabindex: '0', 'aria-label': 'curl command' }, code);
  const status = el('span', { class: 'copy-status', role: 'status' });
  const copy = el('button', { type: 'button', class: 'small' }, 'Copy');
  const note = el('p', { class: 'muted small' });
  const jobCode = el('code');
  const jobPre = el('pre', { class: 'curl', hidden: true }, jobCode);
  const panel = el('details', { class: 'request', open: true },
    el('summary', {}, title),
    el('div', { class: 'request-head' }, copy, status),
    pre, note, jobPre);
  let current = null;

  copy.addEventListener('click', async () => {
    const text = code.textContent;
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const range = document.createRange();
      range.selectNodeContents(code);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      document.execCommand('copy');
    }
    status.textContent = 'copied';
    setTimeout(() => { status.textContent = ''; }, 2000);
  });

  panel.update = (req, text) => {
    current = req;
    code.textContent = curlCommand(req);
    note.textContent = text || '';
    note.hidden = !text;
  };

  panel.setJob = (url) => {
    if (!url || !current) {
      jobPre.hidden = true;
      return;
    }
    const origin = window.location.origin;
    const key = apiKey() ? ` -H "Authorization: Bearer $SCORED_API_KEY"` : '';
    jobCode.textContent = [
      '# This page sent it with -H \'Prefer: respond-async\' (answer: 202 {"id", "url"}), then:',
      `curl -sN${key} ${origin}${url}/events     # progress, previews, then done / failed / cancelled`,
      `curl -s${key} ${origin}${url}            # the job and, once done, its result`,
      `curl -s -X DELETE${key} ${origin}${url}  # cancel`,
    ].join('\n');
    jobPre.hidden = false;
  };

  return panel;
}
