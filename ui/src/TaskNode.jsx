// TaskNode.jsx - one task on the canvas: its name and plugin, an input port
// per input variable on the left and an output port per output on the right,
// a "+" port on each side to add one by wiring, and a dependency port
// (depends_on) top and bottom. Badges mark splits, joins, auth and async;
// the class carries the live state (styles.css draws it) and the title the
// reason of a failure or a skip.
import React, { memo } from 'react';
import { Handle, Position } from '@xyflow/react';
import { stateClass } from './live.js';

const ROW = 20;

// Icons as inline SVG: no icon font to load, and no emoji font needed.
export const Shield = () => (
  <svg width="11" height="12" viewBox="0 0 16 16" aria-label="needs auth"><path d="M8 1 14 3v5c0 3.5-2.5 6-6 7-3.5-1-6-3.5-6-7V3z" fill="#b45309" /></svg>
);
const Clock = () => (
  <svg width="11" height="11" viewBox="0 0 16 16" aria-label="async"><circle cx="8" cy="8" r="6.5" fill="none" stroke="#475569" strokeWidth="2" /><path d="M8 4v4l3 2" fill="none" stroke="#475569" strokeWidth="2" /></svg>
);
const TOP = 46;

function TaskNode({ data, selected }) {
  const { task, split, join, external, live, errors, plugin } = data;
  const ins = task.inputs || [];
  const outs = task.outputs || [];
  const st = live && live.state;
  const auth = task.requires_auth || (task.permissions || []).length > 0 || (plugin && plugin.requires_auth);
  const async = task.execution && task.execution.async;
  const reason = live && (live.error || live.reason || (live.exit ? `exit ${live.exit}` : '') || (live.signal ? `signal ${live.signal}` : ''));
  const errText = (errors || []).map((e) => `${e.severity}: ${e.message}`).join('\n');
  const title = [st ? `${task.name}: ${st}${reason ? ` (${reason})` : ''}` : `${task.name} (${task.plugin})`, errText].filter(Boolean).join('\n');
  const hasError = (errors || []).some((e) => e.severity === 'error');
  const cls = ['task-node', stateClass(st), async ? 'async' : '', hasError ? 'has-error' : '', selected ? 'selected' : ''].filter(Boolean).join(' ');
  const rows = Math.max(ins.length + 1, outs.length + 1);
  const ext = new Map((external || []).map((e) => [e.name, e.from]));
  return (
    <div className={cls} data-testid={`node-${task.name}`} data-state={st || ''} title={title} style={{ minHeight: TOP + rows * ROW }}>
      <Handle type="target" position={Position.Top} id="dep-in" className="dep-port" data-testid={`dep-in-${task.name}`} />
      <div className="task-head">
        <span className="task-name">{task.name}</span>
        <span className="badges">
          {split > 1 && <span className="badge badge-split" title={`split: feeds ${split} tasks`}>split {split}</span>}
          {join > 1 && <span className="badge badge-join" title={`join: waits on ${join} tasks`}>join {join}</span>}
          {auth && <span className="badge badge-auth" title="needs auth (permissions are checked)"><Shield /></span>}
          {async && <span className="badge badge-async" title="async"><Clock /></span>}
          {hasError && <span className="badge badge-error" data-testid={`node-error-${task.name}`} title={errText}>!</span>}
        </span>
      </div>
      <div className="task-sub">
        <span className="task-plugin">{task.plugin}</span>
        {st && <span className="task-state" data-testid={`state-${task.name}`}>{st}{live.attempt > 1 ? ` #${live.attempt}` : ''}</span>}
      </div>
      {st && reason && <div className="task-reason">{reason}</div>}
      {ins.map((v, i) => (
        <React.Fragment key={`i${v}`}>
          <Handle type="target" position={Position.Left} id={`in:${v}`} style={{ top: TOP + i * ROW + 10 }} className="port in-port" data-testid={`in-${task.name}-${v}`} />
          <span className="port-label in-label" style={{ top: TOP + i * ROW + 2 }}>
            {v}
            {ext.has(v) && <em className="ext" title={ext.get(v) === 'env' ? 'from env:' : 'set from outside (flowbus set)'}> ({ext.get(v)})</em>}
          </span>
        </React.Fragment>
      ))}
      <Handle type="target" position={Position.Left} id="in:+" style={{ top: TOP + ins.length * ROW + 10 }} className="port in-port add-port" data-testid={`in-${task.name}-+`} title="wire here to add an input" />
      {outs.map((v, i) => (
        <React.Fragment key={`o${v}`}>
          <Handle type="source" position={Position.Right} id={`out:${v}`} style={{ top: TOP + i * ROW + 10 }} className="port out-port" data-testid={`out-${task.name}-${v}`} />
          <span className="port-label out-label" style={{ top: TOP + i * ROW + 2 }}>{v}</span>
        </React.Fragment>
      ))}
      <Handle type="source" position={Position.Right} id="out:+" style={{ top: TOP + outs.length * ROW + 10 }} className="port out-port add-port" data-testid={`out-${task.name}-+`} title="drag from here to add an output" />
      <Handle type="source" position={Position.Bottom} id="dep-out" className="dep-port" data-testid={`dep-out-${task.name}`} />
    </div>
  );
}

export default memo(TaskNode);
