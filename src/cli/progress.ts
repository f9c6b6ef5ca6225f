import cliProgress from 'cli-progress';
import { formatBytes } from '../repository/format.ts';

/** 850 ms, 42 s, 3 min 05 s, 2 h 07 min. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor(s / 60) % 60).padStart(2, '0')} min`;
}

/** How a progress line reads at one instant (what both the bar and the plain lines show). */
export function progressText(
  done: number,
  total: number,
  elapsedMs: number,
  unit: 'bytes' | 'count',
): { percent: number; amounts: string; rate: string; eta: string } {
  const percent = total > 0 ? Math.min(100, Math.floor((100 * done) / total)) : 0;
  const show = unit === 'bytes' ? formatBytes : String;
  const perSecond = elapsedMs > 0 ? (done * 1000) / elapsedMs : 0;
  const rate = unit === 'bytes' && perSecond > 0 ? `${formatBytes(perSecond)}/s` : '';
  // No estimate before anything moved (cli-progress printed "eta NULL"/"INF" then, cut to "NFs", "LLs").
  const eta =
    done >= total ? '' : perSecond > 0 ? `eta ${formatDuration(((total - done) / perSecond) * 1000)}` : 'eta unknown';
  return { percent, amounts: `${show(done)}/${show(total)}`, rate, eta };
}

/**
 * Progress of long work on stderr. On a terminal, a bar redrawn in place; elsewhere (CI logs,
 * pipes) plain lines, one per 10% step and one at the end, so a log shows where work got to and
 * that it finished. Nothing is shown while the total is unknown (0): a "0 B/1 B" line says nothing.
 */
export class ProgressBar {
  private readonly label: string;
  private readonly unit: 'bytes' | 'count';
  private readonly stream: NodeJS.WriteStream;
  private readonly started = Date.now();
  private bar?: cliProgress.SingleBar;
  private last = { done: 0, total: 0 };
  private printedStep = -1;

  constructor(label: string, unit: 'bytes' | 'count' = 'bytes', stream: NodeJS.WriteStream = process.stderr) {
    this.label = label.trim();
    this.unit = unit;
    this.stream = stream;
  }

  private fields(done: number, total: number) {
    const t = progressText(done, total, Date.now() - this.started, this.unit);
    return { amounts: t.amounts, rate: t.rate, eta: t.eta };
  }

  update(done: number, total: number): void {
    if (!(total > 0)) return;
    this.last = { done, total };
    if (!this.stream.isTTY) {
      const step = Math.floor(progressText(done, total, 0, this.unit).percent / 10);
      if (step > this.printedStep) {
        this.printedStep = step;
        this.printLine();
      }
      return;
    }
    if (!this.bar) {
      this.bar = new cliProgress.SingleBar(
        {
          stream: this.stream,
          format: `${this.label} [{bar}] {percentage}% {amounts} {rate} {eta}`,
          hideCursor: true,
          fps: 5,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(total, done, this.fields(done, total));
    }
    this.bar.setTotal(total);
    this.bar.update(done, this.fields(done, total));
  }

  /** Ends the display; `complete` first moves it to 100% (the work succeeded, whatever the last report said). */
  stop(complete = false): void {
    if (complete && this.last.total > 0) this.update(this.last.total, this.last.total);
    if (this.bar) {
      this.bar.stop();
      this.bar = undefined;
    } else if (!this.stream.isTTY && this.last.total > 0 && this.printedStep < 10) {
      this.printLine();
    }
  }

  private printLine(): void {
    const t = progressText(this.last.done, this.last.total, Date.now() - this.started, this.unit);
    this.stream.write(`${[this.label, `${t.percent}%`, t.amounts, t.rate, t.eta].filter(Boolean).join(' ')}\n`);
  }
}
