import { readdir, readFile } from "node:fs/promises";
import { join, relative, sep } from "node:path";

import { archiveKind, manifestOfArchive } from "../archive.js";
import type { APIPromise, RequestOptions } from "../core.js";
import type { PagePromise } from "../pagination.js";
import type {
  Agent,
  AgentListItem,
  AgentVersion,
  AgentVersionDetail,
  AgentManifest,
  PageParams,
  UpdatedVersion,
  UploadedVersion,
  VersionUpdateParams,
} from "../types.js";
import { Resource, agentPath, seg } from "./shared.js";

/** A package as JSON: `agent.json` as an object, and every other file as text by path. */
export interface PackageFiles {
  manifest: AgentManifest | Record<string, unknown>;
  files: Record<string, string>;
}

export interface UploadOptions extends RequestOptions {
  /** `@scope/name` for the path; default: the manifest's `name`. */
  name?: string | undefined;
  /** The version for the path; default: the manifest's `version`. */
  version?: string | undefined;
  /** For archives: `application/gzip` or `application/zip` (default: from the magic bytes). */
  contentType?: string | undefined;
}

/** Agents and their immutable versions. */
export class Agents extends Resource {
  list(params?: PageParams, options?: RequestOptions): PagePromise<AgentListItem> {
    return this.paged<AgentListItem>("/v1/agents", { ...params }, options);
  }

  /** `@scope/name` (or `scope/name`): the agent with its latest version. */
  get(agent: string, options?: RequestOptions): APIPromise<Agent> {
    return this.call({ method: "get", path: `/v1/agents/${agentPath(agent)}`, options });
  }

  /** Every version of an agent (one page). */
  versions(agent: string, options?: RequestOptions): PagePromise<AgentVersion> {
    return this.unpaged<AgentVersion>(`/v1/agents/${agentPath(agent)}/versions`, options);
  }

  /** One version, with its manifest. */
  version(agent: string, version: string, options?: RequestOptions): APIPromise<AgentVersionDetail> {
    return this.call({ method: "get", path: `/v1/agents/${agentPath(agent)}/versions/${seg(version)}`, options });
  }

  /**
   * Uploads a package version: `{ manifest, files }`, or the bytes of a `.tar.gz` or
   * `.zip` (its `agent.json` names the path unless `name`/`version` are given). The
   * answer is the version; `.withResponse()` tells 201 (new) from 200 (the same
   * content again). Other content under an existing version is a ConflictError; a
   * package that does not check out is an UnprocessableEntityError naming the file.
   */
  upload(pkg: PackageFiles | Uint8Array | ArrayBuffer, options: UploadOptions = {}): APIPromise<UploadedVersion> {
    const { name: givenName, version: givenVersion, contentType, ...request } = options;
    if (pkg instanceof ArrayBuffer || ArrayBuffer.isView(pkg)) {
      const bytes =
        pkg instanceof ArrayBuffer ? new Uint8Array(pkg) : new Uint8Array(pkg.buffer, pkg.byteOffset, pkg.byteLength);
      const kind = archiveKind(bytes);
      const manifest = givenName && givenVersion ? undefined : manifestOfArchive(bytes);
      const name = givenName ?? String(manifest?.name ?? "");
      const version = givenVersion ?? String(manifest?.version ?? "");
      return this.call({
        method: "put",
        path: versionPath(name, version),
        raw: { bytes, contentType: contentType ?? (kind === "zip" ? "application/zip" : "application/gzip") },
        options: request,
      });
    }
    if (typeof pkg !== "object" || pkg === null || typeof pkg.manifest !== "object" || pkg.manifest === null) {
      throw new TypeError("upload takes { manifest, files } or the bytes of a .tar.gz / .zip");
    }
    const name = givenName ?? String(pkg.manifest.name ?? "");
    const version = givenVersion ?? String(pkg.manifest.version ?? "");
    return this.call({
      method: "put",
      path: versionPath(name, version),
      body: { manifest: pkg.manifest, files: pkg.files ?? {} },
      options: request,
    });
  }

  /**
   * Deprecates (`{ deprecated: true }`) or undeprecates a version: the latest version
   * skips deprecated ones; runs and triggers that pin one still work.
   */
  updateVersion(
    agent: string,
    version: string,
    body: VersionUpdateParams,
    options?: RequestOptions,
  ): APIPromise<UpdatedVersion> {
    return this.call({ method: "patch", path: versionPath(agent, version), body, options });
  }

  /** Deletes a version that no unfinished run and no trigger uses (ConflictError otherwise). */
  deleteVersion(agent: string, version: string, options?: RequestOptions): APIPromise<void> {
    return this.call({ method: "delete", path: versionPath(agent, version), options });
  }

  /** Reads a package directory (`agent.json` and every file beside it, hidden ones skipped) and uploads it. */
  async uploadDir(dir: string, options: UploadOptions = {}): Promise<UploadedVersion> {
    return this.upload(await readPackageDir(dir), options);
  }
}

function versionPath(name: string, version: string): string {
  if (!name || !version) throw new TypeError("the package needs a name and a version (agent.json or options)");
  return `/v1/agents/${agentPath(name)}/versions/${seg(version)}`;
}

/** A package directory as `{ manifest, files }` (text files; names starting with "." skipped). */
export async function readPackageDir(dir: string): Promise<PackageFiles> {
  const manifest = JSON.parse(await readFile(join(dir, "agent.json"), "utf8")) as AgentManifest;
  const files: Record<string, string> = {};
  const walk = async (at: string): Promise<void> => {
    for (const entry of await readdir(at, { withFileTypes: true })) {
      if (entry.name.startsWith(".") || entry.name === "node_modules") continue;
      const path = join(at, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) {
        const rel = relative(dir, path).split(sep).join("/");
        if (rel !== "agent.json") files[rel] = await readFile(path, "utf8");
      }
    }
  };
  await walk(dir);
  return { manifest, files };
}
