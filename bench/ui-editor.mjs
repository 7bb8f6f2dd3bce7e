// ui-editor.mjs - figures of the browser editor (ui/, docs/ui.md), measured in
// Debian's headless chromium against a real `flowbus ui` and its private
// broker. Not a test: it prints figures and fails only when it cannot measure.
//
//   node bench/ui-editor.mjs [--smoke] [--json FILE]     (scripts/bench runs it)
//
// 1. render: open a workflow of N tasks (200; smoke 50) from the list and time
//    until every task node is on the page, measured by React Flow (visible),
//    in the page: from the <select> change to the frame that shows the last.
// 2. layout: elkjs's layered layout of 1,000 tasks (smoke 200), timed inside
//    the page around the elk.layout call (window.__flowbusLayoutMs), and the
//    time until those 1,000 nodes are on the page.
// 3. event -> DOM: a reactive run with a task that never fires (PROBE); its
//    state is published on the broker (mosquitto_pub -l, one long-lived
//    client, with the server's broker.env credentials) alternating running /
//    waiting, and a MutationObserver in the page stamps the moment the node's
//    data-state changes. Both clocks are this machine's wall clock
//    (Date.now() here, performance.timeOrigin + now() in the page). p50, p90.
// Needs ui/dist built and ui/node_modules (scripts/setup), FLOWBUS_BIN or
// build-release/bin/flowbus, or build/bin/flowbus.
import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const require = createRequire(path.join(root, 'ui', 'package.json'));
const { chromium } = require('@playwright/test');

const args = process.argv.slice(2);
const smoke = args.includes('--smoke');
const jsonOut = args.includes('--json') ? args[args.indexOf('--json') + 1] : null;
if (!process.env.FLOWBUS_BIN) {
  for (const b of ['build-release/bin/flowbus', 'build/bin/flowbus'])
    if (fs.existsSync(path.join(root, b))) {
      process.env.FLOWBUS_BIN = path.join(root, b);
      break;
    }
}
const { startServer } = await import(path.join(root, 'ui/tests/e2e/fixture.js'));

/* A workflow of n tasks: START, then branches of 4 chained cmd tasks, each fanning out of START and into END. */
function bigWorkflow(n, name) {
  const lines = ['workflow:', `  name: "${name}"`, '  tasks:', '    - name: "START"', '      plugin: "start"', '      outputs: ["TRUE"]'];
  const ends = [];
  let made = 1;
  for (let b = 0; made < n - 1; b++) {
    let input = 'TRUE';
    for (let k = 0; k < 4 && made < n - 1; k++, made++) {
      const t = `T${b}_${k}`;
      lines.push(`    - name: "${t}"`, '      plugin: "cmd"', `      inputs: ["${input}"]`, `      outputs: ["${t}_OUT"]`, `      params: {command: "echo ${t}_OUT=1"}`);
      input = `${t}_OUT`;
    }
    ends.push(input);
  }
  lines.push('    - name: "END"', '      plugin: "end"', `      inputs: [${ends.map((e) => `"${e}"`).join(', ')}]`);
  return lines.join('\n') + '\n';
}

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

const results = {};
const nRender = smoke ? 50 : 200;
const nLayout = smoke ? 200 : 1000;
const nEvents = smoke ? 10 : 60;

const server = await startServer();
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
let pub = null;
try {
  fs.writeFileSync(path.join(server.workflowsDir, 'render.yaml'), bigWorkflow(nRender, `Render ${nRender}`));
  fs.writeFileSync(path.join(server.workflowsDir, 'layout.yaml'), bigWorkflow(nLayout, `Layout ${nLayout}`));
  fs.writeFileSync(
    path.join(server.workflowsDir, 'probe.yaml'),
    'workflow:\n  name: "Probe"\n  mode: reactive\n  tasks:\n    - name: "PROBE"\n      plugin: "cmd"\n      inputs: ["NEVER_SET"]\n      outputs: ["X"]\n      params: {command: "echo X=1"}\n    - name: "SINK"\n      plugin: "end"\n      inputs: ["X"]\n',
  );
  const page = await browser.newPage({ viewport: { width: 1400, height: 860 } });
  await page.goto(`${server.url}/?token=${server.token}`);
  await page.getByTestId('plugin-cmd').waitFor();

  // 1 and 2: open, time until every node is measured and shown.
  const openTimed = async (file, n) => {
    await page.evaluate(() => {
      window.__t0 = undefined;
      document.querySelector('[data-testid="wf-select"]').addEventListener('change', () => (window.__t0 = performance.now()), { once: true });
    });
    await page.getByTestId('wf-select').selectOption(file);
    const ms = await page.waitForFunction(
      (want) => {
        const shown = document.querySelectorAll('.react-flow__node:not([style*="visibility: hidden"]) .task-node').length;
        return shown === want && window.__t0 !== undefined ? performance.now() - window.__t0 : false;
      },
      n,
      { timeout: 120_000, polling: 'raf' },
    );
    return { ms: await ms.jsonValue(), layout: await page.evaluate(() => window.__flowbusLayoutMs) };
  };
  const renders = [];
  for (let i = 0; i < (smoke ? 1 : 3); i++) {
    await page.getByTestId('wf-select').selectOption('probe.yaml');
    await page.getByTestId('node-PROBE').waitFor();
    renders.push(await openTimed('render.yaml', nRender));
  }
  results.render = { tasks: nRender, ms_median: quantile(renders.map((r) => r.ms), 0.5), ms_min: Math.min(...renders.map((r) => r.ms)), layout_ms: quantile(renders.map((r) => r.layout), 0.5) };
  const bigs = [];
  for (let i = 0; i < (smoke ? 1 : 3); i++) {
    await page.getByTestId('wf-select').selectOption('probe.yaml');
    await page.getByTestId('node-PROBE').waitFor();
    bigs.push(await openTimed('layout.yaml', nLayout));
  }
  results.layout = {
    tasks: nLayout,
    elk_ms_median: quantile(bigs.map((r) => r.layout), 0.5),
    elk_ms_min: Math.min(...bigs.map((r) => r.layout)),
    render_ms_median: quantile(bigs.map((r) => r.ms), 0.5),
  };

  // 3: bus event -> DOM.
  await page.getByTestId('wf-select').selectOption('probe.yaml');
  await page.getByTestId('node-PROBE').waitFor();
  await page.getByTestId('run-reactive').click();
  await page.waitForFunction(() => document.querySelector('[data-testid="node-PROBE"]').dataset.state === 'waiting', null, { timeout: 30_000 });
  const runId = (await page.getByTestId('run-state').textContent()).match(/run (\S+):/)[1];
  const envFile = /\. (\S+broker\.env)/.exec(server.log());
  if (!envFile) throw new Error(`flowbus ui printed no broker.env path:\n${server.log()}`);
  const benv = Object.fromEntries(
    fs.readFileSync(envFile[1], 'utf8').split('\n').map((l) => /^(?:export )?(\w+)=['"]?(.*?)['"]?$/.exec(l)).filter(Boolean).map((m) => [m[1], m[2]]),
  );
  const u = new URL(benv.FLOWBUS_BROKER.replace(/^tcp:/, 'http:'));
  await page.evaluate(() => {
    window.__changes = [];
    const el = document.querySelector('[data-testid="node-PROBE"]');
    new MutationObserver(() => window.__changes.push({ state: el.dataset.state, at: performance.timeOrigin + performance.now() })).observe(el, { attributes: true, attributeFilter: ['data-state'] });
  });
  // Credentials through an options file, never on the command line.
  // mosquitto_pub reads its options from $XDG_CONFIG_HOME/mosquitto_pub.
  const opts = path.join(server.dir, 'mosquitto_pub');
  fs.writeFileSync(opts, `-h ${u.hostname}\n-p ${u.port}\n-u ${benv.FLOWBUS_USERNAME}\n-P ${benv.FLOWBUS_PASSWORD}\n`, { mode: 0o600 });
  pub = spawn('mosquitto_pub', ['-l', '-q', '1', '-r', '-t', `flowbus/${runId}/tasks/PROBE/state`], {
    env: { ...process.env, XDG_CONFIG_HOME: server.dir },
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  const lat = [];
  let last = 'waiting';
  for (let i = 0; i < nEvents; i++) {
    const state = last === 'waiting' ? 'running' : 'waiting';
    const before = await page.evaluate(() => window.__changes.length);
    const t = Date.now();
    pub.stdin.write(JSON.stringify({ state, attempt: 1, pid: null, at: t / 1000 }) + '\n');
    const h = await page.waitForFunction((n) => window.__changes.length > n && window.__changes[window.__changes.length - 1], before, { timeout: 10_000, polling: 5 });
    const c = await h.jsonValue();
    if (c.state !== state) throw new Error(`PROBE showed ${c.state}, expected ${state}`);
    lat.push(c.at - t);
    last = state;
  }
  results.event_to_dom = { events: nEvents, p50_ms: quantile(lat, 0.5), p90_ms: quantile(lat, 0.9), max_ms: Math.max(...lat) };
  await page.getByTestId('stop').click();
} finally {
  if (pub) pub.kill('SIGTERM');
  await browser.close();
  await server.stop();
  fs.rmSync(server.dir, { recursive: true, force: true });
}

results.loadavg = os.loadavg();
const f = (x) => (x === undefined || x === null ? '-' : `${x.toFixed(1)} ms`);
const rows = [
  [`editor: open ${results.render.tasks} tasks, all nodes shown (median; min ${f(results.render.ms_min)})`, f(results.render.ms_median), '< 1000 ms', results.render.ms_median < 1000],
  [`editor: elkjs layout of ${results.layout.tasks} tasks, in its worker (median; min ${f(results.layout.elk_ms_min)})`, f(results.layout.elk_ms_median), '< 1000 ms', results.layout.elk_ms_median < 1000],
  [`editor: open ${results.layout.tasks} tasks, all nodes shown (median)`, f(results.layout.render_ms_median), '-', null],
  [`editor: bus event -> DOM p50 (${results.event_to_dom.events} events; p90 ${f(results.event_to_dom.p90_ms)})`, f(results.event_to_dom.p50_ms), '< 50 ms', results.event_to_dom.p50_ms < 50],
];
console.log(`\nui editor figures${smoke ? ' (smoke sizes)' : ''} (load average ${results.loadavg.map((x) => x.toFixed(1)).join(' ')} on ${os.cpus().length} cores):`);
for (const [what, v, target, met] of rows) console.log(`  ${what.padEnd(84)} ${v.padStart(10)}  target ${target.padEnd(10)} ${met === null ? '' : met ? 'met' : 'NOT met'}`);
if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify({ smoke, ...results }, null, 2));
