// diagmap.js - which task and which field a diagnostic is about. The server's
// diagnostics are `file:line:col` in the YAML text that was validated (the
// same text `flowbus validate` reads); the editor parses that text once with
// the yaml library and finds the deepest node whose range holds the position:
// its path, e.g. workflow.tasks[2].execution.timeout, names the task (by the
// name in that task's block) and the field in the property panel.
import { parseDocument, isMap, isSeq, isPair, isScalar } from 'yaml';

function offsetOf(text, line, col) {
  let off = 0;
  for (let l = 1; l < line; l++) {
    const nl = text.indexOf('\n', off);
    if (nl < 0) return text.length;
    off = nl + 1;
  }
  return off + Math.max(0, (col || 1) - 1);
}

function pathAt(node, off, path) {
  if (isMap(node)) {
    for (const p of node.items) {
      const k = p.key;
      const kr = k && k.range, vr = p.value && p.value.range;
      const start = kr ? kr[0] : vr ? vr[0] : -1;
      const end = vr ? vr[1] : kr ? kr[1] : -1;
      if (off >= start && off < Math.max(end, start + 1)) {
        const key = isScalar(k) ? String(k.value) : String(k);
        if (kr && off < kr[1]) return [...path, key];
        return pathAt(p.value, off, [...path, key]);
      }
    }
  } else if (isSeq(node)) {
    node.items.forEach(() => {});
    for (let i = 0; i < node.items.length; i++) {
      const it = node.items[i];
      if (it && it.range && off >= it.range[0] && off < Math.max(it.range[1], it.range[0] + 1)) return pathAt(it, off, [...path, i]);
    }
  }
  return path;
}

/*
 * The task and field of a model path as the server's format route gives it
 * ("tasks[3].execution.timeout", "env.X", "name"), or null.
 */
export function mapPath(model, p) {
  const m = /^(?:workflow\.)?tasks\[(\d+)\](?:\.([A-Za-z_]+)(?:\.([A-Za-z0-9_-]+))?)?/.exec(p || '');
  if (m) {
    const t = model && model.tasks && model.tasks[Number(m[1])];
    const task = t ? t.name : `#${Number(m[1]) + 1}`;
    let field = m[2] || null;
    if ((field === 'execution' || field === 'params') && m[3]) field = `${field}.${m[3]}`;
    return { task, field };
  }
  const w = /^(?:workflow\.)?([A-Za-z_]+)/.exec(p || '');
  return w ? { task: null, field: w[1] } : null;
}

/*
 * Each diagnostic with `task` (a task name, or null for the workflow) and
 * `field` (the property panel's field: name, plugin, inputs, outputs,
 * depends_on, params, params.KEY, execution.KEY, permissions,
 * requires_auth, env, mode; or null).
 */
export function mapDiagnostics(yamlText, diagnostics, model = null) {
  let doc = null;
  try {
    doc = parseDocument(yamlText, { keepSourceTokens: false });
  } catch (_) {
    doc = null;
  }
  return (diagnostics || []).map((d) => {
    let task = null, field = null;
    const byPath = d.path && model ? mapPath(model, d.path) : null;
    if (byPath) return { ...d, ...byPath };
    if (doc && doc.contents && d.line) {
      const path = pathAt(doc.contents, offsetOf(yamlText, d.line, d.col), []);
      if (path[0] === 'workflow' && path[1] === 'tasks' && typeof path[2] === 'number') {
        const tn = doc.getIn(['workflow', 'tasks', path[2]]);
        task = isMap(tn) ? String(tn.get('name') ?? `#${path[2] + 1}`) : `#${path[2] + 1}`;
        const rest = path.slice(3).filter((p) => typeof p === 'string');
        if (rest[0] === 'execution' && rest[1]) field = `execution.${rest[1]}`;
        else if (rest[0] === 'params' && rest[1]) field = `params.${rest[1]}`;
        else if (rest[0] === 'permissions') field = 'permissions';
        else field = rest[0] || null;
      } else if (path[0] === 'workflow' && path[1]) {
        field = String(path[1]);
      }
    }
    // A message that names a task ("task 'B' ...") where the position did not say.
    if (!task) {
      const m = /task '([^']+)'/.exec(d.message || '');
      if (m) task = m[1];
    }
    return { ...d, task, field };
  });
}

export { isPair };
