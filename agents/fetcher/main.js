// @atoll/fetcher — one outbound request through the broker.
//
// Input:  { "url": "http://127.0.0.1:<port>/path",   required
//           "method": "POST",                          optional, default GET
//           "body": "text",                            optional, sent as is
//           "connection": "test-api",                  optional, the broker injects its credential
//           "headers": { "x-a": "1" } }                optional
// Output: { "status": <response status>, "body": <response body as text>,
//           "content_type": <response content-type header, or null> }
//   e.g. a loopback server answering 200 "pong" text/plain →
//        { "status": 200, "body": "pong", "content_type": "text/plain" }
//   A non-2xx answer is still a success of the run (status 404 etc. is returned, not thrown).
// Events: one `fetch` event per request (emitted by the runtime).
// Errors (not caught, so the run fails with the runtime's code):
//   fetch_address_refused unless the operator allows loopback (tests must allow it);
//   a host other than 127.0.0.1/localhost, or a connection other than "test-api", is refused
//   by the grant check.
// Permissions: fetch ["127.0.0.1", "localhost"], connections ["test-api"].

export default async (input, _ctx) => {
  const init = { method: input.method ?? "GET" };
  if (input.headers !== undefined) init.headers = input.headers;
  if (input.body !== undefined) init.body = input.body;
  if (input.connection !== undefined) init.connection = input.connection;

  const res = await fetch(input.url, init);
  const body = await res.text();
  return { status: res.status, body, content_type: res.headers.get("content-type") };
};
