// diff.js - a line diff (longest common subsequence) for the "review changes"
// dialog shown before a save writes the file. Workflow files are a few hundred
// lines; past 4,000 x 4,000 lines the common prefix and suffix are trimmed
// first, which is what an edit usually leaves.

/* [{op: ' '|'-'|'+', text, a, b}] where a/b are 1-based line numbers (or null). */
export function lineDiff(oldText, newText) {
  const a = oldText.split('\n');
  const b = newText.split('\n');
  let pre = 0;
  while (pre < a.length && pre < b.length && a[pre] === b[pre]) pre++;
  let suf = 0;
  while (suf < a.length - pre && suf < b.length - pre && a[a.length - 1 - suf] === b[b.length - 1 - suf]) suf++;
  const A = a.slice(pre, a.length - suf);
  const B = b.slice(pre, b.length - suf);
  const n = A.length, m = B.length;
  const out = [];
  for (let i = 0; i < pre; i++) out.push({ op: ' ', text: a[i], a: i + 1, b: i + 1 });
  if (n * m > 16e6) {
    A.forEach((t, i) => out.push({ op: '-', text: t, a: pre + i + 1, b: null }));
    B.forEach((t, j) => out.push({ op: '+', text: t, a: null, b: pre + j + 1 }));
  } else {
    const L = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
    for (let i = n - 1; i >= 0; i--)
      for (let j = m - 1; j >= 0; j--) L[i][j] = A[i] === B[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
    let i = 0, j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && A[i] === B[j]) {
        out.push({ op: ' ', text: A[i], a: pre + i + 1, b: pre + j + 1 });
        i++; j++;
      } else if (j < m && (i === n || L[i][j + 1] > L[i + 1][j])) {
        out.push({ op: '+', text: B[j], a: null, b: pre + j + 1 });
        j++;
      } else {
        out.push({ op: '-', text: A[i], a: pre + i + 1, b: null });
        i++;
      }
    }
  }
  for (let k = suf; k > 0; k--) out.push({ op: ' ', text: a[a.length - k], a: a.length - k + 1, b: b.length - k + 1 });
  return out;
}

/* The changed lines with `context` lines around them; gaps as {op: '…'}. */
export function hunks(diff, context = 3) {
  const keep = new Array(diff.length).fill(false);
  diff.forEach((d, i) => {
    if (d.op !== ' ') for (let k = Math.max(0, i - context); k <= Math.min(diff.length - 1, i + context); k++) keep[k] = true;
  });
  const out = [];
  let gap = false;
  diff.forEach((d, i) => {
    if (keep[i]) {
      out.push(d);
      gap = false;
    } else if (!gap) {
      out.push({ op: '…', text: '' });
      gap = true;
    }
  });
  return out;
}
