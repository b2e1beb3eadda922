// The prompt form: what to build, in which language, with which model, judged by which
// test cases, within which limits. It sends only what the user changed from the
// defaults, so a server that does not know a field yet is not asked about it.

import {generateFields, get, optional} from './api.js';
import {$, fill, h} from './dom.js';

const LIMITS = ['timeout_s', 'memory_mb', 'cpus', 'pids'];
const EXPORTS = ['zip', 'tar', 'git'];

export class JobForm {
  constructor(root, {onSubmit}) {
    this.root = root;
    this.onSubmit = onSubmit;
    this.form = $('#job-form', root);
    this.error = $('#form-error', root);
    this.loaded = null;
    this.fields = null; // what POST /api/generate takes (null: unknown, offer everything)
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    $('#prompt', root).addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        this.submit();
      }
    });
    $('#add-test', root).addEventListener('click', () => this.addCase({}, true));
    $('#provider', root).addEventListener('change', () => this.modelHint());
  }

  // Languages, providers and the fields the server takes; once, when first shown.
  load() {
    if (!this.loaded) {
      this.loaded = this.fetchChoices().catch((err) => {
        this.loaded = null;
        this.showError(err.message);
      });
    }
    return this.loaded;
  }

  async fetchChoices() {
    const [status, languages, fields] = await Promise.all([get('/api/status'), optional('/api/languages'), generateFields()]);
    this.status = status;
    this.fields = fields;
    const select = $('#language', this.root);
    const chosen = select.value || 'python';
    let options;
    if (languages && Array.isArray(languages.languages)) {
      options = languages.languages.map((l) => h('option', {
        value: l.name, disabled: l.available === false,
      }, [l.name, l.version ? ` ${l.version}` : '', l.available === false ? ' (image not built)' : ''].join('')));
    } else {
      options = (status.languages || ['python']).map((name) => h('option', {value: name}, name));
    }
    fill(select, options);
    if ([...select.options].some((o) => o.value === chosen && !o.disabled)) select.value = chosen;
    const providers = ((status.agent && status.agent.providers) || []).filter((p) => p.configured !== false);
    this.providers = providers;
    const provider = $('#provider', this.root);
    const current = provider.value;
    fill(provider, h('option', {value: ''}, 'server default'),
      providers.map((p) => h('option', {value: p.name}, p.name)));
    provider.value = providers.some((p) => p.name === current) ? current : '';
    this.modelHint();
    this.offer('tests', $('#tests-set', this.root), 'This server does not take test cases yet.');
    this.offer('samples', $('#samples-field', this.root), 'This server generates one sample per job.');
    this.showError('');
  }

  // Disable a part of the form the server's schema does not have.
  offer(field, element, note) {
    const missing = this.fields !== null && !this.fields.has(field);
    element.classList.toggle('unsupported', missing);
    for (const input of element.querySelectorAll('input, textarea, button, select')) input.disabled = missing;
    const hint = element.querySelector('.unsupported-note');
    if (hint) hint.textContent = missing ? note : '';
  }

  modelHint() {
    const name = $('#provider', this.root).value;
    const p = (this.providers || []).find((x) => x.name === name);
    $('#model', this.root).placeholder = p && p.model ? p.model : 'the provider’s default';
  }

  addCase(values = {}, focus = false) {
    const body = $('#tests-body', this.root);
    const n = body.children.length + 1;
    const stdin = h('textarea', {rows: '2', class: 'test-stdin', 'aria-label': `Input of test case ${n}`, spellcheck: 'false'});
    const expected = h('textarea', {rows: '2', class: 'test-expected', 'aria-label': `Expected output of test case ${n}`, spellcheck: 'false'});
    stdin.value = values.stdin || '';
    expected.value = values.expected_stdout || '';
    const row = h('tr', {},
      h('th', {scope: 'row', class: 'case-n'}, String(n)),
      h('td', {}, stdin),
      h('td', {}, expected),
      h('td', {}, h('button', {
        type: 'button', class: 'icon', 'aria-label': `Remove test case ${n}`,
        onclick: () => {
          row.remove();
          this.renumber();
        },
      }, '×')));
    body.append(row);
    if (focus) stdin.focus();
  }

  renumber() {
    [...$('#tests-body', this.root).children].forEach((row, i) => {
      const n = i + 1;
      row.querySelector('.case-n').textContent = String(n);
      row.querySelector('.test-stdin').setAttribute('aria-label', `Input of test case ${n}`);
      row.querySelector('.test-expected').setAttribute('aria-label', `Expected output of test case ${n}`);
      row.querySelector('button').setAttribute('aria-label', `Remove test case ${n}`);
    });
  }

  // The generate body, or throws with a message for the user.
  body() {
    const r = this.root;
    const prompt = $('#prompt', r).value;
    if (!prompt.trim()) throw new Error('Write a prompt first: what should the program do?');
    const body = {prompt, language: $('#language', r).value || 'python'};
    const priority = $('#priority', r).value;
    if (priority !== 'normal') body.priority = priority;
    const provider = $('#provider', r).value;
    if (provider) body.provider = provider;
    const model = $('#model', r).value.trim();
    if (model) body.model = model;
    const samples = Number($('#samples', r).value || 1);
    if (!Number.isInteger(samples) || samples < 1 || samples > 8) throw new Error('Samples: a whole number from 1 to 8.');
    if (samples > 1) body.samples = samples;
    const tests = [];
    for (const row of $('#tests-body', r).children) {
      const stdin = row.querySelector('.test-stdin').value;
      const expected = row.querySelector('.test-expected').value;
      if (!stdin && !expected) continue;
      const test = {};
      if (stdin) test.stdin = stdin;
      if (expected) test.expected_stdout = expected;
      tests.push(test);
    }
    if (tests.length && !$('#tests-set', r).classList.contains('unsupported')) body.tests = tests;
    const limits = {};
    for (const name of LIMITS) {
      const raw = $(`#limit-${name}`, r).value.trim();
      if (!raw) continue;
      const value = Number(raw);
      if (!(value > 0)) throw new Error(`Limits: ${name} must be a number above 0.`);
      limits[name] = value;
    }
    if (Object.keys(limits).length) body.limits = limits;
    if (!$('#execute', r).checked) body.execute = false;
    const formats = EXPORTS.filter((f) => $(`#export-${f}`, r).checked);
    if (!formats.length) throw new Error('Choose at least one download format.');
    if (formats.join() !== 'zip') body.export = formats;
    return body;
  }

  async submit() {
    this.showError('');
    let body;
    try {
      body = this.body();
    } catch (err) {
      this.showError(err.message);
      return;
    }
    const button = $('#submit', this.root);
    button.disabled = true;
    try {
      await this.onSubmit(body);
    } catch (err) {
      this.showError(err.code ? `${err.message} (${err.code})` : err.message);
    } finally {
      button.disabled = false;
    }
  }

  showError(message) {
    this.error.textContent = message;
    this.error.hidden = !message;
  }

  // Put a job's request back into the form ("edit and run again").
  fill(req) {
    const r = this.root;
    $('#prompt', r).value = req.prompt || '';
    const language = $('#language', r);
    if ([...language.options].some((o) => o.value === req.language)) language.value = req.language;
    $('#priority', r).value = req.priority || 'normal';
    const provider = $('#provider', r);
    provider.value = [...provider.options].some((o) => o.value === req.provider) ? req.provider : '';
    this.modelHint();
    $('#model', r).value = req.model || '';
    $('#samples', r).value = String(req.samples || 1);
    fill($('#tests-body', r));
    for (const t of req.tests || []) this.addCase(t);
    for (const name of LIMITS) $(`#limit-${name}`, r).value = req.limits && req.limits[name] ? String(req.limits[name]) : '';
    $('#execute', r).checked = req.execute !== false;
    const formats = req.export || ['zip'];
    for (const f of EXPORTS) $(`#export-${f}`, r).checked = formats.includes(f);
  }
}
