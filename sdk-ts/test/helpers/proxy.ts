// A TCP proxy between the SDK and the server that cuts event streams: the first `cuts`
// requests for `/events` (on new or reused connections) are destroyed after `afterEvents` more SSE events
// have passed, in the middle of the event that follows (so the client also holds half
// an event when the connection goes).

import { createServer, connect, type Server, type Socket } from "node:net";

export interface CuttingProxy {
  url: string;
  /** Event-stream connections cut so far. */
  cut: number;
  /** When each cut happened (Unix ms). */
  cutAt: number[];
  /** Every connection seen, with the first line of its first request. */
  connections: string[];
  close(): Promise<void>;
}

export async function cuttingProxy(
  target: { host: string; port: number },
  options: { cuts: number; afterEvents: number },
): Promise<CuttingProxy> {
  const sockets = new Set<Socket>();
  const state: CuttingProxy = { url: "", cut: 0, cutAt: [], connections: [], close: async () => {} };
  const server: Server = createServer((client) => {
    sockets.add(client);
    const upstream = connect(target.port, target.host);
    sockets.add(upstream);
    let firstLine: string | undefined;
    let cutting = false;
    let seen = 0;
    let cutDone = false;
    const destroy = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("data", (chunk: Buffer) => {
      // Connections are kept alive and reused: look at every request line.
      for (const line of chunk.toString("latin1").split("\r\n")) {
        if (!/^(GET|POST|PUT|DELETE) \S+ HTTP\/1\.1$/.test(line)) continue;
        if (firstLine === undefined) {
          firstLine = line;
          state.connections.push(line);
        } else state.connections.push(`  then ${line}`);
        if (line.includes("/events") && !cutting && state.cut < options.cuts) {
          cutting = true;
          seen = 0;
          state.cut++;
        }
      }
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (!cutting || cutDone) {
        if (!cutDone) client.write(chunk);
        return;
      }
      // Count SSE event ends ("\n\n") in the body; cut a few bytes into the next event.
      let text = chunk.toString("latin1");
      let index = 0;
      for (;;) {
        const at = text.indexOf("\n\n", index);
        if (at === -1) break;
        if (/\bid: /.test(text.slice(index, at)) || text.slice(index, at).includes("event:")) seen++;
        index = at + 2;
        if (seen >= options.afterEvents) {
          cutDone = true;
          state.cutAt.push(Date.now());
          const keep = Math.min(text.length, at + 2 + 6);
          client.write(Buffer.from(text.slice(0, keep), "latin1"), () => setTimeout(destroy, 10));
          return;
        }
      }
      client.write(chunk);
    });
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
    client.on("close", () => {
      upstream.destroy();
      sockets.delete(client);
    });
    upstream.on("close", () => {
      client.destroy();
      sockets.delete(upstream);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (typeof address !== "object" || !address) throw new Error("proxy did not listen");
  state.url = `http://127.0.0.1:${address.port}`;
  state.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return state;
}
