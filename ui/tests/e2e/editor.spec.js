// editor.spec.js - the editor in headless Chromium against a real `flowbus ui`
// (fixture.js): building a split/join workflow by mouse and saving it (the
// file then validates and runs with the flowbus CLI), diagnostics on the field
// and the node as you type, a save refused because the file changed on disk.
import fs from 'node:fs';
import path from 'node:path';
import { test, expect, openWorkflow, dropPlugin, wire, flowbus } from './fixture.js';

test.describe('building', () => {
  test.use({ workflows: ['edit.yaml'] });

  test('START -> two parallel cmd tasks -> a join -> END, by drag and drop and wires; saved, validated and run', async ({ editor: page, server }) => {
    // A new file: the server gives it START -> END.
    await page.getByTestId('new-workflow').click();
    await page.getByTestId('new-workflow-name').fill('mine.yaml');
    await page.getByTestId('new-workflow-create').click();
    await expect(page.getByTestId('node-START')).toBeVisible();
    await expect(page.getByTestId('node-END')).toBeVisible();

    // Three cmd tasks from the palette, dropped on the canvas.
    const box = await page.locator('.react-flow__pane').boundingBox();
    await dropPlugin(page, 'cmd', box.width * 0.35, box.height * 0.2);
    await expect(page.getByTestId('node-CMD')).toBeVisible();
    await dropPlugin(page, 'cmd', box.width * 0.35, box.height * 0.65);
    await expect(page.getByTestId('node-CMD_2')).toBeVisible();
    await dropPlugin(page, 'cmd', box.width * 0.6, box.height * 0.42);
    await expect(page.getByTestId('node-CMD_3')).toBeVisible();

    // Wires: START's TRUE to both branches (a split), both branches into the join.
    await wire(page, 'out-START-TRUE', 'in-CMD-+');
    await expect(page.getByTestId('in-CMD-TRUE')).toBeAttached();
    await wire(page, 'out-START-TRUE', 'in-CMD_2-+');
    await expect(page.getByTestId('in-CMD_2-TRUE')).toBeAttached();
    await wire(page, 'out-CMD-+', 'in-CMD_3-+');
    await expect(page.getByTestId('in-CMD_3-CMD_OUT')).toBeAttached();
    await wire(page, 'out-CMD_2-+', 'in-CMD_3-+');
    await expect(page.getByTestId('in-CMD_3-CMD_2_OUT')).toBeAttached();
    // A wire onto END's existing input TRUE renames it to the join's output.
    await wire(page, 'out-CMD_3-+', 'in-END-TRUE');
    await expect(page.getByTestId('in-END-CMD_3_OUT')).toBeAttached();
    await expect(page.getByTestId('in-END-TRUE')).toHaveCount(0);

    // The split and the join are marked.
    await expect(page.getByTestId('node-START').locator('.badge-split')).toHaveText('split 2');
    await expect(page.getByTestId('node-CMD_3').locator('.badge-join')).toHaveText('join 2');

    // Commands through the params form generated from cmd's --describe.
    const command = async (task, text) => {
      await page.getByTestId(`node-${task}`).click();
      await expect(page.getByTestId('field-name')).toHaveValue(task);
      await page.getByTestId('param-command').fill(text);
    };
    await command('CMD', 'echo CMD_OUT=left');
    await command('CMD_2', 'echo CMD_2_OUT=right');
    await command('CMD_3', 'echo "CMD_3_OUT=$CMD_OUT+$CMD_2_OUT"');
    await expect(page.getByTestId('valid-state')).toHaveText('valid');

    // Save: the diff first, then the write.
    await page.getByTestId('save').click();
    await expect(page.getByTestId('diff')).toContainText('CMD_3_OUT');
    await page.getByTestId('save-write').click();
    await expect(page.getByTestId('save-dialog')).toHaveCount(0);
    await expect(page.getByTestId('toast')).toContainText('saved mine.yaml');

    const file = path.join(server.workflowsDir, 'mine.yaml');
    const text = fs.readFileSync(file, 'utf8');
    expect(text).toContain('CMD_3_OUT');
    const v = flowbus(server, ['validate', file]);
    expect(v.code, v.out).toBe(0);
    const r = flowbus(server, ['run', file]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain('left+right');
    // Written in the canonical layout, as flowbus fmt writes it by hand.
    const f = flowbus(server, ['fmt', '--check', file]);
    expect(f.code, f.out + text).toBe(0);
  });

  test('the palette: search, double-click to add', async ({ editor: page }) => {
    await openWorkflow(page, 'edit.yaml', ['START', 'A', 'END']);
    await page.getByTestId('palette-search').fill('upper');
    await expect(page.getByTestId('plugin-shout')).toBeVisible(); // "Upper-cases a text…"
    await expect(page.getByTestId('plugin-cmd')).toHaveCount(0);
    await page.getByTestId('palette-search').fill('');
    await page.getByTestId('plugin-df').dblclick();
    await expect(page.getByTestId('node-DF')).toBeVisible();
    await expect(page.getByTestId('field-name')).toHaveValue('DF');
    await expect(page.getByTestId('param-path')).toHaveAttribute('placeholder', '/');
    // The keyboard way: a focused palette item adds its task on Enter.
    await page.getByTestId('plugin-cmd').focus();
    await page.keyboard.press('Enter');
    await expect(page.getByTestId('node-CMD')).toBeVisible();
    await expect(page.getByTestId('field-name')).toHaveValue('CMD');
  });

  test('undo, redo, copy/paste and delete by keyboard', async ({ editor: page }) => {
    await openWorkflow(page, 'edit.yaml', ['START', 'A', 'END']);
    await page.getByTestId('node-A').click();
    await page.keyboard.press('Control+c');
    await page.locator('.react-flow__pane').click({ position: { x: 30, y: 30 } });
    await page.keyboard.press('Control+v');
    await expect(page.getByTestId('node-A_2')).toBeVisible();
    await page.keyboard.press('Delete');
    await expect(page.getByTestId('node-A_2')).toHaveCount(0);
    await page.keyboard.press('Control+z');
    await expect(page.getByTestId('node-A_2')).toBeVisible();
    await page.keyboard.press('Control+z');
    await expect(page.getByTestId('node-A_2')).toHaveCount(0);
    await page.keyboard.press('Control+Shift+z');
    await expect(page.getByTestId('node-A_2')).toBeVisible();
    // A depends_on wire between the dependency ports is drawn dashed.
    await wire(page, 'dep-out-A_2', 'dep-in-END');
    await expect(page.locator('.react-flow__edge.dep')).toHaveCount(1);
    await page.getByTestId('node-END').click();
    await expect(page.getByTestId('field-depends_on')).toHaveValue('A_2');
    // Multi-select: Ctrl+click adds to the selection; Delete removes all of it.
    // (the paste overlaps A, 40 px right and below, and a selected node is
    // raised: each is clicked at a corner the other does not cover)
    await page.getByTestId('node-A').click({ position: { x: 6, y: 6 } });
    const a2 = await page.getByTestId('node-A_2').boundingBox();
    await page.getByTestId('node-A_2').click({ modifiers: ['Control'], position: { x: a2.width - 6, y: a2.height - 6 } });
    await expect(page.getByText('2 tasks selected')).toBeVisible();
    await page.keyboard.press('Delete');
    await expect(page.getByTestId('node-A')).toHaveCount(0);
    await expect(page.getByTestId('node-A_2')).toHaveCount(0);
    await expect(page.getByTestId('node-END')).toBeVisible();
  });
});

test.describe('validation', () => {
  test.use({ workflows: ['edit.yaml'] });

  test('params through the raw YAML view are saved as typed', async ({ editor: page, server }) => {
    await openWorkflow(page, 'edit.yaml', ['START', 'A', 'END']);
    await page.getByTestId('node-A').click();
    await page.getByTestId('params-raw-toggle').click();
    await expect(page.getByTestId('params-raw')).toHaveValue(/command: echo DONE=1/);
    await page.getByTestId('params-raw').fill('command: echo DONE=9\n');
    await expect(page.getByTestId('valid-state')).toHaveText('valid');
    await page.getByTestId('save').click();
    await expect(page.getByTestId('diff')).toContainText('DONE=9');
    await page.getByTestId('save-write').click();
    await expect(page.getByTestId('save-dialog')).toHaveCount(0);
    expect(fs.readFileSync(path.join(server.workflowsDir, 'edit.yaml'), 'utf8')).toContain('echo DONE=9');
  });


  test('an error is shown on its field and on its node as you type, and goes away when fixed', async ({ editor: page }) => {
    await openWorkflow(page, 'edit.yaml', ['START', 'A', 'END']);
    await page.getByTestId('node-A').click();
    await page.getByTestId('field-inputs').fill('TRUE, NOPE');
    await expect(page.getByTestId('field-inputs-diags')).toContainText("'NOPE'");
    await expect(page.getByTestId('field-inputs')).toHaveClass(/invalid/);
    await expect(page.getByTestId('node-error-A')).toBeVisible();
    await expect(page.getByTestId('node-A')).toHaveClass(/has-error/);
    await expect(page.getByTestId('valid-state')).toContainText('error');

    await page.getByTestId('exec-timeout').fill('soon');
    await expect(page.getByTestId('exec-timeout-diags')).toContainText('timeout');

    await page.getByTestId('exec-timeout').fill('');
    await page.getByTestId('field-inputs').fill('TRUE');
    await expect(page.getByTestId('valid-state')).toHaveText('valid');
    await expect(page.getByTestId('node-error-A')).toHaveCount(0);
  });

  test('a save over a file changed on disk says so', async ({ editor: page, server }) => {
    await openWorkflow(page, 'edit.yaml', ['START', 'A', 'END']);
    await page.getByTestId('node-A').click();
    await page.getByTestId('param-command').fill('echo DONE=2');
    const file = path.join(server.workflowsDir, 'edit.yaml');
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8') + '# changed elsewhere\n');
    await page.getByTestId('save').click();
    await page.getByTestId('save-write').click();
    await expect(page.getByTestId('conflict')).toContainText('changed on disk');
    await page.getByTestId('save-overwrite').click();
    await expect(page.getByTestId('save-dialog')).toHaveCount(0);
    expect(fs.readFileSync(file, 'utf8')).toContain('echo DONE=2');
  });
});

test.describe('secrets', () => {
  test.use({ workflows: ['secret.yaml'], serverEnv: { FLOWBUS_E2E_KEY: 's3cr3t-value-42' } });

  test('a secret in env is masked, its value never reaches the page, and a save keeps it as written', async ({ editor: page, server }) => {
    const seen = [];
    page.on('response', async (r) => {
      if (r.url().includes('/api/') && !r.url().includes('/events')) seen.push(await r.text().catch(() => ''));
    });
    await openWorkflow(page, 'secret.yaml', ['START', 'USE', 'END']);
    await expect(page.getByTestId('env-API_KEY')).toBeDisabled();
    await expect(page.getByTestId('env-API_KEY')).toHaveValue('••••••••');
    await page.getByTestId('env-LIMIT').fill('4');
    await page.getByTestId('save').click();
    await expect(page.getByTestId('diff')).toContainText('"4"');
    await page.getByTestId('save-write').click();
    await expect(page.getByTestId('save-dialog')).toHaveCount(0);
    await page.getByTestId('run').click();
    await expect(page.getByTestId('node-USE')).toHaveAttribute('data-state', 'done');
    expect(await page.content()).not.toContain('s3cr3t-value-42');
    expect(seen.join('\n')).not.toContain('s3cr3t-value-42');
    const text = fs.readFileSync(path.join(server.workflowsDir, 'secret.yaml'), 'utf8');
    expect(text).toContain('{{ENV:FLOWBUS_E2E_KEY}}');
    expect(text).toContain('"4"');
  });
});
