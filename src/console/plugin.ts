/**
 * Serves the web console under /console on the HTTPS listener: the built
 * single-page app (scripts/build.mjs writes it to dist/console) and the
 * session routes. Every answer under /console carries a strict
 * Content-Security-Policy (scripts and styles from this origin only, no
 * inline code) and refuses to be framed. The page then talks to the admin
 * API under /api/v1 with its session cookie (see sessions.ts).
 */
import { existsSync, promises as fs } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ProblemError } from '../errors.js';
import { PERMISSIONS, roleAllows, type Operator } from '../registry/operators.js';
import { CSRF_HEADER, SESSION_COOKIE, checkOrigin, readCookie, type ConsoleSessions } from './sessions.js';

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Headers of every /console answer. */
export const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=()',
};

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.map': 'application/json; charset=utf-8',
  '.woff2': 'font/woff2',
};

/**
 * Where the built console is: beside the CLI bundle (dist/cli.mjs →
 * dist/console) or, running from the sources, the repository's dist/console.
 */
export function consoleAssetsDir(): string {
  const candidates = [fileURLToPath(new URL('./console/', import.meta.url)), fileURLToPath(new URL('../../dist/console/', import.meta.url))];
  return candidates.find((d) => existsSync(join(d, 'index.html'))) ?? candidates[candidates.length - 1];
}

export interface ConsoleOptions {
  sessions: ConsoleSessions;
  /** The built app; consoleAssetsDir() by default. */
  assetsDir?: string;
}

/** Permissions of a role, for the page to show only what the operator may do (the API checks each again). */
export function operatorJson(op: Operator) {
  return { name: op.name, role: op.role, permissions: PERMISSIONS.filter((p) => roleAllows(op.role, p)) };
}

function sessionCookie(value: string, maxAgeSeconds: number): string {
  return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=${maxAgeSeconds}`;
}

const signInBody = { type: 'object', additionalProperties: false, required: ['token'], properties: { token: { type: 'string', minLength: 1, maxLength: 200 } } } as const;
const sessionAnswer = {
  type: 'object',
  properties: {
    operator: { type: 'object', properties: { name: { type: 'string' }, role: { type: 'string' }, permissions: { type: 'array', items: { type: 'string' } } } },
    csrf: { type: 'string', description: `send it back in the ${CSRF_HEADER} header of every state-changing request` },
  },
} as const;

export async function consolePlugin(app: FastifyInstance, opts: ConsoleOptions): Promise<void> {
  const { sessions } = opts;
  const dir = opts.assetsDir ?? consoleAssetsDir();

  app.addHook('onRequest', async (req, reply) => {
    if (req.url === '/console' || req.url.startsWith('/console/') || req.url.startsWith('/console?')) reply.headers(SECURITY_HEADERS);
  });

  const sendFile = async (reply: FastifyReply, file: string, cache: string) => {
    let body: Buffer;
    try {
      body = await fs.readFile(file);
    } catch {
      if (!existsSync(join(dir, 'index.html'))) throw new ProblemError('unavailable', 'the web console is not built: run npm run build');
      throw new ProblemError('not_found', 'no such console file');
    }
    return reply.type(TYPES[extname(file)] ?? 'text/html; charset=utf-8').header('cache-control', cache).send(body);
  };

  const index = async (_req: FastifyRequest, reply: FastifyReply) => sendFile(reply, join(dir, 'index.html'), 'no-store');
  app.get('/console', { schema: { hide: true } }, async (_req, reply) => reply.redirect('/console/', 301));
  app.get('/console/', { schema: { hide: true } }, index);
  // File names carry a content hash (Vite): cached for a year.
  app.get<{ Params: { file: string } }>('/console/assets/:file', { schema: { hide: true } }, async (req, reply) => {
    if (!/^[A-Za-z0-9._-]+$/.test(req.params.file) || req.params.file.startsWith('.')) throw new ProblemError('not_found', 'no such console file');
    return sendFile(reply, join(dir, 'assets', req.params.file), 'public, max-age=31536000, immutable');
  });

  app.post<{ Body: { token: string } }>(
    '/console/session',
    { schema: { tags: ['Console'], summary: 'Sign in to the web console with an API token: sets an HttpOnly session cookie and returns the CSRF token', security: [], body: signInBody, response: { 200: sessionAnswer } } },
    async (req, reply) => {
      // JSON only (a cross-site form cannot send it) and from this origin: no signing a victim into another session.
      checkOrigin(req);
      const s = await sessions.signIn(req.body.token.trim());
      reply.header('set-cookie', sessionCookie(s.id, sessions.maxAgeSeconds)).header('cache-control', 'no-store');
      req.log.info({ actor: s.operator.actor }, 'console sign-in');
      return { operator: operatorJson(s.operator), csrf: s.csrf };
    },
  );

  app.get('/console/session', { schema: { tags: ['Console'], summary: 'The signed-in operator and the CSRF token of this session', security: [], response: { 200: sessionAnswer } } }, async (req, reply) => {
    const s = await sessions.authenticate(req);
    reply.header('cache-control', 'no-store');
    return { operator: operatorJson(s.operator), csrf: s.csrf };
  });

  app.delete('/console/session', { schema: { tags: ['Console'], summary: 'Sign out (needs the CSRF token)', security: [] } }, async (req, reply) => {
    if (readCookie(req.headers.cookie, SESSION_COOKIE) === undefined) return reply.code(204).send();
    const s = await sessions.authenticate(req);
    await sessions.signOut(s.id);
    return reply.header('set-cookie', sessionCookie('', 0)).code(204).send();
  });
}
