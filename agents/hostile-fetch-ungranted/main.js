// @hostile/hostile-fetch-ungranted — fetches hosts that permissions.fetch (["example.com"]) does
// not grant. Meant to be run with loopback ALLOWED by the operator, so that only the grant check
// can stop it.
//
// Input:  { "port": <port of a loopback test server> }
// Output: { refused, code, message, variants }
//   Expected { "refused": true, "code": "fetch_host_not_allowed" (the code src/sandbox/ops/fetch.rs
//   gives a host outside permissions.fetch; SPEC §3 names none — in any case not
//   fetch_address_refused, since the grant is checked before DNS), "message": "...",
//   "variants": {...} }, every variant refused: true (any code: a WHATWG fetch already refuses
//   URLs with credentials and file: URLs with a TypeError), and the test server receives no
//   request at all.
// Primary: http://127.0.0.1:<port>/. Variants: localhost; a userinfo trick
//   (http://example.com@127.0.0.1:<port>/ — the host is 127.0.0.1); the granted name in the
//   path, query or fragment; look-alike hosts that a prefix or suffix match would wrongly accept
//   (example.com.invalid, notexample.com); a subdomain (sub.example.com — the grant names
//   example.com exactly, not *.example.com); and a file: URL. None may be fetched.
// Errors are caught on purpose so that the test can assert on err.code.
// Permissions: fetch ["example.com"].

const attempt = async (url) => {
  try {
    const res = await fetch(url);
    const body = await res.text();
    return { refused: false, status: res.status, body: body.slice(0, 200) };
  } catch (err) {
    return { refused: true, code: err?.code ?? null, message: String(err) };
  }
};

export default async (input, _ctx) => {
  const port = input.port;
  const primary = await attempt(`http://127.0.0.1:${port}/`);
  const variants = {};
  for (const [name, url] of [
    ["localhost", `http://localhost:${port}/`],
    ["userinfo", `http://example.com@127.0.0.1:${port}/`],
    ["userinfo_with_password", `http://example.com:443@127.0.0.1:${port}/`],
    ["granted_name_in_path", `http://127.0.0.1:${port}/example.com`],
    ["granted_name_in_query", `http://127.0.0.1:${port}/?host=example.com`],
    ["granted_name_in_fragment", `http://127.0.0.1:${port}/#@example.com`],
    ["prefix_lookalike", `http://example.com.invalid:${port}/`],
    ["suffix_lookalike", `http://notexample.com:${port}/`],
    ["subdomain", `http://sub.example.com:${port}/`],
    ["file_scheme", "file:///etc/passwd"],
  ]) {
    variants[name] = await attempt(url);
  }
  return { ...primary, variants };
};
