// Reads `agent.json` out of a package archive (gzip tar or zip) so that an upload knows
// its path (`/v1/agents/{scope}/{name}/versions/{version}`) before sending the bytes.
// The server reads and checks the whole archive itself; this only finds the manifest.

import { gunzipSync, inflateRawSync } from "node:zlib";

export type ArchiveKind = "tar.gz" | "zip";

/** What the magic bytes say the archive is, if either. */
export function archiveKind(bytes: Uint8Array): ArchiveKind | undefined {
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) return "tar.gz";
  if (bytes[0] === 0x50 && bytes[1] === 0x4b && (bytes[2] === 0x03 || bytes[2] === 0x05)) return "zip";
  return undefined;
}

/** The parsed `agent.json` of a package archive (at its root, or in one wrapping folder). */
export function manifestOfArchive(bytes: Uint8Array): Record<string, unknown> {
  const kind = archiveKind(bytes);
  if (!kind) throw new Error("not a package archive: expected a .tar.gz or a .zip");
  const files = kind === "zip" ? zipEntries(Buffer.from(bytes)) : tarEntries(gunzipSync(bytes));
  const names = [...files.keys()];
  let manifest = files.get("agent.json");
  if (manifest === undefined) {
    const top = names[0]?.split("/")[0];
    if (top && names.every((n) => n.startsWith(`${top}/`))) manifest = files.get(`${top}/agent.json`);
  }
  if (manifest === undefined) throw new Error("the archive has no agent.json at its root");
  const parsed: unknown = JSON.parse(manifest().toString("utf8"));
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error("agent.json is not a JSON object");
  }
  return parsed as Record<string, unknown>;
}

function normalize(name: string): string {
  return name.replace(/^(\.\/)+/, "").replace(/^\/+/, "");
}

/** Regular files of a tar (ustar, pax and GNU long names), by name, read on demand. */
function tarEntries(tar: Buffer): Map<string, () => Buffer> {
  const out = new Map<string, () => Buffer>();
  let offset = 0;
  let longName: string | undefined;
  while (offset + 512 <= tar.length) {
    const header = tar.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    const field = (start: number, length: number) =>
      header.subarray(start, start + length).toString("utf8").replace(/\0.*$/s, "");
    const size = parseInt(field(124, 12).trim() || "0", 8);
    const type = String.fromCharCode(header[156] ?? 0);
    const prefix = field(257, 6).startsWith("ustar") ? field(345, 155) : "";
    let name = prefix ? `${prefix}/${field(0, 100)}` : field(0, 100);
    const start = offset + 512;
    const data = tar.subarray(start, start + size);
    offset = start + Math.ceil(size / 512) * 512;
    if (type === "x") {
      const path = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(data.toString("utf8"));
      if (path?.[1] !== undefined) longName = path[1];
      continue;
    }
    if (type === "L") {
      longName = data.toString("utf8").replace(/\0.*$/s, "");
      continue;
    }
    if (type === "g") continue;
    if (longName !== undefined) {
      name = longName;
      longName = undefined;
    }
    if (type === "0" || type === "\0" || type === "7") {
      out.set(normalize(name), () => Buffer.from(data));
    }
  }
  return out;
}

/** Files of a zip, by name, inflated on demand. */
function zipEntries(zip: Buffer): Map<string, () => Buffer> {
  const out = new Map<string, () => Buffer>();
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 22 - 0xffff); i--) {
    if (zip.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error("the zip has no central directory");
  const count = zip.readUInt16LE(eocd + 10);
  let p = zip.readUInt32LE(eocd + 16);
  for (let n = 0; n < count; n++) {
    if (zip.readUInt32LE(p) !== 0x02014b50) throw new Error("the zip's central directory is corrupt");
    const method = zip.readUInt16LE(p + 10);
    const compressed = zip.readUInt32LE(p + 20);
    const nameLength = zip.readUInt16LE(p + 28);
    const extraLength = zip.readUInt16LE(p + 30);
    const commentLength = zip.readUInt16LE(p + 32);
    const local = zip.readUInt32LE(p + 42);
    const name = zip.subarray(p + 46, p + 46 + nameLength).toString("utf8");
    p += 46 + nameLength + extraLength + commentLength;
    if (name.endsWith("/")) continue;
    out.set(normalize(name), () => {
      if (zip.readUInt32LE(local) !== 0x04034b50) throw new Error(`the zip entry ${name} is corrupt`);
      const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
      const raw = zip.subarray(start, start + compressed);
      if (method === 0) return Buffer.from(raw);
      if (method === 8) return inflateRawSync(raw);
      throw new Error(`the zip entry ${name} uses compression method ${method}`);
    });
  }
  return out;
}
