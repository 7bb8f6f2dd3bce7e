// fixture.js - a real `flowbus ui` for each test: the binary of the C build
// (FLOWBUS_BIN, default ../build/bin/flowbus), on a free loopback port (it
// picks one: --listen 127.0.0.1:0, and its ready line says which), serving
// the built editor (ui/dist), with a temporary workflows and plugins
// directory and its own private broker. The test gets the page opened on the
// editor (the token in the first URL, as a user opens it) and helpers to run
// the flowbus CLI on the files it wrote. The server is stopped with SIGTERM
// by its PID and awaited; its stderr is attached to a failing test.
import { test as base, expect } from '@playwright/test';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const uiRoot = path.resolve(here, '../..');
export const repoRoot = path.resolve(uiRoot, '..');
export const flowbusBin = path.resolve(uiRoot, process.env.FLOWBUS_BIN || path.join(repoRoot, 'build/bin/flowbus'));
export const fixtures = path.join(here, 'workflows');

/* Starts `flowbus ui`; resolves with {url, token, proc, dir, log} once it printed its ready line. */
export async function startServer({ workflows = [], extraArgs = [], env = {} } = {}) {
  if (!fs.existsSync(flowbusBin)) throw new Error(`no flowbus binary at ${flowbusBin} (build the C tree, or set FLOWBUS_BIN)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flowbus-ui-e2e-'));
  const wf = path.join(dir, 'workflows');
  const plugins = path.join(dir, 'plugins');
  fs.mkdirSync(wf);
  fs.mkdirSync(plugins);
  // A bare name is a fixture of tests/e2e/workflows; a path is relative to the repository.
  for (const f of workflows) fs.copyFileSync(f.includes('/') ? path.join(repoRoot, f) : path.join(fixtures, f), path.join(wf, path.basename(f)));
  const token = 'e2e-token-' + Math.random().toString(16).slice(2).padEnd(16, '0');
  const proc = spawn(
    flowbusBin,
    ['ui', '--listen', '127.0.0.1:0', '--workflows', wf, '--plugins', plugins, '--static', path.join(uiRoot, 'dist'), ...extraArgs],
    { cwd: dir, env: { ...process.env, FLOWBUS_UI_TOKEN: token, FLOWBUS_BROKER: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`flowbus ui printed no ready line in 20 s:\n${log}`)), 20_000);
    const onData = (b) => {
      log += b.toString();
      const m = /flowbus ui: (http:\/\/[^\s?]+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(m[1].replace(/\/$/, ''));
      }
    };
    proc.stderr.on('data', onData);
    proc.stdout.on('data', (b) => (log += b.toString()));
    proc.on('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`flowbus ui exited (${code ?? sig}) before it was ready:\n${log}`));
    });
  });
  proc.stderr.on('data', (b) => (log += b.toString()));
  return {
    url,
    token,
    proc,
    dir,
    workflowsDir: wf,
    pluginsDir: plugins,
    log: () => log,
    /* Stops it with SIGTERM; resolves with its exit code (null: a signal). */
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      await gone;
      clearTimeout(t);
      return proc.exitCode;
    },
  };
}

/*
 * The server's private broker as the CLI reaches it: the variables of the
 * broker.env file whose path the server printed (FLOWBUS_BROKER,
 * FLOWBUS_USERNAME, FLOWBUS_PASSWORD).
 */
export function brokerEnv(server) {
  const m = /\. (\S+broker\.env)/.exec(server.log());
  if (!m) throw new Error(`flowbus ui printed no broker.env path:\n${server.log()}`);
  const env = {};
  for (const line of fs.readFileSync(m[1], 'utf8').split('\n')) {
    const v = /^(?:export )?(FLOWBUS_\w+)=(['"]?)(.*)\2$/.exec(line.trim());
    if (v) env[v[1]] = v[3];
  }
  return env;
}

/* Runs the flowbus CLI (validate, run ...) in the test's directory: {code, out}. */
export function flowbus(server, args, opts = {}) {
  const r = spawnSync(flowbusBin, args, {
    cwd: server.dir,
    env: { ...process.env, FLOWBUS_BROKER: '', FLOWBUS_PLUGIN_PATH: server.pluginsDir, ...(opts.env || {}) },
    encoding: 'utf8',
    timeout: opts.timeout || 60_000,
  });
  return { code: r.status, out: `${r.stdout || ''}${r.stderr || ''}` };
}

export const test = base.extend({
  // Options: test.use({ workflows: ['a.yaml'], serverEnv: {VAR: 'value'} }).
  workflows: [[], { option: true }],
  serverEnv: [{}, { option: true }],
  server: async ({ workflows, serverEnv }, use, testInfo) => {
    const s = await startServer({ workflows, env: serverEnv });
    let code = null;
    try {
      await use(s);
    } finally {
      code = await s.stop();
      if (testInfo.status !== testInfo.expectedStatus || code !== 0) await testInfo.attach('flowbus-ui.log', { body: s.log(), contentType: 'text/plain' });
      fs.rmSync(s.dir, { recursive: true, force: true });
    }
    // The server must shut down cleanly, and (in a sanitized build) report nothing.
    expect(s.log(), 'flowbus ui reported a sanitizer error').not.toMatch(/Sanitizer|runtime error:/);
    expect(code, `flowbus ui exited ${code} on SIGTERM`).toBe(0);
  },
  editor: async ({ page, server }, use) => {
    await page.goto(`${server.url}/?token=${server.token}`);
    await expect(page.getByTestId('palette')).toBeVisible();
    await expect(page.getByTestId('plugin-cmd')).toBeVisible();
    await use(page);
  },
});

export { expect };

/* Opens a workflow from the list and waits until every task is on the canvas. */
export async function openWorkflow(page, file, tasks) {
  await page.getByTestId('wf-select').selectOption(file);
  for (const t of tasks) await expect(page.getByTestId(`node-${t}`)).toBeVisible();
}

/* Drags a plugin from the palette onto the canvas at (x, y) in the canvas box. */
export async function dropPlugin(page, plugin, x, y) {
  const canvas = page.locator('.react-flow__pane');
  await page.getByTestId(`plugin-${plugin}`).dragTo(canvas, { targetPosition: { x, y } });
}

/* Draws a wire between two ports (test ids out-TASK-VAR / in-TASK-VAR, `+` for a new one). */
export async function wire(page, from, to) {
  const a = page.getByTestId(from);
  const b = page.getByTestId(to);
  await a.hover();
  await page.mouse.down();
  const box = await b.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2, { steps: 8 });
  await page.mouse.up();
}
