/**
 * A GET whose body is handed over as a stream, for Bulk API 2.0 result pages: jsforce reads every
 * response body whole before returning it, so these requests go through fetch instead, with the
 * client's session (the same access token, one refresh on a 401), its API-usage accounting, its error
 * translation and its retries (the concurrent-request limit, 5xx and network failures).
 */
import { Readable } from "node:stream";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { fetch as undiciFetch } from "undici";
import type { SalesforceClient } from "./client.ts";
import type { HttpResponse } from "./errors.ts";

export function streamGet(
  client: SalesforceClient,
  path: string,
  headers: Record<string, string>,
  signal?: AbortSignal,
): Promise<{ headers: Record<string, string>; body: Readable }> {
  return client.withRetry(
    async () => {
      const conn = await client.connect();
      for (;;) {
        let res: Response;
        try {
          const init = { headers: { ...headers, Authorization: `Bearer ${conn.accessToken}` }, signal };
          // A tenant's connector: through its guard's dispatcher (every connection, redirects too, checked: lib/egress.ts).
          res = client.guard
            ? ((await undiciFetch(`${conn.instanceUrl}${path}`, { ...init, dispatcher: client.guard.dispatcher() })) as unknown as Response)
            : await fetch(`${conn.instanceUrl}${path}`, init);
        } catch (e) {
          throw client.translate(e);
        }
        const h: Record<string, string> = {};
        res.headers.forEach((v, k) => {
          h[k.toLowerCase()] = v;
        });
        if (res.status >= 400 || !res.body) {
          const answer: HttpResponse = { statusCode: res.status, headers: h, body: await res.text() };
          client.observe(answer);
          if (res.status === 401 && (await client.refreshAfter401(conn))) continue;
          throw client.translate(Object.assign(new Error(answer.body), { name: `ERROR_HTTP_${res.status}` }), answer);
        }
        client.observe({ statusCode: res.status, headers: h, body: "" });
        const body = Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
        try {
          client.checkBudget();
        } catch (e) {
          body.destroy();
          throw e;
        }
        return { headers: h, body };
      }
    },
    { transport: true, signal },
  );
}
