// A fetch that records every request it sends (method, URL, headers) and each answer's
// status and headers, for checking what the SDK put on the wire.

export interface Sent {
  method: string;
  url: string;
  headers: Record<string, string>;
  status?: number;
  responseHeaders?: Record<string, string>;
  at: number;
  error?: string;
}

export function recordingFetch(inner: typeof fetch = fetch): { fetch: typeof fetch; sent: Sent[] } {
  const sent: Sent[] = [];
  const wrapped: typeof fetch = async (input, init) => {
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((v, k) => (headers[k] = v));
    const entry: Sent = { method: init?.method ?? "GET", url: String(input), headers, at: Date.now() };
    sent.push(entry);
    try {
      const response = await inner(input, init);
      entry.status = response.status;
      entry.responseHeaders = {};
      response.headers.forEach((v, k) => (entry.responseHeaders![k] = v));
      return response;
    } catch (error) {
      entry.error = String(error);
      throw error;
    }
  };
  return { fetch: wrapped, sent };
}
