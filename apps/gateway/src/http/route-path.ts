import type { FastifyRequest } from 'fastify';

/**
 * The path a request was routed by: the matched route, not the raw URL (/%61dmin/... routes to
 * /admin/... too), else the URL's path decoded.
 */
export function routedPath(request: FastifyRequest): string {
  if (request.routeOptions.url) return request.routeOptions.url;
  const path = request.url.split('?')[0]!;
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/** Whether a path is the admin API's or the dashboard's. */
export const isAdminPath = (path: string): boolean => path === '/admin' || path.startsWith('/admin/');
