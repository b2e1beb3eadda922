// The page: routes (#/ new job, #/job/ID, #/jobs, #/status), the API key prompt, the
// colour theme. Views are sections of index.html, filled by their modules.

import {key} from './api.js';
import {$, $$} from './dom.js';
import {JobForm} from './form.js';
import {JobView} from './job.js';
import {JobList} from './jobs.js';
import {StatusPanel, health} from './status.js';

const views = {
  new: $('#view-new'),
  job: $('#view-job'),
  jobs: $('#view-jobs'),
  status: $('#view-status'),
};

let jobView = null;
const form = new JobForm(views.new, {onSubmit: submit});
const list = new JobList(views.jobs);
const panel = new StatusPanel(views.status);

async function submit(body) {
  const view = newJobView();
  const id = await view.start(body); // a refused body throws here: the form shows why
  location.hash = `#/job/${encodeURIComponent(id)}`;
}

function newJobView() {
  if (jobView) jobView.destroy();
  jobView = new JobView(views.job, {
    onRerun: (req) => {
      form.fill(req);
      location.hash = '#/';
      $('#prompt').focus();
    },
    onChange: (v) => {
      if (!views.job.hidden) document.title = `${v.state || 'Job'} · Atomic`;
    },
  });
  return jobView;
}

function show(name) {
  for (const [n, el] of Object.entries(views)) el.hidden = n !== name;
  for (const a of $$('[data-nav]')) {
    if (a.dataset.nav === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (name === 'status') panel.show();
  else panel.hide();
}

function route() {
  const hash = location.hash || '#/';
  const job = /^#\/job\/([0-9A-Za-z_-]+)$/.exec(hash);
  if (job) {
    show('job');
    const id = decodeURIComponent(job[1]);
    if (!jobView || jobView.id !== id) newJobView().open(id);
    document.title = `${jobView.state || 'Job'} · Atomic`;
  } else if (hash === '#/jobs') {
    show('jobs');
    document.title = 'Jobs · Atomic';
    list.load();
  } else if (hash === '#/status') {
    show('status');
    document.title = 'Status · Atomic';
  } else {
    show('new');
    document.title = 'Atomic';
    form.load();
  }
}

// --- the API key ------------------------------------------------------------------------
const keyPanel = $('#key-panel');

function askForKey() {
  if (!keyPanel.hidden) return;
  const had = key.get();
  $('#key-error').textContent = had ? 'The server refused that key.' : '';
  if (had) key.clear();
  keyPanel.hidden = false;
  $('#key-input').focus();
  updateKeyButton();
}

$('#key-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const value = $('#key-input').value.trim();
  if (!value) {
    $('#key-error').textContent = 'Paste the key first.';
    return;
  }
  key.set(value);
  $('#key-input').value = '';
  keyPanel.hidden = true;
  updateKeyButton();
  form.loaded = null;
  if (jobView && !jobView.doc) {
    jobView.destroy(); // it could not load without the key: route() opens it again
    jobView = null;
  }
  health($('#health'));
  route();
});

$('#forget-key').addEventListener('click', () => {
  key.clear();
  updateKeyButton();
  location.reload();
});

function updateKeyButton() {
  $('#forget-key').hidden = !key.get();
}

window.addEventListener('atomic:unauthorized', askForKey);

// --- theme --------------------------------------------------------------------------------
const THEMES = ['auto', 'light', 'dark'];

function theme() {
  return document.documentElement.dataset.theme || 'auto';
}

function setTheme(name) {
  if (name === 'auto') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = name;
  try {
    if (name === 'auto') localStorage.removeItem('atomic.theme');
    else localStorage.setItem('atomic.theme', name);
  } catch {
    // storage refused: the choice lasts for this page only
  }
  $('#theme').textContent = `Theme: ${name}`;
}

$('#theme').addEventListener('click', () => setTheme(THEMES[(THEMES.indexOf(theme()) + 1) % THEMES.length]));
$('#theme').textContent = `Theme: ${theme()}`;

// --- start --------------------------------------------------------------------------------
updateKeyButton();
window.addEventListener('hashchange', route);
route();
health($('#health'));
setInterval(() => health($('#health')), 15_000);
