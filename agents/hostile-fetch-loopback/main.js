// @hostile/hostile-fetch-loopback — fetches http://127.0.0.1:<port>/, a host its manifest grants,
// to check the address policy that applies after DNS resolution (SPEC §3).
//
// Input:  { "port": <port of a loopback test server> }
// Output: { refused, code?, message?, status?, body?, variants }
//   Operator has NOT allowed loopback (the default) → expected
//     { "refused": true, "code": "fetch_address_refused", "message": "...", "variants": {...} }
//     and every entry of `variants` has refused: true (any code), and the test server receives
//     no request at all.
//   Operator allows loopback → { "refused": false, "status": <server status>, "body": <first
//     200 chars>, ... }; variants that normalise to 127.0.0.1 may then succeed too.
// Variants: other spellings of loopback that the WHATWG URL parser turns into 127.0.0.1
//   (127.1, 2130706433, 0x7f.0.0.1), and loopback addresses the manifest does not grant
//   (127.0.0.2, [::1], [::ffff:127.0.0.1], 0.0.0.0).
// Errors are caught on purpose so that the test can assert on err.code.
// Permissions: fetch ["127.0.0.1"].

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
    ["short_form", `http://127.1:${port}/`],
    ["decimal", `http://2130706433:${port}/`],
    ["hex_octet", `http://0x7f.0.0.1:${port}/`],
    ["other_loopback", `http://127.0.0.2:${port}/`],
    ["ipv6_loopback", `http://[::1]:${port}/`],
    ["ipv4_mapped_ipv6", `http://[::ffff:127.0.0.1]:${port}/`],
    ["unspecified", `http://0.0.0.0:${port}/`],
  ]) {
    variants[name] = await attempt(url);
  }
  return { ...primary, variants };
};
