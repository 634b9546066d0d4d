// Starts the real `codegate` binary on a free port against a fresh data
// directory, and talks to its API with the all-scopes token from `init`.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = process.env.CODEGATE_BIN || join(repo, 'target', 'debug', 'codegate');

export async function startServer() {
  if (!existsSync(BIN)) throw new Error(`codegate binary not found at ${BIN}: build it (cargo build -p codegate) or set CODEGATE_BIN`);
  const dataDir = mkdtempSync(join(tmpdir(), 'codegate-e2e-'));
  const env = { ...process.env, CODEGATE_RATE_LIMITS: 'off' };
  delete env.CODEGATE_DATABASE_URL;
  const admin = JSON.parse(execFileSync(BIN, ['init', '--data-dir', dataDir, '--json'], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
  const child = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d) => {
    log = (log + d).slice(-20000);
  });
  const base = await new Promise((ok, fail) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error(`server did not start:\n${log}`)), 30000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[\d.:]+)/);
      if (m) {
        clearTimeout(timer);
        ok(m[1]);
      }
    });
    child.on('exit', (code) => fail(new Error(`server exited with ${code}:\n${log}`)));
  });

  /** The management API with the init token; returns {status, body, headers}. */
  async function api(method, path, body) {
    const res = await fetch(`${base}/api/v1${path}`, {
      method,
      headers: { Authorization: `Bearer ${admin.token}`, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed, headers: res.headers };
  }

  async function stop() {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dataDir, { recursive: true, force: true });
  }

  return { base, admin, dataDir, api, stop, log: () => log };
}
