// A real `atoll serve` for the tests: its own data directory and free port, the admin
// key, a master key (connections, webhook secrets), and an org, app and app key made
// through the SDK itself.

import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { Atoll, type ClientOptions } from "@atoll/sdk";

/** sdk-ts/ (this file is build/test/helpers/server.js). */
export const SDK_DIR = fileURLToPath(new URL("../../../", import.meta.url));

/** `$ATOLL_BIN`, else ../target/debug/atoll relative to sdk-ts/. */
export function atollBin(): string {
  const bin = process.env.ATOLL_BIN ?? join(SDK_DIR, "..", "target", "debug", "atoll");
  if (!existsSync(bin)) {
    throw new Error(`no atoll binary at ${bin}: build it (cargo build) or set ATOLL_BIN`);
  }
  return bin;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

export interface TestServer {
  url: string;
  port: number;
  adminKey: string;
  orgKey: string;
  orgId: string;
  appId: string;
  appKey: string;
  /** A client with the app key. */
  app: Atoll;
  /** A client with the org key. */
  org: Atoll;
  /** A client with the admin key. */
  admin: Atoll;
  client(options?: ClientOptions): Atoll;
  log(): Promise<string>;
  stop(): Promise<void>;
}

/** Starts a server with `env` added and bootstraps an org, an app and an app key. */
export async function startServer(env: Record<string, string> = {}): Promise<TestServer> {
  const bin = atollBin();
  const dir = await mkdtemp(join(tmpdir(), "atoll-sdk-"));
  const port = await freePort();
  const adminKey = `atl_${randomBytes(20).toString("hex")}`;
  const logPath = join(dir, "server.log");
  const { openSync } = await import("node:fs");
  const logFd = openSync(logPath, "a");
  const child: ChildProcess = spawn(bin, ["serve"], {
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      ATOLL_ADMIN_KEY: adminKey,
      ATOLL_DATA_DIR: dir,
      ATOLL_LISTEN: `127.0.0.1:${port}`,
      ATOLL_MASTER_KEY: randomBytes(32).toString("hex"),
      ATOLL_ALLOW_NET: "127.0.0.1/32",
      ATOLL_LOG: "warn",
      ...env,
    },
    stdio: ["ignore", logFd, logFd],
  });
  const url = `http://127.0.0.1:${port}`;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const log = () => readFile(logPath, "utf8").catch(() => "");
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await waitHealthy(url, child);
    const admin = new Atoll({ baseUrl: url, apiKey: adminKey, maxRetries: 0 });
    const created = await admin.orgs.create({ name: "sdk tests" });
    const orgKey = created.key.secret as string;
    const org = new Atoll({ baseUrl: url, apiKey: orgKey });
    const app = await org.apps.create({ name: "sdk test app" });
    const key = await org.apiKeys.create({ name: "sdk tests", app_id: app.id });
    const appKey = key.secret as string;
    return {
      url,
      port,
      adminKey,
      orgKey,
      orgId: created.org.id,
      appId: app.id,
      appKey,
      app: new Atoll({ baseUrl: url, apiKey: appKey }),
      org,
      admin,
      client: (options = {}) => new Atoll({ baseUrl: url, apiKey: appKey, ...options }),
      log,
      stop,
    };
  } catch (error) {
    const text = await log();
    await stop();
    throw new Error(`the test server did not start: ${String(error)}\n${text.slice(-4000)}`);
  }
}

async function waitHealthy(url: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`atoll serve exited with ${child.exitCode}`);
    try {
      const response = await fetch(`${url}/healthz`);
      if (response.ok) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error("atoll serve did not answer /healthz within 60 s");
    await new Promise((r) => setTimeout(r, 100));
  }
}
