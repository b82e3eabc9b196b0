// @hostile/hostile-fetch-localhost — fetches http://localhost:<port>/, a host its manifest grants,
// whose DNS answer is loopback: the address check must happen after resolution, not on the name.
//
// Input:  { "port": <port of a loopback test server> }
// Output: { refused, code?, message?, status?, body?, variants }
//   Operator has NOT allowed loopback (the default) → expected
//     { "refused": true, "code": "fetch_address_refused", "message": "...", "variants": {...} }
//     and every entry of `variants` has refused: true (any code); the test server receives no
//     request at all.
//   Operator allows loopback → { "refused": false, "status": <server status>, "body": ..., ... }.
// Variants: LOCALHOST (the URL parser lower-cases it → granted), "localhost." (trailing dot),
//   and a *.localhost subdomain (not granted).
// Errors are caught on purpose so that the test can assert on err.code.
// Permissions: fetch ["localhost"].

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
  const primary = await attempt(`http://localhost:${port}/`);
  const variants = {};
  for (const [name, url] of [
    ["upper_case", `http://LOCALHOST:${port}/`],
    ["trailing_dot", `http://localhost.:${port}/`],
    ["subdomain", `http://app.localhost:${port}/`],
  ]) {
    variants[name] = await attempt(url);
  }
  return { ...primary, variants };
};
