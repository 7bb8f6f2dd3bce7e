// live.js - a run's live state from its event stream (GET /api/runs/{id}/events,
// Server-Sent Events). EventSource reconnects by itself and sends
// Last-Event-ID, and the server resumes after it, so nothing here counts or
// replays: each event is applied to the state as it comes, and a `snapshot`
// replaces the state whole.

export const FINAL_BAD = ['failed', 'timeout', 'crashed', 'denied'];

export function emptyRunState(id) {
  return { id, run: null, tasks: {}, vars: {}, logs: {}, ended: null };
}

const LOG_KEEP = 500;

/* The state after one event (a new object; the old one is left as it was). */
export function applyEvent(st, type, data) {
  switch (type) {
    case 'snapshot': {
      const tasks = {};
      for (const t of data.tasks || []) tasks[t.name] = t;
      const vars = {};
      for (const v of data.vars || []) if (v.value !== null && v.value !== undefined) vars[v.name] = v.value;
      // The snapshot carries the run's workflow model too (a run started
      // elsewhere is drawn from it when its workflow event left the ring).
      return { ...st, run: data, tasks, vars, workflow: data.workflow || st.workflow, ended: ['running', 'starting'].includes(data.state) ? null : st.ended };
    }
    case 'run':
      return { ...st, run: { ...(st.run || {}), ...data } };
    case 'task':
      return { ...st, tasks: { ...st.tasks, [data.task]: { ...(st.tasks[data.task] || {}), ...data, name: data.task } } };
    case 'var':
      return { ...st, vars: { ...st.vars, [data.name]: data.value } };
    case 'log': {
      const old = st.logs[data.task] || [];
      const next = old.length >= LOG_KEEP ? old.slice(old.length - LOG_KEEP + 1) : old.slice();
      next.push(data.line);
      return { ...st, logs: { ...st.logs, [data.task]: next } };
    }
    case 'workflow':
      return { ...st, workflow: data };
    case 'end':
      return { ...st, ended: data, run: { ...(st.run || {}), state: data.state, exit: data.exit } };
    default:
      return st;
  }
}

/*
 * Follows a run; onState gets every new state. Events that arrive together are
 * applied together and handed over once per animation frame, so a burst of a
 * thousand state changes renders once, not a thousand times. Returns a
 * function that closes the stream.
 */
export function followRun(url, id, onState) {
  let st = emptyRunState(id);
  const es = new EventSource(url, { withCredentials: true });
  let pending = false;
  const flush = () => {
    pending = false;
    onState(st);
  };
  const on = (type) => (ev) => {
    let data = {};
    try {
      data = JSON.parse(ev.data);
    } catch (_) {
      return;
    }
    st = applyEvent(st, type, data);
    if (!pending) {
      pending = true;
      (typeof requestAnimationFrame === 'function' && !document.hidden ? requestAnimationFrame : setTimeout)(flush);
    }
  };
  for (const t of ['snapshot', 'run', 'workflow', 'task', 'var', 'log', 'end', 'control', 'gone']) es.addEventListener(t, on(t));
  return () => es.close();
}

/* The CSS class of a task's state. */
export function stateClass(state) {
  if (!state) return '';
  if (FINAL_BAD.includes(state)) return `st-bad st-${state}`;
  return `st-${state}`;
}
