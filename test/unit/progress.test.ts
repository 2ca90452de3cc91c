/** The CLI progress bar (src/cli/progress.ts): frames and when it draws at all. */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { progressBar, renderProgress } from '../../src/cli/progress.js';

describe('renderProgress', () => {
  const frames: Array<[string, number, number, number, string]> = [
    ['ok-start', 0, 5000, 10, '\r[..........] 0/5000'],
    ['ok-rounds to the nearest cell', 1000, 3000, 10, '\r[###.......] 1000/3000'],
    ['ok-halfway', 2500, 5000, 30, `\r[${'#'.repeat(15)}${'.'.repeat(15)}] 2500/5000`],
    ['ok-complete ends the line', 5000, 5000, 30, `\r[${'#'.repeat(30)}] 5000/5000\n`],
    ['ok-an empty import is complete', 0, 0, 4, '\r[####] 0/0\n'],
    ['ok-more than the total never overflows the bar', 7, 5, 4, '\r[####] 7/5\n'],
  ];
  for (const [name, done, total, width, frame] of frames) {
    it(name, () => assert.equal(renderProgress(done, total, width), frame));
  }
});

describe('progressBar', () => {
  it('ok-draws on a terminal', () => {
    // A real stream that says it is a terminal, as process.stderr does on a tty.
    const out = Object.assign(new PassThrough(), { isTTY: true });
    const draw = progressBar(out)!;
    draw(1000, 2000);
    draw(2000, 2000);
    assert.equal(out.read().toString(), `\r[${'#'.repeat(15)}${'.'.repeat(15)}] 1000/2000\r[${'#'.repeat(30)}] 2000/2000\n`);
  });

  it('fail-not a terminal: no callback, nothing drawn', () => {
    assert.equal(progressBar(new PassThrough()), undefined);
    assert.equal(progressBar(Object.assign(new PassThrough(), { isTTY: false })), undefined);
  });
});
