/** The device agent's library API (docs/agent.md). */
export { Agent, lockStateDir, readStatus, type AgentOptions, type AgentStatus, type BootstrapCredential } from './agent.js';
export { DeviceKeys, FileKeyStore, TokenKeyStore, type DeviceKey, type DeviceKeyStore, type TlsKey } from './device_key.js';
export { EstClient, parseCertsOnly } from './est_client.js';
export { nodeFiles, type AgentFiles } from './files.js';
export { authorizePeer, refusalOf, type AuthorizedPeer, type PeerPolicy, type PeerRefusal, type TrustAnchor } from './peer.js';
export { backoffMs, renewalTime } from './policy.js';
export { defaultSettings, type AgentSettings, type HookSettings, type KeyStoreSettings, type Pkcs11KeySettings } from './state.js';
export { authorizeSocket, clientTlsOptions, connectPeer, peerChain, peerOf, protectServer, serverTlsOptions } from './tls.js';
export { defaultEnginePath, engineKey } from './token_tls.js';
export { TrustList, type TrustEntry } from './trust_list.js';
export { FIRMWARE_FILE, readFirmwareState, type FirmwareState, type VerifyUpdateOptions } from './firmware.js';
export { firmwareRefusalOf, type FirmwareRefusal } from '../firmware/refusal.js';
export type { AcceptedFirmware } from '../firmware/verify.js';
