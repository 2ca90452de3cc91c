/**
 * Device lists for bulk registration (src/registry/device_file.ts): RFC 4180
 * CSV as spreadsheets and scripts write it, and JSON. Pure parsing: whether a
 * readable row is an acceptable device is the registry's decision.
 */
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { isProblem } from '../../src/errors.js';
import { parseCsv, parseDeviceFile } from '../../src/registry/device_file.js';

const fixture = (name: string) => readFileSync(new URL(`../fixtures/devices/${name}`, import.meta.url), 'utf8');

describe('parseCsv (RFC 4180)', () => {
  const cases: Array<{ name: string; text: string; rows?: string[][]; error?: RegExp }> = [
    { name: 'ok-plain', text: 'a,b\n1,2\n', rows: [['a', 'b'], ['1', '2']] },
    { name: 'ok-no-final-newline', text: 'a,b\n1,2', rows: [['a', 'b'], ['1', '2']] },
    { name: 'ok-crlf', text: 'a,b\r\n1,2\r\n', rows: [['a', 'b'], ['1', '2']] },
    { name: 'ok-cr-only', text: 'a,b\r1,2\r', rows: [['a', 'b'], ['1', '2']] },
    { name: 'ok-quoted', text: '"a","b"\n"1","2"\n', rows: [['a', 'b'], ['1', '2']] },
    { name: 'ok-doubled-quotes', text: '"say ""hi""",x\n', rows: [['say "hi"', 'x']] },
    { name: 'ok-embedded-comma', text: '"Acme, Inc.",x\n', rows: [['Acme, Inc.', 'x']] },
    { name: 'ok-embedded-lf', text: '"one\ntwo",x\n', rows: [['one\ntwo', 'x']] },
    { name: 'ok-embedded-crlf-kept', text: '"one\r\ntwo",x\r\n', rows: [['one\r\ntwo', 'x']] },
    { name: 'ok-empty-fields', text: ',,\n', rows: [['', '', '']] },
    { name: 'ok-empty-quoted-field', text: '"",x\n', rows: [['', 'x']] },
    { name: 'ok-quote-inside-unquoted-field-is-literal', text: 'ab"c,d\n', rows: [['ab"c', 'd']] },
    { name: 'ok-blank-line-is-one-empty-cell', text: 'a\n\nb\n', rows: [['a'], [''], ['b']] },
    { name: 'fail-unclosed-quote', text: 'a,"b\n1,2\n', error: /quoted field is not closed/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      if (c.error) {
        assert.throws(() => parseCsv(c.text), (e) => isProblem(e, 'bad_request') && c.error!.test(e.detail));
      } else {
        assert.deepEqual(parseCsv(c.text), c.rows);
      }
    });
  }
});

describe('parseDeviceFile: CSV', () => {
  it('ok-fixture: BOM, CRLF, quotes, embedded comma and CRLF, blank lines, bad rows (tricky.csv)', () => {
    const { rows, rejected } = parseDeviceFile(fixture('tricky.csv'), 'csv');
    assert.deepEqual(
      rows.map((r) => r.input.id),
      ['sn-0001', 'sn-0002'],
    );
    const [first, second] = rows;
    assert.equal(first.line, 2);
    assert.deepEqual(first.input, {
      id: 'sn-0001',
      profile: 'device-tls',
      model: 'Gateway "GX" 2',
      domain: 'site-a',
      owner: 'Acme, Inc.',
      sans: ['dns:gw1.example', 'ip:10.0.0.1'],
      orderId: undefined,
      requireApproval: true,
      // Extra columns are free attributes; the header is case-insensitive.
      attributes: { rack: 'R1', notes: 'first line\r\nsecond line' },
    });
    assert.equal(second.input.profile, '', 'no profile and no default: the registry will refuse it');
    assert.equal(second.input.requireApproval, false);
    assert.deepEqual(second.input.attributes, {}, 'empty extra columns are no attributes');
    assert.deepEqual(
      rejected.map((r) => r.reason),
      ['4 fields, the header has 10', 'approval must be true or false, got "maybe"'],
    );
  });

  it('line numbers are the physical line a row starts on, also after a quoted field spanning lines', () => {
    // tricky.csv: header 1, sn-0001 on lines 2-3, blank 4, sn-0002 5, sn-0003 (4 fields) 6,
    // whitespace-only 7, sn-0004 (approval "maybe") 8. An operator opens the file at these lines.
    const { rows, rejected } = parseDeviceFile(fixture('tricky.csv'), 'csv');
    assert.deepEqual(
      rows.map((r) => [r.input.id, r.line]),
      [
        ['sn-0001', 2],
        ['sn-0002', 5],
      ],
    );
    assert.deepEqual(
      rejected.map((r) => r.line),
      [6, 8],
    );
  });

  it('line numbers count blank lines (no quoted newlines)', () => {
    const text = 'id,profile\n\ndev-1,device-tls\n   \ndev-2\ndev-3,device-tls,extra\ndev-4,device-tls\n';
    const { rows, rejected } = parseDeviceFile(text, 'csv');
    assert.deepEqual(
      rows.map((r) => [r.input.id, r.line]),
      [
        ['dev-1', 3],
        ['dev-4', 7],
      ],
    );
    assert.deepEqual(rejected, [
      { line: 5, reason: '1 fields, the header has 2' },
      { line: 6, reason: '3 fields, the header has 2' },
    ]);
  });

  const approval: Array<[string, boolean | undefined]> = [
    ['true', true],
    ['TRUE', true],
    ['yes', true],
    ['Yes', true],
    ['1', true],
    ['false', false],
    ['no', false],
    ['0', false],
    [' true ', true],
    ['', undefined],
  ];
  for (const [value, expected] of approval) {
    it(`ok-approval-${JSON.stringify(value)}`, () => {
      const { rows, rejected } = parseDeviceFile(`id,approval\nd1,${value}\n`, 'csv');
      assert.deepEqual(rejected, []);
      assert.equal(rows[0].input.requireApproval, expected);
    });
  }
  for (const value of ['maybe', 'y', 'on', '2', 'truee']) {
    it(`fail-approval-${value}`, () => {
      const { rows, rejected } = parseDeviceFile(`id,approval\nd1,${value}\nd2,no\n`, 'csv');
      assert.deepEqual(
        rows.map((r) => r.input.id),
        ['d2'],
      );
      assert.equal(rejected.length, 1);
      assert.equal(rejected[0].line, 2);
      assert.match(rejected[0].reason, /approval must be true or false/);
    });
  }

  it('ok-defaults: columns that are missing or empty take the caller defaults; a row value wins', () => {
    const text = 'id,profile,domain,approval\nd1,,,\nd2,server-tls,site-z,no\n';
    const { rows } = parseDeviceFile(text, 'csv', { profile: 'device-tls', domain: 'site-a', model: 'M1', orderId: 'o-1', requireApproval: true });
    assert.deepEqual(
      rows.map((r) => [r.input.profile, r.input.domain, r.input.model, r.input.orderId, r.input.requireApproval]),
      [
        ['device-tls', 'site-a', 'M1', 'o-1', true],
        ['server-tls', 'site-z', 'M1', 'o-1', false],
      ],
    );
  });

  it('ok-values are trimmed; sans split on spaces and semicolons', () => {
    const { rows } = parseDeviceFile('id , profile ,sans\n  d1 , device-tls ," dns:a.example ; ip:10.0.0.1  dns:b.example "\n', 'csv');
    assert.equal(rows[0].input.id, 'd1');
    assert.equal(rows[0].input.profile, 'device-tls');
    assert.deepEqual(rows[0].input.sans, ['dns:a.example', 'ip:10.0.0.1', 'dns:b.example']);
  });

  it('ok-attributes: every unknown column, empty cells left out', () => {
    const { rows } = parseDeviceFile('id,profile,site,asset,colour\nd1,device-tls,Berlin,,red\n', 'csv');
    assert.deepEqual(rows[0].input.attributes, { site: 'Berlin', colour: 'red' });
  });

  it('ok-order column names the order', () => {
    const { rows } = parseDeviceFile('id,order\nd1,7d2c\n', 'csv');
    assert.equal(rows[0].input.orderId, '7d2c');
  });

  it('ok-header-only and empty files give no rows', () => {
    assert.deepEqual(parseDeviceFile('id,profile\n', 'csv'), { rows: [], rejected: [] });
    assert.deepEqual(parseDeviceFile('id,profile\r\n\r\n\r\n', 'csv'), { rows: [], rejected: [] });
  });

  const fatal: Array<{ name: string; text: string; re: RegExp }> = [
    { name: 'fail-no-id-column', text: 'serial,profile\nd1,device-tls\n', re: /must name an "id" column/ },
    { name: 'fail-empty-file', text: '', re: /must name an "id" column/ },
    { name: 'fail-bom-only', text: '\uFEFF', re: /must name an "id" column/ },
    { name: 'fail-unclosed-quote', text: 'id,profile\n"d1,device-tls\n', re: /not closed/ },
  ];
  for (const c of fatal) {
    it(c.name, () => {
      assert.throws(() => parseDeviceFile(c.text, 'csv'), (e) => isProblem(e, 'bad_request') && c.re.test(e.detail));
    });
  }

  it('ok-bom before the header is not part of the first column name', () => {
    const { rows } = parseDeviceFile('\uFEFFid,profile\nd1,device-tls\n', 'csv');
    assert.equal(rows[0].input.id, 'd1');
    assert.deepEqual(rows[0].input.attributes, {});
  });

  it('ok-5000 rows parse quickly', () => {
    const lines = ['id,profile,domain,sans'];
    for (let i = 0; i < 5000; i++) lines.push(`dev-${i},device-tls,site-${i % 7},"dns:d${i}.example;ip:10.0.${i % 250}.${i % 200}"`);
    const t0 = performance.now();
    const { rows, rejected } = parseDeviceFile(lines.join('\r\n'), 'csv');
    assert.equal(rows.length, 5000);
    assert.equal(rejected.length, 0);
    assert.equal(rows[4999].line, 5001);
    assert.ok(performance.now() - t0 < 2000, 'parses 5,000 rows in well under 2 s');
  });
});

describe('parseDeviceFile: JSON', () => {
  it('ok-fixture: {"devices": [...]}, sans as array or string, numeric id, null, non-objects (devices.json)', () => {
    const { rows, rejected } = parseDeviceFile(fixture('devices.json'), 'json');
    assert.deepEqual(
      rows.map((r) => [r.line, r.input.id]),
      [
        [1, 'js-0001'],
        [2, '12345'],
        [5, 'bad id!'],
      ],
    );
    assert.deepEqual(rows[0].input.sans, ['dns:js1.example', 'ip:10.1.0.1']);
    assert.equal(rows[0].input.requireApproval, true, 'a JSON boolean is accepted');
    assert.deepEqual(rows[0].input.attributes, { rack: 'R7' });
    assert.deepEqual(rows[1].input.sans, ['dns:a.example', 'dns:b.example']);
    assert.equal(rows[1].input.owner, undefined, 'null is absent');
    assert.deepEqual(rows[1].input.attributes, {});
    assert.deepEqual(rejected, [
      { line: 3, reason: 'not an object' },
      { line: 4, reason: 'approval must be true or false, got "sometimes"' },
    ]);
  });

  it('ok-plain array', () => {
    const { rows, rejected } = parseDeviceFile(JSON.stringify([{ id: 'a', profile: 'device-tls' }, { id: 'b' }]), 'json', { profile: 'server-tls' });
    assert.deepEqual(rejected, []);
    assert.deepEqual(
      rows.map((r) => [r.line, r.input.id, r.input.profile]),
      [
        [1, 'a', 'device-tls'],
        [2, 'b', 'server-tls'],
      ],
    );
  });

  it('ok-empty array', () => {
    assert.deepEqual(parseDeviceFile('[]', 'json'), { rows: [], rejected: [] });
    assert.deepEqual(parseDeviceFile('{"devices": []}', 'json'), { rows: [], rejected: [] });
  });

  it('non-object elements (null, numbers, arrays) are rejected rows, not fatal', () => {
    const { rows, rejected } = parseDeviceFile('[null, 5, {"id": "x"}, true]', 'json');
    assert.deepEqual(
      rows.map((r) => r.input.id),
      ['x'],
    );
    assert.deepEqual(
      rejected.map((r) => r.line),
      [1, 2, 4],
    );
  });

  const fatal: Array<{ name: string; text: string; re: RegExp }> = [
    { name: 'fail-invalid-json', text: '[{"id": "a",}]', re: /not valid JSON/ },
    { name: 'fail-truncated-json', text: '{"devices": [', re: /not valid JSON/ },
    { name: 'fail-empty-text', text: '', re: /not valid JSON/ },
    { name: 'fail-object-without-devices', text: '{"items": []}', re: /an array of devices or \{"devices": \[\.\.\.\]\}/ },
    { name: 'fail-devices-not-array', text: '{"devices": {"id": "a"}}', re: /an array of devices/ },
    { name: 'fail-scalar', text: '42', re: /an array of devices/ },
    { name: 'fail-null', text: 'null', re: /an array of devices/ },
  ];
  for (const c of fatal) {
    it(c.name, () => {
      assert.throws(() => parseDeviceFile(c.text, 'json'), (e) => isProblem(e, 'bad_request') && c.re.test(e.detail));
    });
  }

  it('the field names of the API and of `device list --json` keep their meaning (orderId, requireApproval, attributes)', () => {
    // POST /api/v1/devices takes {orderId, requireApproval, attributes}; `device
    // list --json` prints them too. The same objects in an import must not turn
    // into free attributes (an order or an approval requirement silently lost).
    const { rows, rejected } = parseDeviceFile(
      JSON.stringify([{ id: 'a', profile: 'device-tls', orderId: 'o-1', requireApproval: true, attributes: { rack: 'R1' } }]),
      'json',
    );
    assert.deepEqual(rejected, []);
    assert.equal(rows[0].input.orderId, 'o-1');
    assert.equal(rows[0].input.requireApproval, true);
    assert.deepEqual(rows[0].input.attributes, { rack: 'R1' });
  });
});
