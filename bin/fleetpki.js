#!/usr/bin/env node
// Entry point of the `fleetpki` command. The sources are TypeScript, loaded
// through tsx's loader so a checkout runs as is (no build step to forget).
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
