/**
 * The progress bar of long CLI commands (`device import`): one line on
 * stderr, redrawn in place with a carriage return, only when stderr is a
 * terminal, so logs and pipes never collect the redraws.
 */

export const BAR_WIDTH = 30;

/** One frame: "\r[#####.....] done/total", and a newline once complete. */
export function renderProgress(done: number, total: number, width = BAR_WIDTH): string {
  const share = total > 0 ? Math.min(Math.max(done / total, 0), 1) : 1;
  const filled = Math.round(share * width);
  return `\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}${done >= total ? '\n' : ''}`;
}

/** A progress callback drawing on `out`, or undefined when `out` is not a terminal. */
export function progressBar(out: Pick<NodeJS.WriteStream, 'write'> & { isTTY?: boolean } = process.stderr): ((done: number, total: number) => void) | undefined {
  if (!out.isTTY) return undefined;
  return (done, total) => void out.write(renderProgress(done, total));
}
