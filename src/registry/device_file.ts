/**
 * Device lists for bulk registration: CSV (RFC 4180, header row) or JSON (an
 * array of objects, or { "devices": [...] }). Pure functions over text; the
 * caller reads the file.
 *
 * Columns / fields: id, profile, model, domain, owner, sans (dns:/ip: names
 * separated by spaces or semicolons), order, approval (true/false); any other
 * column becomes a free attribute.
 */
import { ProblemError } from '../errors.js';
import type { DeviceInput } from './registry.js';

export interface DeviceRow {
  /** 1-based line (CSV) or element number (JSON), for error reports. */
  line: number;
  input: DeviceInput;
}

const KNOWN = new Set(['id', 'profile', 'model', 'domain', 'owner', 'sans', 'order', 'approval']);

/** RFC 4180 fields: quotes, doubled quotes, commas and newlines inside quotes. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"' && field === '') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += ch;
  }
  if (quoted) throw new ProblemError('bad_request', 'CSV: a quoted field is not closed');
  if (field !== '' || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

function toInput(obj: Record<string, unknown>, defaults: Partial<DeviceInput>): DeviceInput {
  const str = (k: string) => (obj[k] === undefined || obj[k] === null || obj[k] === '' ? undefined : String(obj[k]).trim());
  const sansRaw = obj.sans;
  const sans = Array.isArray(sansRaw) ? sansRaw.map(String) : typeof sansRaw === 'string' && sansRaw.trim() ? sansRaw.trim().split(/[\s;]+/) : undefined;
  const approval = str('approval');
  if (approval !== undefined && !/^(true|false|yes|no|1|0)$/i.test(approval)) throw new ProblemError('bad_request', `approval must be true or false, got "${approval}"`);
  const attributes: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj)) if (!KNOWN.has(k) && v !== undefined && v !== null && v !== '') attributes[k] = String(v);
  return {
    id: str('id') ?? '',
    profile: str('profile') ?? defaults.profile ?? '',
    model: str('model') ?? defaults.model,
    domain: str('domain') ?? defaults.domain,
    owner: str('owner') ?? defaults.owner,
    sans,
    orderId: str('order') ?? defaults.orderId,
    requireApproval: approval === undefined ? defaults.requireApproval : /^(true|yes|1)$/i.test(approval),
    attributes,
  };
}

/**
 * Parses a device file. Rows that cannot even be read become `rejected`
 * entries; whether a readable row is acceptable is the registry's decision.
 */
export function parseDeviceFile(text: string, format: 'csv' | 'json', defaults: Partial<DeviceInput> = {}): { rows: DeviceRow[]; rejected: Array<{ line: number; reason: string }> } {
  const rows: DeviceRow[] = [];
  const rejected: Array<{ line: number; reason: string }> = [];
  const push = (line: number, obj: Record<string, unknown>) => {
    try {
      rows.push({ line, input: toInput(obj, defaults) });
    } catch (e) {
      if (!(e instanceof ProblemError)) throw e;
      rejected.push({ line, reason: e.detail });
    }
  };
  if (format === 'json') {
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (e) {
      throw new ProblemError('bad_request', `the device file is not valid JSON: ${(e as Error).message}`);
    }
    const list = Array.isArray(data) ? data : (data as { devices?: unknown })?.devices;
    if (!Array.isArray(list)) throw new ProblemError('bad_request', 'a JSON device file is an array of devices or {"devices": [...]}');
    list.forEach((o, i) => (o && typeof o === 'object' ? push(i + 1, o as Record<string, unknown>) : rejected.push({ line: i + 1, reason: 'not an object' })));
    return { rows, rejected };
  }
  const table = parseCsv(text.replace(/^\uFEFF/, ''));
  const header = (table.shift() ?? []).map((h) => h.trim().toLowerCase());
  if (!header.includes('id')) throw new ProblemError('bad_request', 'the CSV header must name an "id" column');
  table.forEach((cells, i) => {
    if (cells.length === 1 && cells[0].trim() === '') return; // blank line
    if (cells.length !== header.length) {
      rejected.push({ line: i + 2, reason: `${cells.length} fields, the header has ${header.length}` });
      return;
    }
    push(i + 2, Object.fromEntries(header.map((h, j) => [h, cells[j]])));
  });
  return { rows, rejected };
}
