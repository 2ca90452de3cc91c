/**
 * Mutual TLS with peer authorisation, for node:tls and node:https servers and
 * clients on the device. OpenSSL validates the chain during the handshake
 * (our roots, other organisations' roots and our issuing CAs as `ca`); then
 * `authorizePeer` decides from the certificate: revocation from the cached
 * CRLs, the operational domain, the scope of the anchor. A refused peer's
 * connection is closed before a byte of application data is read.
 *
 * Hostname checks are replaced by the domain check: devices of one domain
 * reach each other by address, and the certificate says who they are.
 */
import type { Server as HttpsServer } from 'node:https';
import { connect as tlsConnect, type ConnectionOptions, type DetailedPeerCertificate, type PeerCertificate, type Server as TlsServer, type TLSSocket, type TlsOptions } from 'node:tls';
import { ProblemError } from '../errors.js';
import type { Agent } from './agent.js';
import { authorizePeer, refusalOf, type AuthorizedPeer } from './peer.js';

/** The peer's chain as OpenSSL built it: leaf first, each issuer after. */
export function peerChain(cert: PeerCertificate | DetailedPeerCertificate | undefined): Uint8Array[] {
  const out: Uint8Array[] = [];
  let c = cert as DetailedPeerCertificate | undefined;
  while (c && c.raw && out.length < 10) {
    out.push(new Uint8Array(c.raw));
    if (!c.issuerCertificate || c.issuerCertificate === c || c.issuerCertificate.fingerprint256 === c.fingerprint256) break;
    c = c.issuerCertificate;
  }
  return out;
}

/** Authorises the peer of a connected socket; throws a 'forbidden' ProblemError with extra.reason. */
export function authorizeSocket(agent: Agent, socket: TLSSocket, role: 'client' | 'server'): AuthorizedPeer {
  return check(agent, peerChain(socket.getPeerCertificate(true)), role);
}

function check(agent: Agent, chain: Uint8Array[], role: 'client' | 'server'): AuthorizedPeer {
  try {
    return authorizePeer(chain, agent.peerPolicy(), role);
  } catch (e) {
    // A CRL we did not have: fetch it, so the next attempt can be decided.
    if (refusalOf(e) === 'no_crl' || refusalOf(e) === 'crl_expired') agent.requestCrls(((e as ProblemError).extra?.crlUrls as string[]) ?? []);
    throw e;
  }
}

const peers = new WeakMap<TLSSocket, AuthorizedPeer>();

/** The authorised peer of a connection accepted by a protected server (request handlers use it). */
export function peerOf(socket: TLSSocket): AuthorizedPeer | undefined {
  return peers.get(socket);
}

/** Options for tls.createServer / https.createServer: our chain and key, client certificates required. */
export function serverTlsOptions(agent: Agent): TlsOptions {
  const id = agent.identity();
  return { ...id.key, cert: id.chainPem, ca: agent.tlsCa(), requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' };
}

/**
 * Authorises every client of `server` (made with serverTlsOptions) and keeps
 * its certificate, trust and CRL current: after a renewal or a trust change
 * new connections get the new context. Returns a function that detaches.
 */
export function protectServer(
  server: TlsServer | HttpsServer,
  agent: Agent,
  o: { onRefused?(e: ProblemError, socket: TLSSocket): void; onAccepted?(peer: AuthorizedPeer, socket: TLSSocket): void } = {},
): () => void {
  const onConnection = (socket: TLSSocket) => {
    try {
      const peer = authorizeSocket(agent, socket, 'client');
      peers.set(socket, peer);
      o.onAccepted?.(peer, socket);
    } catch (e) {
      socket.destroy();
      if (e instanceof ProblemError) o.onRefused?.(e, socket);
    }
  };
  const reload = () => server.setSecureContext(serverTlsOptions(agent));
  // prependListener: decide before the HTTP layer (https.Server) reads a request.
  server.prependListener('secureConnection', onConnection);
  agent.on('renewed', reload);
  agent.on('trust', reload);
  return () => {
    server.off('secureConnection', onConnection);
    agent.off('renewed', reload);
    agent.off('trust', reload);
  };
}

/**
 * Options for tls.connect / https.request: our certificate, our trust, and a
 * checkServerIdentity that authorises the server instead of matching a
 * hostname. The refusal surfaces as the connection's error.
 */
export function clientTlsOptions(agent: Agent): ConnectionOptions {
  const id = agent.identity();
  return {
    ...id.key,
    cert: id.chainPem,
    ca: agent.tlsCa(),
    minVersion: 'TLSv1.2',
    checkServerIdentity: (_host, cert) => {
      try {
        check(agent, peerChain(cert), 'server');
        return undefined;
      } catch (e) {
        return e as Error;
      }
    },
  };
}

/** Connects with mutual TLS and resolves once the server is authorised. */
export function connectPeer(agent: Agent, target: { host: string; port: number; servername?: string; timeoutMs?: number }): Promise<{ socket: TLSSocket; peer: AuthorizedPeer }> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ ...clientTlsOptions(agent), host: target.host, port: target.port, servername: target.servername });
    const timer = setTimeout(() => socket.destroy(new ProblemError('unavailable', `no TLS handshake with ${target.host}:${target.port} within ${target.timeoutMs ?? 10_000} ms`)), target.timeoutMs ?? 10_000);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      try {
        resolve({ socket, peer: authorizeSocket(agent, socket, 'server') });
      } catch (e) {
        socket.destroy();
        reject(e);
      }
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      socket.destroy();
      reject(e);
    });
  });
}
