// Panel.jsx - the property panel: the selected task's name, plugin, inputs,
// outputs, depends_on, a params form generated from the plugin's described
// params (with a raw YAML view of all params as the fallback), its execution
// fields and permissions; with no task selected, the workflow's own fields and
// its env (secrets masked: the model only ever holds "<secret>").
import React, { useState } from 'react';
import YAML from 'yaml';
import { TextField, CheckField, SelectField, Diags } from './fields.jsx';
import { splitNames } from './model.js';
import { SECRET } from './yamlout.js';

const EXEC_FIELDS = [
  ['timeout', 'number', 'seconds; empty: none'],
  ['retries', 'integer', 'attempts after a failure'],
  ['retry_delay', 'number', 'seconds before the first retry (default 1)'],
  ['retry_max_delay', 'number', 'cap on the pause between retries (default 60)'],
  ['workers', 'integer', 'reactive: processes sharing the events'],
  ['queue', 'integer', 'reactive: events kept while busy (default 100)'],
];

const num = (text, integer) => {
  if (text === '' || text === null || text === undefined) return undefined;
  const n = Number(text);
  if (Number.isNaN(n)) return text; // kept as typed: the loader says what is wrong
  return integer && Number.isInteger(n) ? n : n;
};

function ParamsForm({ task, plugin, onParams, diagsFor }) {
  const [raw, setRaw] = useState(false);
  const [rawErr, setRawErr] = useState(null);
  const described = (plugin && plugin.params) || {};
  const params = task.params || {};
  const set = (k, v) => {
    const p = { ...params };
    if (v === undefined || v === '') delete p[k];
    else p[k] = v;
    onParams(p);
  };
  const undescribed = Object.keys(params).filter((k) => !(k in described));
  return (
    <>
      <h4>
        Params{' '}
        <button data-testid="params-raw-toggle" onClick={() => setRaw(!raw)} style={{ float: 'right', fontSize: 10 }}>
          {raw ? 'form' : 'YAML'}
        </button>
      </h4>
      {raw ? (
        <div className="field">
          <textarea
            rows={8}
            data-testid="params-raw"
            className={rawErr ? 'invalid' : ''}
            defaultValue={Object.keys(params).length ? YAML.stringify(params) : ''}
            onChange={(e) => {
              try {
                const v = e.target.value.trim() ? YAML.parse(e.target.value) : {};
                if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('params must be a mapping (key: value)');
                setRawErr(null);
                onParams(v);
              } catch (err) {
                setRawErr(String(err.message || err).split('\n')[0]);
              }
            }}
          />
          {rawErr && <div className="field-error">{rawErr}</div>}
          <Diags list={diagsFor('params')} />
        </div>
      ) : (
        <>
          {Object.entries(described).map(([k, p]) => {
            const type = (p && p.type) || 'string';
            const v = params[k];
            const help = [p && p.description, p && p.default !== undefined && p.default !== null ? `default: ${JSON.stringify(p.default)}` : ''].filter(Boolean).join('; ');
            const d = diagsFor(`params.${k}`);
            if (type === 'boolean')
              return <CheckField key={k} label={k} value={v ?? p.default} onChange={(b) => set(k, b)} diags={d} testid={`param-${k}`} />;
            if (type === 'number' || type === 'integer')
              return <TextField key={k} label={k} value={v ?? ''} hint={help} placeholder={p.default !== undefined && p.default !== null ? String(p.default) : ''} onChange={(t) => set(k, num(t, type === 'integer'))} diags={d} testid={`param-${k}`} />;
            if (type === 'array' || type === 'list')
              return <TextField key={k} label={`${k} (one per line)`} multiline={3} hint={help} value={Array.isArray(v) ? v.join('\n') : v ?? ''} onChange={(t) => set(k, t === '' ? undefined : t.split('\n'))} diags={d} testid={`param-${k}`} />;
            if (type === 'string' || type === 'path')
              return <TextField key={k} label={k} multiline={k === 'command' || (typeof v === 'string' && v.includes('\n')) ? 6 : false} hint={help} placeholder={p.default !== undefined && p.default !== null ? String(p.default) : ''} value={typeof v === 'string' ? v : v === undefined ? '' : JSON.stringify(v)} onChange={(t) => set(k, t)} diags={d} testid={`param-${k}`} />;
            return <div key={k} className="field hint">{k}: {type} — edit it in the YAML view</div>;
          })}
          {undescribed.length > 0 && <div className="hint">Also set: {undescribed.join(', ')} (not described by the plugin; see the YAML view)</div>}
          {Object.keys(described).length === 0 && !undescribed.length && <div className="hint">The plugin describes no params.</div>}
          <Diags list={diagsFor('params')} />
        </>
      )}
    </>
  );
}

export function TaskPanel({ task, plugin, plugins, diags, execDefaults = {}, onChange, onRename }) {
  const diagsFor = (field) => diags.filter((d) => d.field === field || (field === 'name' && d.field === null));
  const exec = task.execution || {};
  const setExec = (k, v) => {
    const e = { ...exec };
    if (v === undefined || v === '') delete e[k];
    else e[k] = v;
    onChange({ execution: e });
  };
  const pluginNames = plugins.map((p) => p.name);
  if (!pluginNames.includes(task.plugin)) pluginNames.unshift(task.plugin);
  return (
    <div data-testid="task-panel">
      <h4>Task</h4>
      <TextField label="name" value={task.name} onChange={(v) => onRename(v)} diags={diagsFor('name')} testid="field-name" />
      <SelectField label="plugin" value={task.plugin} options={pluginNames} onChange={(v) => onChange({ plugin: v })} diags={diagsFor('plugin')} testid="field-plugin" />
      {plugin && plugin.description && <div className="hint">{plugin.description}</div>}
      <TextField label="inputs" value={(task.inputs || []).join(', ')} onChange={(v) => onChange({ inputs: splitNames(v) })} diags={diagsFor('inputs')} testid="field-inputs" hint="variable names, comma separated" />
      <TextField label="outputs" value={(task.outputs || []).join(', ')} onChange={(v) => onChange({ outputs: splitNames(v) })} diags={diagsFor('outputs')} testid="field-outputs" />
      <TextField label="depends_on" value={(task.depends_on || []).join(', ')} onChange={(v) => onChange({ depends_on: splitNames(v) })} diags={diagsFor('depends_on')} testid="field-depends_on" hint="task names (dashed wires)" />
      <ParamsForm task={task} plugin={plugin} onParams={(p) => onChange({ params: p })} diagsFor={diagsFor} />
      <h4>Execution</h4>
      {EXEC_FIELDS.map(([k, type, hint]) => (
        <TextField key={k} label={k} value={exec[k] === undefined || exec[k] === null || exec[k] === execDefaults[k] ? '' : String(exec[k])} hint={hint} onChange={(t) => setExec(k, num(t, type === 'integer'))} diags={diagsFor(`execution.${k}`)} testid={`exec-${k}`} />
      ))}
      <TextField label="trigger" value={(exec.trigger || []).join(', ')} hint="reactive: inputs whose events fire the task" onChange={(v) => setExec('trigger', splitNames(v))} diags={diagsFor('execution.trigger')} testid="exec-trigger" />
      <SelectField label="restart" value={exec.restart || 'on-failure'} options={['on-failure', 'always', 'never']} onChange={(v) => setExec('restart', v === 'on-failure' ? undefined : v)} diags={diagsFor('execution.restart')} testid="exec-restart" />
      <SelectField label="overflow" value={exec.overflow || 'block'} options={['block', 'drop-oldest', 'drop-newest']} onChange={(v) => setExec('overflow', v === 'block' ? undefined : v)} diags={diagsFor('execution.overflow')} testid="exec-overflow" />
      <CheckField label="async" value={exec.async} onChange={(b) => setExec('async', b || undefined)} diags={diagsFor('execution.async')} testid="exec-async" />
      <h4>Permissions</h4>
      <CheckField label="requires_auth" value={task.requires_auth} onChange={(b) => onChange({ requires_auth: b })} diags={diagsFor('requires_auth')} testid="field-requires_auth" />
      <TextField label="required permissions" value={(task.permissions || []).join(', ')} onChange={(v) => onChange({ permissions: splitNames(v) })} diags={diagsFor('permissions')} testid="field-permissions" hint={plugin && plugin.permissions && plugin.permissions.length ? `the plugin asks for: ${plugin.permissions.join(', ')}` : ''} />
    </div>
  );
}

export function WorkflowPanel({ model, diags, onChange }) {
  const [newKey, setNewKey] = useState('');
  const diagsFor = (field) => diags.filter((d) => !d.task && (d.field === field || (field === 'name' && !d.field)));
  const env = model.env || {};
  const setEnv = (k, v) => {
    const e = { ...env };
    if (v === undefined) delete e[k];
    else e[k] = v;
    onChange({ env: e });
  };
  return (
    <div data-testid="workflow-panel">
      <h4>Workflow</h4>
      <TextField label="name" value={model.name || ''} onChange={(v) => onChange({ name: v })} diags={diagsFor('name')} testid="wf-name" />
      <TextField label="description" value={model.description || ''} onChange={(v) => onChange({ description: v })} testid="wf-description" />
      <SelectField label="mode" value={model.mode || 'oneshot'} options={['oneshot', 'reactive']} onChange={(v) => onChange({ mode: v })} diags={diagsFor('mode')} testid="wf-mode" />
      <h4>env</h4>
      {Object.entries(env).map(([k, v]) =>
        v === SECRET || (v && typeof v === 'object' && v.secret) ? (
          <div className="field" key={k}>
            <label>{k} (secret)</label>
            <div className="row">
              <input value="••••••••" disabled data-testid={`env-${k}`} />
              <button onClick={() => setEnv(k, undefined)} title="remove">✕</button>
            </div>
            <div className="hint">secrets never reach the browser; the file keeps its value</div>
          </div>
        ) : (
          <div className="field" key={k}>
            <label>{k}</label>
            <div className="row">
              <input value={typeof v === 'string' ? v : JSON.stringify(v)} data-testid={`env-${k}`} onChange={(e) => setEnv(k, e.target.value)} />
              <button onClick={() => setEnv(k, undefined)} title="remove">✕</button>
            </div>
          </div>
        ),
      )}
      <div className="row">
        <input placeholder="NEW_VARIABLE" value={newKey} onChange={(e) => setNewKey(e.target.value)} data-testid="env-new" />
        <button onClick={() => { if (newKey) { setEnv(newKey, ''); setNewKey(''); } }}>add</button>
      </div>
      <Diags list={diagsFor('env')} />
      <h4>Diagnostics</h4>
      <ul className="diag-list" data-testid="all-diags">
        {diags.length === 0 && <li>none: the workflow is valid</li>}
        {diags.map((d, i) => (
          <li key={i} className={d.severity}>
            {d.line}:{d.col}: {d.severity}: {d.message}
          </li>
        ))}
      </ul>
    </div>
  );
}
