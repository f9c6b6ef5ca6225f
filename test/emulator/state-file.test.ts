import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, link, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { journalPath, StateFile, statePath } from '../../src/emulator/state-file.ts';
import type { EmulatorState } from '../../src/emulator/state.ts';
import { tempDirsRemovedAfter } from './helpers.ts';

function emptyState(): EmulatorState {
  return {
    version: 1,
    subscriptionId: 'sub-1',
    token: 'gse_token',
    sasKey: 'ab',
    disks: {},
    snapshots: {},
    virtualMachines: {},
    operations: {},
    grants: {},
  };
}

function disk(name: string): any {
  return { id: `/x/disks/${name}`, name, tags: {}, sizeBytes: 512 };
}

const newDir = tempDirsRemovedAfter();

/** A fresh data folder whose state.json is empty and whose journal adds disk `a`. */
async function savedWithDiskA(): Promise<string> {
  const dir = await newDir();
  const { file } = await StateFile.open(dir);
  const st = emptyState();
  await file.save(st);
  st.disks.a = disk('a');
  await file.save(st);
  await file.close();
  return dir;
}

async function reopen(dir: string): Promise<EmulatorState> {
  const { file, state } = await StateFile.open(dir);
  await file.close();
  assert.ok(state);
  return state;
}

test('a save appends what changed; reopening replays it (adds, in-place edits, deletes, new collections, meta)', async () => {
  const dir = await newDir();
  const { file } = await StateFile.open(dir);
  const st = emptyState();
  await file.save(st);
  const whole = (await stat(statePath(dir))).size;
  st.disks.a = disk('a');
  st.disks.b = disk('b');
  await file.save(st);
  st.disks.a!.tags = { env: 'prod' };
  delete st.disks.b;
  st.resourceGroups = { rg: { name: 'rg' } as any };
  st.moreSubscriptionIds = ['sub-2'];
  await file.save(st);
  await file.save(st); // nothing changed: nothing written
  await file.close();
  assert.equal((await stat(statePath(dir))).size, whole, 'state.json is not rewritten per save');
  assert.equal((await readFile(journalPath(dir), 'utf8')).trim().split('\n').length, 3);
  assert.deepEqual(await reopen(dir), st);
});

test('a torn last line (a crash mid-append) is dropped and later saves still replay', async () => {
  const dir = await savedWithDiskA();
  await appendFile(journalPath(dir), '{"set":[["disks","b",{"na');
  const { file: again, state } = await StateFile.open(dir);
  assert.deepEqual(Object.keys(state!.disks), ['a']);
  state!.disks.c = disk('c');
  await again.save(state!);
  await again.close();
  assert.deepEqual(Object.keys((await reopen(dir)).disks), ['a', 'c']);
});

test('a journal of an earlier state.json (crash between rewriting it and starting the next journal) is ignored', async () => {
  const dir = await savedWithDiskA();
  const journal = await readFile(journalPath(dir), 'utf8');
  // state.json of the next generation holds disk a renamed; the old journal would undo that.
  const next = JSON.parse(await readFile(statePath(dir), 'utf8'));
  next.journalGeneration += 1;
  next.disks.a = { ...disk('a'), tags: { newer: 'yes' } };
  await writeFile(statePath(dir), JSON.stringify(next));
  await writeFile(journalPath(dir), journal);
  assert.deepEqual((await reopen(dir)).disks.a.tags, { newer: 'yes' });
});

test('the journal is folded into state.json once it outgrows it, and the result reads back the same', async () => {
  const dir = await newDir();
  const { file } = await StateFile.open(dir);
  const st = emptyState();
  for (let i = 0; i < 300; i++) {
    st.disks[`d${i}`] = { ...disk(`d${i}`), padding: 'x'.repeat(5000) };
    await file.save(st);
  }
  await file.close();
  const journalBytes = (await stat(journalPath(dir))).size;
  const stateBytes = (await stat(statePath(dir))).size;
  assert.ok(journalBytes <= Math.max(1024 * 1024, stateBytes), `journal ${journalBytes} B, state.json ${stateBytes} B`);
  assert.ok(stateBytes > 512 * 1024, `state.json (${stateBytes} B) was rewritten with the records`);
  assert.deepEqual(await reopen(dir), st);
});

test('a state.json written before the journal existed is read as it is', async () => {
  const dir = await newDir();
  const st = emptyState();
  st.disks.a = disk('a');
  await writeFile(statePath(dir), JSON.stringify(st));
  const { file, state } = await StateFile.open(dir);
  assert.deepEqual(state, st);
  state!.disks.b = disk('b');
  await file.save(state!);
  await file.close();
  assert.deepEqual(Object.keys((await reopen(dir)).disks), ['a', 'b']);
});

test('through the tracked state, a save writes only the records changed, at any depth', async () => {
  const dir = await newDir();
  const { file } = await StateFile.open(dir);
  const st = file.track(emptyState());
  await file.save(st);
  st.disks.a = disk('a');
  st.disks.b = disk('b');
  st.virtualMachines.vm = { id: 'vm', dataDisks: [] } as any;
  await file.save(st);
  st.disks.a!.tags.env = 'prod'; // nested object
  st.virtualMachines.vm!.dataDisks.push({ lun: 0, diskId: 'b' }); // array inside a record
  delete st.disks.b;
  st.restorePoints = { p: { name: 'p' } as any }; // a collection set whole
  st.moreSubscriptionIds = ['sub-2'];
  await file.save(st);
  const lines = (await readFile(journalPath(dir), 'utf8')).trim().split('\n');
  const last = JSON.parse(lines.at(-1)!);
  assert.deepEqual(last.set.map((s: string[]) => `${s[0]}/${s[1]}`).sort(), [
    'disks/a',
    'restorePoints/p',
    'virtualMachines/vm',
  ]);
  assert.deepEqual(last.del, [['disks', 'b']]);
  assert.deepEqual(last.meta.moreSubscriptionIds, ['sub-2']);
  await file.close();
  assert.deepEqual(await reopen(dir), JSON.parse(JSON.stringify(st)));
});

test('with GOLDSNAP_EMULATOR_CHECK_STATE=1, a change made around the tracked state fails the save', async () => {
  const dir = await newDir();
  const before = process.env.GOLDSNAP_EMULATOR_CHECK_STATE;
  process.env.GOLDSNAP_EMULATOR_CHECK_STATE = '1';
  const { file } = await StateFile.open(dir);
  if (before === undefined) delete process.env.GOLDSNAP_EMULATOR_CHECK_STATE;
  else process.env.GOLDSNAP_EMULATOR_CHECK_STATE = before;
  const raw = emptyState();
  const st = file.track(raw);
  const rec = disk('a');
  st.disks.a = rec;
  await file.save(st);
  rec.tags = { late: 'yes' }; // through the code's own reference, after the save
  await assert.rejects(file.save(st), /changed without passing through the tracked state.*disks\/a/);
  await file.close();
});

test('a data folder copied with hard links does not change its original when saved', async () => {
  const dir = await savedWithDiskA();
  const copy = join(dir, 'copy');
  await mkdir(copy);
  for (const f of ['state.json', 'state.journal']) await link(join(dir, f), join(copy, f));
  const original = await readFile(journalPath(dir), 'utf8');
  const { file: copied, state } = await StateFile.open(copy);
  state!.disks.b = disk('b');
  await copied.save(state!);
  await copied.close();
  assert.equal(await readFile(journalPath(dir), 'utf8'), original);
  assert.deepEqual(Object.keys((await reopen(dir)).disks), ['a']);
  assert.deepEqual(Object.keys((await reopen(copy)).disks), ['a', 'b']);
});
