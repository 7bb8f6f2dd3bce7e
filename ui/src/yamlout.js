// yamlout.js - the editor's model as YAML text, for saving and validating.
//
// The server's POST /api/format writes the canonical layout (flowbus fmt);
// when a server does not have it (501, /api/info's format_available false)
// the editor writes the YAML itself, here, by editing the file's own YAML
// document rather than writing a new one: a task the user did not change
// keeps its node as it was in the file (comments, quoting, block style), so
// the diff shows only what the user changed, and a secret's value (which the
// model only holds as "<secret>") or a {{ENV:X}} stays what the file says.
// A changed or new task is written in the reference key order with the
// defaults left out.
import { parseDocument, isMap, isSeq, Scalar } from 'yaml';

export const SECRET = '<secret>';

const TASK_KEYS = ['name', 'plugin', 'description', 'inputs', 'outputs', 'depends_on', 'params', 'execution', 'permissions', 'requires_auth'];
const EXEC_KEYS = ['timeout', 'retries', 'retry_delay', 'retry_max_delay', 'async', 'workers', 'trigger', 'queue', 'overflow', 'restart'];

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

/* The task as the file would say it: defaults (given by execDefaults) left out. */
export function taskForYaml(t, execDefaults = {}) {
  const out = {};
  for (const k of TASK_KEYS) {
    const v = t[k];
    if (v === undefined || v === null) continue;
    if (Array.isArray(v) && v.length === 0) continue;
    if (k === 'requires_auth' && !v) continue;
    if (k === 'params' && Object.keys(v).length === 0) continue;
    if (k === 'permissions') {
      out.permissions = { required: v };
      continue;
    }
    if (k === 'execution') {
      const e = {};
      for (const ek of EXEC_KEYS) {
        const ev = v[ek];
        if (ev === undefined || ev === null || ev === '') continue;
        if (Array.isArray(ev) && ev.length === 0) continue;
        if (ek in execDefaults && same(execDefaults[ek], ev)) continue;
        e[ek] = ev;
      }
      if (Object.keys(e).length) out.execution = e;
      continue;
    }
    if (k === 'description' && v === '') continue;
    out[k] = v;
  }
  return out;
}

/* A YAML node for a value, short lists and small maps of scalars in flow style. */
function node(doc, value, depth = 0) {
  const n = doc.createNode(value);
  const style = (x, d) => {
    if (isSeq(x)) {
      const scalars = x.items.every((i) => i instanceof Scalar);
      if (scalars && x.items.length <= 6) x.flow = true;
      x.items.forEach((i) => style(i, d + 1));
    } else if (isMap(x)) {
      const small = x.items.length <= 3 && x.items.every((p) => p.value instanceof Scalar && !(typeof p.value.value === 'string' && p.value.value.includes('\n')));
      if (small && d > 0) x.flow = true;
      x.items.forEach((p) => style(p.value, d + 1));
    } else if (x instanceof Scalar) {
      if (typeof x.value === 'string') x.type = x.value.includes('\n') ? 'BLOCK_LITERAL' : 'QUOTE_DOUBLE';
    }
  };
  style(n, depth);
  return n;
}

function findTaskNode(tasksSeq, name) {
  if (!isSeq(tasksSeq)) return null;
  for (const item of tasksSeq.items) if (isMap(item) && item.get('name') === name) return item;
  return null;
}

/*
 * The YAML text for model, as an edit of original (the file's text; '' for a
 * new file). originalModel is the model the server loaded from original (null
 * when it had errors): a task equal to its original keeps its node.
 */
export function modelToYaml(model, original = '', originalModel = null, execDefaults = {}) {
  if (original && originalModel && sameModel(model, originalModel, execDefaults)) return original;
  const doc = original.trim() ? parseDocument(original) : parseDocument('workflow:\n  name: ""\n');
  if (doc.errors.length) return plainYaml(model, execDefaults);
  let wf = doc.get('workflow', true);
  if (!isMap(wf)) {
    doc.set('workflow', doc.createNode({}));
    wf = doc.get('workflow', true);
  }
  const setScalar = (key, value, dflt) => {
    if (value === undefined || value === null || value === dflt) {
      if (wf.has(key) && (value === dflt || value === null)) wf.delete(key);
      return;
    }
    if (wf.get(key) !== value) wf.set(key, node(doc, value, 1));
  };
  setScalar('name', model.name || undefined);
  if (model.description !== undefined) setScalar('description', model.description || null);
  if (model.version !== undefined) setScalar('version', model.version || null);
  setScalar('mode', model.mode, 'oneshot');

  // env: keep each original pair whose value the model did not change (secrets always).
  const env = model.env || {};
  const origEnv = (originalModel && originalModel.env) || {};
  const oldEnvNode = wf.get('env', true);
  if (Object.keys(env).length === 0) {
    if (wf.has('env')) wf.delete('env');
  } else {
    const m = doc.createNode({});
    for (const [k, v] of Object.entries(env)) {
      const oldPair = isMap(oldEnvNode) ? oldEnvNode.items.find((p) => String(p.key && p.key.value !== undefined ? p.key.value : p.key) === k) : null;
      if (oldPair && (v === SECRET || same(origEnv[k], v))) m.items.push(oldPair);
      else if (v === SECRET) continue; // a secret the file did not have: nothing to write
      else m.set(k, node(doc, typeof v === 'object' && v ? v : String(v), 2));
    }
    wf.set('env', m);
  }

  const oldTasks = wf.get('tasks', true);
  const seq = doc.createNode([]);
  for (const t of model.tasks || []) {
    const orig = originalModel && (originalModel.tasks || []).find((o) => o.name === t.name);
    const oldNode = findTaskNode(oldTasks, t.name);
    if (orig && oldNode && same(taskForYaml(orig, execDefaults), taskForYaml(t, execDefaults))) seq.items.push(oldNode);
    else seq.items.push(node(doc, taskForYaml(t, execDefaults), 2));
  }
  // Keep the comments between tasks: spacing as in the shipped files.
  seq.items.forEach((it, i) => {
    const first = isMap(it) && it.items[0] && it.items[0].key;
    if (first && first.spaceBefore) first.spaceBefore = false;
    it.spaceBefore = i > 0;
  });
  wf.set('tasks', seq);
  // Keys in the reference order: name, description, version, mode, auth, env, tasks.
  const order = ['name', 'description', 'version', 'mode', 'auth', 'env', 'tasks'];
  wf.items.sort((a, b) => {
    const ia = order.indexOf(String(a.key)), ib = order.indexOf(String(b.key));
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
  });
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}

/* True when a and b would write the same workflow. */
export function sameModel(a, b, execDefaults = {}) {
  const norm = (m) => JSON.stringify({
    name: m.name || '', description: m.description || '', version: m.version || '', mode: m.mode || 'oneshot',
    env: m.env || {}, auth: m.auth || null,
    tasks: (m.tasks || []).map((t) => taskForYaml(t, execDefaults)),
  });
  return norm(a) === norm(b);
}

/* A YAML text for a model without an original to edit. */
export function plainYaml(model, execDefaults = {}) {
  return modelToYaml(model, 'workflow:\n  name: ""\n', null, execDefaults);
}

