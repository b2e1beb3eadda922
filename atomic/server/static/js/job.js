// The job view: a job's stages, its program, its output and its result, live over the
// WebSocket while it runs, from its document once it has ended.

import {ApiError, download, request} from './api.js';
import {filesOf} from './archive.js';
import {$, fill, h} from './dom.js';
import {TERMINAL, between, duration, size, when} from './format.js';
import {highlight, highlightAnswer, languageOf} from './highlight.js';
import {JobStream} from './stream.js';

const ORDER = ['QUEUED', 'PARSING', 'GENERATING', 'PACKAGING', 'EXECUTING', 'EXPORTING'];
const GOOD = new Set(['accepted', 'COMPLETE', 'exited']);
const NEUTRAL = new Set(['cancelled', 'CANCELLED', 'QUEUED']);

export function badgeClass(value) {
  if (GOOD.has(value)) return 'badge ok';
  if (NEUTRAL.has(value)) return 'badge muted';
  if (ORDER.includes(value)) return 'badge running';
  return 'badge bad';
}

export class JobView {
  constructor(root, {onRerun, onChange} = {}) {
    this.root = root;
    this.onRerun = onRerun || (() => {});
    this.onChange = onChange || (() => {});
    this.id = null;
    this.doc = null;
    this.state = null;
    this.progress = 0;
    this.timeline = []; // [{name, start, end, ms}]: start/end in ms since the epoch
    this.answer = '';
    this.files = new Map(); // path -> {size, text}
    this.filesNote = '';
    this.outputs = new Map(); // 'Candidate 1, case abc' (or '') -> {stdout, stderr}
    this.tab = 'answer';
    this.tabPicked = false;
    this.errorNote = null;
    this.cancelling = false;
    this.filesFrom = null; // the artifact URL the files were read from
    this.connection = '';
    this.stream = null;
    this.frame = 0;
    this.ticker = setInterval(() => this.tick(), 250);
    this.bind();
    this.render();
  }

  bind() {
    const r = this.root;
    this.el = {
      title: $('#job-id', r), state: $('#job-state', r), progress: $('#job-progress', r),
      prompt: $('#job-prompt', r), meta: $('#job-meta', r), conn: $('#job-conn', r),
      timeline: $('#timeline', r), tabs: $('#tabs', r), code: $('#code', r), panel: $('#tabpanel', r),
      output: $('#output', r), result: $('#result', r), downloads: $('#downloads', r),
      cancel: $('#cancel', r), rerun: $('#rerun', r),
    };
    this.onCancel = () => this.cancel();
    this.onRerunClick = () => this.doc && this.onRerun(this.doc.request || {});
    this.el.cancel.addEventListener('click', this.onCancel);
    this.el.rerun.addEventListener('click', this.onRerunClick);
  }

  destroy() {
    clearInterval(this.ticker);
    cancelAnimationFrame(this.frame);
    if (this.stream) this.stream.close();
    this.el.cancel.removeEventListener('click', this.onCancel);
    this.el.rerun.removeEventListener('click', this.onRerunClick);
  }

  get terminal() {
    return TERMINAL.has(this.state);
  }

  // --- starting and following ------------------------------------------------------------
  async start(body) {
    this.stream = this.newStream();
    this.id = await this.stream.start(body);
    return this.id;
  }

  async open(id) {
    this.id = id;
    this.render();
    let doc;
    try {
      doc = await request(`/api/jobs/${encodeURIComponent(id)}`);
    } catch (err) {
      this.errorNote = err.status === 404 ? `No job has the id ${id}.` : err.message;
      this.render();
      return;
    }
    this.setDocument(doc);
    if (!this.terminal) {
      this.stream = this.newStream();
      this.stream.follow(id);
    }
  }

  newStream() {
    return new JobStream({
      onEvent: (event) => this.handle(event),
      onConnection: (what, retries) => {
        this.connection = what === 'reconnecting' ? `Connection lost; reconnecting (attempt ${retries})…` : '';
        if (what === 'reconnecting') this.refresh();
        this.renderHead();
      },
    });
  }

  // While the socket is down, the document still comes over HTTP.
  async refresh() {
    if (!this.id || this.terminal) return;
    try {
      const doc = await request(`/api/jobs/${encodeURIComponent(this.id)}`);
      if (TERMINAL.has(doc.state)) {
        if (this.stream) this.stream.close();
        this.setDocument(doc);
      }
    } catch {
      // the reconnect loop keeps trying
    }
  }

  async cancel() {
    if (this.terminal || !this.id) return;
    this.cancelling = true;
    this.renderHead();
    if (this.stream && this.stream.cancel()) return; // the done event follows
    try {
      this.setDocument(await request(`/api/jobs/${encodeURIComponent(this.id)}`, {method: 'DELETE'}));
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 'job_finished')) this.errorNote = err.message;
      this.cancelling = false;
      this.renderHead();
      this.refresh();
    }
  }

  // --- events ------------------------------------------------------------------------------
  handle(event) {
    switch (event.type) {
      case 'accepted':
        this.setDocument(event.job);
        break;
      case 'state':
        // With several samples each candidate's own stage comes too (it names the
        // candidate); the job's state is the least advanced of them, sent on its own.
        if (event.candidate === undefined) this.enter(event.state, event.progress);
        break;
      case 'token':
        // Several samples: the live answer is the first candidate's (all are judged; the
        // result lists them and the files are the kept one's).
        if (event.candidate !== undefined && event.candidate !== 0) break;
        this.answer += event.text || '';
        this.scheduleCode();
        break;
      case 'file':
        if (!this.files.has(event.path)) this.files.set(event.path, {size: event.size, text: null});
        this.renderTabs();
        break;
      case 'output': {
        const parts = [];
        if (event.candidate !== undefined) parts.push(`Candidate ${event.candidate}`);
        if (event.case !== undefined && event.case !== null) parts.push(`${parts.length ? 'case' : 'Case'} ${event.case}`);
        const key = parts.join(', ');
        if (!this.outputs.has(key)) this.outputs.set(key, {stdout: '', stderr: ''});
        const out = this.outputs.get(key);
        out[event.stream === 'stderr' ? 'stderr' : 'stdout'] += event.data || '';
        this.renderOutput();
        break;
      }
      case 'done':
        this.setDocument(event.job);
        break;
      case 'error':
        this.errorNote = `${event.error?.code || 'error'}: ${event.error?.message || ''}`;
        this.renderResult();
        break;
      default:
        break; // an event this page does not know yet
    }
  }

  enter(state, progress) {
    const now = Date.now();
    if (typeof progress === 'number') this.progress = progress;
    if (state === this.state) return;
    const last = this.timeline[this.timeline.length - 1];
    if (last && last.end === null) last.end = now;
    if (!TERMINAL.has(state)) this.timeline.push({name: state, start: now, end: null, ms: null});
    this.state = state;
    if (state === 'GENERATING' && !this.tabPicked) this.tab = 'answer';
    this.render();
    this.onChange(this);
  }

  setDocument(doc) {
    this.doc = doc;
    this.id = doc.id;
    this.state = doc.state;
    this.progress = typeof doc.progress === 'number' ? doc.progress : this.progress;
    this.timeline = timelineOf(doc);
    for (const f of doc.files || []) {
      if (!this.files.has(f.path)) this.files.set(f.path, {size: f.size, text: null});
    }
    if (this.terminal) {
      if (this.stream) this.stream.close();
      this.loadFiles();
    }
    this.render();
    this.onChange(this);
  }

  // The files' text, from the job's own zip (or tar.gz).
  async loadFiles() {
    const arts = (this.doc && this.doc.artifacts) || [];
    const art = arts.find((a) => a.format === 'zip') || arts.find((a) => a.format === 'tar');
    if (!art) {
      this.filesNote = this.files.size ? 'This job has no zip or tar artifact to show the files from.' : '';
      this.renderCode();
      return;
    }
    if (this.filesFrom === art.url) return;
    this.filesFrom = art.url;
    this.filesNote = 'Loading the files…';
    this.renderCode();
    try {
      const resp = await request(art.url, {raw: true});
      const files = await filesOf(await resp.arrayBuffer(), art.format);
      const listed = new Set((this.doc.files || []).map((f) => f.path));
      for (const f of files) {
        // The program's files first (as the document lists them), then the rest (atomic.json...).
        if (listed.has(f.path) || !this.files.has(f.path)) this.files.set(f.path, {size: f.size, text: f.text});
      }
      this.filesNote = '';
      if (!this.tabPicked) {
        const paths = [...this.files.keys()];
        const entry = paths.find((p) => /^main\.[^/]+$/.test(p)) || paths[0];
        if (entry) this.tab = `file:${entry}`;
      }
    } catch (err) {
      this.filesNote = `The files could not be read from the ${art.format} artifact: ${err.message}`;
      this.filesFrom = null;
    }
    this.renderTabs();
    this.renderCode();
  }

  tick() {
    if (!this.terminal && this.timeline.length) this.renderTimeline();
  }

  // --- rendering -----------------------------------------------------------------------------
  render() {
    this.renderHead();
    this.renderTimeline();
    this.renderTabs();
    this.renderCode();
    this.renderOutput();
    this.renderResult();
  }

  renderHead() {
    const {el, doc} = this;
    el.title.textContent = this.id || '';
    el.state.textContent = this.state || '…';
    el.state.className = this.state ? badgeClass(this.state) : 'badge muted';
    el.progress.value = this.terminal ? 1 : this.progress;
    el.progress.hidden = this.terminal;
    const req = (doc && doc.request) || {};
    el.prompt.textContent = req.prompt || '';
    const meta = [];
    if (req.language) meta.push(req.language);
    const usage = doc && doc.usage;
    const model = [usage?.provider || req.provider, usage?.model || req.model].filter(Boolean).join(' / ');
    if (model) meta.push(model);
    if (req.samples > 1) meta.push(`${req.samples} samples`);
    if (req.priority && req.priority !== 'normal') meta.push(`${req.priority} priority`);
    if (doc && doc.created_at) meta.push(`created ${when(doc.created_at)}`);
    if (doc && doc.queue_position !== null && doc.queue_position !== undefined && this.state === 'QUEUED') {
      meta.push(`position ${doc.queue_position} in the queue`);
    }
    el.meta.textContent = meta.join(' · ');
    el.conn.textContent = this.connection;
    el.cancel.hidden = this.terminal || !this.id;
    el.cancel.disabled = this.cancelling;
    el.cancel.textContent = this.cancelling ? 'Cancelling…' : 'Cancel';
    el.rerun.hidden = !this.terminal;
  }

  renderTimeline() {
    const now = Date.now();
    const items = this.timeline.map((s, i) => {
      const active = s.end === null && !this.terminal;
      const ms = s.ms !== null ? s.ms : Math.max(0, (s.end || now) - s.start);
      const failed = this.state === 'FAILED' && i === this.timeline.length - 1;
      const cls = active ? 'stage active' : failed ? 'stage failed' : 'stage done';
      return h('li', {class: cls, 'aria-current': active ? 'step' : null},
        h('span', {class: 'stage-name'}, s.name),
        h('span', {class: 'stage-time'}, duration(ms)));
    });
    if (!this.terminal) {
      const seen = new Set(this.timeline.map((s) => s.name));
      const skipExec = this.doc && this.doc.request && this.doc.request.execute === false;
      for (const name of ORDER) {
        if (seen.has(name) || (skipExec && name === 'EXECUTING')) continue;
        if (ORDER.indexOf(name) < ORDER.indexOf(this.state)) continue;
        items.push(h('li', {class: 'stage pending'}, h('span', {class: 'stage-name'}, name),
          h('span', {class: 'stage-time'}, '')));
      }
    } else if (this.doc) {
      const total = between(this.doc.created_at, this.doc.finished_at);
      items.push(h('li', {class: `stage end ${badgeClass(this.state).split(' ')[1]}`},
        h('span', {class: 'stage-name'}, this.state),
        h('span', {class: 'stage-time'}, total === null ? '' : `${duration(total)} in all`)));
    }
    fill(this.el.timeline, items);
  }

  tabKeys() {
    const keys = [];
    if (this.answer) keys.push('answer');
    for (const path of this.files.keys()) keys.push(`file:${path}`);
    return keys;
  }

  renderTabs() {
    const keys = this.tabKeys();
    if (!keys.includes(this.tab) && keys.length) this.tab = keys[0];
    const buttons = keys.map((key) => {
      const selected = key === this.tab;
      const label = key === 'answer' ? 'Model answer' : key.slice(5);
      const file = key === 'answer' ? null : this.files.get(key.slice(5));
      return h('button', {
        type: 'button', role: 'tab', class: 'tab', id: `tab-${keys.indexOf(key)}`,
        'aria-selected': selected ? 'true' : 'false', 'aria-controls': 'tabpanel',
        tabindex: selected ? '0' : '-1', dataset: {key},
        title: file ? size(file.size) : null,
        onclick: () => this.pickTab(key),
        onkeydown: (e) => this.tabKey(e, keys),
      }, label);
    });
    fill(this.el.tabs, buttons);
    const current = buttons.find((b) => b.dataset.key === this.tab);
    if (current) this.el.panel.setAttribute('aria-labelledby', current.id);
    this.renderCode();
  }

  pickTab(key, focus = false) {
    this.tab = key;
    this.tabPicked = true;
    this.renderTabs();
    if (focus) {
      const button = [...this.el.tabs.children].find((b) => b.dataset.key === key);
      if (button) button.focus();
    }
  }

  tabKey(event, keys) {
    const i = keys.indexOf(this.tab);
    const moves = {ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: keys.length - 1};
    if (!(event.key in moves)) return;
    event.preventDefault();
    this.pickTab(keys[(moves[event.key] + keys.length) % keys.length], true);
  }

  scheduleCode() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      if (!this.el.tabs.children.length && this.answer) this.renderTabs();
      else if (this.tab === 'answer') this.renderCode();
    });
  }

  renderCode() {
    const code = this.el.code;
    const language = (this.doc && this.doc.request && this.doc.request.language) || 'python';
    let body;
    if (this.tab === 'answer') {
      body = highlightAnswer(this.answer, languageOf(language));
    } else if (this.tab.startsWith('file:')) {
      const path = this.tab.slice(5);
      const file = this.files.get(path);
      if (file && file.text !== null) body = highlight(file.text, languageOf(path));
      else body = h('span', {class: 'tok-prose'}, this.filesNote || `${path}: ${size(file && file.size)}`);
    } else {
      body = h('span', {class: 'tok-prose'}, this.emptyCodeNote());
    }
    fill(code, body);
    const stick = this.tab === 'answer' && !this.terminal;
    if (stick) this.el.panel.scrollTop = this.el.panel.scrollHeight;
  }

  emptyCodeNote() {
    if (this.filesNote) return this.filesNote;
    if (!this.id) return '';
    if (this.terminal) return 'This job produced no files.';
    return 'The program appears here as the model writes it.';
  }

  renderOutput() {
    const doc = this.doc;
    const out = this.el.output;
    if (doc && TERMINAL.has(doc.state) && Array.isArray(doc.tests) && doc.tests.length) {
      fill(out, casesView(doc));
      return;
    }
    if (doc && TERMINAL.has(doc.state) && doc.execution) {
      fill(out, executionView(doc.execution));
      return;
    }
    if (this.outputs.size) {
      const blocks = [];
      for (const [key, o] of this.outputs) {
        blocks.push(h('div', {class: 'case live'},
          key ? h('h3', {class: 'case-title'}, key) : null,
          streams(o.stdout, o.stderr)));
      }
      fill(out, blocks);
      return;
    }
    let note = 'The program’s output appears here when it runs.';
    if (doc && doc.request && doc.request.execute === false) note = 'Not run: this job asked for no execution.';
    else if (this.terminal) note = 'The program did not run.';
    fill(out, h('p', {class: 'note'}, note));
  }

  renderResult() {
    const doc = this.doc;
    const parts = [];
    if (this.errorNote) parts.push(h('p', {class: 'error', role: 'alert'}, this.errorNote));
    if (doc && this.terminal) {
      const verdict = doc.verdict || null;
      const line = [h('span', {class: badgeClass(doc.state), id: 'final-state'}, doc.state)];
      if (verdict) line.push(' ', h('span', {class: badgeClass(verdict), id: 'final-verdict'}, verdict));
      if (typeof doc.passed === 'number' && typeof doc.total === 'number') {
        line.push(' ', h('span', {class: 'passed'}, `${doc.passed}/${doc.total} tests passed`));
      } else if (doc.execution && !verdict) {
        const ex = doc.execution;
        line.push(' ', h('span', {class: 'passed'},
          ex.termination === 'exited' ? `exit code ${ex.exit_code}` : ex.termination));
      }
      parts.push(h('p', {class: 'verdict'}, line));
      if (doc.error) {
        parts.push(h('p', {class: 'error'}, h('strong', {}, doc.error.code || 'error'), ': ',
          doc.error.message || '', doc.error.stage ? ` (in ${doc.error.stage})` : ''));
      }
      const facts = [];
      const u = doc.usage || {};
      if (u.total_tokens) {
        facts.push(['Tokens', `${u.prompt_tokens} prompt + ${u.completion_tokens} completion${u.estimated ? ' (estimated)' : ''}`]);
      }
      if (u.provider) facts.push(['Model', [u.provider, u.model].filter(Boolean).join(' / ')]);
      const rounds = (doc.attempts || []).filter((a) => 'attempt' in a).length;
      const several = Array.isArray(doc.candidates) && doc.candidates.length > 1;
      if (rounds > 1 && !several) facts.push(['Attempts', `${rounds} (repairs included)`]);
      const total = between(doc.created_at, doc.finished_at);
      if (total !== null) facts.push(['Took', duration(total)]);
      if (facts.length) {
        parts.push(h('dl', {class: 'facts'}, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])));
      }
      if (Array.isArray(doc.candidates) && doc.candidates.length) parts.push(candidatesView(doc));
    }
    fill(this.el.result, parts);
    this.renderDownloads();
  }

  renderDownloads() {
    const arts = (this.doc && this.doc.artifacts) || [];
    const names = {zip: 'zip', tar: 'tar.gz', git: 'git repository (tar.gz)'};
    fill(this.el.downloads, arts.filter((a) => typeof a.url === 'string' && a.url.startsWith('/')).map((a) =>
      h('a', {
        class: 'button download', href: a.url, download: a.filename || '', dataset: {format: a.format},
        onclick: (e) => {
          e.preventDefault();
          download(a.url, a.filename || `atomic-${this.id}.${a.format}`).catch((err) => {
            this.errorNote = `The download failed: ${err.message}`;
            this.renderResult();
          });
        },
      }, `Download ${names[a.format] || a.format}`, h('span', {class: 'size'}, ` ${size(a.size)}`))));
  }
}

function timelineOf(doc) {
  const out = [];
  const queued = between(doc.created_at, doc.started_at);
  if (doc.created_at) {
    const start = Date.parse(doc.created_at);
    out.push({name: 'QUEUED', start, end: doc.started_at ? Date.parse(doc.started_at) : null, ms: queued});
  }
  for (const s of doc.stages || []) {
    const start = Date.parse(s.started_at);
    const end = s.finished_at ? Date.parse(s.finished_at) : null;
    out.push({name: s.name, start, end, ms: typeof s.duration_ms === 'number' ? s.duration_ms : null});
  }
  if (TERMINAL.has(doc.state)) {
    for (const s of out) if (s.end === null) s.end = Date.parse(doc.finished_at) || s.start;
  }
  return out;
}

function streams(stdout, stderr) {
  const out = [];
  if (stdout) out.push(h('pre', {class: 'stdout', 'aria-label': 'standard output'}, stdout));
  if (stderr) out.push(h('pre', {class: 'stderr', 'aria-label': 'standard error'}, stderr));
  if (!stdout && !stderr) out.push(h('p', {class: 'note'}, 'No output.'));
  return out;
}

function executionView(ex) {
  const facts = [ex.termination === 'exited' ? `exit code ${ex.exit_code}` : ex.termination];
  if (typeof ex.duration_ms === 'number') facts.push(duration(ex.duration_ms));
  if (ex.truncated) facts.push('output truncated');
  const parts = [];
  if (ex.compile) parts.push(compileView(ex.compile));
  parts.push(h('p', {class: 'run-facts'}, h('span', {class: badgeClass(ex.verdict || ex.termination)},
    ex.verdict || ex.termination), ' ', facts.join(' · ')));
  parts.push(streams(ex.stdout, ex.stderr));
  return parts;
}

function compileView(c) {
  const ok = c.exit_code === 0 && (c.termination || 'exited') === 'exited';
  return h('details', {class: 'compile', open: !ok},
    h('summary', {}, `Compile: ${ok ? 'ok' : c.termination === 'exited' ? `exit code ${c.exit_code}` : c.termination}`,
      typeof c.duration_ms === 'number' ? ` · ${duration(c.duration_ms)}` : ''),
    streams(c.stdout, c.stderr));
}

function casesView(doc) {
  const asked = (doc.request && doc.request.tests) || [];
  const parts = [];
  if (doc.execution && doc.execution.compile) parts.push(compileView(doc.execution.compile));
  doc.tests.forEach((t, i) => {
    const spec = asked[i] || {};
    const name = t.name || spec.name || `case ${i + 1}`;
    const good = t.verdict === 'accepted';
    const rows = [];
    if (spec.stdin) rows.push(h('div', {class: 'io'}, h('h4', {}, 'Input'), h('pre', {class: 'stdin'}, spec.stdin)));
    if (typeof spec.expected_stdout === 'string') {
      rows.push(h('div', {class: 'io'}, h('h4', {}, 'Expected'), h('pre', {class: 'expected'}, spec.expected_stdout)));
    }
    rows.push(h('div', {class: 'io'}, h('h4', {}, 'Output'), streams(t.stdout, t.stderr)));
    const facts = [t.termination === 'exited' || !t.termination ? `exit code ${t.exit_code}` : t.termination];
    if (typeof t.duration_ms === 'number') facts.push(duration(t.duration_ms));
    parts.push(h('details', {class: 'case', open: !good, dataset: {verdict: t.verdict || ''}},
      h('summary', {}, h('span', {class: badgeClass(t.verdict)}, t.verdict || '?'), ' ', name, ' · ', facts.join(' · ')),
      h('div', {class: 'io-grid'}, rows)));
  });
  return parts;
}

function candidatesView(doc) {
  const rows = doc.candidates.map((c) => h('tr', {class: c.index === doc.chosen ? 'chosen' : null},
    h('td', {}, String(c.index), c.index === doc.chosen ? ' (kept)' : ''),
    h('td', {}, h('span', {class: badgeClass(c.verdict)}, c.verdict || '?')),
    h('td', {}, typeof c.passed === 'number' ? `${c.passed}/${c.total}` : ''),
    h('td', {}, c.attempts === undefined ? '' : String(c.attempts))));
  return h('div', {class: 'table-wrap'}, h('table', {class: 'candidates'},
    h('caption', {}, 'Candidates'),
    h('thead', {}, h('tr', {}, ['Sample', 'Verdict', 'Passed', 'Attempts'].map((t) => h('th', {scope: 'col'}, t)))),
    h('tbody', {}, rows)));
}
