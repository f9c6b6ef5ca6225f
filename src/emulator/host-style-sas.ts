import { Agent } from 'node:https';
import { isIP } from 'node:net';
import { toHttpHeadersLike } from '@azure/core-http-compat';
import {
  createDefaultHttpClient,
  createHttpHeaders,
  createPipelineRequest,
  type RequestBodyType,
} from '@azure/core-rest-pipeline';
import type { HttpOperationResponse, IHttpClient, WebResource } from '@azure/storage-blob';

/**
 * Azure's managed-disk SAS URLs are host-style: https://md-<id>.blob.storage.azure.net/<id>/abcd?….
 * An emulator started with `hostStyleSas` gives such URLs; its clients reach it through the HTTP
 * client below, which sends a request for such a host to the emulator's address and keeps the
 * host in the Host header (as a reverse proxy would): no DNS entry, no change to the system.
 */
export const SAS_HOST_SUFFIX = '.blob.storage.azure.net';

/** The managed-disk account (`md-…`) a Host header names, or undefined for any other host. */
export function sasAccountOfHost(host: string | undefined): string | undefined {
  const m = /^(md-[a-z0-9-]+)\.blob\.storage\.azure\.net(?::\d+)?$/i.exec(host ?? '');
  return m?.[1]?.toLowerCase();
}

/** An @azure/storage-blob HTTP client that sends Azure's managed-disk blob hosts to `endpoint`. */
export function hostStyleSasClient(endpoint: string, ca: string): IHttpClient {
  const target = new URL(endpoint);
  // TLS is checked against the emulator's own name (the Host header would otherwise be the SNI).
  const agent = new Agent({
    keepAlive: true,
    ca,
    servername: isIP(target.hostname.replace(/^\[|\]$/g, '')) ? '' : target.hostname,
  });
  const inner = createDefaultHttpClient();
  return {
    async sendRequest(web: WebResource): Promise<HttpOperationResponse> {
      const url = new URL(web.url);
      const headers = createHttpHeaders(web.headers.toJson({ preserveCase: true }));
      if (url.hostname.toLowerCase().endsWith(SAS_HOST_SUFFIX)) {
        headers.set('host', url.host);
        url.protocol = target.protocol;
        url.host = target.host;
      }
      const request = createPipelineRequest({
        url: url.toString(),
        method: web.method,
        headers,
        requestId: web.requestId,
        body: web.body as RequestBodyType | undefined,
        timeout: web.timeout,
        ...(web.abortSignal ? { abortSignal: web.abortSignal } : {}),
        ...(web.streamResponseStatusCodes ? { streamResponseStatusCodes: web.streamResponseStatusCodes } : {}),
        ...(web.onDownloadProgress ? { onDownloadProgress: web.onDownloadProgress } : {}),
        ...(web.onUploadProgress ? { onUploadProgress: web.onUploadProgress } : {}),
      });
      request.agent = agent; // createPipelineRequest does not take it from its options
      const res = await inner.sendRequest(request);
      // The pipeline finds its own request again through `web` (core-http-compat keeps it there).
      return { ...res, request: web, headers: toHttpHeadersLike(res.headers) } as HttpOperationResponse;
    },
  };
}
