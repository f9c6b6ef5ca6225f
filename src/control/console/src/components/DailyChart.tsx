import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { bytes } from '../format.ts';

export interface DayFigures {
  /** Local date, YYYY-MM-DD. */
  day: string;
  read: number;
  stored: number;
}

/** Y ticks at round binary sizes: 1, 2, 5, 10, 20, 50, 100, 200, 500 B, KiB, MiB, GiB, TiB. */
const BYTE_STEPS = [0, 1, 2, 3, 4].flatMap((k) => [1, 2, 5, 10, 20, 50, 100, 200, 500].map((m) => m * 1024 ** k));

const READ = '#8fb3e8';
const STORED = '#9a6b00';

/** Midnight of a local YYYY-MM-DD, in seconds (uPlot's time unit). */
const dayStart = (day: string) => new Date(`${day}T00:00:00`).getTime() / 1000;

function toData(days: DayFigures[]): uPlot.AlignedData {
  return [days.map((d) => dayStart(d.day)), days.map((d) => d.read), days.map((d) => d.stored)];
}

/**
 * Bytes read and stored per day, as grouped bars, drawn by uPlot (canvas). The plot is made once
 * and given new data on each refresh (setData), so a live update never replaces the element under
 * the pointer; it follows its container's width down to a phone's.
 */
export function DailyChart({ days }: { days: DayFigures[] }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const latest = useRef(days);
  latest.current = days;

  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const bar = (align: -1 | 1) => uPlot.paths.bars?.({ size: [0.35, 60], align, gap: 2 });
    const made = new uPlot(
      {
        width: Math.max(280, el.clientWidth),
        height: 220,
        scales: {
          // Half a day each side, so that the first and last days' bars are whole.
          x: { time: true, range: (_u, min, max) => [min - 43_200, max + 43_200] },
          y: { range: (_u, _min, max) => [0, Math.max(1, max) * 1.1] },
        },
        axes: [
          {
            // One tick per day shown, at its bars.
            splits: (u) => [...(u.data[0] as number[])],
            values: (_u, splits) => splits.map((s) => new Date(s * 1000).toLocaleDateString('en-CA').slice(5)),
          },
          { values: (_u, splits) => splits.map((s) => bytes(s)), size: 70, incrs: BYTE_STEPS },
        ],
        series: [
          { value: (_u, v) => (v == null ? '–' : new Date(v * 1000).toLocaleDateString('en-CA')) },
          {
            label: 'read',
            stroke: READ,
            fill: READ,
            paths: bar(-1),
            points: { show: false },
            value: (_u, v) => bytes(v ?? 0),
          },
          {
            label: 'stored',
            stroke: STORED,
            fill: STORED,
            paths: bar(1),
            points: { show: false },
            value: (_u, v) => bytes(v ?? 0),
          },
        ],
      },
      toData(latest.current),
      el,
    );
    plot.current = made;
    const resize = new ResizeObserver(() => made.setSize({ width: Math.max(280, el.clientWidth), height: 220 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      made.destroy();
      plot.current = null;
    };
  }, []);

  useEffect(() => {
    plot.current?.setData(toData(days));
  }, [days]);

  return (
    <div
      ref={box}
      className="chart"
      id="daily-chart"
      role="img"
      aria-label={`Bytes read and stored per day: ${days.map((d) => `${d.day} read ${bytes(d.read)}, stored ${bytes(d.stored)}`).join('; ')}`}
    />
  );
}
