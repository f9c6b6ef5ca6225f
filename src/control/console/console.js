// The web console: a thin client of the REST API (no build step, no framework). It keeps the
// API token in sessionStorage only, and refreshes the open view every second so runs and
// restores show their progress live.

const $ = (selector, root = document) => root.querySelector(selector);
const views = ['vms', 'runs', 'points', 'policies'];
let token = sessionStorage.getItem('goldsnap-token') ?? '';

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  const data = text ? JSON.parse(text) : undefined;
  if (res.status === 401) {
    showLogin(data?.error ?? 'sign in');
    throw new Error(data?.error ?? 'unauthorized');
  }
  if (!res.ok) throw new Error(data?.error ?? `HTTP ${res.status}`);
  return data;
}

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function button(label, onClick) {
  const td = document.createElement('td');
  const b = document.createElement('button');
  b.textContent = label;
  b.addEventListener('click', onClick);
  td.append(b);
  return td;
}

function fill(section, rows) {
  const body = $(`#${section} tbody`);
  body.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement('tr');
    tr.append(...cells);
    return tr;
  }));
}

function say(message, isError = false) {
  const status = $('#status');
  status.textContent = message;
  status.className = isError ? 'error' : '';
}

const render = {
  async vms() {
    const vms = await api('GET', '/api/vms');
    fill('vms', vms.map((vm) => [
      cell(vm.name), cell(vm.region), cell(vm.resourceGroup),
      cell(vm.disks.map((d) => `${d.name} (${d.role}, ${bytes(d.sizeBytes)})`).join(', ')),
      cell(`${vm.disks.filter((d) => d.golden).length}/${vm.disks.length}`),
      button('Back up now', async () => {
        try {
          const run = await api('POST', '/api/runs', { vmId: vm.id });
          say(`run ${run.id.slice(0, 8)} started for ${vm.name}`);
          location.hash = '#runs';
        } catch (err) { say(err.message, true); }
      }),
    ]));
  },
  async runs() {
    const runs = await api('GET', '/api/runs?limit=50');
    fill('runs', runs.map((run) => {
      const done = run.disks.reduce((n, d) => n + d.bytesDone, 0);
      const total = run.disks.reduce((n, d) => n + d.bytesTotal, 0) || 1;
      const progress = document.createElement('progress');
      progress.max = total;
      progress.value = run.step === 'succeeded' ? total : done;
      const td = document.createElement('td');
      td.append(progress, ` ${bytes(done)} / ${bytes(total)}`);
      const result = [run.error ?? (run.recoveryPointId ? `recovery point ${run.recoveryPointId.slice(0, 12)}${run.consistency ? ` (${run.consistency})` : ''}` : ''),
        ...(run.warnings ?? []).map((w) => `warning: ${w}`)].filter(Boolean).join(' — ');
      return [cell(run.id.slice(0, 8)), cell(run.vmName), cell(run.step, `step ${run.step}`), td, cell((run.startedAt ?? run.createdAt).replace('T', ' ').slice(0, 19)), cell(result)];
    }));
  },
  async points() {
    const points = await api('GET', '/api/recovery-points');
    fill('points', points.map((p) => [
      cell(p.id.slice(0, 12)), cell(p.time.replace('T', ' ').slice(0, 19)),
      cell(p.point.tags.find((t) => t.startsWith('vm:'))?.slice(3) ?? p.vmId),
      cell(p.point.consistency ?? 'per-disk', `consistency ${p.point.consistency ?? 'per-disk'}`),
      cell(p.point.disks.map((d) => `${d.name} ${bytes(d.sizeBytes)}`).join(', ')),
      button('Restore…', () => {
        const form = $('#restore');
        form.hidden = false;
        form.dataset.point = p.id;
        $('#restore-point').textContent = p.id.slice(0, 12);
        $('#restore-result').textContent = '';
      }),
    ]));
  },
  async policies() {
    const policies = await api('GET', '/api/policies');
    fill('policies', policies.map((p) => [
      cell(p.name), cell(`${p.cron} (${p.timeZone})${p.enabled ? '' : ', disabled'}`), cell(JSON.stringify(p.selection)), cell(JSON.stringify(p.retention)),
      cell(p.nextRuns[0]?.replace('T', ' ').slice(0, 19) ?? ''),
      button('Run now', async () => {
        try {
          const runs = await api('POST', `/api/policies/${encodeURIComponent(p.id)}/run`);
          say(`${runs.length} run(s) started`);
          location.hash = '#runs';
        } catch (err) { say(err.message, true); }
      }),
    ]));
  },
};

function current() {
  const view = location.hash.slice(1);
  return views.includes(view) ? view : 'vms';
}

async function refresh() {
  if (!token) return showLogin();
  const view = current();
  for (const v of views) $(`#${v}`).hidden = v !== view;
  for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.dataset.view === view);
  try {
    await render[view]();
    if ($('#status').className !== 'error') say(`updated ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    say(err.message, true);
  }
}

function showLogin(message) {
  $('#login').hidden = false;
  for (const v of views) $(`#${v}`).hidden = true;
  if (message) say(message, true);
}

$('#login').addEventListener('submit', (event) => {
  event.preventDefault();
  token = $('#token').value.trim();
  sessionStorage.setItem('goldsnap-token', token);
  $('#login').hidden = true;
  say('');
  void refresh();
});

$('#restore').addEventListener('submit', async (event) => {
  event.preventDefault();
  const form = event.target;
  const data = new FormData(form);
  const body = { recoveryPointId: form.dataset.point, name: data.get('name'), createVm: data.get('createVm') === 'on' };
  if (data.get('region')) body.region = data.get('region');
  if (data.get('nic')) body.networkInterfaceId = data.get('nic');
  const bar = $('#restore-progress');
  try {
    let job = await api('POST', '/api/restores', body);
    bar.hidden = false;
    while (job.state === 'queued' || job.state === 'running') {
      if (job.progress) { bar.max = job.progress.totalBytes || 1; bar.value = job.progress.doneBytes; }
      await new Promise((resolve) => setTimeout(resolve, 500));
      job = await api('GET', `/api/restores/${job.id}`);
    }
    bar.hidden = true;
    $('#restore-result').textContent = job.state === 'done'
      ? `Restored: ${job.result.disks.map((d) => `${d.name} (${d.region})`).join(', ')}${job.result.vm ? `; VM ${job.result.vm.name}` : ''}`
      : `Restore failed: ${job.error}`;
  } catch (err) {
    bar.hidden = true;
    $('#restore-result').textContent = `Restore failed: ${err.message}`;
  }
});

window.addEventListener('hashchange', () => void refresh());
setInterval(() => { if (token && !document.hidden) void refresh(); }, 1000);
void refresh();
