/** The `fleetpki` command: thin wrappers over the core, one file per group. */
import 'reflect-metadata';
import { Command, CommanderError } from 'commander';
import { VERSION } from '../version.js';
import { registerAgent } from './commands/agent.js';
import { registerAudit } from './commands/audit.js';
import { registerBackup } from './commands/backup.js';
import { registerCa } from './commands/ca.js';
import { registerCert } from './commands/cert.js';
import { registerInit } from './commands/init.js';
import { registerServe } from './commands/serve.js';
import { registerToken } from './commands/token.js';
import { registerCrl } from './commands/crl.js';
import { registerDemo } from './commands/demo.js';
import { registerDevice } from './commands/device.js';
import { registerFirmware } from './commands/firmware.js';
import { registerRegistryAdmin } from './commands/registry_admin.js';
import { registerLifecycle } from './commands/lifecycle.js';
import { registerSupply } from './commands/supply.js';
import { handleClosedOutput, reportError } from './output.js';

export function buildProgram(): Command {
  const program = new Command('fleetpki')
    .description('certificate authority, registration authority and device agent for fleets of connected devices')
    .version(VERSION)
    // Program options only before the command: "firmware sign --version 1.4.2"
    // is the image's version, not a request for fleetpki's.
    .enablePositionalOptions()
    .showHelpAfterError()
    .exitOverride();
  registerInit(program);
  registerServe(program);
  registerDemo(program);
  registerCa(program);
  registerCert(program);
  registerToken(program);
  registerDevice(program);
  registerRegistryAdmin(program);
  registerSupply(program);
  registerCrl(program);
  registerLifecycle(program);
  registerAudit(program);
  registerFirmware(program);
  registerBackup(program);
  registerAgent(program);
  return program;
}

handleClosedOutput();
try {
  await buildProgram().parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exitCode = e.exitCode;
  else process.exitCode = reportError(e);
}
