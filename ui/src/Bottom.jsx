// Bottom.jsx - the bottom pane: every run on the broker (from GET /api/runs,
// kept current by the /api/events stream), with state and duration; a click
// shows that run on its workflow's canvas. Beside it, the log of the selected
// task in the run shown (or of every task when none is selected).
import React from 'react';

const fmtDur = (s) => (s === null || s === undefined ? '' : s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`);

export function RunsList({ runs, current, onOpen }) {
  return (
    <div className="runs" data-testid="runs">
      <h4 style={{ margin: '0 0 4px' }}>Runs</h4>
      <table>
        <thead>
          <tr><th>run</th><th>workflow</th><th>mode</th><th>state</th><th>duration</th></tr>
        </thead>
        <tbody>
          {runs.map((r) => (
            <tr key={r.run_id} className={r.run_id === current ? 'current' : ''} onClick={() => onOpen(r)} data-testid={`run-${r.run_id}`}>
              <td>{r.run_id}</td>
              <td>{r.workflow}</td>
              <td>{r.mode || '—'}</td>
              <td className={`s-${r.state}`}>{r.state}{r.paused ? ' (paused)' : ''}</td>
              <td>{fmtDur(r.duration)}</td>
            </tr>
          ))}
          {runs.length === 0 && <tr><td colSpan={5} className="hint">no run on the broker yet</td></tr>}
        </tbody>
      </table>
    </div>
  );
}

export function LogPane({ live, task }) {
  const logs = (live && live.logs) || {};
  const names = task ? [task] : Object.keys(logs);
  return (
    <div data-testid="log-pane">
      <h4 style={{ margin: '0 0 4px' }}>Log {task ? `of ${task}` : '(all tasks)'}{live ? ` — ${live.id}` : ''}</h4>
      <div className="log" data-testid={task ? `log-${task}` : 'log-all'}>
        {!live && <span className="hint">run a workflow, or pick a run, to see its logs</span>}
        {names.map((n) => (logs[n] || []).map((l, i) => <div key={`${n}${i}`}>{task ? l : `${n}: ${l}`}</div>))}
      </div>
    </div>
  );
}
