/**
 * OPC UA with node-opcua (no native code): a server and a client whose
 * application instance certificates come from the `opcua-application`
 * profile (RSA, applicationUri as URI SAN), enrolled by the agent over EST.
 * The agents' CA certificates and CRLs go into node-opcua's PKI folders (as
 * an agent hook would put them); the client connects with SignAndEncrypt /
 * Basic256Sha256. A client certificate from another CA is refused.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { MessageSecurityMode, OPCUACertificateManager, OPCUAClient, OPCUAServer, SecurityPolicy } from 'node-opcua';
import type { Agent } from '../../src/agent/agent.js';
import { pemDecodeAll } from '../../src/x509/pem.js';
import { startAgentEnv, type AgentEnv } from '../helpers/agent.js';
import { freePort } from '../helpers/mosquitto.js';

const SERVER_URI = 'urn:fleetpki:test:opcua-server';
const CLIENT_URI = 'urn:fleetpki:test:opcua-client';
let env: AgentEnv;
let server: OPCUAServer;
let serverAgent: Agent;
let clientAgent: Agent;
let endpoint = '';
const managers: OPCUACertificateManager[] = [];

function ossl(args: string[]): void {
  try {
    // node-opcua-pki sets OPENSSL_CONF for its own use (to "undefined" here): not for our openssl.
    const { OPENSSL_CONF: _ignored, ...clean } = process.env;
    execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', env: clean });
  } catch (e) {
    assert.fail(`openssl ${args[0]}: ${(e as { stderr?: string }).stderr}`);
  }
}

const rejected = () => (existsSync(env.file('pki-server/rejected')) ? readdirSync(env.file('pki-server/rejected')) : []);

const ders = (file: string) => pemDecodeAll(readFileSync(file, 'utf8')).map((b) => Buffer.from(b.der));

/** node-opcua's PKI folder filled from an agent's trust, CA certificates and CRLs. */
async function pkiFor(agent: Agent, name: string): Promise<OPCUACertificateManager> {
  const cm = new OPCUACertificateManager({ rootFolder: env.file(`pki-${name}`), automaticallyAcceptUnknownCertificate: false });
  await cm.initialize();
  for (const c of [...ders(agent.paths.trust), ...ders(agent.paths.cacerts)]) await cm.addIssuer(c, false, true);
  for (const crl of ders(agent.paths.crls)) {
    await cm.addRevocationList(crl, 'issuers');
    await cm.addRevocationList(crl, 'trusted');
  }
  managers.push(cm);
  return cm;
}

async function opcuaAgent(id: string, uri: string): Promise<Agent> {
  const { agent, secret } = await env.device(id, { profile: 'opcua-application', sans: [`uri:${uri}`, 'dns:localhost'], settings: { keyAlgorithm: 'rsa-2048' } });
  await agent.enroll({ secret });
  await agent.refresh();
  return agent;
}

async function connect(certificateFile: string, privateKeyFile: string, name: string): Promise<void> {
  const client = OPCUAClient.create({
    applicationUri: CLIENT_URI,
    securityMode: MessageSecurityMode.SignAndEncrypt,
    securityPolicy: SecurityPolicy.Basic256Sha256,
    certificateFile,
    privateKeyFile,
    clientCertificateManager: await pkiFor(clientAgent, `client-${name}`),
    endpointMustExist: false,
    connectionStrategy: { maxRetry: 0, initialDelay: 100, maxDelay: 200 },
  });
  try {
    await client.connect(endpoint);
    const session = await client.createSession();
    const v = await session.read({ nodeId: 'i=2258', attributeId: 13 }); // Server_ServerStatus_CurrentTime
    assert.ok(v.value.value instanceof Date);
    await session.close();
  } finally {
    await client.disconnect().catch(() => undefined);
  }
}

before(async () => {
  env = await startAgentEnv();
  serverAgent = await opcuaAgent('opcua-server-1', SERVER_URI);
  clientAgent = await opcuaAgent('opcua-client-1', CLIENT_URI);
  const port = await freePort();
  server = new OPCUAServer({
    port,
    hostname: '127.0.0.1',
    serverInfo: { applicationUri: SERVER_URI },
    securityModes: [MessageSecurityMode.SignAndEncrypt],
    securityPolicies: [SecurityPolicy.Basic256Sha256],
    certificateFile: serverAgent.paths.cert,
    privateKeyFile: serverAgent.paths.key,
    serverCertificateManager: await pkiFor(serverAgent, 'server'),
    allowAnonymous: true,
  });
  await server.initialize();
  await server.start();
  endpoint = `opc.tcp://127.0.0.1:${port}`;
});

after(async () => {
  await server?.shutdown(0).catch(() => undefined);
  for (const m of managers) await m.dispose().catch(() => undefined);
  await env?.close();
});

describe('node-opcua with agent-enrolled application instance certificates', () => {
  it('ok-certificates-follow-the-opcua-profile', () => {
    const id = serverAgent.identity();
    assert.equal(id.cert.key.type, 'rsa');
    assert.ok(id.cert.sans.some((s) => s.type === 'uri' && s.value === SERVER_URI));
    for (const u of ['digitalSignature', 'nonRepudiation', 'keyEncipherment', 'dataEncipherment']) assert.ok(id.cert.keyUsage.includes(u), u);
  });

  it('ok-sign-and-encrypt-basic256sha256', async () => {
    await connect(clientAgent.paths.cert, clientAgent.paths.key, 'ok');
  });

  it('fail-client-certificate-from-another-ca', async () => {
    const f = env.file;
    ossl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('rogue-ca.key'), '-out', f('rogue-ca.pem'), '-subj', '/CN=Rogue CA', '-days', '2', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    ossl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('rogue.key'), '-out', f('rogue.csr'), '-subj', '/CN=opcua-client-1']);
    writeFileSync(f('rogue.ext'), `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation,keyEncipherment,dataEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=URI:${CLIENT_URI},DNS:localhost\n`);
    ossl(['x509', '-req', '-in', f('rogue.csr'), '-CA', f('rogue-ca.pem'), '-CAkey', f('rogue-ca.key'), '-CAcreateserial', '-days', '1', '-extfile', f('rogue.ext'), '-out', f('rogue.pem')]);
    const rejectedBefore = rejected();
    await assert.rejects(connect(f('rogue.pem'), f('rogue.key'), 'rogue'));
    // Refused by the server's certificate manager: the rogue certificate lands in its rejected folder.
    assert.equal(rejected().length, rejectedBefore.length + 1, `rejected: ${rejected().join(', ')}`);
    // The same client with its real certificate still gets in.
    await connect(clientAgent.paths.cert, clientAgent.paths.key, 'again');
  });
});
