// screenshots.spec.js - the pictures of docs/ui.md and the README, taken from
// the real editor: the shipped parallel pipeline being edited, and a live run
// in its final colours. They go to docs/images/ with FLOWBUS_SCREENSHOTS=1
// (then commit them), else to test-results/ (so a normal pass leaves the tree
// clean). The test also checks what the pictures show.
import path from 'node:path';
import { test, expect, openWorkflow, repoRoot } from './fixture.js';

const out = (name) => (process.env.FLOWBUS_SCREENSHOTS === '1' ? path.join(repoRoot, 'docs/images', name) : test.info().outputPath(name));

test.use({ workflows: ['workflows/parallel-pipeline.yaml', 'live.yaml'] });

test('the editor and a live run, as the docs show them', async ({ editor: page }) => {
  await openWorkflow(page, 'parallel-pipeline.yaml', ['START', 'EXTRACT', 'TRANSFORM', 'BACKUP', 'LOAD', 'END']);
  await expect(page.getByTestId('node-EXTRACT').locator('.badge-split')).toHaveText('split 2');
  await expect(page.getByTestId('node-LOAD').locator('.badge-join')).toHaveText('join 2');
  await page.getByTestId('node-LOAD').click();
  await expect(page.getByTestId('field-name')).toHaveValue('LOAD');
  await page.screenshot({ path: out('editor.png') });

  await page.getByTestId('run').click();
  for (const t of ['START', 'EXTRACT', 'TRANSFORM', 'BACKUP', 'LOAD', 'END']) await expect(page.getByTestId(`node-${t}`)).toHaveAttribute('data-state', 'done');
  await openWorkflow(page, 'live.yaml', ['START', 'A', 'B', 'BAD', 'AFTER', 'END']);
  await page.getByTestId('run').click();
  await expect(page.getByTestId('node-AFTER')).toHaveAttribute('data-state', 'skipped');
  await expect(page.getByTestId('node-END')).toHaveAttribute('data-state', 'done');
  await expect(page.getByTestId('runs').locator('tbody tr')).toHaveCount(2);
  await page.getByTestId('node-A').click();
  await expect(page.getByTestId('log-A')).toContainText('working on A');
  await page.screenshot({ path: out('live-run.png') });
});
