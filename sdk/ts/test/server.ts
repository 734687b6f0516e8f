// Starts the built iotplatform binary on free loopback ports for the tests.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const adminPassword = "sdk-test-password";

export interface Platform {
  baseUrl: string;
  /** httpUrl is the HTTP device gateway (readings, command long-polls). */
  httpUrl: string;
  stop(): Promise<void>;
}

/** Returns n distinct free ports; all listeners stay open until every port is chosen. */
async function freePorts(n: number): Promise<number[]> {
  const servers = [];
  const ports: number[] = [];
  for (let i = 0; i < n; i++) {
    const srv = createServer();
    await new Promise<void>((res, rej) => {
      srv.on("error", rej);
      srv.listen(0, "127.0.0.1", () => res());
    });
    const addr = srv.address();
    ports.push(typeof addr === "object" && addr ? addr.port : 0);
    servers.push(srv);
  }
  await Promise.all(servers.map((srv) => new Promise<void>((res) => srv.close(() => res()))));
  return ports;
}

/**
 * Starts bin/iotplatform (or $IOT_BIN), with extraArgs after the listen
 * addresses (e.g. ["--user-token-ttl", "2s"]), and waits until /readyz answers 200.
 */
export async function startPlatform(extraArgs: string[] = []): Promise<Platform> {
  const bin = process.env.IOT_BIN ?? resolve(process.cwd(), "../../bin/iotplatform");
  if (!existsSync(bin)) {
    throw new Error(`${bin} not found: run go build -o bin/iotplatform ./cmd/iotplatform`);
  }
  const dataDir = mkdtempSync(join(tmpdir(), "iot-sdk-ts-"));
  const [api, http, ws, mqtt] = await freePorts(4);
  const args = [
    "serve",
    "--data-dir", dataDir,
    "--api-addr", `127.0.0.1:${api}`,
    "--http-addr", `127.0.0.1:${http}`,
    "--ws-addr", `127.0.0.1:${ws}`,
    "--mqtt-addr", `127.0.0.1:${mqtt}`,
    ...extraArgs,
  ];
  let log = "";
  const child: ChildProcess = spawn(bin, args, {
    env: { ...process.env, IOT_ADMIN_PASSWORD: adminPassword },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (d) => (log += d));
  child.stderr?.on("data", (d) => (log += d));
  const exited = new Promise<void>((res) => child.once("exit", () => res()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  const baseUrl = `http://127.0.0.1:${api}`;
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`iotplatform exited early (${child.exitCode}):\n${log}`);
    }
    try {
      const r = await fetch(`${baseUrl}/readyz`);
      if (r.status === 200) {
        return { baseUrl, httpUrl: `http://127.0.0.1:${http}`, stop };
      }
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`iotplatform not ready within 30s:\n${log}`);
}
