// Dialogs.jsx - the save dialog (the YAML diff, shown before the file is
// written; a 409 there says the file changed on disk) and the "New plugin"
// form (POST /api/plugins), whose plugin the palette lists as soon as the
// server answers.
import React, { useState } from 'react';
import { lineDiff, hunks } from './diff.js';
import { splitNames } from './model.js';

export function SaveDialog({ file, oldYaml, newYaml, conflict, error, busy, onWrite, onOverwrite, onReload, onCancel }) {
  const d = hunks(lineDiff(oldYaml || '', newYaml || ''));
  const changed = d.some((x) => x.op === '+' || x.op === '-');
  return (
    <div className="modal-back">
      <div className="modal" data-testid="save-dialog">
        <h3>Save {file}</h3>
        {conflict && (
          <div className="banner error" data-testid="conflict">
            {file} changed on disk since it was opened. Reload it (your edits are lost) or overwrite it with yours.
          </div>
        )}
        {error && <div className="banner error" data-testid="save-error">{error}</div>}
        {changed ? (
          <div className="diff" data-testid="diff">
            {d.map((x, i) => (
              <div key={i} className={x.op === '+' ? 'add' : x.op === '-' ? 'del' : x.op === '…' ? 'gap' : ''}>
                {x.op === '…' ? '…' : `${x.op} ${x.text}`}
              </div>
            ))}
          </div>
        ) : (
          <p data-testid="no-changes">No change: the file is left as it is.</p>
        )}
        <p className="row" style={{ justifyContent: 'flex-end' }}>
          <span />
          <button onClick={onCancel} data-testid="save-cancel">Cancel</button>
          {conflict ? (
            <>
              <button onClick={onReload} data-testid="save-reload">Reload from disk</button>
              <button className="primary" onClick={onOverwrite} data-testid="save-overwrite">Overwrite</button>
            </>
          ) : (
            <button className="primary" disabled={busy} onClick={onWrite} data-testid="save-write">
              {changed ? 'Write' : 'Close'}
            </button>
          )}
        </p>
      </div>
    </div>
  );
}

const TYPES = ['string', 'number', 'integer', 'boolean'];

export function NewPluginDialog({ onCreate, onCancel }) {
  const [f, setF] = useState({ name: '', language: 'shell', description: '', category: 'custom', inputs: 'TEXT', outputs: 'RESULT' });
  const [params, setParams] = useState([]);
  const [err, setErr] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (k) => (e) => setF({ ...f, [k]: e.target.value });
  const submit = async () => {
    setBusy(true);
    setErr(null);
    const p = {};
    for (const r of params) if (r.name) p[r.name] = { type: r.type, default: r.type === 'boolean' ? r.default === 'true' : r.type === 'string' ? r.default : Number(r.default || 0), description: r.description };
    try {
      await onCreate({ name: f.name, language: f.language, description: f.description, category: f.category, inputs: splitNames(f.inputs), outputs: splitNames(f.outputs), params: p });
    } catch (e) {
      const diags = (e.diagnostics || []).map((d) => d.message).join('; ');
      setErr(`${e.message}${diags ? `: ${diags}` : ''}`);
    }
    setBusy(false);
  };
  return (
    <div className="modal-back">
      <div className="modal" data-testid="plugin-dialog" style={{ width: 520 }}>
        <h3>New plugin</h3>
        <p className="hint">Writes a working skeleton flowbus-NAME (with its --describe) into the plugins directory; edit its TODO to make it do its job.</p>
        <div className="field"><label>name</label><input data-testid="np-name" value={f.name} onChange={set('name')} placeholder="greet" /></div>
        <div className="field">
          <label>language</label>
          <select data-testid="np-language" value={f.language} onChange={set('language')}>
            <option value="shell">shell</option>
            <option value="python">Python</option>
            <option value="c">C</option>
          </select>
        </div>
        <div className="field"><label>description</label><input data-testid="np-description" value={f.description} onChange={set('description')} /></div>
        <div className="field"><label>category</label><input data-testid="np-category" value={f.category} onChange={set('category')} /></div>
        <div className="field"><label>inputs</label><input data-testid="np-inputs" value={f.inputs} onChange={set('inputs')} /></div>
        <div className="field"><label>outputs</label><input data-testid="np-outputs" value={f.outputs} onChange={set('outputs')} /></div>
        <h4>params</h4>
        {params.map((r, i) => (
          <div className="row" key={i} style={{ marginBottom: 4 }}>
            <input placeholder="name" value={r.name} onChange={(e) => setParams(params.map((x, j) => (j === i ? { ...x, name: e.target.value } : x)))} />
            <select value={r.type} onChange={(e) => setParams(params.map((x, j) => (j === i ? { ...x, type: e.target.value } : x)))}>
              {TYPES.map((t) => <option key={t}>{t}</option>)}
            </select>
            <input placeholder="default" value={r.default} onChange={(e) => setParams(params.map((x, j) => (j === i ? { ...x, default: e.target.value } : x)))} />
            <input placeholder="description" value={r.description} onChange={(e) => setParams(params.map((x, j) => (j === i ? { ...x, description: e.target.value } : x)))} />
            <button style={{ flex: 0 }} onClick={() => setParams(params.filter((_, j) => j !== i))}>✕</button>
          </div>
        ))}
        <button onClick={() => setParams([...params, { name: '', type: 'string', default: '', description: '' }])}>add param</button>
        {err && <div className="banner error" data-testid="np-error" style={{ marginTop: 8 }}>{err}</div>}
        <p className="row" style={{ justifyContent: 'flex-end' }}>
          <span />
          <button onClick={onCancel}>Cancel</button>
          <button className="primary" disabled={busy || !f.name} onClick={submit} data-testid="np-create">Create</button>
        </p>
      </div>
    </div>
  );
}
