/**
 * A bar chart drawn as SVG (no canvas, no chart library, nothing inline for
 * the CSP to refuse). Each bar has a <title> for pointer users, and the same
 * numbers are in a table for screen readers and keyboard users.
 */
import type { Bucket } from './api.js';

export interface BarChartProps {
  id: string;
  title: string;
  data: Bucket[];
  /** Label of one bucket on the axis and in the table. */
  label: (b: Bucket) => string;
  unit: string;
}

const W = 640;
const H = 200;
const PAD = { left: 36, right: 8, top: 12, bottom: 28 };

export function BarChart({ id, title, data, label, unit }: BarChartProps) {
  const max = Math.max(1, ...data.map((d) => d.count));
  const step = (W - PAD.left - PAD.right) / Math.max(1, data.length);
  const bar = Math.max(2, step * 0.7);
  const y = (v: number) => PAD.top + (H - PAD.top - PAD.bottom) * (1 - v / max);
  const total = data.reduce((n, d) => n + d.count, 0);
  const every = Math.ceil(data.length / 8);
  return (
    <figure class="chart" aria-labelledby={`${id}-caption`}>
      <figcaption id={`${id}-caption`}>
        {title} <span class="muted">({total} in total)</span>
      </figcaption>
      <svg id={id} viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`${title}: ${total} ${unit} in total`} data-total={total}>
        <line class="axis" x1={PAD.left} y1={H - PAD.bottom} x2={W - PAD.right} y2={H - PAD.bottom} />
        <text class="tick" x={PAD.left - 6} y={y(max) + 4} text-anchor="end">
          {max}
        </text>
        <text class="tick" x={PAD.left - 6} y={H - PAD.bottom + 4} text-anchor="end">
          0
        </text>
        {data.map((d, i) => {
          const x = PAD.left + i * step + (step - bar) / 2;
          return (
            <g key={d.start}>
              <rect class="bar" x={x} y={y(d.count)} width={bar} height={H - PAD.bottom - y(d.count)} data-count={d.count}>
                <title>{`${label(d)}: ${d.count} ${unit}`}</title>
              </rect>
              {i % every === 0 && (
                <text class="tick" x={x + bar / 2} y={H - PAD.bottom + 16} text-anchor="middle">
                  {label(d)}
                </text>
              )}
            </g>
          );
        })}
      </svg>
      <details>
        <summary>Table of {title.toLowerCase()}</summary>
        <table>
          <thead>
            <tr>
              <th scope="col">From</th>
              <th scope="col">{unit}</th>
            </tr>
          </thead>
          <tbody>
            {data.map((d) => (
              <tr key={d.start}>
                <td>{label(d)}</td>
                <td>{d.count}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </figure>
  );
}
