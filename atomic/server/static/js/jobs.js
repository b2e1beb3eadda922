// The job list: newest first, filtered by state, a page at a time (GET /api/jobs with
// state, limit and cursor). Each row opens the job's document.

import {request} from './api.js';
import {$, fill, h} from './dom.js';
import {between, duration, when} from './format.js';
import {badgeClass} from './job.js';

export class JobList {
  constructor(root) {
    this.root = root;
    this.cursors = [null]; // the cursor of each page seen; the last is the current page's
    this.next = null;
    this.loading = 0;
    $('#jobs-state', root).addEventListener('change', () => this.reset());
    $('#jobs-limit', root).addEventListener('change', () => this.reset());
    $('#jobs-refresh', root).addEventListener('click', () => this.load());
    $('#jobs-older', root).addEventListener('click', () => {
      if (!this.next) return;
      this.cursors.push(this.next);
      this.load();
    });
    $('#jobs-newer', root).addEventListener('click', () => {
      if (this.cursors.length < 2) return;
      this.cursors.pop();
      this.load();
    });
  }

  reset() {
    this.cursors = [null];
    this.load();
  }

  async load() {
    const r = this.root;
    const params = new URLSearchParams();
    const state = $('#jobs-state', r).value;
    if (state) params.set('state', state);
    params.set('limit', $('#jobs-limit', r).value);
    const cursor = this.cursors[this.cursors.length - 1];
    if (cursor) params.set('cursor', cursor);
    const ticket = ++this.loading;
    r.setAttribute('aria-busy', 'true');
    let page;
    try {
      page = await request(`/api/jobs?${params}`);
    } catch (err) {
      if (ticket === this.loading) {
        $('#jobs-error', r).textContent = err.message;
        r.removeAttribute('aria-busy');
      }
      return;
    }
    if (ticket !== this.loading) return; // a newer load is on its way
    r.removeAttribute('aria-busy');
    $('#jobs-error', r).textContent = '';
    this.next = page.next || null;
    fill($('#jobs-body', r), page.jobs.map(row));
    $('#jobs-empty', r).hidden = page.jobs.length > 0;
    $('#jobs-older', r).disabled = !this.next;
    $('#jobs-newer', r).disabled = this.cursors.length < 2;
    $('#jobs-page', r).textContent = `Page ${this.cursors.length}`;
  }
}

function row(job) {
  const req = job.request || {};
  const took = between(job.created_at, job.finished_at);
  const link = `#/job/${encodeURIComponent(job.id)}`;
  return h('tr', {dataset: {id: job.id, state: job.state}},
    h('td', {class: 'nowrap'}, h('time', {datetime: job.created_at || ''}, when(job.created_at))),
    h('td', {}, h('span', {class: badgeClass(job.state)}, job.state)),
    h('td', {}, req.language || ''),
    h('td', {class: 'prompt-cell'}, h('a', {href: link, class: 'job-link'}, req.prompt || job.id)),
    h('td', {class: 'nowrap num'}, took === null ? '' : duration(took)));
}
