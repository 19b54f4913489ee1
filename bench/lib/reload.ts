/**
 * A configuration reload every second under load: snigate watches its manifest directory; each second
 * the TLSRoute file is rewritten in place with a new extra hostname. New connections (h2load), keep-alive requests
 * (wrk) and idle held connections run throughout; afterwards every held connection must still answer.
 * Each reload is verified: the new hostname must route and the previous one must be refused.
 */
import { join } from 'node:path';
import tls from 'node:tls';
import { Holder } from './holder-client.ts';
import { newConnections, wrk } from './load.ts';
import { SMALL_PATH, SNI, startSnigate, writeSnigateManifests } from './peers.ts';
import { type Spawned, sleep, stopProcess } from './proc.ts';

export interface ReloadResult {
  reloads: number;
  newHostRouted: number;
  oldHostRefused: number;
  newConnOk: number;
  newConnFailed: number;
  keepAliveRequests: number;
  keepAliveErrors: number;
  held: number;
  heldAlive: number;
  heldCut: number;
}

function probe(port: number, sni: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: sni, rejectUnauthorized: false });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(3000, () => done(false));
    s.once('secureConnect', () => done(true));
    s.once('error', () => done(false));
    s.once('close', () => done(false));
  });
}

export async function reloadUnderLoad(
  dir: string,
  port: number,
  origin: number,
  seconds: number,
): Promise<ReloadResult> {
  const manifests = join(dir, 'reload-manifests');
  writeSnigateManifests(manifests, port, origin, ['gen-0.example.com']);
  let proc: Spawned | null = null;
  let holder: Holder | null = null;
  try {
    proc = await startSnigate('snigate-reload', manifests, port, join(dir, 'snigate-reload.log'));
    const held = await Holder.open(port, SNI, 200, 60_000);
    holder = held.holder;
    let stop = false;
    // New connections in batches of 300 until the reload loop ends (each batch bounded by count and time).
    const newConns = (async () => {
      let ok = 0;
      let failed = 0;
      while (!stop) {
        const r = await newConnections(port, 300, 60, 4, 1);
        ok += r.ok;
        failed += r.failed;
      }
      return { ok, failed };
    })();
    const keepAlive = wrk(dir, port, SMALL_PATH, seconds + 1, 1, 8);
    let routed = 0;
    let refused = 0;
    for (let i = 1; i <= seconds; i++) {
      const t0 = Date.now();
      // In-place rewrite: a write-to-temp + rename is seen only once by the file watcher (see RESULTS.md).
      writeSnigateManifests(manifests, port, origin, [`gen-${i}.example.com`]);
      await sleep(700);
      if (await probe(port, `gen-${i}.example.com`)) routed++;
      if (!(await probe(port, `gen-${i - 1}.example.com`))) refused++;
      await sleep(Math.max(0, 1000 - (Date.now() - t0)));
    }
    stop = true;
    const [nc, ka] = await Promise.all([newConns, keepAlive]);
    const check = await holder.check();
    return {
      reloads: seconds,
      newHostRouted: routed,
      oldHostRefused: refused,
      newConnOk: nc.ok,
      newConnFailed: nc.failed,
      keepAliveRequests: ka.requests,
      keepAliveErrors: ka.errors,
      held: held.open,
      heldAlive: check.alive,
      heldCut: check.cut,
    };
  } finally {
    await holder?.close();
    if (proc) await stopProcess(proc);
  }
}
