// fields.jsx - the property panel's field widgets. A text field keeps what
// the user types while it has focus (so "A, " is not cut back to "A" by the
// round trip through the model) and shows the diagnostics of its field under
// it, with the same messages as `flowbus validate`.
import React, { useState } from 'react';

export function Diags({ list, testid }) {
  if (!list || !list.length) return null;
  return (
    <div data-testid={testid}>
      {list.map((d, i) => (
        <div key={i} className={d.severity === 'error' ? 'field-error' : 'field-warning'}>
          {d.line ? `${d.line}:${d.col}: ` : ''}
          {d.message}
        </div>
      ))}
    </div>
  );
}

export function TextField({ label, value, onChange, diags, testid, multiline, hint, placeholder, type }) {
  const [draft, setDraft] = useState(null);
  const shown = draft !== null ? draft : value ?? '';
  const bad = (diags || []).some((d) => d.severity === 'error');
  const props = {
    value: shown,
    'data-testid': testid,
    className: bad ? 'invalid' : '',
    placeholder,
    onFocus: () => setDraft(String(value ?? '')),
    onBlur: () => setDraft(null),
    onChange: (e) => {
      setDraft(e.target.value);
      onChange(e.target.value);
    },
  };
  return (
    <div className="field">
      <label>{label}</label>
      {multiline ? <textarea rows={multiline === true ? 5 : multiline} spellCheck={false} {...props} /> : <input type={type || 'text'} spellCheck={false} {...props} />}
      {hint && <div className="hint">{hint}</div>}
      <Diags list={diags} testid={testid && `${testid}-diags`} />
    </div>
  );
}

export function CheckField({ label, value, onChange, diags, testid }) {
  return (
    <div className="field">
      <label className="check">
        <input type="checkbox" checked={!!value} data-testid={testid} onChange={(e) => onChange(e.target.checked)} />
        {label}
      </label>
      <Diags list={diags} testid={testid && `${testid}-diags`} />
    </div>
  );
}

export function SelectField({ label, value, options, onChange, diags, testid }) {
  return (
    <div className="field">
      <label>{label}</label>
      <select value={value ?? ''} data-testid={testid} onChange={(e) => onChange(e.target.value)} className={(diags || []).some((d) => d.severity === 'error') ? 'invalid' : ''}>
        {options.map((o) => (
          <option key={o.value ?? o} value={o.value ?? o}>
            {o.label ?? o}
          </option>
        ))}
      </select>
      <Diags list={diags} testid={testid && `${testid}-diags`} />
    </div>
  );
}
