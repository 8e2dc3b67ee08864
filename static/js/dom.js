// Small DOM helpers shared by the tabs: element creation, labelled form fields, and the
// error and status lines.

let uid = 0;
export const nextId = (prefix) => `${prefix}-${++uid}`;

/** el('div', {class: 'x', onclick: f}, child, 'text', ...) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key in node && typeof value !== 'string') node[key] = value;
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A labelled control: <div class="field"><label>text</label>control<small>help</small></div>. */
export function field(text, control, help) {
  if (!control.id) control.id = nextId('f');
  const box = el('div', { class: 'field' }, el('label', { for: control.id }, text), control);
  if (help) {
    const id = nextId('help');
    control.setAttribute('aria-describedby', id);
    box.append(el('small', { id, class: 'help' }, help));
  }
  return box;
}

export function numberInput(name, value, { min, max, step = 'any', placeholder } = {}) {
  return el('input', { type: 'number', name, value: value ?? '', min, max, step, placeholder,
    inputmode: 'decimal' });
}

export function select(name, options, value) {
  const s = el('select', { name });
  for (const opt of options) {
    const [v, text] = Array.isArray(opt) ? opt : [opt, opt];
    s.append(el('option', { value: v }, text));
  }
  if (value !== undefined) s.value = value;
  return s;
}

/** An error line (role=alert) that shows an ApiError as "status code: message". */
export function errorBox() {
  const box = el('div', { class: 'error', role: 'alert', hidden: true });
  box.show = (err) => {
    box.textContent = err ? (err.describe ? err.describe() : String(err.message || err)) : '';
    box.hidden = !err;
  };
  box.clear = () => box.show(null);
  return box;
}

/** A message shown when the selected model cannot do what a tab does. */
export function notice(...children) {
  return el('p', { class: 'notice', role: 'note' }, ...children);
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

/** An integer from an input, or undefined when it is empty. */
export function intOf(input) {
  return input.value.trim() === '' ? undefined : Number.parseInt(input.value, 10);
}

export function numOf(input) {
  return input.value.trim() === '' ? undefined : Number(input.value);
}

export function fmt(x, digits = 3) {
  if (typeof x !== 'number' || !Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return x.toExponential(2);
  return Number(x.toPrecision(digits + 2)).toString();
}
