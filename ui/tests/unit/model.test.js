// Unit tests of the pure model edits (src/model.js) and the layout (src/layout.js).
import { describe, it, expect } from 'vitest';
import { toGraph, connect, renameInput, deleteTasks, renameTask, pasteTasks, uniqueTaskName, newTask } from '../../src/model.js';
import { layoutGraph } from '../../src/layout.js';

const pipeline = () => ({
  name: 'p',
  env: { LIMIT: '3' },
  tasks: [
    { name: 'START', plugin: 'start', inputs: [], outputs: ['TRUE'] },
    { name: 'A', plugin: 'cmd', inputs: ['TRUE'], outputs: ['X'], params: { command: 'echo X=1' } },
    { name: 'B', plugin: 'cmd', inputs: ['TRUE', 'LIMIT'], outputs: ['Y'] },
    { name: 'J', plugin: 'cmd', inputs: ['X', 'Y'], outputs: ['DONE'], depends_on: ['START'] },
    { name: 'END', plugin: 'end', inputs: ['DONE'] },
  ],
});

describe('toGraph', () => {
  it('draws one edge per producer, variable and consumer, and depends_on dashed', () => {
    const g = toGraph(pipeline());
    const ids = g.edges.map((e) => e.id).sort();
    expect(ids).toEqual(['d:START:J', 'v:A:X:J', 'v:B:Y:J', 'v:J:DONE:END', 'v:START:TRUE:A', 'v:START:TRUE:B'].sort());
    expect(g.edges.find((e) => e.id === 'd:START:J').data.kind).toBe('dep');
  });
  it('marks splits and joins', () => {
    const g = toGraph(pipeline());
    const by = Object.fromEntries(g.nodes.map((n) => [n.id, n.data]));
    expect(by.START.split).toBe(3); // A, B and J (depends_on)
    expect(by.J.join).toBe(3);
    expect(by.A.split).toBe(1);
    expect(by.END.join).toBe(1);
  });
  it('says where an input nobody produces comes from', () => {
    const g = toGraph(pipeline());
    expect(g.nodes.find((n) => n.id === 'B').data.external).toEqual([{ name: 'LIMIT', from: 'env' }]);
  });
});

describe('connect', () => {
  it('a wire onto a new input adds the variable', () => {
    let m = pipeline();
    m = connect(m, { source: 'A', sourceHandle: 'out:X', target: 'END', targetHandle: 'in:+' });
    expect(m.tasks.find((t) => t.name === 'END').inputs).toEqual(['DONE', 'X']);
  });
  it('a wire onto an existing input renames it, with the trigger and the command', () => {
    let m = pipeline();
    m.tasks[3].execution = { trigger: ['X'] };
    m.tasks[3].params = { command: 'echo "$X ${X} $XY"' };
    m = connect(m, { source: 'START', sourceHandle: 'out:TRUE', target: 'J', targetHandle: 'in:X' });
    const j = m.tasks.find((t) => t.name === 'J');
    expect(j.inputs).toEqual(['TRUE', 'Y']);
    expect(j.execution.trigger).toEqual(['TRUE']);
    expect(j.params.command).toBe('echo "$TRUE ${TRUE} $XY"');
    // The original is untouched (undo keeps it).
    expect(pipeline().tasks[3].inputs).toEqual(['X', 'Y']);
  });
  it('a wire from the new-output port makes an output named after the task', () => {
    let m = pipeline();
    m = connect(m, { source: 'END', sourceHandle: 'out:+', target: 'A', targetHandle: 'in:+' });
    expect(m.tasks.find((t) => t.name === 'END').outputs).toEqual(['END_OUT']);
    expect(m.tasks.find((t) => t.name === 'A').inputs).toEqual(['TRUE', 'END_OUT']);
  });
  it('a wire between dependency ports adds depends_on once', () => {
    let m = connect(pipeline(), { source: 'A', sourceHandle: 'dep-out', target: 'B', targetHandle: 'dep-in' });
    m = connect(m, { source: 'A', sourceHandle: 'dep-out', target: 'B', targetHandle: 'dep-in' });
    expect(m.tasks.find((t) => t.name === 'B').depends_on).toEqual(['A']);
  });
  it('a wire onto itself changes nothing', () => {
    const m = pipeline();
    expect(connect(m, { source: 'A', sourceHandle: 'out:X', target: 'A', targetHandle: 'in:+' })).toBe(m);
  });
});

describe('edits', () => {
  it('renaming a task renames the depends_on that name it', () => {
    const m = renameTask(pipeline(), 'START', 'BEGIN');
    expect(m.tasks[3].depends_on).toEqual(['BEGIN']);
  });
  it('deleting a task drops depends_on on it', () => {
    const m = deleteTasks(pipeline(), ['START']);
    expect(m.tasks.map((t) => t.name)).toEqual(['A', 'B', 'J', 'END']);
    expect(m.tasks[2].depends_on).toEqual([]);
  });
  it('paste gives new names and keeps depends_on inside the copy only', () => {
    const m = pipeline();
    const { model, names } = pasteTasks(m, [m.tasks[0], m.tasks[3]]);
    expect(names).toEqual(['START_2', 'J_2']);
    expect(model.tasks.find((t) => t.name === 'J_2').depends_on).toEqual(['START_2']);
  });
  it('new tasks get unique upper-case names and the plugin defaults', () => {
    const m = pipeline();
    expect(uniqueTaskName(m, 'start')).toBe('START_2');
    const t = newTask(m, { name: 'df', inputs: ['TRUE'], outputs: ['FREE_SPACE'] });
    expect(t).toMatchObject({ name: 'DF', plugin: 'df', inputs: ['TRUE'], outputs: ['FREE_SPACE'] });
  });
  it('renameInput keeps a command that does not use the variable', () => {
    const m = renameInput(pipeline(), 'A', 'TRUE', 'GO');
    expect(m.tasks[1].params.command).toBe('echo X=1');
    expect(m.tasks[1].inputs).toEqual(['GO']);
  });
});

describe('layout', () => {
  it('puts a task right of what it waits on and parallel branches side by side', async () => {
    const pos = await layoutGraph(toGraph(pipeline()));
    expect(pos.get('A').x).toBeGreaterThan(pos.get('START').x);
    expect(pos.get('J').x).toBeGreaterThan(pos.get('A').x);
    expect(pos.get('A').x).toBe(pos.get('B').x);
    expect(pos.get('A').y).not.toBe(pos.get('B').y);
  });
});
