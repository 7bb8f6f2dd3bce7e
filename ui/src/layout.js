// layout.js - automatic layout with elkjs's layered algorithm, left to right:
// a task sits right of every task it waits on, and tasks that do not depend on
// each other (parallel branches) share a layer, one above the other. Node sizes
// follow the number of ports, so ELK leaves room for them. In the browser ELK
// runs in a Web Worker (its own thread: the page stays responsive while a
// large workflow is laid out, and the 1.5 MB of ELK loads only when first
// needed); under Node (the unit tests) it runs in-process.
import ELK from 'elkjs/lib/elk-api.js';
import elkWorkerUrl from 'elkjs/lib/elk-worker.min.js?url';

export const NODE_WIDTH = 200;
const PORT_ROW = 20;

export function nodeHeight(task) {
  const rows = Math.max((task.inputs || []).length + 1, (task.outputs || []).length + 1, 1);
  return 46 + rows * PORT_ROW;
}

let elk = null;

async function getElk() {
  if (elk) return elk;
  if (typeof Worker !== 'undefined') elk = new ELK({ workerUrl: elkWorkerUrl });
  else {
    // Not bundled: the browser always has Worker.
    const inProcess = 'elkjs/lib/elk.bundled.js';
    elk = new (await import(/* @vite-ignore */ inProcess)).default();
  }
  return elk;
}

/*
 * Positions for every task of a graph ({nodes, edges} from toGraph), as a Map
 * from task name to {x, y}. Edges are de-duplicated per pair of tasks: ELK
 * only needs to know that one task comes after the other.
 */
export async function layoutGraph(graph) {
  await getElk();
  // ELK's thoroughness (crossing-minimisation sweeps, default 7) costs most of
  // the time on big graphs; past 300 tasks one sweep halves it and the
  // picture stays readable.
  const big = graph.nodes.length > 300;
  const seen = new Set();
  const edges = [];
  for (const e of graph.edges) {
    const k = `${e.source}\u0000${e.target}`;
    if (seen.has(k) || e.source === e.target) continue;
    seen.add(k);
    edges.push({ id: `e${edges.length}`, sources: [e.source], targets: [e.target] });
  }
  const res = await elk.layout({
    id: 'root',
    layoutOptions: {
      'elk.algorithm': 'layered',
      'elk.direction': 'RIGHT',
      'elk.layered.spacing.nodeNodeBetweenLayers': '70',
      'elk.spacing.nodeNode': '30',
      'elk.layered.nodePlacement.strategy': 'BRANDES_KOEPF',
      'elk.layered.crossingMinimization.strategy': 'LAYER_SWEEP',
      'elk.separateConnectedComponents': 'true',
      'elk.layered.thoroughness': big ? '1' : '7',
    },
    children: graph.nodes.map((n) => ({ id: n.id, width: NODE_WIDTH, height: nodeHeight(n.data.task) })),
    edges,
  });
  const pos = new Map();
  for (const c of res.children || []) pos.set(c.id, { x: c.x || 0, y: c.y || 0 });
  return pos;
}
