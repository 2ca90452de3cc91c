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

const KNOWN = new Set(['id', 'profile', 'model', 'domain', 'owner', 'sans', 'order', 'orderid', 'orderId', 'approval', 'requireapproval', 'requireApproval', 'attributes']);
/** What `device list --json` prints but a registration does not take. */
const READ_ONLY = new Set(['state', 'currentSerial', 'currentserial', 'createdAt', 'createdat', 'updatedAt', 'updatedat']);

/** RFC 4180 records as arrays of fields. */
export function parseCsv(text: string): string[][] {
  return parseCsvRecords(text).map((r) => r.cells);
}

/**
 * RFC 4180 fields: quotes, doubled quotes, commas and newlines inside quotes.
 * Each record comes with the physical line it starts on, for error reports.
 */
export function parseCsvRecords(text: string): Array<{ line: number; cells: string[] }> {
  const rows: Array<{ line: number; cells: string[] }> = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let line = 1;
  let rowLine = 1;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else {
        if (ch === '\n' || (ch === '\r' && text[i + 1] !== '\n')) line++;
        field += ch;
      }
    } else if (ch === '"' && field === '') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push({ line: rowLine, cells: row });
      row = [];
      field = '';
      line++;
      rowLine = line;
    } else field += ch;
  }
  if (quoted) throw new ProblemError('bad_request', 'CSV: a quoted field is not closed');
  if (field !== '' || row.length) {
    row.push(field);
    rows.push({ line: rowLine, cells: row });
  }
  return rows;
}

function toInput(obj: Record<string, unknown>, defaults: Partial<DeviceInput>): DeviceInput {
  const str = (k: string) => (obj[k] === undefined || obj[k] === null || obj[k] === '' ? undefined : String(obj[k]).trim());
  const sansRaw = obj.sans;
  const sans = Array.isArray(sansRaw) ? sansRaw.map(String) : typeof sansRaw === 'string' && sansRaw.trim() ? sansRaw.trim().split(/[\s;]+/) : undefined;
  // Both the file names (order, approval) and the API's (orderId, requireApproval).
  const first = (...keys: string[]) => keys.map(str).find((v) => v !== undefined);
  const approval = first('approval', 'requireApproval', 'requireapproval');
  if (approval !== undefined && !/^(true|false|yes|no|1|0)$/i.test(approval)) throw new ProblemError('bad_request', `approval must be true or false, got "${approval}"`);
  const attributes: Record<string, string> = {};
  if (obj.attributes && typeof obj.attributes === 'object' && !Array.isArray(obj.attributes)) {
    for (const [k, v] of Object.entries(obj.attributes as Record<string, unknown>)) if (v !== undefined && v !== null) attributes[k] = String(v);
  } else if (obj.attributes !== undefined && obj.attributes !== null && obj.attributes !== '') {
    throw new ProblemError('bad_request', 'attributes must be an object of strings');
  }
  for (const [k, v] of Object.entries(obj)) if (!KNOWN.has(k) && !READ_ONLY.has(k) && v !== undefined && v !== null && v !== '') attributes[k] = String(v);
  return {
    id: str('id') ?? '',
    profile: str('profile') ?? defaults.profile ?? '',
    model: str('model') ?? defaults.model,
    domain: str('domain') ?? defaults.domain,
    owner: str('owner') ?? defaults.owner,
    sans,
    orderId: first('order', 'orderId', 'orderid') ?? defaults.orderId,
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
  const table = parseCsvRecords(text.replace(/^\uFEFF/, ''));
  const header = (table.shift()?.cells ?? []).map((h) => h.trim().toLowerCase());
  if (!header.includes('id')) throw new ProblemError('bad_request', 'the CSV header must name an "id" column');
  for (const { line, cells } of table) {
    if (cells.length === 1 && cells[0].trim() === '') continue; // blank line
    if (cells.length !== header.length) {
      rejected.push({ line, reason: `${cells.length} fields, the header has ${header.length}` });
      continue;
    }
    push(line, Object.fromEntries(header.map((h, j) => [h, cells[j]])));
  }
  return { rows, rejected };
}
