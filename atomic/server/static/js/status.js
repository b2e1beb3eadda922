// The status panel: the service's health (GET /api/status, /api/languages) and small live
// charts from GET /api/metrics, sampled every 2 s while the panel is shown.

import {get, optional} from './api.js';
import {bars, line} from './chart.js';
import {$, fill, h} from './dom.js';
import {duration} from './format.js';

const SAMPLE_MS = 2000;
const KEEP = 90; // samples: 3 minutes
const WINDOW = 5; // samples a rate is taken over: 10 s, so one job is not a spike
const STAGES = ['PARSING', 'GENERATING', 'PACKAGING', 'EXECUTING', 'EXPORTING'];

export class StatusPanel {
  constructor(root) {
    this.root = root;
    this.samples = []; // [{t, finished, tokens}]
    this.timer = null;
    this.ticks = 0;
  }

  show() {
    if (this.timer) return;
    this.tick();
    this.timer = setInterval(() => this.tick(), SAMPLE_MS);
  }

  hide() {
    clearInterval(this.timer);
    this.timer = null;
  }

  async tick() {
    const every = this.ticks++ % 3 === 0; // status and languages every 6 s, metrics every 2 s
    try {
      const [metrics, status, languages] = await Promise.all([
        get('/api/metrics'),
        every || !this.status ? get('/api/status') : this.status,
        every || this.languages === undefined ? optional('/api/languages') : this.languages,
      ]);
      this.status = status;
      this.languages = languages;
      this.sample(metrics);
      this.renderCards(status, languages, metrics);
      this.renderCharts(metrics);
      $('#status-error', this.root).textContent = '';
    } catch (err) {
      $('#status-error', this.root).textContent = `The status could not be read: ${err.message}`;
    }
  }

  sample(m) {
    const tokens = Object.values(m.tokens || {}).reduce((sum, t) => sum + (t.completion_tokens || 0), 0);
    this.samples.push({t: performance.now(), finished: (m.jobs && m.jobs.finished) || 0, tokens});
    if (this.samples.length > KEEP + 1) this.samples.shift();
  }

  // Rates over a sliding window: jobs finished per minute, completion tokens per second.
  rates() {
    const jobs = [];
    const tokens = [];
    for (let i = 1; i < this.samples.length; i++) {
      const a = this.samples[Math.max(0, i - WINDOW)];
      const b = this.samples[i];
      const dt = (b.t - a.t) / 1000;
      if (dt <= 0) continue;
      jobs.push(Math.max(0, ((b.finished - a.finished) / dt) * 60));
      tokens.push(Math.max(0, (b.tokens - a.tokens) / dt));
    }
    return {jobs, tokens};
  }

  renderCharts(m) {
    const {jobs, tokens} = this.rates();
    line($('#chart-jobs', this.root), jobs, {unit: '/min', digits: 1});
    line($('#chart-tokens', this.root), tokens, {unit: '/s', digits: 0});
    const stages = m.stages_ms || {};
    const rows = STAGES.filter((s) => stages[s] && stages[s].count)
      .map((s) => ({label: s, values: [stages[s].p50 || 0, stages[s].p90 || 0]}));
    bars($('#chart-stages', this.root), rows, {format: duration});
  }

  renderCards(s, languages, m) {
    const cards = [];
    const ok = s.status === 'ok';
    cards.push(card('Service', [
      ['Status', h('span', {class: ok ? 'badge ok' : 'badge bad', id: 'service-status'}, s.status)],
      ['Version', s.version],
      ['Up for', duration((s.uptime_s || 0) * 1000)],
      s.shutting_down ? ['Shutting down', 'yes'] : null,
    ], s.reasons && s.reasons.length ? h('ul', {class: 'reasons'}, s.reasons.map((r) => h('li', {}, r))) : null));
    const q = s.queue || {};
    const prio = q.by_priority || {};
    cards.push(card('Queue', [
      ['Depth', `${q.depth ?? 0} of ${q.capacity ?? '?'}`],
      ['By priority', Object.entries(prio).map(([k, v]) => `${k} ${v}`).join(' · ')],
      m.queue && m.queue.wait_ms && m.queue.wait_ms.count ? ['Wait p90', duration(m.queue.wait_ms.p90)] : null,
    ]));
    const w = s.workers || {};
    const jobs = m.jobs || {};
    cards.push(card('Workers and jobs', [
      ['Busy', `${w.busy ?? 0} of ${w.total ?? '?'}`],
      ['Accepted', String(jobs.accepted ?? 0)],
      ['Finished', String(jobs.finished ?? 0)],
      ['Success rate', jobs.success_rate === null || jobs.success_rate === undefined ? '–' : `${Math.round(jobs.success_rate * 100)} %`],
    ]));
    const a = s.agent || {};
    const providers = (a.providers || []).filter((p) => p.configured);
    cards.push(card('Agent', [
      ['Healthy', h('span', {class: a.healthy ? 'badge ok' : 'badge bad'}, a.healthy ? 'yes' : 'no')],
      ['Connections', `${a.connected ?? 0} of ${a.pool_size ?? '?'}`],
      ['Providers', providers.map((p) => p.name).join(', ') || 'none configured'],
    ]));
    const sb = s.sandbox || {};
    cards.push(card('Sandbox', [
      ['Available', h('span', {class: sb.available ? 'badge ok' : 'badge bad'}, sb.available ? 'yes' : 'no')],
      ['Image', sb.image || ''],
      ['Warm', String(sb.warm ?? 0)],
      sb.reason ? ['Reason', sb.reason] : null,
    ]));
    let langs;
    if (languages && Array.isArray(languages.languages)) {
      langs = h('ul', {class: 'langs'}, languages.languages.map((l) => h('li', {class: l.available === false ? 'off' : null},
        l.name, l.version ? ` ${l.version}` : '', l.available === false ? ' (image not built)' : '')));
    } else {
      langs = h('ul', {class: 'langs'}, (s.languages || []).map((l) => h('li', {}, l)));
    }
    cards.push(card('Languages', [], langs));
    if (Array.isArray(s.nodes) && s.nodes.length) {
      cards.push(card('Nodes', [], h('ul', {class: 'langs'}, s.nodes.map((n) =>
        h('li', {}, `${n.id} (${n.role}${n.busy ? `, ${n.busy} busy` : ''})`)))));
    }
    fill($('#status-cards', this.root), cards);
    const line1 = ok ? 'All good.' : `Degraded: ${(s.reasons || []).join('; ')}`;
    $('#status-line', this.root).textContent = line1;
  }
}

function card(title, rows, extra) {
  const facts = rows.filter(Boolean);
  return h('section', {class: 'card', 'aria-label': title},
    h('h2', {}, title),
    facts.length ? h('dl', {class: 'facts'}, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])) : null,
    extra || null);
}

// The header's small health mark: the status every 15 s, whatever view is shown.
export async function health(el) {
  try {
    const s = await get('/api/status');
    el.textContent = s.status === 'ok' ? '● ok' : '● degraded';
    el.className = s.status === 'ok' ? 'health ok' : 'health bad';
    el.title = s.reasons ? s.reasons.join('; ') : `Atomic ${s.version}`;
  } catch (err) {
    el.textContent = err.status === 401 ? '● key needed' : '● unreachable';
    el.className = 'health bad';
    el.title = err.message;
  }
}
