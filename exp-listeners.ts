import { Firestore } from '@google-cloud/firestore';
import { readdirSync, readFileSync } from 'node:fs';
function emu(): number { let t = 0; for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) { try { if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('cloud-firestore-emulator')) continue; const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); t += Number(f[11]) + Number(f[12]); } catch {} } return t * 10; }
const dbs = Array.from({ length: 5 }, () => new Firestore({ projectId: 'demo-exp' }));
const db = dbs[0]!;
const coll = db.collection('big');
const N = 6000;
for (let i = 0; i < N; i += 500) { const b = db.batch(); for (let j = i; j < i + 500; j++) b.set(coll.doc(`d${j}`), { status: 'pending', w: j, env: 'x' }); await b.commit(); }
await db.collection('ctl').doc('p').set({ a: 1 });
async function commits(label: string): Promise<void> {
  const before = emu(); const t0 = Date.now();
  for (let r = 0; r < 100; r++) { const b = db.batch(); for (let j = 0; j < 15; j++) b.update(coll.doc(`d${(r * 15 + j) % N}`), { w: r }); await b.commit(); }
  console.log(label, 'emu ms/commit', ((emu() - before) / 100).toFixed(2), 'wall ms/commit', ((Date.now() - t0) / 100).toFixed(1));
}
await commits('warm');
await commits('0 listeners');
const unsub: (() => void)[] = [];
for (let k = 1; k <= 4; k++) unsub.push(dbs[k]!.collection('ctl').doc('p').onSnapshot(() => {}));
await new Promise((r) => setTimeout(r, 1000));
await commits('4 doc listeners other coll (4 clients)');
for (let k = 1; k <= 4; k++) unsub.push(dbs[k]!.collection('big').doc('zz').onSnapshot(() => {}));
await new Promise((r) => setTimeout(r, 1000));
await commits('+4 doc listeners same coll');
unsub.forEach((u) => u());
await new Promise((r) => setTimeout(r, 1000));
await commits('0 listeners again');
const q = dbs[1]!.collection('big').where('status', '==', 'pending').orderBy('w').limit(16).onSnapshot(() => {});
await new Promise((r) => setTimeout(r, 2000));
await commits('1 query listener big');
q();
await new Promise((r) => setTimeout(r, 1000));
await commits('0 again');
process.exit(0);
