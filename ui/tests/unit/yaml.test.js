// Unit tests of the editor's own YAML writer (src/yamlout.js, used when the
// server has no canonical writer), the diagnostics mapping (src/diagmap.js)
// and the save dialog's line diff (src/diff.js).
import { describe, it, expect } from 'vitest';
import YAML from 'yaml';
import { modelToYaml, taskForYaml } from '../../src/yamlout.js';
import { mapDiagnostics } from '../../src/diagmap.js';
import { lineDiff, hunks } from '../../src/diff.js';

const original = `# a comment that must survive
workflow:
  name: "Edit me"
  env:
    TOKEN: "{{ENV:MY_TOKEN}}"
    PASS: {value: "hunter2", secret: true}
  tasks:
    - name: "START"
      plugin: "start"
      outputs: ["TRUE"]

    - name: "A"
      plugin: "cmd"   # keep me
      inputs: ["TRUE"]
      outputs: ["DONE"]
      params: {command: "echo DONE=1"}
`;
const exec = { timeout: 0, async: false, workers: 1, retries: 0, retry_delay: 1, retry_max_delay: 60, queue: 100, restart: 'on-failure', trigger: [] };
const loaded = {
  name: 'Edit me',
  mode: 'oneshot',
  env: { TOKEN: '{{ENV:MY_TOKEN}}', PASS: '<secret>' },
  tasks: [
    { name: 'START', plugin: 'start', inputs: [], outputs: ['TRUE'], depends_on: [], params: {}, execution: exec, permissions: [], requires_auth: false },
    { name: 'A', plugin: 'cmd', inputs: ['TRUE'], outputs: ['DONE'], depends_on: [], params: { command: 'echo DONE=1' }, execution: exec, permissions: [], requires_auth: false },
  ],
};

describe('modelToYaml', () => {
  it('writes an unchanged model back as the file was', () => {
    expect(modelToYaml(loaded, original, loaded, exec)).toBe(original);
  });
  it('keeps comments, secrets and {{ENV}} and writes a changed task without defaults', () => {
    const m = JSON.parse(JSON.stringify(loaded));
    m.tasks[1].params.command = 'echo DONE=2';
    m.tasks[1].execution = { ...exec, timeout: 5 };
    m.tasks.push({ name: 'END', plugin: 'end', inputs: ['DONE'] });
    const y = modelToYaml(m, original, loaded, exec);
    expect(y).toContain('# a comment that must survive');
    expect(y).toContain('{{ENV:MY_TOKEN}}');
    expect(y).toContain('hunter2');
    expect(y).not.toContain('<secret>');
    const back = YAML.parse(y).workflow;
    expect(back.tasks[1]).toEqual({ name: 'A', plugin: 'cmd', inputs: ['TRUE'], outputs: ['DONE'], params: { command: 'echo DONE=2' }, execution: { timeout: 5 } });
    expect(back.tasks[2]).toEqual({ name: 'END', plugin: 'end', inputs: ['DONE'] });
    expect(back.env.PASS).toEqual({ value: 'hunter2', secret: true });
  });
  it('writes permissions as permissions.required and a multi-line command as a block', () => {
    const t = taskForYaml({ name: 'X', plugin: 'cmd', permissions: ['p1'], requires_auth: true, params: { command: 'a\nb\n' } }, exec);
    expect(t.permissions).toEqual({ required: ['p1'] });
    const y = modelToYaml({ name: 'n', tasks: [{ name: 'X', plugin: 'cmd', params: { command: 'a\nb\n' } }] }, '', null, exec);
    expect(y).toContain('command: |');
  });
});

describe('mapDiagnostics', () => {
  it('finds the task and the field of a line:col', () => {
    const lines = original.split('\n');
    const line = lines.findIndex((l) => l.includes('inputs: ["TRUE"]') && lines.indexOf(l) > 10) + 1;
    const col = lines[line - 1].indexOf('"TRUE"') + 1;
    const [d] = mapDiagnostics(original, [{ line, col, severity: 'error', message: 'x' }]);
    expect(d).toMatchObject({ task: 'A', field: 'inputs' });
    const pline = lines.findIndex((l) => l.includes('params:')) + 1;
    const [p] = mapDiagnostics(original, [{ line: pline, col: lines[pline - 1].indexOf('echo') + 1, severity: 'error', message: 'y' }]);
    expect(p).toMatchObject({ task: 'A', field: 'params.command' });
  });
  it('falls back to the task a message names', () => {
    const [d] = mapDiagnostics('not: [yaml', [{ line: 1, col: 1, severity: 'error', message: "task 'Q' has no plugin" }]);
    expect(d.task).toBe('Q');
  });
});

describe('lineDiff', () => {
  it('shows a changed line as one removal and one addition, with context', () => {
    const d = hunks(lineDiff('a\nb\nc\nd\ne\nf\ng\nh\ni', 'a\nb\nc\nd\nE\nf\ng\nh\ni'), 1);
    expect(d.map((x) => x.op + x.text)).toEqual(['…', ' d', '-e', '+E', ' f', '…']);
  });
});

describe('mapPath', () => {
  it('names the task and the field of a model path', async () => {
    const { mapPath } = await import('../../src/diagmap.js');
    const m = { tasks: [{ name: 'S' }, { name: 'A' }] };
    expect(mapPath(m, 'tasks[1].execution.timeout')).toEqual({ task: 'A', field: 'execution.timeout' });
    expect(mapPath(m, 'tasks[1].inputs[0]')).toEqual({ task: 'A', field: 'inputs' });
    expect(mapPath(m, 'tasks[0].params.command')).toEqual({ task: 'S', field: 'params.command' });
    expect(mapPath(m, 'env.X')).toEqual({ task: null, field: 'env' });
  });
});

describe('applyEvent', () => {
  it('folds task, var, log and end events, and a snapshot replaces the state', async () => {
    const { applyEvent, emptyRunState } = await import('../../src/live.js');
    let st = emptyRunState('r');
    st = applyEvent(st, 'task', { task: 'A', state: 'running', attempt: 1 });
    st = applyEvent(st, 'task', { task: 'A', state: 'failed', error: 'exit 3' });
    st = applyEvent(st, 'var', { name: 'X', value: '1' });
    st = applyEvent(st, 'log', { task: 'A', line: 'hello' });
    expect(st.tasks.A).toMatchObject({ state: 'failed', attempt: 1, error: 'exit 3' });
    expect(st.vars.X).toBe('1');
    expect(st.logs.A).toEqual(['hello']);
    st = applyEvent(st, 'end', { state: 'failed', exit: 1 });
    expect(st.ended).toEqual({ state: 'failed', exit: 1 });
    const snap = applyEvent(st, 'snapshot', { state: 'done', tasks: [{ name: 'B', state: 'done' }], vars: [{ name: 'Y', value: null }, { name: 'Z', value: '2' }], workflow: { tasks: [] } });
    expect(Object.keys(snap.tasks)).toEqual(['B']);
    expect(snap.vars).toEqual({ Z: '2' });
    expect(snap.workflow).toEqual({ tasks: [] });
    expect(snap.logs.A).toEqual(['hello']); // log lines are not in a snapshot: kept
  });
});
