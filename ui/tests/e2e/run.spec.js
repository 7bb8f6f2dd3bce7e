// run.spec.js - runs from the editor against a real `flowbus ui` and its
// private broker: every node reaches its final colour (from the SSE stream),
// the log pane and wire values; a reactive flow fed with Set and stopped;
// a plugin made with the "New plugin" form, used in a workflow and run.
import fs from 'node:fs';
import path from 'node:path';
import { test, expect, openWorkflow, dropPlugin, wire, flowbus, brokerEnv } from './fixture.js';

test.describe('live', () => {
  test.use({ workflows: ['live.yaml', 'reactive.yaml', 'edit.yaml'] });

  test('a run shows every task in its final colour, with reasons, values and logs', async ({ editor: page }) => {
    await openWorkflow(page, 'live.yaml', ['START', 'A', 'B', 'BAD', 'AFTER', 'END']);
    await page.getByTestId('run').click();
    await expect(page.getByTestId('run-state')).toContainText('run ');
    for (const t of ['START', 'A', 'B', 'END']) {
      await expect(page.getByTestId(`node-${t}`)).toHaveAttribute('data-state', 'done');
      await expect(page.getByTestId(`node-${t}`)).toHaveClass(/st-done/);
    }
    await expect(page.getByTestId('node-BAD')).toHaveAttribute('data-state', 'failed');
    await expect(page.getByTestId('node-BAD')).toHaveClass(/st-bad/);
    await expect(page.getByTestId('node-BAD')).toHaveAttribute('title', /failed/);
    await expect(page.getByTestId('node-AFTER')).toHaveAttribute('data-state', 'skipped');
    await expect(page.getByTestId('node-AFTER')).toHaveClass(/st-skipped/);
    await expect(page.getByTestId('node-AFTER')).toHaveAttribute('title', /skipped \(.*BAD_OUT/);
    // The value of a variable on its wire, and the task's log.
    await expect(page.locator('.react-flow__edge-text', { hasText: 'A_OUT = alpha' })).toBeVisible();
    await page.getByTestId('node-A').click();
    await expect(page.getByTestId('log-A')).toContainText('working on A');
    // The runs list has it, finished.
    await expect(page.getByTestId('runs').locator('tr', { hasText: 'Live colours' })).toContainText(/failed|done/);
  });

  test('a reactive flow is fed with Set and stopped from the editor', async ({ editor: page }) => {
    await openWorkflow(page, 'reactive.yaml', ['ECHO', 'SHOW']);
    await page.getByTestId('run-reactive').click();
    await expect(page.getByTestId('node-ECHO')).toHaveAttribute('data-state', 'waiting');
    await page.getByTestId('set-name').fill('TEXT');
    await page.getByTestId('set-value').fill('hello');
    await page.getByTestId('set-send').click();
    await expect(page.locator('.react-flow__edge-text', { hasText: 'OUT = got hello' })).toBeVisible();
    await page.getByTestId('pause').click();
    await expect(page.getByTestId('run-state')).toContainText('(paused)');
    await page.getByTestId('resume').click();
    await expect(page.getByTestId('run-state')).not.toContainText('(paused)');
    await page.getByTestId('stop').click();
    await expect(page.getByTestId('run-state')).toContainText(/stopped|done/);
    await expect(page.getByTestId('stop')).toBeDisabled();
  });
});

test.describe('terminal', () => {
  test.use({ workflows: ['live.yaml'] });

  test('a run started with flowbus run in a terminal shows up in the runs list and on its canvas', async ({ editor: page, server }) => {
    const env = brokerEnv(server);
    const r = flowbus(server, ['run', path.join(server.workflowsDir, 'live.yaml'), '--broker', env.FLOWBUS_BROKER, '--run-id', 'from-terminal'], { env });
    expect(r.code, r.out).toBe(1); // BAD fails
    const row = page.getByTestId('run-from-terminal');
    await expect(row).toContainText('failed');
    await row.click();
    // Its workflow is opened from the workflows directory, editable.
    await expect(page.getByTestId('wf-select')).toHaveValue('live.yaml');
    await expect(page.getByTestId('save')).toBeEnabled();
    await expect(page.getByTestId('node-A')).toHaveAttribute('data-state', 'done');
    await expect(page.getByTestId('node-BAD')).toHaveAttribute('data-state', 'failed');
    await expect(page.getByTestId('node-AFTER')).toHaveAttribute('data-state', 'skipped');
    await expect(page.getByTestId('run-state')).toContainText('from-terminal');
  });

  test('a run of a file outside the workflows directory is drawn read-only from its published workflow', async ({ editor: page, server }) => {
    const env = brokerEnv(server);
    const elsewhere = path.join(server.dir, 'elsewhere.yaml');
    fs.copyFileSync(path.join(server.workflowsDir, 'live.yaml'), elsewhere);
    const r = flowbus(server, ['run', elsewhere, '--broker', env.FLOWBUS_BROKER, '--run-id', 'foreign-run'], { env });
    expect(r.code, r.out).toBe(1);
    await page.getByTestId('run-foreign-run').click();
    await expect(page.getByTestId('banner')).toContainText('read-only');
    await expect(page.getByTestId('node-END')).toHaveAttribute('data-state', 'done');
    await expect(page.getByTestId('node-BAD')).toHaveAttribute('data-state', 'failed');
    await expect(page.getByTestId('save')).toBeDisabled();
  });
});

test.describe('plugins', () => {
  test.use({ workflows: ['edit.yaml'] });

  test('a plugin made with the form is in the palette at once and runs in a workflow', async ({ editor: page }) => {
    await page.getByTestId('new-plugin').click();
    await page.getByTestId('np-name').fill('greet');
    await page.getByTestId('np-language').selectOption('shell');
    await page.getByTestId('np-description').fill('says hello');
    await page.getByTestId('np-inputs').fill('DONE');
    await page.getByTestId('np-outputs').fill('GREETING');
    await page.getByTestId('np-create').click();
    await expect(page.getByTestId('plugin-dialog')).toHaveCount(0);
    await expect(page.getByTestId('plugin-greet')).toBeVisible();

    await openWorkflow(page, 'edit.yaml', ['START', 'A', 'END']);
    const box = await page.locator('.react-flow__pane').boundingBox();
    await dropPlugin(page, 'greet', box.width * 0.5, box.height * 0.8);
    await expect(page.getByTestId('node-GREET')).toBeVisible();
    // Its default input DONE is A's output already; its output goes to END.
    await expect(page.getByTestId('in-GREET-DONE')).toBeAttached();
    await wire(page, 'out-GREET-GREETING', 'in-END-+');
    await expect(page.getByTestId('in-END-GREETING')).toBeAttached();
    await expect(page.getByTestId('valid-state')).toHaveText('valid');
    await page.getByTestId('run').click(); // unsaved: the save dialog first
    await page.getByTestId('save-write').click();
    await expect(page.getByTestId('node-GREET')).toHaveAttribute('data-state', 'done');
    await expect(page.getByTestId('node-END')).toHaveAttribute('data-state', 'done');
  });
});
