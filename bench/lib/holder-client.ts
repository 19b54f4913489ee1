/** Parent side of holder.ts: start it, wait for its connections, send commands. Bounded by timeouts. */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { NODE } from './peers.ts';

export class Holder {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #lines: Interface;
  readonly #queue: ((line: string) => void)[] = [];

  private constructor(child: ChildProcessWithoutNullStreams) {
    this.#child = child;
    this.#lines = createInterface({ input: child.stdout });
    this.#lines.on('line', (l) => this.#queue.shift()?.(l));
    child.stderr.on('data', (d: Buffer) => process.stderr.write(`[holder] ${d}`));
  }

  /** Opens `count` TLS connections to 127.0.0.1:port with SNI `sni`; resolves when all are open or failed. */
  static async open(
    port: number,
    sni: string,
    count: number,
    timeoutMs: number,
  ): Promise<{ holder: Holder; open: number; failed: number }> {
    const child = spawn(
      NODE,
      [join(import.meta.dirname, 'holder.ts'), String(port), sni, String(count), '64'],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    const h = new Holder(child);
    const r = JSON.parse(await h.#next(timeoutMs)) as { open: number; failed: number };
    return { holder: h, ...r };
  }

  #next(timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.kill();
        reject(new Error(`holder: no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      this.#queue.push((l) => {
        clearTimeout(timer);
        resolve(l);
      });
    });
  }

  /** One request on every held connection: alive answered 200; cut counts connections closed before the check. */
  async check(timeoutMs = 60_000): Promise<{ alive: number; dead: number; cut: number }> {
    this.#child.stdin.write('check\n');
    return JSON.parse(await this.#next(timeoutMs));
  }

  async close(): Promise<void> {
    if (this.#child.exitCode !== null) return;
    const exited = new Promise<void>((r) => this.#child.once('exit', () => r()));
    this.#child.stdin.write('exit\n');
    const t = setTimeout(() => this.kill(), 10_000);
    await exited;
    clearTimeout(t);
  }

  kill(): void {
    if (this.#child.exitCode === null) this.#child.kill('SIGKILL');
  }
}
