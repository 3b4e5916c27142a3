import { Firestore } from '@google-cloud/firestore';
import { readdirSync, readFileSync } from 'node:fs';
function emu(): number { let t = 0; for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) { try { if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('cloud-firestore-emulator')) continue; const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); t += Number(f[11]) + Number(f[12]); } catch {} } return t * 10; }
const dbs = Array.from({ length: 4 }, () => new Firestore({ projectId: 'demo-exp2' }));
const db = dbs[0]!;
const N = 6000;
const coll = (d: Firestore) => d.collection('big');
for (let i = 0; i < N; i += 500) { const b = db.batch(); for (let j = i; j < i + 500; j++) b.set(coll(db).doc(`d${j}`), { status: 'pending', w: j, env: 'x' }); await b.commit(); }
let r0 = 0;
async function one(d: Firestore, n: number, off: number) { for (let r = 0; r < n; r++) { const b = d.batch(); const base = (off + r) * 15; for (let j = 0; j < 15; j++) b.update(coll(d).doc(`d${(base + j) % N}`), { w: r0++ }); await b.commit(); } }
async function run(label: string, f: () => Promise<unknown>) { const before = emu(); const t0 = Date.now(); await f(); console.log(label, 'emu ms/commit', ((emu() - before) / 200).toFixed(2), 'wall total ms', Date.now() - t0); }
for (let rep = 0; rep < 3; rep++) {
  await run('1 client seq', () => one(db, 200, 0));
  await run('1 client 4 in flight', () => Promise.all([0, 1, 2, 3].map((k) => one(db, 50, k * 50))));
  await run('4 clients 1 each', () => Promise.all(dbs.map((d, k) => one(d, 50, k * 50))));
  const q = await coll(db).where('status', '==', 'pending').orderBy('w').limit(8).get();
  const before = emu(); for (let i = 0; i < 20; i++) await coll(db).where('status', '==', 'pending').orderBy('w').limit(i % 2 ? 8 : 1000).get(); console.log('query emu ms each', (emu() - before) / 20, q.size);
}
process.exit(0);
