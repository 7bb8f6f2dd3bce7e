// App.jsx - the editor: top bar (workflow, save, undo/redo, layout, run
// controls), palette | canvas | property panel, and the runs list and log
// pane below. It holds the one editable model; the canvas, the panel and the
// YAML are all derived from it. Every change is validated by the server
// (POST /api/validate on the YAML the save would write), and the diagnostics
// land on their field and their node.
import React, { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { ReactFlow, Background, Controls, MiniMap, useReactFlow } from '@xyflow/react';
import TaskNode, { Shield } from './TaskNode.jsx';
import { api, runEventsUrl, runsEventsUrl } from './api.js';
import { toGraph, newTask, addTask, updateTask, renameTask, deleteTasks, deleteEdge, connect, pasteTasks, taskOf } from './model.js';
import { layoutGraph, NODE_WIDTH } from './layout.js';
import { modelToYaml } from './yamlout.js';
import { mapDiagnostics } from './diagmap.js';
import { followRun } from './live.js';
import { TaskPanel, WorkflowPanel } from './Panel.jsx';
import { SaveDialog, NewPluginDialog } from './Dialogs.jsx';
import { RunsList, LogPane } from './Bottom.jsx';

const nodeTypes = { task: TaskNode };
const MINIMAP_COLOURS = { done: '#16a34a', running: '#2563eb', failed: '#dc2626', timeout: '#dc2626', crashed: '#dc2626', denied: '#dc2626', skipped: '#9ca3af', waiting: '#94a3b8' };
const HISTORY = 200;
const basename = (p) => String(p || '').split('/').pop();
const clip = (s, n) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

function Palette({ plugins, onAdd, onNewPlugin }) {
  const [q, setQ] = useState('');
  const match = plugins.filter((p) => !q || `${p.name} ${p.description || ''} ${p.category || ''}`.toLowerCase().includes(q.toLowerCase()));
  // A plugin whose --describe failed cannot be configured: listed last, folded.
  const shown = match.filter((p) => !p.error);
  const broken = match.filter((p) => p.error);
  const cats = [...new Set(shown.map((p) => p.category || 'other'))].sort();
  return (
    <div className="palette" data-testid="palette">
      <input placeholder="search plugins" value={q} onChange={(e) => setQ(e.target.value)} data-testid="palette-search" />
      {cats.map((c) => (
        <div key={c}>
          <h4>{c}</h4>
          {shown
            .filter((p) => (p.category || 'other') === c)
            .map((p) => (
              <div
                key={p.name}
                className="plugin-item"
                draggable
                tabIndex={0}
                data-testid={`plugin-${p.name}`}
                title={p.error ? `--describe failed: ${p.error}` : `${p.description || ''}\ndrag onto the canvas, or double-click / Enter to add`}
                onDragStart={(e) => {
                  e.dataTransfer.setData('application/flowbus-plugin', p.name);
                  e.dataTransfer.effectAllowed = 'copy';
                }}
                onDoubleClick={() => onAdd(p.name)}
                onKeyDown={(e) => e.key === 'Enter' && onAdd(p.name)}
              >
                <div>{p.name} {p.requires_auth && <Shield />}</div>
                <div className="pdesc">{p.error ? 'describe failed' : p.description}</div>
              </div>
            ))}
        </div>
      ))}
      {broken.length > 0 && (
        <details data-testid="palette-broken">
          <summary className="hint">{broken.length} without a description</summary>
          {broken.map((p) => (
            <div key={p.name} className="plugin-item" title={`${p.path || ''}: ${p.error}`}>
              <div>{p.name}</div>
              <div className="pdesc">--describe failed: {p.error}</div>
            </div>
          ))}
        </details>
      )}
      <p>
        <button onClick={onNewPlugin} data-testid="new-plugin">+ New plugin</button>
      </p>
    </div>
  );
}

export default function App() {
  const rf = useReactFlow();
  const [info, setInfo] = useState(null);
  const [plugins, setPlugins] = useState([]);
  const [workflows, setWorkflows] = useState([]);
  const [doc, setDoc] = useState(null); // {file, etag, yaml, model (as loaded), diagnostics}
  const [model, setModel] = useState(null);
  const [base, setBase] = useState(null); // the model as last loaded or saved: dirty = model differs
  const [hist, setHist] = useState({ past: [], future: [], key: null, at: 0 });
  const [positions, setPositions] = useState({});
  const [measured, setMeasured] = useState({});
  const [selected, setSelected] = useState([]);
  const [selectedEdges, setSelectedEdges] = useState([]);
  const [diags, setDiags] = useState([]);
  const [execDefaults, setExecDefaults] = useState({});
  const [banner, setBanner] = useState(null);
  const [toast, setToast] = useState(null);
  const [save, setSave] = useState(null); // {newYaml, conflict, etag, error, then}
  const [pluginDialog, setPluginDialog] = useState(false);
  const [newFile, setNewFile] = useState(null);
  const [runs, setRuns] = useState([]);
  const [live, setLive] = useState(null);
  const [setVar, setSetVar] = useState({ name: '', value: '' });
  const [foreign, setForeign] = useState(null); // a run whose file is not in the workflows directory
  const clipboard = useRef([]);
  const closeStream = useRef(null);
  const validateSeq = useRef(0);

  const flash = (msg) => {
    setToast(msg);
    setTimeout(() => setToast((t) => (t === msg ? null : t)), 3000);
  };
  const fail = (e) => setBanner({ error: true, text: `${e.message}${e.diagnostics && e.diagnostics.length ? ': ' + e.diagnostics.map((d) => `${d.line}:${d.col}: ${d.message}`).join('; ') : ''}` });

  const loadPlugins = useCallback(() => api.plugins().then((r) => setPlugins(r.plugins || [])).catch(fail), []);
  const loadWorkflows = useCallback(() => api.workflows().then((r) => setWorkflows(r.workflows || [])).catch(fail), []);

  // The defaults of a task's execution, from the server's own loader: the
  // YAML writer leaves out what equals them.
  useEffect(() => {
    api.info().then(setInfo).catch(fail);
    loadPlugins();
    loadWorkflows();
    api
      .validate('workflow:\n  name: "d"\n  tasks:\n    - name: "S"\n      plugin: "start"\n', 'defaults.yaml')
      .then((r) => r.model && r.model.tasks && r.model.tasks[0] && setExecDefaults(r.model.tasks[0].execution || {}))
      .catch(() => {});
    api.runs().then((r) => setRuns(r.runs || [])).catch(() => {});
    const es = new EventSource(runsEventsUrl, { withCredentials: true });
    es.addEventListener('run', (ev) => {
      const r = JSON.parse(ev.data);
      setRuns((old) => {
        const i = old.findIndex((x) => x.run_id === r.run_id);
        if (i < 0) return [r, ...old];
        const n = old.slice();
        n[i] = { ...old[i], ...r };
        return n;
      });
    });
    es.addEventListener('snapshot', (ev) => setRuns(JSON.parse(ev.data).runs || []));
    es.addEventListener('gone', (ev) => {
      const g = JSON.parse(ev.data);
      setRuns((old) => old.filter((x) => x.run_id !== g.run_id));
    });
    return () => es.close();
  }, []);

  const relayout = useCallback(
    async (m, fit = true) => {
      const t0 = performance.now();
      const pos = await layoutGraph(toGraph(m));
      window.__flowbusLayoutMs = performance.now() - t0;
      setPositions(Object.fromEntries(pos));
      if (fit) setTimeout(() => rf.fitView({ padding: 0.15, duration: 0, maxZoom: 1 }), 30);
    },
    [rf],
  );

  const openFile = useCallback(
    async (file, keepLive = false) => {
      try {
        const d = await api.workflow(file);
        // Laid out before it is shown: no frame with every node at (0, 0).
        if (d.model) await relayout(d.model, false);
        setForeign(null);
        setDoc(d);
        setBanner(d.model ? null : { error: true, text: `${file} has errors; fix them in the file (the editor opens valid workflows): ${(d.diagnostics || []).map((x) => `${x.line}:${x.col}: ${x.message}`).join('; ')}` });
        setModel(d.model);
        setBase(d.model);
        setHist({ past: [], future: [], key: null, at: 0 });
        setSelected([]);
        setSelectedEdges([]);
        setDiags(d.model ? mapDiagnostics(d.yaml, d.diagnostics) : []);
        if (!keepLive) {
          if (closeStream.current) closeStream.current();
          closeStream.current = null;
          setLive(null);
        }
        if (d.model) setTimeout(() => rf.fitView({ padding: 0.15, duration: 0, maxZoom: 1 }), 30);
        const u = new URL(window.location.href);
        u.searchParams.set('file', file);
        window.history.replaceState(null, '', u);
      } catch (e) {
        fail(e);
      }
    },
    [relayout, rf],
  );

  useEffect(() => {
    const want = new URL(window.location.href).searchParams.get('file');
    if (want && !doc) openFile(want);
  }, []);

  // Every change goes through commit: one undo step, coalesced while the same
  // field is being typed into.
  const commit = useCallback(
    (next, key = null) => {
      // No file (a run drawn from its published workflow): read-only.
      if (!model || !doc || next === model) return;
      setHist((h) => {
        const now = Date.now();
        if (key && h.key === key && now - h.at < 1500) return { ...h, future: [], at: now };
        return { past: [...h.past.slice(-HISTORY), model], future: [], key, at: now };
      });
      setModel(next);
    },
    [model, doc],
  );
  const undo = () => {
    if (!hist.past.length) return;
    setHist({ past: hist.past.slice(0, -1), future: [model, ...hist.future], key: null, at: 0 });
    setModel(hist.past[hist.past.length - 1]);
  };
  const redo = () => {
    if (!hist.future.length) return;
    setHist({ past: [...hist.past, model], future: hist.future.slice(1), key: null, at: 0 });
    setModel(hist.future[0]);
  };

  const toYaml = useCallback(
    async (m) => {
      if (info && info.format_available) {
        try {
          return (await api.format(m, doc && doc.file)).yaml;
        } catch (e) {
          // 422: the model's shape is wrong (a type, a key) and no text could
          // be written; its diagnostics name the model path.
          if (e.status === 422) throw e;
          if (e.status !== 501) throw e;
        }
      }
      return modelToYaml(m, (doc && doc.yaml) || '', doc && doc.model, execDefaults);
    },
    [info, doc, execDefaults],
  );

  // Validation as you type: the YAML the save would write, checked by the
  // server's loader; the newest answer wins.
  useEffect(() => {
    if (!model || !doc || model === base) return undefined;
    const seq = ++validateSeq.current;
    const t = setTimeout(async () => {
      try {
        const y = await toYaml(model);
        const r = await api.validate(y, doc.file);
        if (seq === validateSeq.current) setDiags(mapDiagnostics(y, r.diagnostics, model));
      } catch (e) {
        if (seq !== validateSeq.current) return;
        if (e.diagnostics && e.diagnostics.length) setDiags(mapDiagnostics('', e.diagnostics, model));
        else setDiags([{ severity: 'error', message: e.message, task: null, field: null }]);
      }
    }, 200);
    return () => clearTimeout(t);
  }, [model, base, doc, toYaml]);

  const dirty = model && base && JSON.stringify(model) !== JSON.stringify(base);
  const errors = diags.filter((d) => d.severity === 'error');

  // ---- editing ------------------------------------------------------------
  const addPlugin = useCallback(
    (name, at) => {
      const p = plugins.find((x) => x.name === name);
      if (!p || !model) return;
      const t = newTask(model, p);
      let pos = at;
      if (!pos) {
        const el = document.querySelector('.canvas');
        const r = el ? el.getBoundingClientRect() : { left: 0, top: 0, width: 800, height: 600 };
        pos = rf.screenToFlowPosition({ x: r.left + r.width / 2, y: r.top + r.height / 2 });
        pos = { x: pos.x - NODE_WIDTH / 2 + (model.tasks.length % 5) * 20, y: pos.y - 30 + (model.tasks.length % 5) * 20 };
      }
      setPositions((ps) => ({ ...ps, [t.name]: pos }));
      commit(addTask(model, t));
      setSelected([t.name]);
      setSelectedEdges([]);
    },
    [plugins, model, rf, commit],
  );

  const onDrop = (e) => {
    e.preventDefault();
    const name = e.dataTransfer.getData('application/flowbus-plugin');
    if (!name) return;
    const p = rf.screenToFlowPosition({ x: e.clientX, y: e.clientY });
    addPlugin(name, { x: p.x - NODE_WIDTH / 2, y: p.y - 20 });
  };

  const onConnect = useCallback((c) => model && commit(connect(model, c)), [model, commit]);

  const onNodesChange = useCallback((changes) => {
    const pos = {}, dims = {};
    let sel = null;
    for (const c of changes) {
      if (c.type === 'position' && c.position) pos[c.id] = c.position;
      else if (c.type === 'dimensions' && c.dimensions) dims[c.id] = c.dimensions;
      else if (c.type === 'select') {
        sel = sel || {};
        sel[c.id] = c.selected;
      }
    }
    if (Object.keys(pos).length) setPositions((p) => ({ ...p, ...pos }));
    if (Object.keys(dims).length) setMeasured((m) => ({ ...m, ...dims }));
    if (sel)
      setSelected((s) => {
        const n = new Set(s);
        for (const [id, on] of Object.entries(sel)) on ? n.add(id) : n.delete(id);
        return [...n];
      });
  }, []);
  const onEdgesChange = useCallback((changes) => {
    const sel = changes.filter((c) => c.type === 'select');
    if (sel.length)
      setSelectedEdges((s) => {
        const n = new Set(s);
        for (const c of sel) c.selected ? n.add(c.id) : n.delete(c.id);
        return [...n];
      });
  }, []);

  const graph = useMemo(() => (model ? toGraph(model) : { nodes: [], edges: [] }), [model]);

  const deleteSelection = () => {
    if (!model) return;
    let m = model;
    const edgeObjs = graph.edges.filter((e) => selectedEdges.includes(e.id) && !selected.includes(e.target));
    for (const e of edgeObjs) m = deleteEdge(m, e);
    if (selected.length) m = deleteTasks(m, selected);
    commit(m);
    setSelected([]);
    setSelectedEdges([]);
  };
  const copy = () => {
    clipboard.current = model.tasks.filter((t) => selected.includes(t.name)).map((t) => JSON.parse(JSON.stringify(t)));
    if (clipboard.current.length) flash(`copied ${clipboard.current.length} task(s)`);
  };
  const paste = () => {
    if (!clipboard.current.length || !model) return;
    const { model: m, names } = pasteTasks(model, clipboard.current);
    const ps = {};
    clipboard.current.forEach((t, i) => {
      const p = positions[t.name] || { x: 0, y: 0 };
      ps[names[i]] = { x: p.x + 40, y: p.y + 40 };
    });
    setPositions((p) => ({ ...p, ...ps }));
    commit(m);
    setSelected(names);
  };

  const changeTask = (name, patch, key) => commit(updateTask(model, name, patch), key);
  const rename = (from, to) => {
    setPositions((p) => ({ ...p, [to]: p[from] }));
    setSelected([to]);
    commit(renameTask(model, from, to), `rename:${from}`);
  };

  // ---- save ---------------------------------------------------------------
  const openSave = async (then = null) => {
    if (!model || !doc) return;
    try {
      const y = await toYaml(model);
      setSave({ newYaml: y, conflict: false, etag: doc.etag, error: null, then });
    } catch (e) {
      fail(e);
    }
  };
  const writeSave = async (etag) => {
    try {
      const r = await api.save(doc.file, save.newYaml, etag);
      const then = save.then;
      setSave(null);
      flash(r.written ? `saved ${doc.file}` : `${doc.file} unchanged`);
      const d = await api.workflow(doc.file);
      setDoc(d);
      setModel(d.model);
      setBase(d.model);
      setDiags(mapDiagnostics(d.yaml, d.diagnostics));
      loadWorkflows();
      if (then) then();
    } catch (e) {
      if (e.status === 409) setSave((s) => ({ ...s, conflict: true, etag: e.body.etag }));
      else setSave((s) => ({ ...s, error: `${e.message}${e.diagnostics.length ? ': ' + e.diagnostics.map((d) => `${d.line}:${d.col}: ${d.message}`).join('; ') : ''}` }));
    }
  };

  // ---- runs ---------------------------------------------------------------
  const follow = (id) => {
    if (closeStream.current) closeStream.current();
    setLive({ id, run: null, tasks: {}, vars: {}, logs: {}, ended: null });
    closeStream.current = followRun(runEventsUrl(id), id, setLive);
  };
  const startRun = async (mode, saved = false) => {
    if (!doc) return;
    if (dirty && !saved) return openSave(() => startRun(mode, true));
    try {
      const r = await api.start(doc.file, mode);
      follow(r.run_id);
    } catch (e) {
      fail(e);
    }
  };
  const control = async (cmd) => {
    if (!live) return;
    try {
      await api.control(live.id, cmd);
      flash(`${cmd} sent`);
    } catch (e) {
      fail(e);
    }
  };
  const sendSet = async () => {
    if (!live || !setVar.name) return;
    try {
      await api.setVars(live.id, { [setVar.name]: setVar.value });
      flash(`${setVar.name} set`);
    } catch (e) {
      fail(e);
    }
  };
  const openRun = async (r) => {
    // The list's entries may not name the file; the run's own record does.
    let file = r.file;
    if (!file) {
      try {
        file = (await api.run(r.run_id)).file;
      } catch (e) {
        file = '';
      }
    }
    const f = basename(file);
    if (f && workflows.some((w) => w.file === f)) {
      setForeign(null);
      if (!doc || doc.file !== f) await openFile(f, true);
    } else {
      // Drawn from the workflow its coordinator published (the stream's
      // `workflow` event), read-only: there is no file here to save it to.
      setForeign(r.run_id);
      setDoc(null);
      setModel(null);
      setBase(null);
      setDiags([]);
      setBanner({ text: `run ${r.run_id}: its workflow ${file || ''} is not in the workflows directory; shown read-only` });
    }
    follow(r.run_id);
  };
  useEffect(() => {
    if (!foreign || !live || live.id !== foreign || !live.workflow || model) return;
    setModel(live.workflow);
    setBase(live.workflow);
    relayout(live.workflow);
  }, [foreign, live, model, relayout]);
  const runState = live && live.run ? live.run.state : null;
  const runActive = live && (!live.run || !['done', 'failed', 'stopped', 'lost', 'timeout'].includes(runState)) && !live.ended;

  // Leaving the page with unsaved edits asks first, as any editor does.
  useEffect(() => {
    if (!dirty) return undefined;
    const warn = (e) => {
      e.preventDefault();
      e.returnValue = '';
    };
    window.addEventListener('beforeunload', warn);
    return () => window.removeEventListener('beforeunload', warn);
  }, [dirty]);

  // ---- keyboard -------------------------------------------------------------
  useEffect(() => {
    const onKey = (e) => {
      const tag = (e.target && e.target.tagName) || '';
      const typing = ['INPUT', 'TEXTAREA', 'SELECT'].includes(tag);
      const mod = e.ctrlKey || e.metaKey;
      if (mod && e.key.toLowerCase() === 's') {
        e.preventDefault();
        openSave();
        return;
      }
      if (typing || save || pluginDialog) return;
      if (mod && e.key.toLowerCase() === 'z' && !e.shiftKey) { e.preventDefault(); undo(); }
      else if (mod && (e.key.toLowerCase() === 'y' || (e.key.toLowerCase() === 'z' && e.shiftKey))) { e.preventDefault(); redo(); }
      else if (mod && e.key.toLowerCase() === 'c') copy();
      else if (mod && e.key.toLowerCase() === 'v') paste();
      else if (mod && e.key.toLowerCase() === 'a') { e.preventDefault(); setSelected(model ? model.tasks.map((t) => t.name) : []); }
      else if (e.key === 'Delete' || e.key === 'Backspace') deleteSelection();
      else if (e.key === 'f' && !mod) rf.fitView({ padding: 0.15, maxZoom: 1 });
      else if (e.key === 'Escape') { setSelected([]); setSelectedEdges([]); }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  });

  // ---- what the canvas draws -------------------------------------------------
  const byTask = useMemo(() => {
    const m = {};
    for (const d of diags) if (d.task) (m[d.task] = m[d.task] || []).push(d);
    return m;
  }, [diags]);
  const pluginOf = useMemo(() => Object.fromEntries(plugins.map((p) => [p.name, p])), [plugins]);
  // A node's data object is reused while nothing in it changed, so that
  // React Flow's memoised nodes do not re-render: with 1,000 tasks, each batch
  // of measurements (and each live event) would otherwise redraw them all.
  const dataCache = useRef(new Map());
  const nodes = useMemo(() => {
    const cache = dataCache.current;
    const next = new Map();
    const sel = new Set(selected);
    const out = graph.nodes.map((n) => {
      const d = { ...n.data, live: live ? live.tasks[n.id] : undefined, errors: byTask[n.id], plugin: pluginOf[n.data.task.plugin] };
      const old = cache.get(n.id);
      const same =
        old && old.task === d.task && old.split === d.split && old.join === d.join && old.live === d.live &&
        old.errors === d.errors && old.plugin === d.plugin && JSON.stringify(old.external) === JSON.stringify(d.external);
      const data = same ? old : d;
      next.set(n.id, data);
      return { ...n, position: positions[n.id] || { x: 0, y: 0 }, selected: sel.has(n.id), measured: measured[n.id], data };
    });
    dataCache.current = next;
    return out;
  }, [graph, positions, selected, measured, live, byTask, pluginOf]);
  const edges = useMemo(
    () =>
      graph.edges.map((e) => {
        const v = e.data.variable;
        const val = live && v && live.vars[v] !== undefined ? live.vars[v] : undefined;
        return {
          ...e,
          selected: selectedEdges.includes(e.id),
          className: `${e.data.kind}${val !== undefined ? ' edge-value' : ''}`,
          label: e.data.kind === 'var' ? (val !== undefined ? `${v} = ${clip(String(val), 24)}` : v) : undefined,
          animated: !!(live && live.tasks[e.source] && live.tasks[e.source].state === 'running'),
          style: e.data.kind === 'dep' ? { strokeDasharray: '6 4' } : undefined,
        };
      }),
    [graph, selectedEdges, live],
  );

  const selTask = model && selected.length === 1 ? taskOf(model, selected[0]) : null;
  const createWorkflow = async () => {
    let f = newFile.trim();
    if (!/\.ya?ml$/.test(f)) f += '.yaml';
    try {
      await api.create(f);
      setNewFile(null);
      await loadWorkflows();
      await openFile(f);
    } catch (e) {
      fail(e);
    }
  };

  return (
    <div className="app">
      <div className="topbar">
        <span className="brand">flowbus</span>
        <select data-testid="wf-select" value={doc ? doc.file : ''} onChange={(e) => e.target.value && (!dirty || window.confirm(`Discard the unsaved changes to ${doc.file}?`)) && openFile(e.target.value)}>
          <option value="">open a workflow…</option>
          {workflows.map((w) => (
            <option key={w.file} value={w.file}>
              {w.file}{w.valid ? '' : ' (invalid)'}
            </option>
          ))}
        </select>
        {newFile === null ? (
          <button onClick={() => setNewFile('')} data-testid="new-workflow">New</button>
        ) : (
          <>
            <input autoFocus placeholder="file.yaml" value={newFile} data-testid="new-workflow-name" onChange={(e) => setNewFile(e.target.value)} onKeyDown={(e) => e.key === 'Enter' && createWorkflow()} />
            <button onClick={createWorkflow} data-testid="new-workflow-create">Create</button>
          </>
        )}
        <button onClick={() => openSave()} disabled={!model || !doc} data-testid="save" title="Ctrl+S">Save{dirty ? ' *' : ''}</button>
        <button onClick={undo} disabled={!hist.past.length} data-testid="undo" title="Ctrl+Z">Undo</button>
        <button onClick={redo} disabled={!hist.future.length} data-testid="redo" title="Ctrl+Shift+Z">Redo</button>
        <button onClick={() => model && relayout(model)} disabled={!model} data-testid="relayout">Layout</button>
        <span className="sep" />
        <button onClick={() => startRun('oneshot')} disabled={!doc || !model} data-testid="run">▶ Run</button>
        <button onClick={() => startRun('reactive')} disabled={!doc || !model} data-testid="run-reactive">▶ Reactive</button>
        <button onClick={() => control('pause')} disabled={!runActive} data-testid="pause">Pause</button>
        <button onClick={() => control('resume')} disabled={!runActive} data-testid="resume">Resume</button>
        <button onClick={() => control('stop')} disabled={!runActive} data-testid="stop">■ Stop</button>
        <datalist id="run-vars">
          {model && [...new Set(model.tasks.flatMap((t) => [...(t.inputs || []), ...(t.outputs || [])]))].map((v) => <option key={v} value={v} />)}
        </datalist>
        <input style={{ width: 90 }} placeholder="VAR" list="run-vars" value={setVar.name} onChange={(e) => setSetVar({ ...setVar, name: e.target.value })} data-testid="set-name" />
        <input style={{ width: 90 }} placeholder="value" value={setVar.value} onChange={(e) => setSetVar({ ...setVar, value: e.target.value })} data-testid="set-value" />
        <button onClick={sendSet} disabled={!runActive || !setVar.name} data-testid="set-send">Set</button>
        <span className="status">
          {dirty && <span className="dirty">unsaved · </span>}
          {model && (errors.length ? <span data-testid="valid-state">{errors.length} error(s)</span> : <span data-testid="valid-state">valid</span>)}
          {live && (
            <span data-testid="run-state">
              {' · '}run {live.id}: {runState || 'starting'}
              {live.run && live.run.paused ? ' (paused)' : ''}
            </span>
          )}
        </span>
      </div>
      <div className="main">
        <Palette plugins={plugins} onAdd={(n) => addPlugin(n)} onNewPlugin={() => setPluginDialog(true)} />
        <div className="canvas" onDrop={onDrop} onDragOver={(e) => { e.preventDefault(); e.dataTransfer.dropEffect = 'copy'; }} data-testid="canvas">
          {banner && (
            <div className={`banner${banner.error ? ' error' : ''}`} data-testid="banner" style={{ position: 'absolute', zIndex: 5, left: 0, right: 0 }}>
              {banner.text} <button onClick={() => setBanner(null)}>✕</button>
            </div>
          )}
          <ReactFlow
            nodes={nodes}
            edges={edges}
            nodeTypes={nodeTypes}
            onNodesChange={onNodesChange}
            onEdgesChange={onEdgesChange}
            onConnect={onConnect}
            deleteKeyCode={null}
            multiSelectionKeyCode={['Control', 'Meta']}
            minZoom={0.05}
            maxZoom={2}
            connectionRadius={30}
            onPaneClick={() => { setSelected([]); setSelectedEdges([]); }}
            proOptions={{ hideAttribution: true }}
          >
            <Background gap={16} size={1} />
            <Controls />
            <MiniMap pannable zoomable style={{ width: 150, height: 90 }} nodeColor={(n) => MINIMAP_COLOURS[(n.data.live && n.data.live.state) || ''] || '#cbd5e1'} />
          </ReactFlow>
          {!model && !banner && <div style={{ position: 'absolute', top: '40%', width: '100%', textAlign: 'center', color: '#6b7280' }}>Open a workflow, or make a new one.</div>}
        </div>
        <div className="panel">
          {model && selTask && <TaskPanel key={selTask.name} task={selTask} plugin={pluginOf[selTask.plugin]} plugins={plugins} diags={byTask[selTask.name] || []} execDefaults={execDefaults} onChange={(patch) => changeTask(selTask.name, patch, `task:${selTask.name}:${Object.keys(patch).join(',')}`)} onRename={(to) => rename(selTask.name, to)} />}
          {model && !selTask && <WorkflowPanel model={model} diags={diags} onChange={(patch) => commit({ ...model, ...patch }, `wf:${Object.keys(patch).join(',')}`)} />}
          {model && selected.length > 1 && <p className="hint">{selected.length} tasks selected: Delete removes them, Ctrl+C copies them.</p>}
        </div>
      </div>
      <div className="dock">
        <RunsList runs={runs} current={live && live.id} onOpen={openRun} />
        <LogPane live={live} task={selected.length === 1 ? selected[0] : null} />
      </div>
      {save && doc && (
        <SaveDialog
          file={doc.file}
          oldYaml={doc.yaml}
          newYaml={save.newYaml}
          conflict={save.conflict}
          error={save.error}
          onWrite={() => writeSave(doc.etag)}
          onOverwrite={() => writeSave(save.etag)}
          onReload={() => { setSave(null); openFile(doc.file); }}
          onCancel={() => setSave(null)}
        />
      )}
      {pluginDialog && (
        <NewPluginDialog
          onCancel={() => setPluginDialog(false)}
          onCreate={async (form) => {
            const r = await api.newPlugin(form);
            setPluginDialog(false);
            await loadPlugins();
            flash(r.built === false && r.build_command ? `plugin ${r.name} written; build it with: ${r.build_command}` : `plugin ${r.name} created`);
          }}
        />
      )}
      {toast && <div className="toast" data-testid="toast">{toast}</div>}
    </div>
  );
}
