// model.js - the workflow model (the JSON the server's loader gives, see
// docs/http-api.md) and the pure edits the editor makes on it, with the mapping
// from the model to the graph the canvas draws. The model is the source of
// truth: nodes and edges are derived from it on every change, so the canvas can
// never show a wire that the YAML does not have. Every function here returns a
// new model and leaves its argument untouched (undo/redo keeps old ones).

export const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$/;
export const VAR_RE = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

const clone = (x) => (x === undefined ? x : JSON.parse(JSON.stringify(x)));

/* The task's depends_on list, wherever the model keeps it. */
export function dependsOn(task) {
  return task.depends_on || [];
}

/*
 * The graph of a model: one node per task, one edge per (producer, variable,
 * consumer), one dashed edge per depends_on. A variable's producers are the
 * tasks that list it in their outputs; an input nobody produces comes from env
 * or from outside (`flowbus set`), and its port says so.
 */
export function toGraph(model) {
  const tasks = model.tasks || [];
  const producers = new Map(); // var -> [task names]
  for (const t of tasks)
    for (const v of t.outputs || []) {
      if (!producers.has(v)) producers.set(v, []);
      producers.get(v).push(t.name);
    }
  const env = model.env || {};
  const edges = [];
  const feeds = new Map(); // task -> Set(tasks it feeds)
  const waits = new Map(); // task -> Set(tasks it waits on)
  const add = (m, k, v) => {
    if (!m.has(k)) m.set(k, new Set());
    m.get(k).add(v);
  };
  for (const t of tasks) {
    for (const v of t.inputs || []) {
      for (const p of producers.get(v) || []) {
        edges.push({
          id: `v:${p}:${v}:${t.name}`,
          source: p,
          target: t.name,
          sourceHandle: `out:${v}`,
          targetHandle: `in:${v}`,
          data: { variable: v, kind: 'var' },
        });
        if (p !== t.name) {
          add(feeds, p, t.name);
          add(waits, t.name, p);
        }
      }
    }
    for (const d of dependsOn(t)) {
      if (!tasks.some((x) => x.name === d)) continue;
      edges.push({
        id: `d:${d}:${t.name}`,
        source: d,
        target: t.name,
        sourceHandle: 'dep-out',
        targetHandle: 'dep-in',
        data: { kind: 'dep' },
      });
      add(feeds, d, t.name);
      add(waits, t.name, d);
    }
  }
  const nodes = tasks.map((t) => ({
    id: t.name,
    type: 'task',
    data: {
      task: t,
      split: (feeds.get(t.name) || new Set()).size,
      join: (waits.get(t.name) || new Set()).size,
      external: (t.inputs || []).filter((v) => !producers.has(v)).map((v) => ({
        name: v,
        from: Object.prototype.hasOwnProperty.call(env, v) ? 'env' : 'outside',
      })),
    },
  }));
  return { nodes, edges };
}

/* A task name not yet in the model, from a base (the plugin's name). */
export function uniqueTaskName(model, base) {
  let stem = String(base || 'TASK')
    .toUpperCase()
    .replace(/[^A-Za-z0-9_-]/g, '_');
  if (!/^[A-Za-z0-9_]/.test(stem)) stem = 'T' + stem;
  stem = stem.slice(0, 60);
  const taken = new Set((model.tasks || []).map((t) => t.name));
  if (!taken.has(stem)) return stem;
  for (let i = 2; ; i++) if (!taken.has(`${stem}_${i}`)) return `${stem}_${i}`;
}

/* A variable name no task uses yet. */
export function uniqueVarName(model, base) {
  let stem = String(base).toUpperCase().replace(/[^A-Za-z0-9_]/g, '_');
  if (!/^[A-Za-z_]/.test(stem)) stem = 'V' + stem;
  stem = stem.slice(0, 60);
  const taken = new Set();
  for (const t of model.tasks || []) for (const v of [...(t.inputs || []), ...(t.outputs || [])]) taken.add(v);
  for (const v of Object.keys(model.env || {})) taken.add(v);
  if (!taken.has(stem)) return stem;
  for (let i = 2; ; i++) if (!taken.has(`${stem}_${i}`)) return `${stem}_${i}`;
}

/* A new task for a plugin, with the plugin's default inputs, outputs and params. */
export function newTask(model, plugin) {
  const name = uniqueTaskName(model, plugin.name);
  const params = {};
  for (const [k, p] of Object.entries(plugin.params || {}))
    if (p && p.required && p.default !== undefined && p.default !== null) params[k] = p.default;
  const task = {
    name,
    plugin: plugin.name,
    inputs: [...(plugin.inputs || [])],
    outputs: [...(plugin.outputs || [])],
    depends_on: [],
    params,
  };
  if (plugin.requires_auth) task.requires_auth = true;
  return task;
}

export function addTask(model, task) {
  return { ...model, tasks: [...(model.tasks || []), clone(task)] };
}

export function updateTask(model, name, patch) {
  return {
    ...model,
    tasks: model.tasks.map((t) => (t.name === name ? { ...t, ...clone(patch) } : t)),
  };
}

/* Renames a task and every depends_on (and trigger-free) reference to it. */
export function renameTask(model, from, to) {
  if (from === to) return model;
  return {
    ...model,
    tasks: model.tasks.map((t) => {
      const n = { ...t };
      if (t.name === from) n.name = to;
      if (t.depends_on) n.depends_on = t.depends_on.map((d) => (d === from ? to : d));
      return n;
    }),
  };
}

/* Deletes tasks and the depends_on entries that named them. */
export function deleteTasks(model, names) {
  const gone = new Set(names);
  return {
    ...model,
    tasks: model.tasks
      .filter((t) => !gone.has(t.name))
      .map((t) => (t.depends_on && t.depends_on.some((d) => gone.has(d)) ? { ...t, depends_on: t.depends_on.filter((d) => !gone.has(d)) } : t)),
  };
}

/* Removes one wire: the consumer stops reading the variable (or depending on the task). */
export function deleteEdge(model, edge) {
  if (edge.data && edge.data.kind === 'dep')
    return updateTask(model, edge.target, {
      depends_on: dependsOn(taskOf(model, edge.target)).filter((d) => d !== edge.source),
    });
  const v = edge.data.variable;
  const t = taskOf(model, edge.target);
  const patch = { inputs: (t.inputs || []).filter((x) => x !== v) };
  if (t.execution && t.execution.trigger) patch.execution = { ...t.execution, trigger: t.execution.trigger.filter((x) => x !== v) };
  return updateTask(model, edge.target, patch);
}

export function taskOf(model, name) {
  return (model.tasks || []).find((t) => t.name === name);
}

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/*
 * Renames one input of one task from `from` to `to`, consistently within that
 * task: its inputs, its execution.trigger, and the `$FROM` / `${FROM}`
 * references in a cmd task's command (inputs reach a command as environment
 * variables, so a rename that left the command alone would break it).
 */
export function renameInput(model, taskName, from, to) {
  const t = taskOf(model, taskName);
  if (!t || from === to) return model;
  const inputs = [];
  for (const v of t.inputs || []) {
    const n = v === from ? to : v;
    if (!inputs.includes(n)) inputs.push(n);
  }
  const patch = { inputs };
  if (t.execution && t.execution.trigger)
    patch.execution = { ...t.execution, trigger: t.execution.trigger.map((v) => (v === from ? to : v)) };
  if (t.params && typeof t.params.command === 'string') {
    const re = new RegExp(`\\$(\\{)?${escapeRe(from)}(?![A-Za-z0-9_])`, 'g');
    patch.params = { ...t.params, command: t.params.command.replace(re, (_m, brace) => `$${brace || ''}${to}`) };
  }
  return updateTask(model, taskName, patch);
}

/*
 * A wire drawn from a source port to a target port. The source handle is
 * `out:VAR` (an existing output), `out:+` (a new output, named after the task)
 * or `dep-out`; the target handle is `in:VAR` (an existing input: renamed to
 * the wire's variable), `in:+` (a new input) or `dep-in` (a depends_on).
 * Returns the new model, or the same one when the wire makes no sense (onto
 * itself).
 */
export function connect(model, { source, sourceHandle, target, targetHandle }) {
  if (!source || !target || source === target) return model;
  const src = taskOf(model, source);
  const dst = taskOf(model, target);
  if (!src || !dst) return model;
  if (sourceHandle === 'dep-out' || targetHandle === 'dep-in') {
    if (dependsOn(dst).includes(source)) return model;
    return updateTask(model, target, { depends_on: [...dependsOn(dst), source] });
  }
  let m = model;
  let v;
  if (!sourceHandle || sourceHandle === 'out:+') {
    v = uniqueVarName(m, `${source}_OUT`);
    m = updateTask(m, source, { outputs: [...(src.outputs || []), v] });
  } else {
    v = sourceHandle.slice(4);
  }
  const d = taskOf(m, target);
  if (targetHandle && targetHandle.startsWith('in:') && targetHandle !== 'in:+') {
    const old = targetHandle.slice(3);
    if ((d.inputs || []).includes(v) && old !== v)
      // Already reads the variable through another port: just drop the old one.
      return updateTask(m, target, { inputs: d.inputs.filter((x) => x !== old) });
    return renameInput(m, target, old, v);
  }
  if ((d.inputs || []).includes(v)) return m;
  return updateTask(m, target, { inputs: [...(d.inputs || []), v] });
}

/* Copies of tasks for a paste: new unique names, depends_on kept only inside the copy. */
export function pasteTasks(model, tasks) {
  let m = model;
  const renamed = new Map();
  const added = [];
  for (const t of tasks) {
    const name = uniqueTaskName(m, t.name.replace(/_\d+$/, ''));
    renamed.set(t.name, name);
    const c = { ...clone(t), name };
    m = addTask(m, c);
    added.push(name);
  }
  m = {
    ...m,
    tasks: m.tasks.map((t) =>
      added.includes(t.name) && t.depends_on
        ? { ...t, depends_on: t.depends_on.filter((d) => renamed.has(d)).map((d) => renamed.get(d)) }
        : t,
    ),
  };
  return { model: m, names: added };
}

/* Splits "A, B C" into names (the inputs/outputs fields take comma or blank separated names). */
export function splitNames(text) {
  return String(text)
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}
